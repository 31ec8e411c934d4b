"""Per-user scores from real RecBole runs: they average to the trace and reach the policy (surviving a kill and
resume is checked in test_run.py, on the killed run it shares with the trace check)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pytest

from rec_es import ConfigError, StoppingPolicy, build_policy, read_per_user
from rec_es.training.capture import choose_metrics
from rec_es.training.trainer import EarlyStoppingTrainer

from conftest import tiny_recbole_config
from test_trainer import build, fit_recorded

METRICS = ["ndcg@10", "recall@10", "mrr@10"]


class PerUserPolicy(StoppingPolicy):
    """A policy whose update takes ``per_user``; it keeps what it was given."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.seen: list[tuple[int, Mapping[str, Sequence[float]] | None]] = []

    def update(self, epoch: int, metrics: Mapping[str, float], train_loss: float | None = None,
               elapsed_seconds: float | None = None, per_user: Mapping[str, Sequence[float]] | None = None) -> Any:
        self.seen.append((epoch, per_user))
        return super().update(epoch, metrics, train_loss=train_loss, elapsed_seconds=elapsed_seconds)


def test_per_user_means_are_the_trace_metrics(in_tmp: Path) -> None:
    """Every evaluation's per-user mean equals RecBole's average in the trace (valid and test), row by user."""
    config, valid, test, trainer, trace = fit_recorded(in_tmp, 5, METRICS)
    uid = config["USER_ID_FIELD"]
    for split, loader in (("valid", valid), ("test", test)):
        scores = read_per_user(in_tmp / "run", split)
        assert scores.epochs == (0, 1, 2, 3, 4) and scores.metrics == tuple(METRICS)
        assert scores.user_ids.tolist() == loader._dataset.inter_feat[uid].tolist()  # one row per user, in loader order
        for m in METRICS:
            np.testing.assert_allclose(scores.values(m).astype(np.float64).mean(axis=1),
                                       trace.metric(m, split), rtol=0, atol=2e-7)  # float32 per user
        # leave-one-out: one positive per user, so recall is the hit, ndcg = 1/log2(rank+1) and mrr = 1/rank
        ndcg, recall, mrr = (scores.values(m) for m in METRICS)
        assert set(np.unique(recall)) <= {0.0, 1.0} and np.array_equal(recall > 0, ndcg > 0)
        hit = ndcg > 0
        np.testing.assert_allclose(1.0 / mrr[hit], 2.0 ** (1.0 / ndcg[hit]) - 1.0, rtol=1e-4)
        assert hit.any() and (mrr[hit] < 1).any()  # the check above saw ranks other than 1
    assert not np.array_equal(read_per_user(in_tmp / "run", "valid").array,
                              read_per_user(in_tmp / "run", "test").array)


def test_policy_gets_per_user_values_only_if_it_takes_them(in_tmp: Path) -> None:
    """A policy taking per_user gets each evaluation's sidecar values; by default the monitor's keys are recorded."""
    keys = tiny_recbole_config(epochs=3, checkpoint_dir=str(in_tmp / "s"))
    config, train, valid, test, model = build(keys)
    policy = PerUserPolicy(build_policy({"monitor": {"ndcg@10": 0.5, "mrr@10": 0.5}, "patience": None}).settings)
    trainer = EarlyStoppingTrainer(config, model, policy, run_dir=in_tmp / "run")
    trainer.fit(train, valid, verbose=False)
    scores = read_per_user(in_tmp / "run")
    assert scores.metrics == ("ndcg@10", "mrr@10")
    assert [e for e, _ in policy.seen] == [0, 1, 2]
    for epoch, given in policy.seen:
        assert given == scores.for_policy(epoch)
        assert all(type(v) is float for v in given["ndcg@10"])  # plain floats: the policy core is pure Python


def test_metrics_without_per_user_values_are_refused_or_skipped(in_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A metric without per-user values (GAUC, AUC) or an uncomputed cut-off is refused; a monitor on one records nothing."""
    config, train, valid, test, model = build(tiny_recbole_config(metrics=["NDCG", "GAUC"], epochs=2,
                                                                  checkpoint_dir=str(in_tmp / "s")))
    policy = build_policy({"monitor": "gauc", "patience": 2})
    with pytest.raises(ConfigError, match=r"per_user_metrics: 'gauc': it is not a top-k metric, so it has no "
                                          r"per-user values .*; allowed: ndcg@10, target_ce$"):
        EarlyStoppingTrainer(config, model, policy, per_user_metrics=["gauc"])
    with pytest.raises(ConfigError, match=r"'NDCG@20': RecBole does not compute it with these metrics/topk"):
        EarlyStoppingTrainer(config, model, policy, per_user_metrics=["NDCG@20"])
    with caplog.at_level(logging.INFO):
        trainer = EarlyStoppingTrainer(config, model, policy, run_dir=in_tmp / "run")
    assert any("per-user scores: gauc has none" in r.getMessage() for r in caplog.records)
    trainer.fit(train, valid, verbose=False)
    assert trainer.per_user_recorder.metrics == () and not (in_tmp / "run" / "per_user").exists()
    # value metrics (RecBole never mixes them with ranking ones) have none either
    with pytest.raises(ConfigError, match=r"'auc': it is not a top-k metric.*allowed: none"):
        choose_metrics({"metrics": ["AUC", "LogLoss"], "topk": [10]}, ["auc"], ())
    with pytest.raises(ConfigError, match=r"'target_ce': target_ce needs full-ranking scores, and the metrics "
                                          r"\['AUC'\] include a value metric") as err:
        choose_metrics({"metrics": ["AUC"], "topk": [10]}, ["target_ce"], ())
    assert err.value.key == "metrics"
