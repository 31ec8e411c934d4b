"""The monitor's metric tables against RecBole's own metric classes (``recbole.evaluator.metrics``).

``rec_es.policy.monitor`` mirrors RecBole's metric definitions so the pure core needs no RecBole import; these
tests hold the copy to the original: every metric's direction (RecBole's ``smaller`` attribute) decides
``mode: auto`` by the metric's *name*, whatever the cut-off or the case of the key.
"""
from __future__ import annotations

import inspect

import pytest
from recbole.evaluator import metrics as recbole_metrics
from recbole.evaluator.base_metric import TopkMetric
from recbole.utils import EvaluatorType

from rec_es import build_policy
from rec_es.policy.monitor import (PAIR_METRICS, PER_USER_METRICS, SMALLER_METRICS, TOPK_METRICS, VALUE_METRICS,
                                   computed_metric_keys, metric_base, metric_mode)

#: RecBole's metric classes by lower-case name, as ``recbole.evaluator.register`` collects them
RECBOLE = {name.lower(): cls for name, cls in inspect.getmembers(recbole_metrics, inspect.isclass)
           if cls.__module__ == recbole_metrics.__name__}
#: the metrics RecBole reports per cut-off (``name@k``): those that read the top-k matrix or the top-k items
RECBOLE_TOPK = {n for n, c in RECBOLE.items() if {"rec.topk", "rec.items"} & set(c.metric_need)}


def test_the_tables_name_every_recbole_metric_once() -> None:
    """Top-k and value metrics split RecBole's metrics between them, by whether RecBole reports a cut-off."""
    assert TOPK_METRICS == RECBOLE_TOPK
    assert VALUE_METRICS == set(RECBOLE) - RECBOLE_TOPK
    assert not TOPK_METRICS & VALUE_METRICS


def test_smaller_metrics_are_recboles() -> None:
    """SMALLER_METRICS is exactly the metrics whose RecBole class says ``smaller = True``."""
    assert SMALLER_METRICS == {n for n, c in RECBOLE.items() if c.smaller is True}
    assert {"giniindex", "averagepopularity", "mae", "rmse", "logloss"} == SMALLER_METRICS


def test_per_user_and_pair_metrics_are_recboles() -> None:
    """Per-user metrics are RecBole's TopkMetric subclasses; pair metrics its EvaluatorType.VALUE ones."""
    assert PER_USER_METRICS == {n for n, c in RECBOLE.items() if issubclass(c, TopkMetric)}
    assert PAIR_METRICS == {n for n, c in RECBOLE.items() if c.metric_type == EvaluatorType.VALUE}


@pytest.mark.parametrize("name", sorted(RECBOLE_TOPK))
@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_topk_metric_mode_is_recboles_direction_at_every_cutoff(name: str, k: int) -> None:
    """metric_mode('<name>@k'), in any case, is 'min' exactly when RecBole's class has smaller = True."""
    expected = "min" if RECBOLE[name].smaller else "max"
    assert metric_mode(f"{name}@{k}") == expected
    assert metric_mode(f"{name.upper()}@{k}") == expected
    assert metric_mode(f" {RECBOLE[name].__name__}@{k}") == expected


@pytest.mark.parametrize("name", sorted(set(RECBOLE) - RECBOLE_TOPK))
def test_value_metric_mode_is_recboles_direction(name: str) -> None:
    """A metric without a cut-off (auc, gauc, mae, rmse, logloss): its RecBole direction."""
    assert metric_mode(name) == ("min" if RECBOLE[name].smaller else "max")


@pytest.mark.parametrize("key, mode", [
    ("giniindex@10", "min"), ("GiniIndex@5", "min"), ("averagepopularity@20", "min"),
    ("AveragePopularity@10", "min"), ("ndcg@10", "max"), ("itemcoverage@10", "max"),
    ("shannonentropy@10", "max"), ("tailpercentage@10", "max"), ("rmse", "min"), ("auc", "max"),
    ("target_ce", "min"),
])
def test_auto_mode_of_a_monitor_follows_the_metric_name(key: str, mode: str) -> None:
    """mode: auto resolves from the metric name, not the whole key: giniindex@10 is minimised, ndcg@10 maximised."""
    assert build_policy({"monitor": key, "mode": "auto"}).mode == mode


def test_a_composite_of_two_min_mode_topk_metrics_is_min() -> None:
    """Two smaller-is-better top-k metrics at different cut-offs agree on min; mixing in ndcg@10 is refused."""
    assert build_policy({"monitor": {"giniindex@10": 0.5, "averagepopularity@20": 0.5}}).mode == "min"
    with pytest.raises(ValueError, match=r"bigger-is-better \(ndcg@10\) and smaller-is-better \(giniindex@10\)"):
        build_policy({"monitor": {"ndcg@10": 1.0, "giniindex@10": 1.0}})


@pytest.mark.parametrize("key, base", [("NDCG@10", "ndcg"), (" giniindex@20 ", "giniindex"), ("rmse", "rmse"),
                                       ("a@b@c", "a")])
def test_metric_base_is_the_lower_case_name_before_the_first_at(key: str, base: str) -> None:
    """metric_base strips the cut-off, surrounding blanks and case."""
    assert metric_base(key) == base


def test_computed_keys_take_one_metric_or_cutoff_as_well_as_lists() -> None:
    """RecBole accepts `metrics: NDCG` and `topk: 10` unlisted; value metrics need no topk at all."""
    assert computed_metric_keys("NDCG", 10) == ["ndcg@10"]
    assert computed_metric_keys(["Recall", "RMSE"], [5, 10]) == ["recall@5", "recall@10", "rmse"]
    assert computed_metric_keys(["RMSE", "AUC"], None) == ["rmse", "auc"]


def test_a_monitor_is_written_back_as_a_property_file_writes_it() -> None:
    """One metric of weight 1 as its key; a weighted or composite monitor as its {metric: weight} mapping."""
    from rec_es.policy.core import plain_monitor

    assert plain_monitor(build_policy({"monitor": "NDCG@10"}).monitor) == "ndcg@10"
    assert plain_monitor(build_policy({"monitor": {"ndcg@10": 2}}).monitor) == {"ndcg@10": 2.0}
    assert plain_monitor(build_policy({"monitor": {"ndcg@10": 0.5, "recall@10": 0.5}}).monitor) == {
        "ndcg@10": 0.5, "recall@10": 0.5}
