"""The verdict of ``rec-es explain``: was the stop premature? premature / not premature / cannot tell.

Built on the "still learning" estimator the policy core shares (``rec_es.policy.learning.estimate_learning``),
fed what every log holds: the evaluation epochs, the averaged monitor values, the epoch budget and the training
losses. The evidence, each a fact the plot shows:

  * **budget**: how far into its ``epochs`` the run stopped;
  * **training loss**: how fast it was still falling (relative fall per epoch over the last evaluations);
  * **trend**: the estimator's least-squares slope over the last half of the run and its z-score against the
    curve's own noise (the long-horizon trend, through the noise);
  * **the bar**: the restored best value, which any later evaluation had to beat, against the curve's level at
    the stop, in noise SDs (a lucky evaluation sets a bar the curve may need many epochs to reach);
  * **projection**: the trend carried on to the end of the budget, slowing down exponentially with the time
    constant of the window it was measured on: the level at epoch ``now + h`` is
    ``level + slope * W * (1 - exp(-h / W))``, ``W`` the trend window's span (so the trend gives at most ``W``
    more epochs' worth of its slope, however large the budget), with a band from the slope's standard error.
    ``rel`` = (projected level at the budget's last epoch - bar) / bar.

Rules (thresholds chosen on the benchmark's tuning runs only, docs/explain_verdict.md):
  1. fewer evaluations than a curve needs (``MIN_POINTS``): premature when the stop came in the first
     ``EARLY_BUDGET`` of the budget with the training loss still falling more than ``LOSS_FALLING`` per epoch;
     otherwise cannot tell;
  2. otherwise ``p`` = P(rel > ``GAIN``) under the projection's normal error: premature when ``p >= SURE``,
     not premature when ``1 - p >= SURE``, else cannot tell. The stated confidence is that probability.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from rec_es.explain.observed import Observed
from rec_es.policy.learning import MIN_POINTS, LearningEstimate, estimate_learning
from rec_es.policy.stats import normal_quantile

PREMATURE, NOT_PREMATURE, CANNOT_TELL = "premature", "not_premature", "cannot_tell"
#: a stop in this first share of the budget, with the loss still falling, is premature even without a curve
EARLY_BUDGET = 0.25
#: relative fall of the training loss per epoch above which it counts as still falling
LOSS_FALLING = 0.0005
#: the projected level must beat the bar by this share for the stop to count as premature
GAIN = 0.05
#: the probability a call needs; between 1 - SURE and SURE the verdict is "cannot tell"
SURE = 0.75
#: stated confidence of rule 1 (budget and loss alone, no curve)
EARLY_CONFIDENCE = 0.8
#: the band drawn around the projection (two-sided)
BAND = 0.9


@dataclass(frozen=True)
class Projection:
    """The trend carried to the budget's end, slowing down exponentially (original monitor units)."""

    epochs: tuple[int, ...]
    mean: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    level: float  # trend line at the stop
    horizon: float  # W * (1 - exp(-R / W)): epochs' worth of the current slope left in the budget
    gain: float  # oriented: positive = better
    gain_se: float


@dataclass(frozen=True)
class Evidence:
    """What a stopped run's log says about continuing it (gains oriented: positive = better)."""

    epoch: int
    budget: int | None
    budget_used: float | None
    evaluations: int
    loss_fall: float | None
    loss_span: tuple[int, int] | None
    bar: float | None  # the restored best value every later evaluation had to beat
    bar_epoch: int | None
    bar_over_level: float | None  # bar minus the trend line at the stop, oriented
    bar_level: float | None  # the curve's level at the restored epoch: the trend line there, or a local mean
    projection: Projection | None
    rel: float | None  # (projected level at the budget's end - bar) / |bar|, oriented
    rel_se: float | None
    estimate: LearningEstimate


def _trend_line(points: list[tuple[int, float]], first: int) -> tuple[float, float, int, int]:
    """(mean epoch, mean value, first, span) of the estimator's trend window."""
    window = [(e, v) for e, v in points if e >= first]
    mean_e = sum(e for e, _ in window) / len(window)
    mean_v = sum(v for _, v in window) / len(window)
    return mean_e, mean_v, first, max(window[-1][0] - first, 1)


def _clamp(x: float, bounds: tuple[float, float] | None) -> float:
    return x if bounds is None else min(max(x, bounds[0]), bounds[1])


def project(est: LearningEstimate, points: list[tuple[int, float]], mode: str, budget: int,
            bounds: tuple[float, float] | None = None) -> Projection | None:
    """The estimator's trend carried to epoch ``budget - 1``, slowing down exponentially, with a ``BAND`` band,
    kept inside ``bounds`` (a top-k metric such as ndcg@10 lies in [0, 1])."""
    if est.trend_slope is None or est.trend_window is None or est.trend_z is None or not points:
        return None
    sign = 1.0 if mode == "max" else -1.0
    mean_e, mean_v, first, span = _trend_line(points, est.trend_window[0])
    now = points[-1][0]
    slope = est.trend_slope  # oriented
    se = abs(slope / est.trend_z) if est.trend_z else (est.noise or 0.0) / math.sqrt(span)
    level = mean_v + sign * slope * (now - mean_e)
    z = normal_quantile(0.5 + BAND / 2)
    left = max(budget - 1 - now, 0)
    step = max(1, left // 60)
    epochs = list(range(now + step, budget, step))
    if left and (not epochs or epochs[-1] != budget - 1):
        epochs.append(budget - 1)
    shape = [span * -math.expm1(-(e - now) / span) for e in epochs]
    mean = [_clamp(level + sign * slope * h, bounds) for h in shape]
    spread = [z * se * h for h in shape]
    horizon = span * -math.expm1(-left / span)
    gain = (mean[-1] - level) * sign if mean else 0.0
    return Projection(epochs=tuple(epochs), mean=tuple(mean),
                      lo=tuple(_clamp(m - s, bounds) for m, s in zip(mean, spread)),
                      hi=tuple(_clamp(m + s, bounds) for m, s in zip(mean, spread)), level=level, horizon=horizon,
                      gain=gain, gain_se=se * horizon)


def gather(obs: Observed, stop: Mapping[str, Any]) -> Evidence:
    """The evidence of ``obs``'s log, with the shared estimator run on its evaluations and training losses."""
    points = obs.values()
    epochs = [e for e, _ in points]
    values = [v for _, v in points]
    by_epoch = {r["epoch"]: r.get("train_loss") for r in obs.trace.records}
    losses = [by_epoch.get(e) for e in epochs]
    last = obs.last_epoch
    budget = obs.epochs or last + 1
    est = estimate_learning(epochs, values, obs.mode, budget, losses if any(x is not None for x in losses) else None,
                            name=obs.monitor)
    sign = 1.0 if obs.mode == "max" else -1.0
    bounds = (0.0, 1.0) if "@" in obs.monitor else None  # RecBole's top-k metrics (ndcg@10, ...) lie in [0, 1]
    proj = project(est, points, obs.mode, budget, bounds) if len(points) >= MIN_POINTS else None
    bar = stop.get("best_value")
    over = rel = rel_se = None
    if proj is not None and bar is not None and bar != 0:
        over = (bar - proj.level) * sign
        rel = (proj.gain - over) / abs(bar)
        rel_se = proj.gain_se / abs(bar)
    fall, span = _loss_fall(epochs, losses)
    bar_level = _level_at(points, est, obs.mode, stop.get("best_epoch"))
    return Evidence(epoch=last, budget=obs.epochs, budget_used=(last + 1) / obs.epochs if obs.epochs else None,
                    evaluations=len(points), loss_fall=fall, loss_span=span, bar=bar, bar_epoch=stop.get("best_epoch"),
                    bar_over_level=over, bar_level=bar_level, projection=proj, rel=rel, rel_se=rel_se, estimate=est)


def _level_at(points: list[tuple[int, float]], est: LearningEstimate, mode: str, epoch: int | None) -> float | None:
    """The curve's level at ``epoch``: the estimator's trend line inside its window, else the mean of the five
    evaluations around it (a level, not the one lucky draw a restored best often is)."""
    epochs = [e for e, _ in points]
    if epoch not in epochs:
        return None
    if est.trend_slope is not None and est.trend_window is not None and epoch >= est.trend_window[0]:
        mean_e, mean_v, _, _ = _trend_line(points, est.trend_window[0])
        return mean_v + (1.0 if mode == "max" else -1.0) * est.trend_slope * (epoch - mean_e)
    i = epochs.index(epoch)
    near = [v for _, v in points[max(0, i - 2):i + 3]]
    return sum(near) / len(near)


def _loss_fall(epochs: list[int], losses: list[float | None], strip: int = 5) -> tuple[float | None, tuple[int, int] | None]:
    """Relative fall of the training loss per epoch over the last ``strip`` evaluations that have one."""
    pairs = [(e, x) for e, x in zip(epochs, losses) if x is not None and math.isfinite(x)][-strip:]
    if len(pairs) < 2 or pairs[-1][0] == pairs[0][0] or pairs[0][1] == 0:
        return None, None
    (e0, x0), (e1, x1) = pairs[0], pairs[-1]
    return (x0 - x1) / abs(x0) / (e1 - e0), (e0, e1)


def _pct(x: float) -> str:
    return f"{100 * x:.2g} %" if abs(x) < 0.1 else f"{100 * x:.0f} %"


def facts(ev: Evidence, monitor: str) -> dict[str, str]:
    """Every fact the evidence supports, as a clause a user can check against the plot, by name."""
    out: dict[str, str] = {}
    est = ev.estimate
    if ev.budget:
        out["budget"] = f"it stopped at epoch {ev.epoch}, {_pct(ev.budget_used or 0)} into its {ev.budget}-epoch budget"
    if ev.loss_fall is not None and ev.loss_span is not None:
        a, b = ev.loss_span
        out["loss"] = (f"the training loss was still falling {_pct(ev.loss_fall)} per epoch (epochs {a}-{b})"
                       if ev.loss_fall > LOSS_FALLING else
                       f"the training loss had flattened ({_pct(ev.loss_fall)} per epoch over epochs {a}-{b})")
    if est.trend_z is not None and est.trend_slope is not None and est.trend_window is not None:
        a, b = est.trend_window
        word = "rose" if est.trend_slope > 0 else "fell" if est.trend_slope < 0 else "stayed flat"
        out["trend"] = (f"{monitor} {word} {abs(est.trend_slope) * 10:.2g} per 10 epochs over epochs {a}-{b} "
                        f"(z = {est.trend_z:+.1f} against its noise of {est.noise:.2g})")
    if ev.bar_over_level is not None and est.noise and ev.bar_epoch is not None:
        out["bar"] = (f"the best value to beat ({ev.bar:.4g} at epoch {ev.bar_epoch}) stood "
                      f"{ev.bar_over_level / est.noise:+.1f} noise SDs from the trend line at the stop")
    p = ev.projection
    if p is not None and ev.rel is not None and ev.rel_se is not None and p.epochs:
        z = normal_quantile(0.5 + BAND / 2)
        out["projection"] = (f"that trend, slowing down, reaches {p.mean[-1]:.4g} by epoch {p.epochs[-1]} "
                             f"({_pct(ev.rel)} against that best, {100 * BAND:.0f} % band {_pct(ev.rel - z * ev.rel_se)} "
                             f"to {_pct(ev.rel + z * ev.rel_se)})")
    elif p is not None and not p.epochs:
        out["projection"] = "the budget had no epoch left"
    return out


def decide(ev: Evidence) -> tuple[str, float, list[str], str]:
    """(call, confidence, names of the deciding facts, rule) for a run a stopping rule ended."""
    falling = ev.loss_fall is not None and ev.loss_fall > LOSS_FALLING
    used = ev.budget_used
    if ev.rel is None or ev.rel_se is None:
        if used is not None and used <= EARLY_BUDGET and falling:
            return PREMATURE, EARLY_CONFIDENCE, ["budget", "loss"], "early stop, loss still falling"
        return CANNOT_TELL, 0.5, ["budget", "loss"], "too few evaluations for a curve"
    if ev.rel_se > 0:
        p = 0.5 * math.erfc(-(ev.rel - GAIN) / ev.rel_se / math.sqrt(2.0))
    else:
        p = 1.0 if ev.rel > GAIN else 0.0
    names = ["projection", "trend", "budget" if falling or ev.loss_fall is None else "loss"]
    if p >= SURE:
        return PREMATURE, p, names, "projected gain"
    if 1 - p >= SURE:
        return NOT_PREMATURE, 1 - p, names, "no projected gain"
    return CANNOT_TELL, max(p, 1 - p), names, "projected gain uncertain"


def _sentence(call: str, confidence: float, clauses: list[str]) -> str:
    head = {PREMATURE: "Premature", NOT_PREMATURE: "Not premature", CANNOT_TELL: "Cannot tell"}[call]
    sure = f" ({100 * min(confidence, 0.99):.0f} % confident)" if call != CANNOT_TELL else ""
    body = "; ".join(clauses) if clauses else "the log holds too little to judge"
    return f"{head}{sure}: {body}."


def verdict(obs: Observed, stop: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict of a run a stopping rule ended: call, confidence, deciding facts, one sentence, the evidence."""
    ev = gather(obs, stop)
    by_name = facts(ev, obs.monitor)
    call, confidence, names, rule = decide(ev)
    deciding = [by_name[n] for n in names if n in by_name][:3]
    proj = ev.projection
    return {"call": call, "confidence": round(min(confidence, 0.99), 3), "rule": rule, "facts": deciding,
            "all_facts": by_name, "sentence": _sentence(call, confidence, deciding),
            "estimate": estimate_dict(ev.estimate), "projection": _plain(asdict(proj)) if proj else None,
            "extrapolated": proj is not None and bool(proj.epochs) and "projection" in names,
            "evidence": _plain({k: v for k, v in asdict(ev).items() if k not in ("estimate", "projection")})}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, as the report's JSON has them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def estimate_dict(est: LearningEstimate) -> dict[str, Any]:
    """The shared estimator's result as plain data (continuation as a list of dicts)."""
    out = _plain(asdict(est))
    out["continuation"] = [asdict(p) for p in est.continuation]
    return out
