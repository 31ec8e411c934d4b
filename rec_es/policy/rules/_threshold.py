"""What Lightning's two thresholds share: stop as soon as the (smoothed) monitor crosses a fixed value."""
from __future__ import annotations

from typing import Any, Callable

from rec_es.policy.base import Context, Fired, Rule, Stage, fmt
from rec_es.policy.validate import KeySpec, number, optional


class Threshold(Rule):
    """A threshold rule named ``name`` (its key and its reason): fires when ``crosses(value, threshold, mode)``;
    the clause reads ``MONITOR VALUE is RELATION NAME THRESHOLD[SUFFIX]``. Finite values only, after warmup.

    ``later`` (``"better"`` or ``"worse"``) is the side the threshold moves to so the rule fires later; the hint
    turns it into a direction for the monitor's mode: ``raise`` a better-side threshold of a bigger-is-better
    monitor (``mode: max``), ``lower`` it for a smaller-is-better one (``rmse``), and the reverse for worse."""

    stage = Stage.THRESHOLD
    in_worst_case = False

    def __init__(self, name: str, crosses: Callable[[float, float, str], bool], relation: str, suffix: str,
                 meaning: str, later: str) -> None:
        self.name = name
        self.keys = (KeySpec(name, optional(number()), None, meaning),)
        self.reasons = {name.upper(): name}
        self.crosses, self.relation, self.suffix, self.later = crosses, relation, suffix, later

    def hint(self, mode: str) -> str:
        """``raise or remove early_stopping.NAME`` or ``lower ...``: the way that makes the rule fire later."""
        verb = "raise" if (self.later == "better") == (mode == "max") else "lower"
        return f"{verb} or remove early_stopping.{self.name}"

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        threshold = getattr(ctx.settings, self.name)
        if threshold is None or not ctx.finite or not self.crosses(ctx.smoothed, threshold, ctx.mode):
            return []
        return [Fired(self.name, f"{ctx.monitor} {fmt(ctx.smoothed)} is {self.relation} {self.name} "
                                 f"{fmt(threshold)}{self.suffix}", self.hint(ctx.mode))]
