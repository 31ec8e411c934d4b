"""The measured verdict of ``rec-es explain --probe N``: did continuing beat the run's best by more than its noise?

A probe continues a stopped run for ``N`` more epochs and evaluates it ``K`` times. Each continuation evaluation
``k`` is compared with the run's best evaluation (the restored one) user by user: ``d[k, u]`` is user ``u``'s
monitor value at ``k`` minus the same user's at the best, oriented so that positive is better. The mean of
``d[k]`` is the gain of evaluation ``k``; its paired t-statistic ``T[k] = mean / (sd / sqrt(n))`` is the gain in
units of its own noise (the validation users' sampling noise of a difference between two evaluations).

Taking the best of ``K`` evaluations favours a lucky one, so the test is corrected for the selection:

* ``max_t`` (the default): a max-statistic bootstrap over users (Westfall & Young's single-step max-T). Users are
  resampled with replacement ``RESAMPLES`` times; in each resample the centred, studentized gains
  ``(mean*[k] - mean[k]) / se*[k]`` of all ``K`` evaluations are computed on the same users and their maximum
  kept. ``p = (1 + #{max* >= max T}) / (1 + RESAMPLES)``. It keeps the family-wise error at ``alpha`` whatever the
  evaluations' correlation (neighbouring epochs are strongly correlated, so it is far less conservative than
  Bonferroni). A fixed ``seed`` makes it deterministic.
* ``bonferroni``: ``p = min(1, K * P(t_{n-1} > max T))``: valid for any dependence, conservative when the
  evaluations are correlated.

``CORRECTION`` says which one the probe uses and why (docs/explain_verdict.md has the measurement).

The call (``probe_call``; docs/explain_verdict.md has the registered tests that chose it):

* **premature**: the corrected one-sided ``p < ALPHA``: some continuation evaluation beat the run's best by more
  than the noise allows for the best of ``K``;
* **not premature**: otherwise. When the monitor was still rising as the probe ended (the per-user slope of the
  probe's evaluations, least squares over their epochs user by user, has a t-statistic ``>= TREND_Z`` over at
  least ``MIN_TREND_POINTS`` evaluations), the report says so and that a longer probe may find a gain; it does
  not change the call (a "cannot tell" there cost agreement with the whole run and found no more gains).

numpy only (no torch, no RecBole).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from rec_es.policy.stats import difference_noise, normal_quantile, normal_sf, t_sf

PREMATURE, NOT_PREMATURE, CANNOT_TELL = "premature", "not_premature", "cannot_tell"
#: one-sided level of the corrected test
ALPHA = 0.05
#: a probe whose monitor still rises this many standard errors (per-user slope) is reported as still rising
TREND_Z = 2.0
#: fewest continuation evaluations a trend is fitted to
MIN_TREND_POINTS = 3
#: bootstrap resamples of the users (max-T)
RESAMPLES = 2000
#: the correction for taking the best of K evaluations
CORRECTION = "max_t"
CORRECTIONS = ("max_t", "bonferroni")


@dataclass(frozen=True)
class ProbeTest:
    """The corrected comparison of a probe's evaluations with the run's best (gains oriented: positive = better).

    ``gains``/``t``: per continuation evaluation; ``best``: index of the evaluation with the largest gain (what the
    probe restores), ``gain``/``se``: its mean paired gain and standard error; ``p_value``: corrected for the best
    of ``k``; ``p_single``: the same evaluation's uncorrected one-sided p; ``critical``: the corrected critical
    value of the max statistic at ``alpha``; ``lower``/``upper``: the simultaneous band ``gain +- critical * se``
    (one-sided ``1 - alpha`` each); ``trend_slope`` (per epoch) and ``trend_z``: the per-user slope over the
    probe's evaluations (None with fewer than ``MIN_TREND_POINTS``); ``paired``: False when no per-user scores
    were available and the curve's noise stood in (``test`` says which test ran)."""

    test: str
    correction: str
    k: int
    n_users: int
    gains: tuple[float, ...]
    t: tuple[float, ...]
    best: int
    gain: float
    se: float
    p_value: float
    p_single: float
    critical: float
    lower: float
    upper: float
    alpha: float
    trend_slope: float | None
    trend_z: float | None
    paired: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_of_n(base: Sequence[float] | np.ndarray, continuation: Sequence[Sequence[float]] | np.ndarray,
              epochs: Sequence[int], mode: str = "max", *, correction: str = CORRECTION, alpha: float = ALPHA,
              resamples: int = RESAMPLES, seed: int = 0) -> ProbeTest:
    """Compare ``continuation`` (``[K, n_users]`` per-user monitor values of the probe's evaluations at
    ``epochs``) with ``base`` (``[n_users]``, the run's best evaluation), corrected for the best of ``K``.

    ``mode``: ``max`` (bigger is better) or ``min``. ``correction``: ``max_t`` or ``bonferroni``; ``resamples`` and
    ``seed`` drive the max-T bootstrap (deterministic for a fixed seed)."""
    b = np.asarray(base, dtype=np.float64)
    x = np.asarray(continuation, dtype=np.float64).reshape(-1, b.shape[0])
    sign = 1.0 if mode == "max" else -1.0
    return best_of_n_differences(sign * (x - b[None, :]), epochs, correction=correction, alpha=alpha,
                            resamples=resamples, seed=seed)


def best_of_n_differences(d: np.ndarray, epochs: Sequence[int], *, correction: str = CORRECTION, alpha: float = ALPHA,
                     resamples: int = RESAMPLES, seed: int = 0) -> ProbeTest:
    """``best_of_n`` on the oriented per-user differences ``d`` ``[K, n_users]`` (continuation minus best)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be in {CORRECTIONS!r} (got {correction!r})")
    k, n = d.shape
    if k < 1 or n < 2 or len(epochs) != k:
        raise ValueError(f"need at least one continuation evaluation and two users, with one epoch each "
                         f"(got {k} evaluations, {n} users, {len(epochs)} epochs)")
    gains = d.mean(axis=1)
    se = d.std(axis=1, ddof=1) / math.sqrt(n)
    t = _studentize(gains, se)
    top = int(t.argmax())
    t_max = float(t[top])
    if correction == "max_t":
        maxima = _max_t_null(d, gains, resamples, seed)
        p_value = float((1 + np.count_nonzero(maxima >= t_max - 1e-12)) / (1 + resamples))
        critical = float(np.quantile(maxima, 1.0 - alpha))
    else:
        p_value = min(1.0, k * _t_p(t_max, float(se[top]), float(gains[top]), n))
        critical = t_quantile(1.0 - alpha / k, n - 1)
    best = int(np.argmax(gains))  # first of equal gains: the earliest evaluation, as a policy restores it
    slope, z = paired_trend(d, epochs)
    return ProbeTest(test="paired t", correction=correction, k=k, n_users=n, gains=_floats(gains), t=_floats(t),
                     best=best, gain=float(gains[best]), se=float(se[best]), p_value=p_value,
                     p_single=_t_p(float(t[best]), float(se[best]), float(gains[best]), n), critical=critical,
                     lower=float(gains[best] - critical * se[best]), upper=float(gains[best] + critical * se[best]),
                     alpha=alpha, trend_slope=slope, trend_z=z)


def curve_best_of_n(base: float, values: Sequence[float], epochs: Sequence[int], noise_values: Sequence[float],
                    mode: str = "max", alpha: float = ALPHA) -> ProbeTest | None:
    """The fallback without per-user scores: each gain against the curve's own noise (``difference_noise`` of
    ``noise_values``, the SD of one evaluation; a difference has ``sqrt(2)`` times it), Bonferroni over the ``K``
    evaluations with the normal tail; the trend is the least-squares slope against the same noise. None when the
    noise cannot be measured (fewer than 3 values) or is zero."""
    noise = difference_noise(list(noise_values))
    if noise is None or noise <= 0 or not values:
        return None
    sign = 1.0 if mode == "max" else -1.0
    gains = np.array([sign * (v - base) for v in values], dtype=np.float64)
    se = noise * math.sqrt(2.0)
    t = gains / se
    k = len(values)
    best = int(np.argmax(gains))
    p_value = min(1.0, k * normal_sf(float(t.max())))
    critical = normal_quantile(1.0 - alpha / k)
    slope = z = None
    if k >= MIN_TREND_POINTS:
        e = np.asarray(epochs, dtype=np.float64)
        sxx = float(((e - e.mean()) ** 2).sum())
        if sxx > 0:
            slope = float(((e - e.mean()) * (sign * np.asarray(values) - sign * np.mean(values))).sum() / sxx)
            z = slope / (noise / math.sqrt(sxx))
    return ProbeTest(test="z against the curve noise (no per-user scores)", correction="bonferroni", k=k,
                     n_users=0, gains=_floats(gains), t=_floats(t), best=best, gain=float(gains[best]), se=se,
                     p_value=p_value, p_single=normal_sf(float(t[best])), critical=critical,
                     lower=float(gains[best] - critical * se), upper=float(gains[best] + critical * se),
                     alpha=alpha, trend_slope=slope, trend_z=z, paired=False)


def probe_call(test: ProbeTest) -> str:
    """premature (corrected p < alpha) or not_premature (the rule in the module docstring)."""
    return PREMATURE if test.p_value < test.alpha else NOT_PREMATURE


def still_rising(test: ProbeTest) -> bool:
    """The monitor was still rising when the probe ended (trend t-statistic >= ``TREND_Z``)."""
    return test.trend_z is not None and test.trend_z >= TREND_Z


def paired_trend(values: np.ndarray, epochs: Sequence[int]) -> tuple[float | None, float | None]:
    """(mean per-user least-squares slope per epoch, its t-statistic over users) of ``values`` ``[K, n]``
    (oriented: positive = better) at ``epochs``; (None, None) with fewer than ``MIN_TREND_POINTS`` evaluations."""
    k, n = values.shape
    if k < MIN_TREND_POINTS:
        return None, None
    e = np.asarray(epochs, dtype=np.float64)
    centred = e - e.mean()
    sxx = float((centred ** 2).sum())
    if sxx <= 0:
        return None, None
    slopes = centred @ values / sxx  # [n]
    mean = float(slopes.mean())
    se = float(slopes.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return mean, (math.inf if mean > 0 else -math.inf if mean < 0 else 0.0)
    return mean, mean / se


def _studentize(gains: np.ndarray, se: np.ndarray) -> np.ndarray:
    """gain / se, with no variance: +inf for a positive gain, -inf for a negative one, 0 for none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, gains / np.where(se > 0, se, 1.0), np.sign(gains) * np.inf)
    return np.nan_to_num(t, nan=0.0, posinf=np.inf, neginf=-np.inf)


def _t_p(t: float, se: float, gain: float, n: int) -> float:
    """One-sided p of a paired t-statistic (no variance: 0 for a positive gain, else 1)."""
    if se == 0.0:
        return 0.0 if gain > 0 else 1.0
    return t_sf(float(t), n - 1)


@lru_cache(maxsize=8)
def _resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` multinomial counts: how often each user is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    counts.setflags(write=False)
    return counts


def _max_t_null(d: np.ndarray, gains: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """``[resamples]`` maxima over the K evaluations of the centred, studentized bootstrap gains."""
    k, n = d.shape
    w = _resample_counts(n, resamples, seed)
    mean = w @ d.T / n  # [B, K]
    second = w @ (d * d).T / n
    var = np.maximum(second - mean * mean, 0.0) * n / (n - 1)
    se = np.sqrt(var / n)
    centred = mean - gains[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, centred / np.where(se > 0, se, 1.0), 0.0)
    return t.max(axis=1)


def t_quantile(p: float, df: float) -> float:
    """The Student t quantile ``q`` with ``P(T <= q) = p`` (bisection on ``t_sf``; p in (0.5, 1))."""
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > 1.0 - p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _floats(a: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in a)
