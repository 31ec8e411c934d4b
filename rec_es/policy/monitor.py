"""The monitored score: one RecBole metric or a weighted sum of several, and its direction.

Metric keys are RecBole's (``ndcg@10``, ``rmse``), matched in any case. The metric tables mirror
``recbole.evaluator`` so this module needs no RecBole; tests/policy/test_monitor.py checks every table and every
metric's direction against RecBole's metric classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from rec_es.policy.errors import MetricMissingError

#: RecBole metrics computed per cut-off ``k`` (``name@k``).
TOPK_METRICS = frozenset(
    {"hit", "mrr", "map", "recall", "ndcg", "precision", "itemcoverage", "averagepopularity",
     "giniindex", "shannonentropy", "tailpercentage"}
)
#: The top-k metrics RecBole averages from one value per user (``recbole.evaluator.base_metric.TopkMetric``);
#: the other top-k ones (coverage, popularity, entropy, ...) are computed over all users at once.
PER_USER_METRICS = frozenset({"hit", "mrr", "map", "recall", "ndcg", "precision"})
#: RecBole metrics with no cut-off (value / loss metrics and GAUC).
VALUE_METRICS = frozenset({"auc", "gauc", "mae", "rmse", "logloss"})
#: The metrics RecBole computes from scored (user, item) pairs (``EvaluatorType.VALUE``); GAUC ranks.
PAIR_METRICS = frozenset({"auc", "mae", "rmse", "logloss"})
#: Metrics where smaller is better (RecBole's ``smaller = True``); every other metric is bigger-is-better.
SMALLER_METRICS = frozenset({"mae", "rmse", "logloss", "averagepopularity", "giniindex"})
#: rec_es's own metric: the mean cross-entropy at the target item, -log softmax(full-ranking scores)[target]
#: (computed by ``rec_es.training.target_ce`` beside RecBole's metrics, under full-sort evaluation only); smaller is better.
TARGET_CE = "target_ce"


def metric_base(key: str) -> str:
    """``'NDCG@10'`` -> ``'ndcg'``."""
    return key.split("@", 1)[0].strip().lower()


def metric_mode(key: str) -> str:
    """``'min'`` for RecBole's smaller-is-better metrics, else ``'max'``."""
    base = metric_base(key)
    return "min" if base in SMALLER_METRICS or base == TARGET_CE else "max"


def computed_metric_keys(metrics: list[str] | str, topk: list[int] | int | None) -> list[str]:
    """The result keys RecBole will compute for ``metrics`` x ``topk`` (lower case, RecBole's order)."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    ks = [] if topk is None else ([topk] if isinstance(topk, int) else list(topk))
    keys: list[str] = []
    for name in names:
        base = str(name).lower()
        if base in VALUE_METRICS:
            keys.append(base)
        else:
            keys.extend(f"{base}@{k}" for k in ks)
    return keys


def per_user_keys(metrics: list[str] | str, topk: list[int] | int | None, full_ranking: bool) -> tuple[str, ...]:
    """Every result key with one value per user: each ``PER_USER_METRICS`` metric at each ``k`` (RecBole's
    order), and ``target_ce`` when evaluation ranks all items (``full_ranking``) and no value metric is configured
    (``PAIR_METRICS``: RecBole scores them on sampled pairs). The one answer for capturing and for resuming per-user
    scores (``rec_es.training.capture``, ``rec_es.training.resume_check``)."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    keys = tuple(k for k in computed_metric_keys(names, topk) if metric_base(k) in PER_USER_METRICS)
    value = any(str(m).lower() in PAIR_METRICS for m in names)
    return keys + ((TARGET_CE,) if full_ranking and not value else ())


def _fmt_weight(w: float) -> str:
    return f"{w:g}"


@dataclass(frozen=True)
class Monitor:
    """A weighted sum of RecBole metrics. ``terms`` is ``((key, weight), ...)`` with lower-case keys."""

    terms: tuple[tuple[str, float], ...]
    mode: str

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.terms)

    @property
    def name(self) -> str:
        """``'ndcg@10'`` for one metric of weight 1, else ``'0.5·ndcg@10 + 0.5·recall@10'``."""
        if len(self.terms) == 1 and self.terms[0][1] == 1.0:
            return self.terms[0][0]
        return " + ".join(f"{_fmt_weight(w)}·{k}" for k, w in self.terms)

    def score(self, metrics: Mapping[str, float]) -> float:
        """The monitored value for one evaluation result; NaN/inf pass through for the policy to judge."""
        lowered = {str(k).lower(): v for k, v in metrics.items()}
        missing = [k for k in self.keys if k not in lowered]
        if missing:
            have = ", ".join(sorted(lowered)) or "nothing"
            raise MetricMissingError(
                f"monitor needs {', '.join(missing)} but the evaluation result has only: {have}; "
                "change early_stopping.monitor or add the metric to RecBole's `metrics`/`topk`"
            )
        total = 0.0
        for key, weight in self.terms:
            value = float(lowered[key])
            if math.isnan(value):
                return math.nan
            total += weight * value
        return total
