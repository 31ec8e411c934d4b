"""The comparisons and formulas every rule is built from, each written once.

Improvement follows Keras/Lightning exactly: for ``max``, ``value - margin > best``; for ``min``,
``value + margin < best`` (``>=``/``<=`` when ties count), where margin is ``min_delta`` or, in relative
mode, ``min_delta * |best|``. No best yet (``None``) means any finite value improves.
"""
from __future__ import annotations

import math


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
    """Strictly better than a threshold (Lightning's ``stopping_threshold`` test)."""
    return value > threshold if mode == "max" else value < threshold


def worse_than(value: float, threshold: float, mode: str) -> bool:
    """Strictly worse than a threshold (Lightning's ``divergence_threshold`` test)."""
    return value < threshold if mode == "max" else value > threshold


def prechelt_error(score: float, mode: str, offset: float) -> float:
    """Prechelt's error E for a monitor value: ``offset - score`` if bigger is better, else ``score``."""
    return offset - score if mode == "max" else score


def generalization_loss(error: float, best_error: float) -> float:
    """GL(t) = 100 * (E_va(t) / E_opt(t) - 1), in percent. Needs E_opt > 0 (else inf, or 0 if equal)."""
    if best_error <= 0:
        return 0.0 if error <= best_error else math.inf
    return 100.0 * (error / best_error - 1.0)


def training_progress(strip_losses: list[float]) -> float:
    """P_k(t) = 1000 * (sum of the strip's train losses / (k * min of them) - 1), in per mille."""
    lowest = min(strip_losses)
    if lowest <= 0:
        return math.inf if sum(strip_losses) > lowest * len(strip_losses) else 0.0
    return 1000.0 * (sum(strip_losses) / (len(strip_losses) * lowest) - 1.0)


def progress_quotient(gl: float, progress: float) -> float:
    """PQ = GL / P_k; a stalled training (P_k = 0) with any loss of generalization gives inf."""
    if progress == 0:
        return math.inf if gl > 0 else 0.0
    return gl / progress
