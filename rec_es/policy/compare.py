"""The comparisons every rule is built from, each written once.

Improvement follows Keras/Lightning exactly: for ``max``, ``value - margin > best``; for ``min``,
``value + margin < best`` (``>=``/``<=`` when ties count), where margin is ``min_delta`` or, in relative
mode, ``min_delta * |best|``. No best yet (``None``) means any finite value improves.
"""
from __future__ import annotations


def is_improvement(value: float, best: float | None, mode: str, min_delta: float = 0.0,
                   relative: bool = False, ties: bool = False) -> bool:
    """Does ``value`` improve on ``best``? ``best is None`` means no best yet."""
    if best is None:
        return True
    margin = min_delta * abs(best) if relative else min_delta
    if mode == "max":
        return value - margin >= best if ties else value - margin > best
    return value + margin <= best if ties else value + margin < best


def better_than(value: float, threshold: float, mode: str) -> bool:
    """Strictly better than a threshold (Lightning's "good enough" test)."""
    return value > threshold if mode == "max" else value < threshold


def worse_than(value: float, threshold: float, mode: str) -> bool:
    """Strictly worse than a threshold (Lightning's "hopeless" test)."""
    return value < threshold if mode == "max" else value > threshold
