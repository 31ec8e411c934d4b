"""Named policies. ``recbole_legacy`` reproduces ``recbole.utils.early_stopping`` decision for decision:
patience = stopping_step + 1 evaluations, ties count as improvement, no min_delta, no smoothing, a NaN
counts as a miss (RecBole compares it and it never wins). RecBole compares ±inf as numbers; here they
count as misses (see docs/differences.md)."""
from __future__ import annotations

from typing import Any

from rec_es.policy.policy import StoppingPolicy, build_policy


def recbole_legacy(valid_metric: str = "MRR@10", stopping_step: int = 10) -> StoppingPolicy:
    """The stock RecBole rule for ``valid_metric`` and ``stopping_step``."""
    return build_policy({"preset": "recbole_legacy", "monitor": valid_metric, "stopping_step": stopping_step})


def legacy_mapping(recbole_config: dict[str, Any]) -> dict[str, Any]:
    """The ``recbole_legacy`` mapping for a RecBole config (``valid_metric``, ``stopping_step``)."""
    return {"preset": "recbole_legacy", "monitor": str(recbole_config.get("valid_metric", "MRR@10")),
            "stopping_step": recbole_config.get("stopping_step", 10)}
