"""Named policies: ``recbole_legacy``, RecBole's own ``stopping_step`` rule (``recbole.utils.early_stopping``),
decision for decision.

``preset: recbole_legacy`` takes ``monitor``, ``mode``, ``stopping_step`` (default 10) and ``enabled`` only, and
sets the rest (``rec_es.policy.schema.legacy_settings``): patience ``stopping_step + 1`` evaluations (RecBole
stops on the ``stopping_step + 1``-th evaluation in a row that does not reach the best), ties count as
improvement (a value equal to the best resets the count), no ``min_delta``, no smoothing, and a NaN counts as a
miss (RecBole compares it and it never wins). RecBole compares ±inf as numbers; here they count as misses
(docs/differences.md). Its stop sentences use RecBole's words (``stopping_step``, not ``patience``).

Code asks whether a policy is this rule through ``PolicySettings.is_legacy`` and builds its mapping with
``legacy_mapping``; the preset's name is written here and in its key's declaration (``rec_es.policy.core``)::

    >>> legacy_mapping(3, monitor="ndcg@10")
    {'preset': 'recbole_legacy', 'monitor': 'ndcg@10', 'stopping_step': 3}
    >>> recbole_legacy("ndcg@10", 3).settings.patience
    4
"""
from __future__ import annotations

from typing import Any

from rec_es.policy.core import LEGACY
from rec_es.policy.policy import StoppingPolicy, build_policy

__all__ = ["LEGACY", "legacy_mapping", "recbole_legacy"]


def legacy_mapping(stopping_step: int = 10, *, monitor: str | None = None, mode: str | None = None) -> dict[str, Any]:
    """The ``early_stopping:`` mapping of RecBole's own rule: ``preset``, then ``monitor`` and ``mode`` when
    given (else a property file's ``valid_metric`` and the metric's direction), then ``stopping_step``."""
    mapping: dict[str, Any] = {"preset": LEGACY}
    if monitor is not None:
        mapping["monitor"] = monitor
    if mode is not None:
        mapping["mode"] = mode
    mapping["stopping_step"] = stopping_step
    return mapping


def recbole_legacy(valid_metric: str = "MRR@10", stopping_step: int = 10) -> StoppingPolicy:
    """The stock RecBole rule for ``valid_metric`` and ``stopping_step`` (RecBole's defaults: MRR@10, 10)."""
    return build_policy(legacy_mapping(stopping_step, monitor=valid_metric))
