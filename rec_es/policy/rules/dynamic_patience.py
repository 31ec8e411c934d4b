"""Dynamic patience, a patience modifier: patience grows with the time the latest significant improvement took.

Effective patience = min(max_patience, max(patience, ceil(factor x n))), n counting (in ``patience_unit``) up
to that improvement; improvements smaller than ``min_gain`` (relative) restart the wait but grant nothing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from rec_es.policy.base import Context, Fired, Rule
from rec_es.policy.rules.patience import REASON as PATIENCE
from rec_es.policy.validate import Invalid, KeySpec, Validator, integer, number, within

FIELDS = ("factor", "max_patience", "min_gain")
_ALLOWED = "null or {factor: > 0, max_patience: int | null, min_gain: >= 0}"


@dataclass(frozen=True)
class DynamicPatience:
    factor: float
    max_patience: int | None = None
    min_gain: float = 0.0


def _validator(parsed: Mapping[str, Any]) -> Validator:
    patience = parsed.get("patience")

    def check(raw: Any) -> DynamicPatience | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping) or "factor" not in raw or set(raw) - set(FIELDS):
            raise Invalid(_ALLOWED, raw)
        if patience is None:
            raise Invalid("null when patience is null", raw, "dynamic patience adapts the patience rule")
        factor = within("dynamic_patience.factor", number(0, low_open=True), raw["factor"])
        cap = raw.get("max_patience")
        if cap is not None:
            cap = within("dynamic_patience.max_patience", integer(patience), cap)
        gain = within("dynamic_patience.min_gain", number(0), raw.get("min_gain", 0.0))
        return DynamicPatience(factor, cap, gain)

    return Validator(_ALLOWED, "null | {factor, max_patience, min_gain}", check)


class Dynamic(Rule):
    name = "dynamic_patience"
    keys = (KeySpec("dynamic_patience", _validator({"patience": 1}), None,
                    "patience grows with the time it took to reach the latest significant improvement: effective "
                    "patience = min(max_patience, max(patience, ceil(factor x n))) where n counts (in "
                    "`patience_unit`) up to that improvement; improvements smaller than `min_gain` (relative) reset "
                    "the wait but do not extend patience", bind=_validator,
                    dump=lambda d: None if d is None else asdict(d)),)

    def fresh_state(self, s: Any) -> dict[str, Any]:
        return {"patience_grown": None}

    def patience(self, s: Any, state: dict[str, Any], patience: int | None) -> int | None:
        grown, dyn = state["patience_grown"], s.dynamic_patience
        if patience is None or grown is None or dyn is None:
            return patience
        return max(patience, grown if dyn.max_patience is None else min(dyn.max_patience, grown))

    def on_improvement(self, ctx: Context, state: dict[str, Any], previous: float | None) -> None:
        s, core, dyn = ctx.settings, ctx.core, ctx.settings.dynamic_patience
        if dyn is None or s.patience is None:
            return
        if previous is not None and previous != 0:
            gain = (ctx.smoothed - previous) / abs(previous) * (1 if ctx.mode == "max" else -1)
            if gain < dyn.min_gain:
                return
        elapsed = core.last_epoch + 1 if s.patience_unit == "epochs" else core.evaluations
        state["patience_grown"] = max(state["patience_grown"] or 0, math.ceil(dyn.factor * elapsed))

    def restate(self, ctx: Context, state: dict[str, Any], fired: Fired) -> Fired | None:
        s = ctx.settings
        if fired.reason != PATIENCE or ctx.patience == s.patience or ctx.core.improved_epoch is None:
            return None
        return Fired(fired.reason, f"{fired.clause} (dynamic_patience grew it from {s.patience})", fired.hint)


RULE = Dynamic()
