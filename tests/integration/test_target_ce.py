"""target_ce from real RecBole runs: the cross-entropy at the target item, per user in the sidecar and averaged in
the trace, equal to torch's cross_entropy on the model's own full-ranking scores; refused under negative sampling."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rec_es import ConfigError, build_policy, read_per_user
from rec_es.config.properties import load_config
from rec_es.rundir.trace import read_trace
from rec_es.training.trainer import EarlyStoppingTrainer

from conftest import tiny_recbole_config
from test_trainer import build, fit_recorded

METRICS = ["ndcg@10", "target_ce"]


@torch.no_grad()
def reference_ce(trainer: EarlyStoppingTrainer, loader: object) -> np.ndarray:
    """Per user, torch's cross_entropy of the model's scores at the target (padding item excluded), loader order."""
    trainer.model.eval()
    item = trainer.config["ITEM_ID_FIELD"]
    out = []
    for interaction, _, _, _ in loader:
        scores = trainer.model.full_sort_predict(interaction).float()
        scores[:, 0] = -torch.inf  # RecBole never ranks the padding item
        out.append(torch.nn.functional.cross_entropy(scores, interaction[item], reduction="none"))
    return torch.cat(out).numpy()


def test_target_ce_is_the_cross_entropy_at_the_target(in_tmp: Path) -> None:
    """Sidecar rows are -log softmax at each user's target; the trace holds their mean, valid and test."""
    config, valid, test, trainer, trace = fit_recorded(in_tmp, 3, METRICS)
    for split in ("valid", "test"):
        scores = read_per_user(in_tmp / "run", split)
        assert scores.metrics == tuple(METRICS)
        ce = scores.values("target_ce").astype(np.float64)
        np.testing.assert_allclose(ce.mean(axis=1), trace.metric("target_ce", split), rtol=0, atol=2e-7)
        n_items = valid._dataset.item_num - 1  # every real item is ranked
        assert (ce > 0).all() and abs(ce[0].mean() - np.log(n_items)) < 0.5  # near uniform after one epoch
    # the weights now in the model are the last epoch's: the evaluator's rows equal torch's cross_entropy on them
    result = trainer.evaluate(valid, load_best_model=False)
    rows = trainer.per_user_recorder.capture.take().values["target_ce"]
    expected = reference_ce(trainer, valid)
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-5)
    assert result["target_ce"] == pytest.approx(float(expected.astype(np.float64).mean()), abs=1e-5)
    assert not np.array_equal(read_per_user(in_tmp / "run", "valid").values("target_ce")[-1],
                              read_per_user(in_tmp / "run", "valid").values("target_ce")[0])


def test_monitoring_target_ce_minimises_it(in_tmp: Path) -> None:
    """A policy monitoring target_ce resolves mode min, reads it from the result, and the sidecar records it."""
    config, train, valid, test, model = build(tiny_recbole_config(epochs=3, checkpoint_dir=str(in_tmp / "s")))
    policy = build_policy({"monitor": "target_ce", "patience": None})
    assert policy.mode == "min"
    trainer = EarlyStoppingTrainer(config, model, policy, run_dir=in_tmp / "run")
    trainer.fit(train, valid, verbose=False)
    trace = read_trace(in_tmp / "run")
    assert trace.header["mode"] == "min" and trace.header["monitor"] == "target_ce"
    ce = trace.metric("target_ce")
    assert [r["decision"]["value"] for r in trace.records] == ce
    assert trainer.best_epoch_ == int(np.argmin(ce))
    assert read_per_user(in_tmp / "run").metrics == ("target_ce",)  # the monitor's key is recorded by default


def test_target_ce_is_refused_under_negative_sampling(in_tmp: Path, tmp_path: Path) -> None:
    """Negative-sampled evaluation has no full softmax: the property file, the trainer and per_user_metrics say so."""
    sampled = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": {"valid": "uni100", "test": "full"}}
    props = tmp_path / "sampled.yaml"
    props.write_text("eval_args:\n  split: {LS: valid_and_test}\n  order: TO\n  mode: uni100\n"
                     "early_stopping:\n  monitor: target_ce\n")
    with pytest.raises(ConfigError, match=r"early_stopping.monitor \(target_ce\): target_ce needs full-ranking "
                                          r"evaluation \(eval_args.mode: full\), but eval_args.mode is valid: uni100, "
                                          r"test: uni100") as err:
        load_config([props])
    assert err.value.key == "eval_args" and str(props) in str(err.value)
    config, train, valid, test, model = build(tiny_recbole_config(eval_args=sampled, epochs=1,
                                                                  checkpoint_dir=str(in_tmp / "s")))
    with pytest.raises(ConfigError, match=r"early_stopping.monitor \(target_ce\): .*eval_args.mode is valid: uni100: negative-sampled"):
        EarlyStoppingTrainer(config, model, build_policy({"monitor": "target_ce"}), run_dir=in_tmp / "run")
    with pytest.raises(ConfigError, match=r"per_user_metrics: 'target_ce': target_ce needs full-ranking") as err:
        EarlyStoppingTrainer(config, model, build_policy({"monitor": "ndcg@10"}), run_dir=in_tmp / "run",
                             per_user_metrics=["ndcg@10", "target_ce"])
    assert err.value.key == "eval_args"
    assert not (in_tmp / "run").exists()  # refused before anything is written


def test_resumed_run_keeps_recording_target_ce(in_tmp: Path) -> None:
    """A run recording target_ce, resumed with the default per_user_metrics, goes on computing and recording it."""
    import yaml

    from rec_es.training.run import train

    props = in_tmp / "tiny.yaml"
    props.write_text(yaml.safe_dump(tiny_recbole_config(epochs=3, metric_decimal_place=12)))
    run = in_tmp / "run"
    train(load_config([props]), run, record_test=True, verbose=False, per_user_metrics=METRICS)
    summary = train(load_config([props], {"epochs": 5}), run, resume=True, verbose=False)
    trace = read_trace(run)
    assert [r["epoch"] for r in trace.records] == [0, 1, 2, 3, 4]
    assert all("target_ce" in r["valid"] and "target_ce" in r["test"] for r in trace.records)
    assert "target_ce" in summary["test_result"]
    for split in ("valid", "test"):
        scores = read_per_user(run, split)  # checks each evaluation's per-user mean against the trace
        assert scores.metrics == tuple(METRICS) and scores.epochs == (0, 1, 2, 3, 4)
        assert np.isfinite(scores.values("target_ce")).all()
