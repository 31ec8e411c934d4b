"""Smoothing of the monitored value before best-tracking and patience: one table of smoothers.

Each smoother is a pure step function of its state; the state is a plain dict so it can be saved in checkpoints.
Non-finite values are never fed in (the policy counts them as misses instead), so one NaN cannot poison an EMA.
A smoother has at most one parameter, a key of the ``early_stopping:`` mapping that applies only with it.
Adding one is one entry in ``SMOOTHERS``; the ``smoothing`` key, the docs table and the messages follow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rec_es.policy.base import Rule
from rec_es.policy.validate import KeySpec, integer, number, one_of

State = dict[str, Any]


@dataclass(frozen=True)
class Smoother:
    """``step(param, state, value) -> (smoothed, new state)``; ``describe`` gives the message suffix
    (``' (EMA α=0.6)'``), ``label`` the short name explain uses (``' + EMA α=0.6'``)."""

    name: str
    param: KeySpec | None
    step: Callable[[float, State, float], tuple[float, State]]
    describe: Callable[[float], str]
    label: Callable[[float], str]

    @property
    def smooths(self) -> bool:
        return self.param is not None


def _ema(alpha: float, state: State, value: float) -> tuple[float, State]:
    """``s_0 = x_0``, ``s_t = alpha * x_t + (1 - alpha) * s_{t-1}`` (alpha = 1 is the raw value)."""
    prev = state.get("ema")
    s = value if prev is None else alpha * value + (1.0 - alpha) * prev
    return s, {"ema": s}


def _window(size: float, state: State, value: float) -> tuple[float, State]:
    """Mean of the last ``size`` values (fewer at the start)."""
    values = (list(state.get("window", [])) + [value])[-int(size):]
    return sum(values) / len(values), {"window": values}


SMOOTHERS: dict[str, Smoother] = {s.name: s for s in (
    Smoother("none", None, lambda _p, _s, value: (value, {}), lambda _p: "", lambda _p: ""),
    Smoother("ema", KeySpec("ema_alpha", number(0, 1, low_open=True), 0.5,
                            "EMA weight of the newest value (1 = no smoothing); needs `smoothing: ema`",
                            only_with=("smoothing", ("ema",))),
             _ema, lambda a: f" (EMA α={a:g})", lambda a: f" + EMA α={a:g}"),
    Smoother("window", KeySpec("window", integer(1), 3,
                               "moving-window length in evaluations; needs `smoothing: window`",
                               only_with=("smoothing", ("window",))),
             _window, lambda n: f" (mean of last {int(n)})", lambda n: f" + window {int(n)}"),
)}


def smoother(settings: Any) -> Smoother:
    """The smoother a policy's settings select."""
    return SMOOTHERS[settings.smoothing]


def param(settings: Any) -> float:
    """The one parameter of the selected smoother (0 when it has none)."""
    spec = smoother(settings).param
    return 0.0 if spec is None else getattr(settings, spec.name)


def smooth(kind: str, param: float, state: State, value: float) -> tuple[float, State]:
    """Feed ``value`` to smoother ``kind``; return (smoothed value, new state)."""
    return SMOOTHERS[kind].step(param, state, value)


def describe(kind: str, param: float) -> str:
    """Suffix for messages: ``' (EMA α=0.6)'``, ``' (mean of last 3)'`` or ``''``."""
    return SMOOTHERS[kind].describe(param)


def label(settings: Any) -> str:
    """Short label of the selected smoother with its parameter: ``' + EMA α=0.5'``, ``' + window 3'`` or ``''``."""
    return smoother(settings).label(param(settings))


class _Smoothing(Rule):
    name = "smoothing"
    keys = (
        KeySpec("smoothing", one_of(*SMOOTHERS), "none",
                "smoothing applied to the monitor before best-tracking and every rule"),
        *(s.param for s in SMOOTHERS.values() if s.param is not None),
        KeySpec("best_by", one_of("raw", "smoothed"), "raw",
                "which series picks the weights to restore when smoothing is on: the epoch with the best raw "
                "value, or with the best smoothed value"),
    )


SETTINGS = _Smoothing()
