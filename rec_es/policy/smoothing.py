"""Smoothing of the monitored value before best-tracking and patience: none, EMA, or a moving window.

Each smoother is a pure function of its state; the state is a plain dict so it can be saved in checkpoints.
Non-finite values are never fed in (the policy counts them as misses instead), so one NaN cannot poison an EMA.
"""
from __future__ import annotations

from typing import Any


def smooth(kind: str, param: float, state: dict[str, Any], value: float) -> tuple[float, dict[str, Any]]:
    """Feed ``value``; return (smoothed value, new state).

    ``ema``: ``s_0 = x_0``, ``s_t = alpha * x_t + (1 - alpha) * s_{t-1}`` (alpha = 1 is the raw value).
    ``window``: mean of the last ``param`` values (fewer at the start).
    ``none``: the value itself.
    """
    if kind == "ema":
        prev = state.get("ema")
        s = value if prev is None else param * value + (1.0 - param) * prev
        return s, {"ema": s}
    if kind == "window":
        values = (list(state.get("window", [])) + [value])[-int(param):]
        return sum(values) / len(values), {"window": values}
    return value, {}


def describe(kind: str, param: float) -> str:
    """Suffix for messages: ``' (EMA α=0.6)'``, ``' (mean of last 3)'`` or ``''``."""
    if kind == "ema":
        return f" (EMA α={param:g})"
    if kind == "window":
        return f" (mean of last {int(param)})"
    return ""
