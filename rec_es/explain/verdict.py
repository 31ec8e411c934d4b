"""The verdict of ``rec-es explain`` on a run a stopping rule ended: was the stop premature?

``verdict(obs, stop)`` returns the call (``premature``, ``not_premature`` or ``cannot_tell``), the rule that made
it, its stated confidence, up to three deciding facts (clauses a user can check against ``--plot``) and one
sentence. It reads what every log holds: the evaluation epochs, the averaged monitor values, the epoch budget
and the training losses, through the "still learning" estimator the policy core shares
(``rec_es.policy.learning.estimate_learning``). The evidence (``gather``; ``facts`` words it):

  * **trend**: the estimator's least-squares slope of the monitor over the last half of the run (its trend
    window, ``W`` epochs long) and its z-score against the curve's own noise: the long-horizon trend, through
    the noise, where the last ``patience + 1`` evaluations alone show only a plateau;
  * **room**: the epochs ``R`` left in the budget after the stop, against ``W``: a rising trend matters when the
    budget holds at least as many epochs again as the trend was measured over;
  * **training loss**: how fast it was still falling (relative fall per epoch over the last evaluations), and
    its *headroom*: the share of the loss still to shed at that pace over the epochs left;
  * **extrapolation**: the estimator's saturating learning curve, its expected gain by the budget's last epoch
    with bounds (``rec_es.explain.lost`` turns it into what was lost; the plot draws it with its band).

Rules (``decide``), first match wins:
  1. trend ``z <= -FALLING_Z``: not premature. The validation curve was falling through its noise over the last
     half of the run; with the training loss still falling, the model was overfitting;
  2. with a loss headroom (training losses and a known budget; ``loss_rule``): at most ``LOSS_HEADROOM``, training
     had as good as finished for the budget it had: not premature. Above it, premature when there are too few
     evaluations for a trend (an early stop), when ``z >= TREND_Z`` (rising through its noise), when the loss
     fell at most ``SLOW_LOSS`` of itself over the trend window (a plateau the training loss shares with the
     validation curve, which both leave later), or, a weaker call, when ``z >= LEANING_Z`` (leaning up). Else
     **cannot tell**: a loss that fell faster beside a flat validation curve is what both a plateau before a
     second rise and a model fitting its training data past its validation peak look like; the sentence says
     how often such stops were premature on the benchmark (``UNDECIDED``);
  3. without one: fewer evaluations than the estimator fits a curve to (``MIN_POINTS``): cannot tell; trend
     ``z >= TREND_Z`` and ``R >= ROOM * W``: premature (still rising, with room to rise); rising with too little
     budget left: not premature; no budget known and rising: cannot tell; otherwise not premature.

Confidence (none for cannot tell): ``CONFIDENCE[rule]``, the rule's share of right verdicts on the benchmark's
recorded runs, (right + 1) / (cases + 2) so that a rule right on all of few cases does not claim 100 %. It reads
"of the stock logs the benchmark decided by this rule, about this share was right", not a probability for this
run. Beside it the sentence states ``UNTUNED[rule]``, the rule's (right, cases) when each regime is decided by
the thresholds chosen without it (leave one regime out): the count to trust for a model or learning rate the
benchmark did not record, lower than the pooled share for the "not premature" rules.

Caveats: the thresholds are the grid point of ``scripts/bench_explain.py --tune`` that maximises right - 2 x
wrong on the benchmark's runs (a call is worth giving when it is right two times in three; a tie goes to fewer
wrong calls), so the confidences are in-sample and hold as far as a run resembles the recorded regimes; and what
a stock log holds bounds how many stops any verdict can call right. docs/explain_verdict.md has the benchmark,
its numbers, how each threshold was chosen and that bound.

These numbers are measured, not chosen: ``verdict_record.json`` beside this module holds them, as
``scripts/bench_explain.py --record`` writes it from the benchmark's cases, and this module reads it at import
(``tests/test_bench_explain.py`` checks it is what the committed cases give).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Mapping

from rec_es.explain.observed import Observed
from rec_es.policy.learning import MIN_POINTS, LearningEstimate, estimate_learning

PREMATURE, NOT_PREMATURE, CANNOT_TELL = "premature", "not_premature", "cannot_tell"
#: the share of the training loss still to shed at its current pace over the epochs left (``Evidence.loss_headroom``),
#: above which the model was still learning
LOSS_HEADROOM = 0.04
#: a trend this many standard errors above flat is still rising
TREND_Z = 2.0
#: ...and, beside a training loss still falling above LOSS_HEADROOM, a trend this many standard errors above flat
#: is enough for a premature call ("leaning up", a weaker call with its own confidence); at TREND_Z the rule is off
LEANING_Z = 1.5
#: beside a monitor under TREND_Z, a training loss that fell at most this share of itself over the trend window
#: (while still falling fast enough for the budget left) is on a plateau the validation curve shares: premature. A
#: loss that fell more while validation stayed flat is what both a second rise to come and a model fitting its
#: training data past its validation peak look like: cannot tell. A share of the loss, so where it sits depends on
#: the loss function and the dataset. LOSS_HEADROOM, LEANING_Z and SLOW_LOSS are the point of the benchmark's grid
#: that maximises right - 2 x wrong (``scripts/bench_explain.py --tune``; docs/explain_verdict.md has the record)
SLOW_LOSS = 0.025
#: ...and, without training losses, matters when at least ROOM times its window's span of epochs is left
ROOM = 1.0
#: a trend this many standard errors below flat is falling
FALLING_Z = 2.0


def _read_record() -> dict[str, Any]:
    """verdict_record.json: per rule, what the benchmark measured (its ``about`` names every field)."""
    text = resources.files("rec_es.explain").joinpath("verdict_record.json").read_text(encoding="utf-8")
    return json.loads(text)


_RECORD = _read_record()
#: per rule, the share of right verdicts the benchmark measured, (right + 1) / (cases + 2): on all its recorded
#: runs, and for the rules that decide a trace without training losses on the logs it read without them
CONFIDENCE: dict[str, float] = {rule: entry["confidence"] for group in ("rules", "rules_without_loss")
                                for rule, entry in _RECORD[group].items() if "confidence" in entry}
#: per rule, (right, cases) on the benchmark's runs when each regime's logs are decided by the thresholds the grid
#: picks on the other regimes: how the rule does on a model or learning rate it was not tuned on
UNTUNED: dict[str, tuple[int, int]] = {rule: (entry["untuned"][0], entry["untuned"][1])
                                       for rule, entry in _RECORD["rules"].items() if "untuned" in entry}
#: stops the "loss falling, monitor flat" rule (cannot tell) met on the benchmark's runs: (premature, all scored)
UNDECIDED: tuple[int, int] = (_RECORD["rules"]["loss falling, monitor flat"]["premature"],
                              _RECORD["rules"]["loss falling, monitor flat"]["cases"])


@dataclass(frozen=True)
class Evidence:
    """What a stopped run's log says about continuing it (gains oriented: positive = better)."""

    epoch: int
    budget: int | None
    budget_used: float | None
    epochs_left: int | None
    evaluations: int
    loss_fall: float | None
    loss_span: tuple[int, int] | None
    window_loss_fall: float | None  # the training loss's relative fall over the trend window, first to last epoch
    bar: float | None  # the restored best value every later evaluation had to beat
    bar_epoch: int | None
    bar_level: float | None  # the curve's level at the restored epoch: the trend line there, or a local mean
    estimate: LearningEstimate
    recent_loss_fall: float | None = None  # relative fall per epoch between the last two evaluations with a loss
    recent_span: tuple[int, int] | None = None

    @property
    def loss_headroom(self) -> float | None:
        """The share of the training loss still to shed if it kept falling at its current relative pace per epoch
        to the budget's end: ``1 - (1 - fall) ** epochs_left`` (about ``fall * epochs_left`` when small)."""
        if self.loss_fall is None or self.epochs_left is None:
            return None
        return 1.0 - (1.0 - min(max(self.loss_fall, 0.0), 1.0)) ** self.epochs_left

    @property
    def window_span(self) -> int | None:
        w = self.estimate.trend_window
        return None if w is None else max(w[1] - w[0], 1)


def _trend_line(points: list[tuple[int, float]], first: int) -> tuple[float, float]:
    """(mean epoch, mean value) of the evaluations in the estimator's trend window."""
    window = [(e, v) for e, v in points if e >= first]
    return sum(e for e, _ in window) / len(window), sum(v for _, v in window) / len(window)


def _level_at(points: list[tuple[int, float]], est: LearningEstimate, mode: str, epoch: int | None) -> float | None:
    """The curve's level at ``epoch``: the estimator's trend line inside its window, else the mean of the five
    evaluations around it (a level, not the one lucky draw a restored best often is)."""
    epochs = [e for e, _ in points]
    if epoch not in epochs:
        return None
    if est.trend_slope is not None and est.trend_window is not None and epoch >= est.trend_window[0]:
        mean_e, mean_v = _trend_line(points, est.trend_window[0])
        return mean_v + (1.0 if mode == "max" else -1.0) * est.trend_slope * (epoch - mean_e)
    i = epochs.index(epoch)
    near = [v for _, v in points[max(0, i - 2):i + 3]]
    return sum(near) / len(near)


def gather(obs: Observed, stop: Mapping[str, Any]) -> Evidence:
    """The evidence of ``obs``'s log, with the shared estimator run on its evaluations and training losses."""
    points = obs.values()
    epochs = [e for e, _ in points]
    values = [v for _, v in points]
    by_epoch = {r["epoch"]: r.get("train_loss") for r in obs.trace.records}
    losses = [by_epoch.get(e) for e in epochs]
    last = obs.last_epoch
    est = estimate_learning(epochs, values, obs.mode, obs.epochs or last + 1,
                            losses if any(x is not None for x in losses) else None, name=obs.monitor)
    fall, span = _loss_fall(epochs, losses)
    recent, recent_span = _loss_fall(epochs, losses, strip=2)
    window = est.trend_window
    window_fall = _loss_fall(epochs, losses, strip=len(epochs), first=window[0], per_epoch=False)[0] if window else None
    return Evidence(epoch=last, budget=obs.epochs, budget_used=(last + 1) / obs.epochs if obs.epochs else None,
                    epochs_left=max(obs.epochs - 1 - last, 0) if obs.epochs else None, evaluations=len(points),
                    loss_fall=fall, loss_span=span, window_loss_fall=window_fall, recent_loss_fall=recent,
                    recent_span=recent_span, bar=stop.get("best_value"),
                    bar_epoch=stop.get("best_epoch"),
                    bar_level=_level_at(points, est, obs.mode, stop.get("best_epoch")), estimate=est)


def _loss_fall(epochs: list[int], losses: list[float | None], strip: int = 5, first: int | None = None,
               per_epoch: bool = True) -> tuple[float | None, tuple[int, int] | None]:
    """Relative fall of the training loss per epoch (``per_epoch=False``: in all) over the last ``strip``
    evaluations that have one, from epoch ``first`` on if given."""
    pairs = [(e, x) for e, x in zip(epochs, losses) if x is not None and math.isfinite(x)
             and (first is None or e >= first)][-strip:]
    if len(pairs) < 2 or pairs[-1][0] == pairs[0][0] or pairs[0][1] == 0:
        return None, None
    (e0, x0), (e1, x1) = pairs[0], pairs[-1]
    return (x0 - x1) / abs(x0) / ((e1 - e0) if per_epoch else 1), (e0, e1)


def _loss_rate(ev: Evidence) -> str:
    """``1.6 % per epoch on average over epochs 3-7, 0.9 % per epoch over epochs 6-7``: the average the verdict
    uses, and the most recent step's, so a fall made mostly at the window's start is not read as today's pace."""
    assert ev.loss_fall is not None and ev.loss_span is not None
    a, b = ev.loss_span
    text = f"{_pct(ev.loss_fall)} per epoch on average over epochs {a}-{b}"
    if ev.recent_loss_fall is not None and ev.recent_span is not None and ev.recent_span != ev.loss_span:
        c, d = ev.recent_span
        text += f", {_pct(ev.recent_loss_fall)} per epoch over epochs {c}-{d}"
    return text


def _pct(x: float) -> str:
    return f"{100 * x:.2g} %" if abs(x) < 0.1 else f"{100 * x:.0f} %"


def _trend_label(z: float) -> str:
    if z >= TREND_Z:
        return " (still rising)"
    if z >= LEANING_Z:
        return " (leaning up, within noise)"
    return " (falling)" if z <= -FALLING_Z else " (within noise)"


def facts(ev: Evidence, monitor: str) -> dict[str, str]:
    """Every fact the evidence supports, as a clause a user can check against the plot, by name."""
    out: dict[str, str] = {}
    est = ev.estimate
    if ev.budget:
        out["budget"] = f"it stopped at epoch {ev.epoch}, {_pct(ev.budget_used or 0)} into its {ev.budget}-epoch budget"
    if ev.loss_fall is not None and ev.loss_span is not None:
        rate = _loss_rate(ev)
        room = ev.loss_headroom
        if room is None:
            out["loss"] = f"the training loss fell {rate}"
        elif room > LOSS_HEADROOM:
            out["loss"] = (f"the training loss was still falling {rate}: "
                           f"at the average pace {_pct(room)} more over the {ev.epochs_left} epochs left, above the "
                           f"{_pct(LOSS_HEADROOM)} below which training counts as finished")
            still = f"the training loss still fell {rate}"
            out["undecided"] = ("a fall beside a flat validation curve that a plateau before a second rise and a "
                                 "model fitting its training data past its validation peak both show: on the "
                                 f"benchmark's recorded runs such stops were premature {UNDECIDED[0]} times "
                                 f"in {UNDECIDED[1]}, depending on the model and learning rate; only more epochs "
                                 "can tell (a larger stopping_step or patience)")
            out["overfit"] = (f"{still}, so the model was fitting its training data better without helping the "
                              "validation users")
        else:
            out["loss"] = (f"the training loss had flattened ({rate}): "
                           f"at the average pace {_pct(room)} more over the {ev.epochs_left} epochs left, not above the "
                           f"{_pct(LOSS_HEADROOM)} below which training counts as finished")
    if ev.window_loss_fall is not None and est.trend_window is not None:
        a, b = est.trend_window
        slow = ev.window_loss_fall <= SLOW_LOSS
        plateau = f"the {_pct(SLOW_LOSS)} of a plateau the training loss shares with the validation curve"
        out["slow"] = (f"the training loss fell only {_pct(ev.window_loss_fall)} over epochs {a}-{b}, the trend "
                       f"window, not above {plateau} (a model fitting its training data past its validation peak "
                       "sheds more)" if slow else
                       f"the training loss fell {_pct(ev.window_loss_fall)} over epochs {a}-{b}, the trend window, "
                       f"above {plateau}")
    if est.trend_z is not None and est.trend_slope is not None and est.trend_window is not None:
        a, b = est.trend_window
        word = "rose" if est.trend_slope > 0 else "fell" if est.trend_slope < 0 else "stayed flat"
        out["trend"] = (f"{monitor} {word} {abs(est.trend_slope) * 10:.2g} per 10 epochs over epochs {a}-{b}, "
                        f"z = {est.trend_z:+.1f} against its noise of {est.noise:.2g}"
                        + _trend_label(est.trend_z))
    if ev.epochs_left is not None and ev.window_span is not None and ev.budget:
        more = "more" if ev.epochs_left >= ROOM * ev.window_span else "fewer"
        out["room"] = (f"{ev.epochs_left} of its {ev.budget} epochs were left, {more} than the {ev.window_span} "
                       "the trend was measured over")
    if est.gain is not None and est.gain_lo is not None and est.gain_hi is not None:
        out["extrapolation"] = (f"the learning-curve fit expects {est.gain:+.2g} more by epoch {est.budget - 1} "
                                f"(bounds {est.gain_lo:+.2g} to {est.gain_hi:+.2g})")
    return out


def loss_rule(headroom: float, trend_z: float | None, window_fall: float | None = None, *,
              headroom_at: float = LOSS_HEADROOM, leaning_z: float = LEANING_Z,
              slow_at: float = SLOW_LOSS) -> tuple[str, str]:
    """(call, rule) of the loss-headroom rules, for a monitor not falling: premature needs the loss's headroom
    above ``headroom_at`` and the trend at least ``TREND_Z`` (or no trend yet), or a trend under it beside a
    training loss that fell at most ``slow_at`` over the trend window (a plateau the training loss shares), or a
    trend at least ``leaning_z``; else cannot tell. The explain benchmark (``scripts/benchlib.py``) scores other
    thresholds through this same function (``slow_at`` < 0 turns the slow-loss rule off)."""
    if headroom <= headroom_at:
        return NOT_PREMATURE, "training loss flat for the budget left"
    if trend_z is None:
        return PREMATURE, "early stop, loss still falling"
    if trend_z >= max(leaning_z, TREND_Z):
        return PREMATURE, "loss falling, monitor rising"
    if window_fall is not None and window_fall <= slow_at:
        return PREMATURE, "loss falling slowly, monitor flat"
    if trend_z >= leaning_z:
        return PREMATURE, "loss falling, monitor leaning up"
    return CANNOT_TELL, "loss falling, monitor flat"


#: the deciding facts of each loss-headroom rule, in the order the sentence gives them
_LOSS_FACTS = {"training loss flat for the budget left": ["loss", "trend", "budget"],
               "early stop, loss still falling": ["loss", "budget"],
               "loss falling, monitor rising": ["loss", "trend", "extrapolation"],
               "loss falling, monitor leaning up": ["loss", "trend", "extrapolation"],
               "loss falling slowly, monitor flat": ["slow", "trend", "budget"],
               "loss falling, monitor flat": ["trend", "slow", "undecided"]}


def decide(ev: Evidence) -> tuple[str, list[str], str]:
    """(call, names of the deciding facts, rule) for a run a stopping rule ended."""
    est = ev.estimate
    headroom = ev.loss_headroom
    if est.trend_z is not None and est.trend_z <= -FALLING_Z:
        loss = "overfit" if headroom is not None and headroom > LOSS_HEADROOM else "loss"
        return NOT_PREMATURE, ["trend", loss, "budget"], "monitor falling"
    if headroom is not None:
        call, rule = loss_rule(headroom, est.trend_z, ev.window_loss_fall)
        names = list(_LOSS_FACTS[rule])
        if "extrapolation" in names and est.gain is None:
            names[names.index("extrapolation")] = "budget"
        return call, names, rule
    if ev.evaluations < MIN_POINTS or est.trend_z is None or ev.window_span is None:
        return CANNOT_TELL, ["budget", "loss"], "too few evaluations for a curve"
    rising = est.trend_z >= TREND_Z
    if rising and ev.epochs_left is None:
        return CANNOT_TELL, ["trend", "loss"], "rising, budget unknown"
    room = ev.epochs_left is not None and ev.epochs_left >= ROOM * ev.window_span
    if rising and room:
        return PREMATURE, ["trend", "room", "extrapolation"], "still rising, with room"
    if rising:
        return NOT_PREMATURE, ["room", "trend", "loss"], "little budget left"
    return NOT_PREMATURE, ["trend", "room", "loss"], "trend within noise"


def _sentence(call: str, confidence: float | None, untuned: tuple[int, int] | None, clauses: list[str]) -> str:
    head = {PREMATURE: "Premature", NOT_PREMATURE: "Not premature", CANNOT_TELL: "Cannot tell"}[call]
    sure = ""
    if confidence is not None:
        left_out = (f"; right {untuned[0]} of {untuned[1]} times on regimes left out of its tuning"
                    if untuned else "")
        sure = f" (confidence {100 * confidence:.0f} %{left_out})"
    body = "; ".join(clauses) if clauses else "the log holds too little to judge"
    return f"{head}{sure}: {body}."


def verdict(obs: Observed, stop: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict of a run a stopping rule ended: call, confidence, deciding facts, one sentence, the evidence."""
    ev = gather(obs, stop)
    by_name = facts(ev, obs.monitor)
    call, names, rule = decide(ev)
    deciding = [by_name[n] for n in names if n in by_name][:3]
    confidence = CONFIDENCE.get(rule) if call != CANNOT_TELL else None
    untuned = UNTUNED.get(rule) if confidence is not None else None
    return {"call": call, "confidence": confidence, "untuned": list(untuned) if untuned else None, "rule": rule,
            "facts": deciding, "all_facts": by_name, "sentence": _sentence(call, confidence, untuned, deciding),
            "estimate": estimate_dict(ev.estimate),
            "extrapolated": "extrapolation" in names and "extrapolation" in by_name and bool(ev.estimate.continuation),
            "evidence": _plain({**{k: v for k, v in asdict(ev).items() if k != "estimate"},
                                "loss_headroom": ev.loss_headroom})}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, as the report's JSON has them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def estimate_dict(est: LearningEstimate) -> dict[str, Any]:
    """The shared estimator's result as plain data (``asdict`` makes the continuation's points dicts; ``_plain``
    the tuples lists)."""
    return _plain(asdict(est))
