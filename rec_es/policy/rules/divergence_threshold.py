"""Divergence threshold (Lightning): stop as soon as the monitor is strictly worse than it — hopeless."""
from __future__ import annotations

from typing import Any

from rec_es.policy.base import Context, Fired, Rule, Stage, fmt
from rec_es.policy.compare import worse_than
from rec_es.validate import KeySpec, number, optional


class DivergenceThreshold(Rule):
    name = "divergence_threshold"
    keys = (KeySpec("divergence_threshold", optional(number()), None,
                    "stop as soon as the monitor is worse than this (hopeless)"),)
    reasons = {"DIVERGENCE_THRESHOLD": "divergence_threshold"}
    stage = Stage.THRESHOLD
    in_worst_case = False

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        threshold = ctx.settings.divergence_threshold
        if threshold is None or not ctx.finite or not worse_than(ctx.smoothed, threshold, ctx.mode):
            return []
        return [Fired("divergence_threshold", f"{ctx.monitor} {fmt(ctx.smoothed)} is worse than divergence_threshold "
                                              f"{fmt(threshold)}",
                      "lower or remove early_stopping.divergence_threshold")]


RULE = DivergenceThreshold()
