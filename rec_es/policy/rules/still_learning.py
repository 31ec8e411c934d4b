"""Still learning: do not stop while the model is still learning; optionally stop once it confidently is not.

The rule keeps the monitor's history (raw values and training losses) and asks the shared estimator
(``rec_es.policy.learning.estimate_learning``: a saturating learning curve fitted to the recent history, its
profile-likelihood interval, the long-horizon trend and Prechelt's training progress) what continuing to the
epoch budget is expected to give:

* ``still_learning: hold``: a plateau stop (patience, Prechelt) is held back while the lower bound of the
  expected gain is above the noise at ``learning_confidence`` (and the training loss has not stalled);
* ``still_learning: stop``: the same, and the rule stops the run itself once the upper bound is below the
  noise: continuing is confidently not worth it. The calibrated model discrepancy of the bounds
  (``rec_es.policy.learning.DISCREPANCY``) as a rule keeps the upper bound of a flat curve with epochs left
  above the noise, so ``stop`` ends a curve falling through its noise (overfitting) or a stalled training
  loss; it is not a plateau rule.

``learning_confidence`` (default 0.9) is the one-sided confidence of each bound. The budget is the run's
``epochs`` (set by the trainer and by replay from the trace header), or ``max_epochs`` when smaller; unknown,
the horizon is as long again as the run so far. Caveat: the bounds are calibrated on recorded runs, not
derived, and how well they hold varies from run to run (docs/still-learning.md).
"""
from __future__ import annotations

from typing import Any

from rec_es.policy.base import Context, Fired, Rule, Stage
from rec_es.policy.learning import LearningEstimate, estimate_learning
from rec_es.policy.validate import KeySpec, number, one_of

REASON = "still_learning"


def _budget(ctx: Context) -> int:
    budgets = [b for b in (ctx.budget, ctx.settings.max_epochs) if b is not None]
    return min(budgets) if budgets else 2 * (ctx.epoch + 1)


class StillLearning(Rule):
    name = "still_learning"
    keys = (
        KeySpec("still_learning", one_of("off", "hold", "stop"), "off",
                "`hold`: a plateau stop (patience, Prechelt) is held back while a learning curve fitted to the "
                "recent evaluations expects a gain above the noise by the end of the epoch budget, with "
                "`learning_confidence`; `stop`: also stop once it confidently expects none, which on recorded "
                "runs means a falling curve or a stalled training loss, not a plateau (docs/still-learning.md)"),
        KeySpec("learning_confidence", number(0.5, 1, low_open=True, high_open=True), 0.9,
                "one-sided confidence of the still-learning estimate's bounds",
                only_with=("still_learning", ("hold", "stop"))),
    )
    reasons = {"STILL_LEARNING": REASON}
    stage = Stage.PLATEAU
    in_worst_case = False
    state_since = 2  # its state keys are new: states saved by version 1 load with an empty history

    def fresh_state(self, s: Any) -> dict[str, Any]:
        return {"learning_epochs": [], "learning_values": [], "learning_losses": [], "learning_estimate": None}

    def criteria(self, s: Any) -> int:
        return int(s.still_learning == "stop")

    def _estimate(self, ctx: Context, state: dict[str, Any]) -> LearningEstimate:
        losses = state["learning_losses"]
        est = estimate_learning(state["learning_epochs"], state["learning_values"], ctx.mode, _budget(ctx),
                                losses if all(v is not None for v in losses) else None,
                                level=ctx.settings.learning_confidence, name=ctx.settings.monitor.name)
        state["learning_estimate"] = {"epoch": ctx.epoch, "state": est.state, "confidence": est.confidence,
                                      "gain": est.gain, "gain_lo": est.gain_lo, "gain_hi": est.gain_hi,
                                      "margin": est.margin, "noise": est.noise, "budget": est.budget,
                                      "facts": list(est.facts)}
        return est

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        s = ctx.settings
        state["learning_estimate"] = None
        if s.still_learning == "off" or not ctx.finite:
            return []
        state["learning_epochs"].append(ctx.epoch)
        state["learning_values"].append(ctx.raw)
        state["learning_losses"].append(None if ctx.train_loss is None else float(ctx.train_loss))
        if s.still_learning != "stop":
            return []
        est = self._estimate(ctx, state)
        if not est.stopped:
            return []
        return [Fired(REASON, f"{ctx.monitor} has stopped learning (confidence {est.confidence:.2f}): "
                              + "; ".join(est.facts),
                      "set early_stopping.still_learning: hold (only hold back other stops) or raise "
                      "early_stopping.learning_confidence")]

    def holds(self, ctx: Context, state: dict[str, Any], fired: Fired) -> str | None:
        if ctx.settings.still_learning == "off" or fired.reason == REASON or not ctx.finite:
            return None
        est = self._estimate(ctx, state) if state["learning_estimate"] is None else None
        summary = state["learning_estimate"]
        if summary is None or summary["state"] != "learning":
            return None
        facts = est.facts if est is not None else summary["facts"]
        return f"{ctx.monitor} is still learning (confidence {summary['confidence']:.2f}): {facts[0]}"

    def measured(self, ctx: Context, state: dict[str, Any]) -> dict[str, Any]:
        est = state["learning_estimate"]
        if est is None:
            return {}
        return {"still_learning": {k: v for k, v in est.items() if k != "facts"}}


RULE = StillLearning()
