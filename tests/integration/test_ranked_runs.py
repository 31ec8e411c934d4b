"""The ranked-list sidecar from real RecBole runs: each row is the model's own top-k of that user, the trace's
signals are the lists', and bad requests are refused before anything is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rec_es import ConfigError, build_policy, read_per_user
from rec_es.rundir.ranked import read_ranked, signals
from rec_es.rundir.trace import read_trace
from rec_es.training.trainer import EarlyStoppingTrainer

from conftest import tiny_recbole_config
from test_trainer import build


def test_lists_are_each_users_ranking_and_the_trace_holds_their_signals(in_tmp: Path) -> None:
    """Row j of an evaluation is user j's top 10: its target sits where the per-user MRR puts it (absent exactly
    when the hit is 0), and the trace's signals are ``signals()`` of consecutive lists."""
    keys = tiny_recbole_config(epochs=3, checkpoint_dir=str(in_tmp / "s"))
    config, train, valid, test, model = build(keys)
    trainer = EarlyStoppingTrainer(config, model, build_policy({"monitor": "ndcg@10", "patience": None}),
                                   run_dir=in_tmp / "run", per_user_metrics=["mrr@10", "recall@10"], ranked_k=10,
                                   record_test=True)  # the test evaluation between must not touch the valid lists
    trainer.fit(train, valid, verbose=False, test_data=test)
    lists, scores = read_ranked(in_tmp / "run"), read_per_user(in_tmp / "run")
    assert lists.epochs == scores.epochs == (0, 1, 2) and lists.items.shape == (3, len(scores.user_ids), 10)
    assert np.array_equal(lists.user_ids, scores.user_ids)
    targets = valid._dataset.inter_feat[config["ITEM_ID_FIELD"]].numpy()  # leave-one-out: one per user, in order
    for i in range(3):
        at = lists.items[i] == targets[:, None]
        hit = scores.values("recall@10")[i] > 0
        assert np.array_equal(at.any(axis=1), hit) and hit.any()
        rank = at[hit].argmax(axis=1) + 1
        np.testing.assert_allclose(scores.values("mrr@10")[i][hit], 1.0 / rank, rtol=1e-6)
        assert all(len(set(row)) == 10 for row in lists.items[i].tolist())  # distinct items, padding never listed
        assert (lists.items[i] > 0).all()
    records = read_trace(in_tmp / "run").records
    assert records[0]["ranked"]["churn"] is None
    for i in range(3):
        want = signals(lists.items[i - 1] if i else None, lists.items[i], lists.n_items)
        assert records[i]["ranked"] == pytest.approx(want)
    assert lists.n_items == train._dataset.item_num


def test_ranked_lists_are_refused_without_full_ranking_before_anything_is_written(in_tmp: Path) -> None:
    """Negative-sampled evaluation has no whole ranking: refused at construction, naming eval_args; k < 0 too."""
    keys = tiny_recbole_config(epochs=2, checkpoint_dir=str(in_tmp / "s"),
                               eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"})
    config, train, valid, test, model = build(keys)
    policy = build_policy({"monitor": "ndcg@10", "patience": None})
    with pytest.raises(ConfigError, match=r"ranked: the top-k lists need full-ranking evaluation") as err:
        EarlyStoppingTrainer(config, model, policy, run_dir=in_tmp / "run", ranked_k=10)
    assert err.value.key == "eval_args" and not (in_tmp / "run").exists()
    with pytest.raises(ConfigError, match=r"ranked: -1: .* integer >= 1"):
        EarlyStoppingTrainer(config, model, policy, ranked_k=-1)
