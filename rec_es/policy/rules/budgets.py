"""Budgets: an epoch budget and a wall-clock budget. Both stop a run also during warmup."""
from __future__ import annotations

from typing import Any

from rec_es.policy.base import Context, Fired, Rule, Stage
from rec_es.policy.validate import KeySpec, integer, number, optional


class MaxEpochs(Rule):
    name = "max_epochs"
    keys = (KeySpec("max_epochs", optional(integer(1)), None,
                    "stop after this many epochs (budget; applies in warmup too)"),)
    reasons = {"MAX_EPOCHS": "max_epochs"}
    stage = Stage.BUDGET

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        budget = ctx.settings.max_epochs
        if budget is None or ctx.epoch + 1 < budget:
            return []
        return [Fired("max_epochs", f"the budget of early_stopping.max_epochs: {budget} epochs is used up",
                      "raise early_stopping.max_epochs")]


class MaxMinutes(Rule):
    name = "max_minutes"
    keys = (KeySpec("max_minutes", optional(number(0, low_open=True)), None,
                    "stop at the first evaluation after this many minutes of wall-clock training (budget)"),)
    reasons = {"TIME_BUDGET": "time_budget"}
    stage = Stage.BUDGET
    in_worst_case = False

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        budget, elapsed = ctx.settings.max_minutes, ctx.elapsed_seconds
        if budget is None or elapsed is None or elapsed / 60.0 < budget:
            return []
        return [Fired("time_budget", f"{elapsed / 60.0:.1f} minutes of training reached the budget "
                                     f"early_stopping.max_minutes: {budget:g}", "raise early_stopping.max_minutes")]


MAX_EPOCHS, MAX_MINUTES = MaxEpochs(), MaxMinutes()
