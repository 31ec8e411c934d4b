"""Stopping threshold (Lightning): stop as soon as the monitor is strictly better than it — good enough."""
from __future__ import annotations

from typing import Any

from rec_es.policy.base import Context, Fired, Rule, Stage, fmt
from rec_es.policy.compare import better_than
from rec_es.validate import KeySpec, number, optional


class StoppingThreshold(Rule):
    name = "stopping_threshold"
    keys = (KeySpec("stopping_threshold", optional(number()), None,
                    "stop as soon as the monitor is better than this (good enough)"),)
    reasons = {"STOPPING_THRESHOLD": "stopping_threshold"}
    stage = Stage.THRESHOLD
    in_worst_case = False

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        threshold = ctx.settings.stopping_threshold
        if threshold is None or not ctx.finite or not better_than(ctx.smoothed, threshold, ctx.mode):
            return []
        return [Fired("stopping_threshold", f"{ctx.monitor} {fmt(ctx.smoothed)} is better than stopping_threshold "
                                            f"{fmt(threshold)} (good enough)",
                      "raise or remove early_stopping.stopping_threshold")]


RULE = StoppingThreshold()
