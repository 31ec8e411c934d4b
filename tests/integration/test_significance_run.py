"""improvement: significant on a real RecBole run: the live p-values are paired t-tests of the recorded per-user
scores, replay reproduces the run from its sidecar, and a broken sidecar or setting is refused clearly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as ss
import yaml

from rec_es import ConfigError, build_policy, read_per_user
from rec_es.config.properties import load_config
from rec_es.policy.controller import StopController
from rec_es.replay import ReplayError, replay
from rec_es.rundir.trace import read_trace
from rec_es.training.trainer import EarlyStoppingTrainer

from conftest import tiny_recbole_config
from test_trainer import build

POLICY = {"monitor": "ndcg@10", "patience": 3, "improvement": "significant", "alpha": 0.2}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 8-epoch GRU4Rec run on the tiny data with improvement: significant (per-user ndcg@10 recorded)."""
    import os

    import torch

    root = tmp_path_factory.mktemp("sig")
    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(root)
    torch.set_num_threads(1)
    try:
        config, train, valid, test, model = build(tiny_recbole_config(epochs=8, checkpoint_dir=str(root / "s")))
        trainer = EarlyStoppingTrainer(config, model, build_policy(POLICY), run_dir=root / "run", record_test=True)
        trainer.fit(train, valid, verbose=False, test_data=test)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return root / "run"


def test_live_p_values_are_paired_t_tests_of_the_sidecar(run_dir: Path) -> None:
    """Each recorded p-value is scipy's one-sided paired t-test of that evaluation's per-user ndcg@10 against the
    best's (the last confirmed improvement), and an improvement counted exactly when p < alpha."""
    trace = read_trace(run_dir)
    scores = read_per_user(run_dir, "valid")
    values = scores.values("ndcg@10").astype(np.float64)
    reference, tested = 0, 0
    for i, record in enumerate(trace.records):
        d = record["decision"]
        sig = d.get("measured", {}).get("significance")
        if i == 0:
            assert sig is None and d["improved"]
            continue
        if sig is not None:
            assert sig["test"].endswith(f"vs epoch {trace.records[reference]['epoch']}")
            diff = values[i] - values[reference]
            if np.all(diff == diff[0]):  # no variance (scipy: NaN): the sign decides, as in rec_es.policy.stats
                expected = 0.0 if diff[0] > 0 else 1.0
            else:
                expected = ss.ttest_1samp(diff, 0.0, alternative="greater").pvalue
            assert sig["p_value"] == pytest.approx(expected, rel=1e-6)
            assert d["improved"] == (sig["p_value"] < POLICY["alpha"])
            tested += 1
        if d["improved"]:
            reference = i
    assert tested >= 3


def test_replay_reproduces_the_live_run_from_the_sidecar(run_dir: Path) -> None:
    """Replaying the policy over the recorded run gives the live decisions, p-values included, and no notes."""
    trace = read_trace(run_dir)
    result = replay(build_policy(POLICY), trace, keep_decisions=True)
    assert result.notes == ()
    live = [r["decision"] for r in trace.records[:len(result.decisions)]]
    assert [json.loads(json.dumps(d.to_dict())) for d in result.decisions] == live
    assert trace.footer is not None, "the run finished, so its trace must end with a footer"
    assert result.stop_epoch == trace.footer["stop_epoch"]


def test_follow_with_per_user_equals_replay(run_dir: Path) -> None:
    """StopController.follow (what resume uses for a changed policy) with the sidecar's scores reaches the state a
    replay reaches."""
    from rec_es.replay import per_user_source

    trace = read_trace(run_dir)
    a, b = build_policy(POLICY), build_policy(POLICY)
    scores, _ = per_user_source(a, trace)
    assert scores is not None
    StopController(a).follow(trace.records, scores)
    replay(b, trace)
    assert a.state_dict() == b.state_dict()


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("*.pth"))
    return dst


def test_broken_sidecars_are_refused(run_dir: Path, tmp_path: Path) -> None:
    """A sidecar whose records file is gone, that is truncated, or whose index names another user order makes the
    replay of a significance policy fail with a message naming the file; without any sidecar it falls back."""
    policy = build_policy(POLICY)
    copy = _copy(run_dir, tmp_path)
    data = (copy / "per_user" / "valid.bin").read_bytes()
    (copy / "per_user" / "valid.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReplayError, match=r"valid\.bin: truncated"):
        replay(policy, copy)
    (copy / "per_user" / "valid.bin").write_bytes(data)
    index = json.loads((copy / "per_user" / "valid.json").read_text())
    index["user_ids"] = index["user_ids"][::-1]
    (copy / "per_user" / "valid.json").write_text(json.dumps(index))
    with pytest.raises(ReplayError, match="fails its checksum"):
        replay(policy, copy)
    (copy / "per_user" / "valid.bin").unlink()
    with pytest.raises(ReplayError, match=r"valid\.bin: missing"):
        replay(policy, copy)
    shutil.rmtree(copy / "per_user")
    fallback = replay(policy, copy)
    assert fallback.notes and "used the curve's noise instead" in fallback.notes[0]


def test_a_policy_without_its_per_user_scores_is_refused_before_training(in_tmp: Path) -> None:
    """Recording no per-user scores for a significance policy is a ConfigError at construction, before any epoch."""
    config, train, valid, test, model = build(tiny_recbole_config(epochs=2, checkpoint_dir=str(in_tmp / "s")))
    with pytest.raises(ConfigError, match="per_user_metrics records only none"):
        EarlyStoppingTrainer(config, model, build_policy(POLICY), per_user_metrics=())


def test_significance_on_a_value_metric_is_refused_naming_the_file(tmp_path: Path) -> None:
    """improvement: significant with a monitor that has no per-user values is refused by load_config, naming the
    property file and the key."""
    f = tmp_path / "policy.yaml"
    f.write_text(yaml.safe_dump({"metrics": ["AUC"], "valid_metric": "AUC", "eval_args": {"mode": "labeled"},
                                 "early_stopping": {"monitor": "auc", "improvement": "significant"}}))
    with pytest.raises(ConfigError, match=r"policy\.yaml.*early_stopping\.improvement: the monitor's auc has no "
                                          r"per-user values"):
        load_config([f])


def test_resume_under_a_significance_policy_replays_with_the_sidecar(in_tmp: Path) -> None:
    """--resume of a finished 3-epoch run under improvement: significant replays epochs 0-2 with their recorded
    per-user scores: the first live test (epoch 3) is a paired t against the best of that replay, recomputed here
    from the sidecar with scipy."""
    from rec_es.cli.run import main

    from test_run import write_config

    cfg = write_config(in_tmp / "tiny.yaml", epochs=3)
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 0
    assert main(["--resume", "run", "--set", "epochs=5", "--set",
                 "early_stopping={monitor: ndcg@10, improvement: significant, alpha: 0.2, patience: 3}",
                 "--no-progress", "--quiet"]) == 0
    trace = read_trace(in_tmp / "run")
    values = read_per_user(in_tmp / "run", "valid").values("ndcg@10").astype(np.float64)

    def p(i: int, ref: int) -> float:
        d = values[i] - values[ref]
        return (0.0 if d[0] > 0 else 1.0) if np.all(d == d[0]) else ss.ttest_1samp(d, 0.0, alternative="greater").pvalue

    ref = 0  # the replay of epochs 0-2: an improvement is a higher mean with p < 0.2
    for i in (1, 2):
        if values[i].mean() > values[ref].mean() and p(i, ref) < 0.2:
            ref = i
    sig = trace.records[3]["decision"]["measured"]["significance"]
    assert sig["test"] == f"paired t over {values.shape[1]} users vs epoch {ref}"
    assert sig["p_value"] == pytest.approx(p(3, ref), rel=1e-6)
