"""Baseline (Keras), a patience modifier: the wait restarts only on improvements that also beat ``baseline``,
and a patience stop while it was never beaten is a ``baseline`` stop."""
from __future__ import annotations

from typing import Any

from rec_es.policy.base import Context, Fired, Rule, fmt
from rec_es.policy.rules.patience import REASON as PATIENCE
from rec_es.policy.validate import KeySpec, number, optional


class Baseline(Rule):
    name = "baseline"
    keys = (KeySpec("baseline", optional(number()), None,
                    "Keras' `baseline`: the wait counter resets only on improvements that also beat this value"),)
    reasons = {"BASELINE": "baseline"}
    in_worst_case = False

    def fresh_state(self, s: Any) -> dict[str, Any]:
        return {"baseline_beaten": False}

    def accepts_improvement(self, ctx: Context, state: dict[str, Any]) -> bool:
        baseline = ctx.settings.baseline
        return baseline is None or ctx.improves(ctx.smoothed, baseline)

    def on_improvement(self, ctx: Context, state: dict[str, Any], previous: float | None) -> None:
        state["baseline_beaten"] = True

    def restate(self, ctx: Context, state: dict[str, Any], fired: Fired) -> Fired | None:
        baseline, core = ctx.settings.baseline, ctx.core
        if fired.reason != PATIENCE or baseline is None or state["baseline_beaten"] or core.improved_epoch is None:
            return None
        return Fired("baseline", f"{ctx.monitor} did not beat baseline {fmt(baseline)} within {ctx.wait_span()} "
                                 f"(best {fmt(core.best_score)} at epoch {core.improved_epoch})",
                     "lower early_stopping.baseline or raise early_stopping.patience")


RULE = Baseline()
