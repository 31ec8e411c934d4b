"""Non-finite monitor (Lightning's ``check_finite``): a NaN/inf value stops the run at once, even in warmup,
or counts as an evaluation without improvement (``check_finite: miss``)."""
from __future__ import annotations

from typing import Any

from rec_es.policy.base import Context, Fired, Rule, Stage
from rec_es.policy.validate import Validator, KeySpec, one_of

_CHOICE = one_of("stop", "miss")


def _check_finite(value: Any) -> str:
    """``stop | miss``; Lightning's ``check_finite: true/false`` reads as stop/miss."""
    if isinstance(value, bool):
        value = "stop" if value else "miss"
    return _CHOICE(value)


class NonFinite(Rule):
    name = "non_finite"
    keys = (KeySpec("check_finite", Validator(_CHOICE.allowed, _CHOICE.doc, _check_finite), "stop",
                    "a NaN/inf monitor value: `stop` at once, or `miss` (counts as an evaluation without "
                    "improvement)"),)
    reasons = {"NON_FINITE": "non_finite"}
    stage = Stage.FINITE

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        if ctx.finite or ctx.settings.check_finite != "stop":
            return []
        return [Fired("non_finite", f"{ctx.settings.monitor.name} is {ctx.raw} (not finite)",
                      "check the training (learning rate, loss), or set early_stopping.check_finite: miss to count "
                      "it as a miss")]


RULE = NonFinite()
