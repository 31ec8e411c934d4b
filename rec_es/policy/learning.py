"""Is the model still learning? One estimator, shared by the still-learning rule and ``rec-es explain``.

Input: the evaluation epochs, the monitor's values (the averaged metric: stock RecBole logs have nothing else),
its mode, the epoch budget (RecBole's ``epochs``), optionally the training loss at each evaluation and a
measured per-evaluation noise (e.g. from per-user paired differences). Output: ``LearningEstimate``.

How it decides (docs/still-learning.md has the measurements behind each choice):

1. **Noise** sigma: the one given (and where it came from), else the curve's own evaluation-to-evaluation
   noise over the fitted window, ``1.4826 * MAD(first differences) / sqrt(2)`` (``stats.difference_noise``).
2. **Saturating learning curve** on the recent history (the last ``window`` fraction of the evaluations, at
   least ``MIN_POINTS``): ``y = a + b * g(t)`` with ``g = exp(-(t - t0) / tau)`` (exponential) or
   ``g = (t + 1) ** -c`` (power law). For each shape parameter on a log grid, (a, b) is a linear least-squares
   fit; the best fit gives the expected gain ``f(budget) - f(now)``. The interval is a profile-likelihood one:
   every shape whose SSE is within ``z^2 * sigma^2`` of the best (sigma = max(noise, residual SD)) is
   plausible, and the interval is the union over them of ``gain +- z * se(gain)``, se from the linear fit
   combined with a **model discrepancy** per side (``DISCREPANCY``: what no curve family foresees, a slow
   decline once overfitting starts or a second rise), calibrated on recorded runs whose future is known
   (``scripts/bench_learning.py --calibrate``).
   Time constants stop at twice the window and exponents at 0.02 (nearly logarithmic growth), so the most
   optimistic plausible continuation is logarithmic, not the current slope carried on in a straight line.
3. **Long-horizon trend**: the least-squares slope over the same window with its z-score against sigma.
4. **Training-loss progress**: Prechelt's P_k over the last ``strip`` evaluations (per mille); below 0.1 the
   training has stalled (Prechelt 1998), so the model is not called "learning" however the curve looks.

State: ``learning`` when the lower bound of the gain is above ``margin`` (default: sigma, the larger of the
noise and the fit's residual SD) and the training has not stalled; ``stopped`` when the upper bound is at most
the margin and the window's trend is not confidently rising (a fast-saturating curve fitted to a window that
still climbs would claim a certainty the model assumes, not one the data show), or when the training stalled
and the lower bound is at most the margin; else ``unknown``. ``confidence`` is
the normal-approximation probability of the side the estimate is on (0.5 = a coin flip).

Caveat: the bounds are calibrated, not derived. At ``level`` 0.9 the interval is meant to hold the level at the
budget's end 80 % of the time; on runs left out of the calibration it did about that on average, but per run
anywhere from 13 % to 100 % of the time (docs/still-learning.md, "Calibrated bounds").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from rec_es.policy.stats import difference_noise, fit_line, normal_quantile, training_progress

LEARNING, STOPPED, UNKNOWN = "learning", "stopped", "unknown"
#: a curve family's shape function g(shape, epoch)
Basis = Callable[[float, float], float]
#: fewest evaluations a curve is fitted to
MIN_POINTS = 8
#: Prechelt's stalled-training threshold for P_k, in per mille
STALLED = 0.1
CURVE_NOISE = "curve: 1.4826·MAD(first differences)/√2"
_GRID = 24


@dataclass(frozen=True)
class Point:
    """One epoch of the extrapolated continuation, in monitor units: the fitted level and its band."""

    epoch: int
    mean: float
    lo: float
    hi: float


@dataclass(frozen=True)
class LearningEstimate:
    """What the history says about continuing to the budget. Gains are in monitor units, positive = better
    (whatever the mode); None where the history is too short to say.

    ``gain``/``gain_lo``/``gain_hi``: expected change of the fitted level from the last evaluation to the
    budget's last epoch, and its interval (each bound one-sided at ``level``; the fit's uncertainty and the model
    discrepancy, calibrated on recorded runs: docs/still-learning.md). ``noise``: the per-evaluation
    sigma used, ``noise_source`` where it came from. ``trend_slope`` (per epoch) and ``trend_z`` over
    ``trend_window`` (first, last epoch). ``loss_progress``: Prechelt's P_k of the training loss (per mille)
    over the last ``strip`` evaluations; ``loss_change``: relative fall of the training loss over the window.
    ``facts``: the two or three checkable sentences that decided it. ``continuation``: the fitted curve
    from the last evaluation to the budget, for plotting.
    """

    state: str
    confidence: float
    gain: float | None
    gain_lo: float | None
    gain_hi: float | None
    margin: float | None
    noise: float | None
    noise_source: str
    trend_slope: float | None
    trend_z: float | None
    trend_window: tuple[int, int] | None
    loss_progress: float | None
    loss_change: float | None
    facts: tuple[str, ...]
    continuation: tuple[Point, ...]
    method: str
    epoch: int | None
    budget: int
    level: float

    @property
    def learning(self) -> bool:
        return self.state == LEARNING

    @property
    def stopped(self) -> bool:
        return self.state == STOPPED


@dataclass(frozen=True)
class _Fit:
    shape: float
    a: float
    b: float
    sse: float
    g_mean: float
    sgg: float
    n: int


def _exp_basis(t0: float) -> Basis:
    return lambda tau, t: math.exp(-(t - t0) / tau)


def _pow_basis(tau: float, t: float) -> float:
    return (t + 1.0) ** -tau


def _fit(basis: Basis, shape: float, t: Sequence[float], y: Sequence[float]) -> _Fit | None:
    """Least squares of ``y = a + b g(t)`` for one shape, in closed form: b = S_gy / S_gg, SSE = S_yy - b S_gy
    (the values are centred first, so the sums do not cancel)."""
    n = len(t)
    ym = sum(y) / n
    yc = [w - ym for w in y]
    g = [basis(shape, x) for x in t]
    gm = sum(g) / n
    gc = [v - gm for v in g]
    sgg = sum(v * v for v in gc)
    if not sgg > 1e-18 * n:
        return None
    sgy = sum(v * w for v, w in zip(gc, yc))
    b = sgy / sgg
    sse = max(0.0, sum(w * w for w in yc) - b * sgy)
    return _Fit(shape, ym - b * gm, b, sse, gm, sgg, n)


def _grid(low: float, high: float, n: int = _GRID) -> list[float]:
    return [low * (high / low) ** (i / (n - 1)) for i in range(n)]


FAMILIES = ("exponential", "power law")


def _families(t: Sequence[float], names: Sequence[str]) -> list[tuple[str, Basis, list[float]]]:
    """The curve families and their shape grids: exponential time constants up to twice the window (a
    slower one is a straight line, which no learning curve stays), power-law exponents down to 0.02 (nearly
    logarithmic growth: the most optimistic saturating shape)."""
    span = max(t[-1] - t[0], 1.0)
    table = {"exponential": (_exp_basis(t[0]), _grid(0.5, 2.0 * span)), "power law": (_pow_basis, _grid(0.02, 4.0))}
    return [(name, *table[name]) for name in names]


def _refine(basis: Basis, shapes: list[float], top: _Fit, t: Sequence[float],
            y: Sequence[float]) -> _Fit:
    """Golden-section search of log(shape) between the grid neighbours of the best grid shape."""
    i = shapes.index(top.shape)
    lo, hi = math.log(shapes[max(i - 1, 0)]), math.log(shapes[min(i + 1, len(shapes) - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    best = top

    def sse(u: float) -> float:
        nonlocal best
        f = _fit(basis, math.exp(u), t, y)
        if f is None:
            return math.inf
        if f.sse < best.sse:
            best = f
        return f.sse

    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = sse(c), sse(d)
    for _ in range(20):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - ratio * (hi - lo)
            fc = sse(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + ratio * (hi - lo)
            fd = sse(d)
    return best


def _lag1(basis: Basis, f: _Fit, t: Sequence[float], y: Sequence[float]) -> float:
    """Lag-1 autocorrelation of the best fit's residuals, clamped to [0, 0.8] (plateaus and bumps that the
    curve does not follow make neighbouring residuals alike, so the n residuals hold fewer independent ones). The
    estimate's SEs are inflated by the AR(1) factor sqrt((1 + rho) / (1 - rho))."""
    r = [w - f.a - f.b * basis(f.shape, x) for x, w in zip(t, y)]
    den = math.fsum(v * v for v in r)
    if den <= 0:
        return 0.0
    return min(0.8, max(0.0, math.fsum(a * b for a, b in zip(r, r[1:])) / den))


#: model discrepancy of the extrapolation, (below, above) the fit (docs/still-learning.md, "Calibrated bounds"):
#: what no curve family foresees (a slow decline once overfitting starts, a second rise) adds an error of SD
#: ``k * sigma * sqrt(1 + min(h / span, HORIZON_CAP))`` on that side at ``h`` epochs past the last evaluation
#: (``span``: the fitted window's epochs; ``sigma``: the larger of the noise and the fit's residual SD),
#: measured on the recorded long runs (scripts/bench_learning.py --calibrate)
DISCREPANCY = (1.0, 1.0)
#: the discrepancy grows with the horizon up to this many window spans, then stays: no further growth is
#: measured, and a 500-epoch budget after a 10-epoch window would otherwise give bounds wider than the metric
HORIZON_CAP = 3.0

_Spread = Callable[[float], float]


def _discrepancy(sigma: float, span: float, k: tuple[float, float]) -> tuple[_Spread, _Spread]:
    """The discrepancy SDs below and above the fit at ``h`` epochs past the last evaluation (``DISCREPANCY``)."""
    span = max(span, 1.0)

    def spread(factor: float) -> _Spread:
        return lambda h: factor * sigma * math.sqrt(1.0 + min(max(h, 0.0) / span, HORIZON_CAP))

    return spread(k[0]), spread(k[1])


def _orient(values: Sequence[float], mode: str) -> list[float]:
    return list(values) if mode == "max" else [-v for v in values]


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _unknown(epoch: int | None, budget: int, noise: float | None, source: str, level: float,
             why: str) -> LearningEstimate:
    return LearningEstimate(UNKNOWN, 0.5, None, None, None, noise, noise, source, None, None, None, None, None,
                            (why,), (), "none", epoch, budget, level)


def estimate_learning(epochs: Sequence[int], values: Sequence[float], mode: str, budget: int,
                      train_losses: Sequence[float | None] | None = None, noise: float | None = None,
                      noise_source: str = "given", *, level: float = 0.9, window: float = 0.5,
                      margin: float | None = None, strip: int = 5, name: str = "the monitor",
                      families: Sequence[str] = FAMILIES,
                      discrepancy: tuple[float, float] = DISCREPANCY) -> LearningEstimate:
    """Estimate whether continuing to epoch ``budget - 1`` would still raise the monitor above its noise.

    ``epochs``/``values``/``train_losses`` are per evaluation (non-finite values are skipped); ``budget`` is
    RecBole's ``epochs`` (the last epoch is ``budget - 1``); ``noise`` a measured per-evaluation SD (None: the
    curve's own); ``level`` the one-sided confidence of each bound; ``window`` the fraction of the history the
    curve and trend are fitted to; ``margin`` the gain that counts (default: the noise); ``name`` how facts
    name the monitor; ``families`` the curve families tried (default both); ``discrepancy`` the model
    discrepancy factors (below, above) of the bounds (``DISCREPANCY``; (0, 0): the fit's uncertainty only).
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min' (got {mode!r})")
    if not 0.5 < level < 1:
        raise ValueError(f"level must be in (0.5, 1) (got {level!r})")
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1] (got {window!r})")
    if len(discrepancy) != 2 or min(discrepancy) < 0:
        raise ValueError(f"discrepancy must be two non-negative factors, (below, above) (got {discrepancy!r})")
    if len(epochs) != len(values) or (train_losses is not None and len(train_losses) != len(values)):
        raise ValueError("epochs, values and train_losses must have one entry per evaluation")
    keep = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    t = [float(epochs[i]) for i in keep]
    y = _orient([float(values[i]) for i in keep], mode)
    last = int(t[-1]) if t else None
    end = float(budget - 1)
    source = noise_source if noise is not None else CURVE_NOISE
    if len(t) < MIN_POINTS:
        return _unknown(last, budget, noise if noise is not None else difference_noise(y), source, level,
                        f"{len(t)} finite evaluations: a learning curve needs at least {MIN_POINTS}")
    z = normal_quantile(level)
    start = min(len(t) - MIN_POINTS, int(len(t) * (1.0 - window)))
    tw, yw = t[start:], y[start:]
    if noise is None:
        noise = difference_noise(yw)
    trend = fit_line(tw, yw)
    best: tuple[str, Basis, _Fit] | None = None
    fits = []
    if not families or set(families) - set(FAMILIES):
        raise ValueError(f"families must be among {FAMILIES} (got {families!r})")
    for family, basis, shapes in _families(tw, families):
        found = [f for f in (_fit(basis, shape, tw, yw) for shape in shapes) if f is not None]
        if not found:
            continue
        fits += [(family, basis, f) for f in found]
        top = _refine(basis, shapes, min(found, key=lambda f: f.sse), tw, yw)
        fits.append((family, basis, top))
        if best is None or top.sse < best[2].sse:
            best = (family, basis, top)
    if best is None:  # every shape degenerate: the window's times are all equal
        return _unknown(last, budget, noise, source, level, "the evaluations share one epoch")
    resid = math.sqrt(best[2].sse / max(best[2].n - 3, 1))
    sigma = max(noise or 0.0, resid)
    if sigma == 0.0:
        sigma = 1e-12
    plausible = [(fam, bas, f) for fam, bas, f in fits if f.sse <= best[2].sse + z * z * sigma * sigma]
    rho = _lag1(best[1], best[2], tw, yw)
    down, up = _discrepancy(sigma, tw[-1] - tw[0], discrepancy)
    sigma *= math.sqrt((1.0 + rho) / (1.0 - rho))
    now = tw[-1]

    def gain_se(bas: Basis, f: _Fit) -> tuple[float, float, float]:
        dg = bas(f.shape, end) - bas(f.shape, now)
        se = sigma * abs(dg) / math.sqrt(f.sgg)
        return f.b * dg, math.hypot(se, down(end - now)), math.hypot(se, up(end - now))

    gain = gain_se(best[1], best[2])[0] if now < end else 0.0
    bounds = [gain_se(bas, f) for _, bas, f in plausible] if now < end else [(0.0, 0.0, 0.0)]
    lo = min(g - z * s for g, s, _ in bounds)
    hi = max(g + z * s for g, _, s in bounds)
    cut = sigma if margin is None else margin
    if gain > cut:
        conf = _normal_cdf((gain - cut) / max((gain - lo) / z, 1e-15))
    else:
        conf = _normal_cdf((cut - gain) / max((hi - gain) / z, 1e-15))
    slope_se = trend.slope_se(sigma)
    trend_z = trend.slope / slope_se if slope_se > 0 else 0.0
    progress = change = None
    if train_losses is not None:
        losses = [float(train_losses[i]) for i in keep if train_losses[i] is not None]
        if len(losses) >= strip:
            progress = training_progress(losses[-strip:])
        wl = [float(train_losses[i]) for i in keep[start:] if train_losses[i] is not None]
        if len(wl) >= 2 and wl[0] != 0:
            change = (wl[0] - wl[-1]) / abs(wl[0])
    stalled = progress is not None and progress < STALLED
    rising = trend_z > z  # the window's slope is confidently positive: a curve saying "saturated" is not trusted
    if lo > cut and not stalled:
        state = LEARNING
    elif (hi <= cut and not rising) or (stalled and lo <= cut):
        state = STOPPED
    else:
        state = UNKNOWN
    sign = 1.0 if mode == "max" else -1.0
    unit = lambda v: f"{v:+.4f}"  # noqa: E731
    facts = [f"{best[0]} curve on epochs {int(tw[0])}-{int(now)}: {unit(gain)} [{unit(lo)}, {unit(hi)}] {name} "
             f"expected by epoch {int(end)}, against a margin of {cut:.4f}",
             f"noise {noise or 0.0:.4f} per evaluation ({source})"
             + (f"; fit residual SD {resid:.4f}" if resid > (noise or 0.0) else "")]
    if stalled:
        facts.append(f"training loss has stalled: P_{strip} = {progress:.3g}‰ < {STALLED}‰ (Prechelt)")
    elif rising and hi <= cut:
        facts.append(f"but the trend over epochs {int(tw[0])}-{int(now)} still rises, {trend.slope * 100:+.4f} per 100 "
                     f"epochs (z = {trend_z:.1f} > {z:.2f}), so saturation is not taken for granted")
    else:
        facts.append(f"trend over epochs {int(tw[0])}-{int(now)}: {trend.slope * 100:+.4f} per 100 epochs "
                     f"(z = {trend_z:.1f})"
                     + (f"; training loss P_{strip} = {progress:.3g}‰" if progress is not None else ""))
    fam, bas, f = best
    continuation = []
    if now < end:
        step = max(1.0, (end - now) / 60.0)
        k = 1
        while True:
            e = min(end, now + round(k * step))
            g_best = f.a + f.b * bas(f.shape, e)
            spans = []
            for _, b2, f2 in plausible:
                lvl = f2.a + f2.b * b2(f2.shape, e)
                se = sigma * math.sqrt(1.0 / f2.n + (b2(f2.shape, e) - f2.g_mean) ** 2 / f2.sgg)
                spans.append((lvl - z * math.hypot(se, down(e - now)), lvl + z * math.hypot(se, up(e - now))))
            lo_e, hi_e = min(s[0] for s in spans), max(s[1] for s in spans)
            continuation.append(Point(int(e), sign * g_best, *sorted((sign * lo_e, sign * hi_e))))
            if e >= end:
                break
            k += 1
    shape = f"tau {f.shape:.3g} epochs" if fam == "exponential" else f"exponent {f.shape:.3g}"
    return LearningEstimate(state, conf, gain, lo, hi, cut, noise, source, trend.slope, trend_z,
                            (int(tw[0]), int(now)), progress, change, tuple(facts), tuple(continuation),
                            f"{fam} ({shape}), {len(plausible)} plausible shapes", last, budget, level)
