"""`rec-es run` end to end: run directory contract, resume after a real kill (trace and per-user sidecar), bad
input, BPR with record_test."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from rec_es import read_per_user
from rec_es.rundir.per_user import paths
from rec_es.cli.run import main
from rec_es.rundir.trace import read_trace

from conftest import REPO, one_thread_in, tiny_recbole_config

TIMING = ("elapsed_seconds", "train_seconds", "eval_seconds", "test_seconds")
SCRIPT = REPO / "scripts" / "run_gru4rec.py"


def write_config(path: Path, **overrides: Any) -> Path:
    keys = tiny_recbole_config(**overrides)
    path.write_text(yaml.safe_dump(keys))
    return path


def records_without_timing(run_dir: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_trace(run_dir).records]


def start_run(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), *args, "--no-progress"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_records(run_dir: Path, n: int, proc: subprocess.Popen[bytes]) -> None:
    """Block until the trace holds n evaluation records (the process must still be running)."""
    trace = run_dir / "trace.jsonl"
    while not (trace.exists() and trace.read_text().count('"type":"eval"') >= n):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "run ended early"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real run SIGKILLed after 4 evaluations, its per-user sidecar's tail torn, then ``--resume``d, beside the
    same run left uninterrupted (EMA, patience 2, LR warmup and reduce-on-plateau, ``--record-test``); what was
    observed between the kill and the resume. Shared by the trace and the sidecar checks: three process starts
    instead of six."""
    root = tmp_path_factory.mktemp("killed")
    cfg = write_config(root / "tiny.yaml", epochs=9)
    policy = root / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "early_stopping": {"monitor": "ndcg@10", "patience": 2, "smoothing": "ema", "ema_alpha": 0.5},
        "lr_schedule": {"warmup_epochs": 2, "reduce_on_plateau": {"factor": 0.5, "max_reductions": 2}},
    }))
    args = ("--config", str(cfg), str(policy), "--record-test")
    full = start_run(root, *args, "--output-dir", "full")
    killed = start_run(root, *args, "--output-dir", "killed")
    wait_for_records(root / "killed", 4, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run = root / "killed"
    at_kill = read_trace(run)
    kept_per_user = read_per_user(run, "valid").epochs  # readable as it is: an unfinished tail is ignored
    _, bin_path = paths(run, "valid")
    with open(bin_path, "ab") as fh:
        fh.write(b"\x07" * 21)  # as if killed while appending a record
    resumed = start_run(root, "--resume", "killed")  # beside the uninterrupted run's last epochs (two cores)
    assert full.wait() == 0, full.stderr.read().decode() if full.stderr else ""
    assert resumed.wait() == 0, resumed.stderr.read().decode() if resumed.stderr else ""
    return {"full": root / "full", "killed": run, "complete_at_kill": at_kill.complete,
            "kept_at_kill": len(at_kill.records), "kept_per_user": kept_per_user}


def test_resume_after_kill_gives_the_uninterrupted_trace(killed_and_resumed: dict[str, Any]) -> None:
    """SIGKILL a real run mid-training, --resume it: trace equals an uninterrupted run's (timing excluded)."""
    full, killed = killed_and_resumed["full"], killed_and_resumed["killed"]
    assert not killed_and_resumed["complete_at_kill"]
    expected = records_without_timing(full)
    assert len(expected) >= 6
    assert "resumed_with_changes" not in read_trace(killed).header  # same policy: state loaded
    assert records_without_timing(killed) == expected
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    for key in ("stop_epoch", "best_epoch", "stop_reason", "message", "best_valid_result", "test_result"):
        assert a[key] == b[key], key


def test_kill_and_resume_keep_the_sidecar_consistent(killed_and_resumed: dict[str, Any]) -> None:
    """SIGKILL a real run, tear its sidecar's tail, --resume it: per-user scores equal an uninterrupted run's."""
    full, run = killed_and_resumed["full"], killed_and_resumed["killed"]
    assert killed_and_resumed["kept_per_user"] == tuple(range(killed_and_resumed["kept_at_kill"]))
    epochs = [r["epoch"] for r in read_trace(full).records]
    assert len(epochs) >= 6 and epochs == list(range(len(epochs)))
    for split in ("valid", "test"):
        a, b = read_per_user(full, split), read_per_user(run, split)
        assert b.epochs == tuple(epochs) and np.array_equal(a.user_ids, b.user_ids)
        np.testing.assert_array_equal(a.array, b.array)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished 3-epoch run (default policy), resumed with ``--set epochs=5`` and the policy
    ``{monitor: mrr@10, patience: 4, min_delta: 0.5}``: the trace before and after, and the summary."""
    root = tmp_path_factory.mktemp("resumed")
    with one_thread_in(root):
        cfg = write_config(root / "tiny.yaml", epochs=3)
        assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 0
        before = read_trace(root / "run")
        assert main(["--resume", "run", "--set", "epochs=5", "--set",
                     "early_stopping={monitor: mrr@10, patience: 4, min_delta: 0.5}", "--no-progress", "--quiet"]) == 0
    return {"before": before, "after": read_trace(root / "run"),
            "summary": json.loads((root / "run" / "summary.json").read_text())}


def test_resume_finished_run_under_another_policy(resumed_run: dict[str, Any]) -> None:
    """--resume RUN --set ... continues a finished run with a changed policy, replayed over the kept records first."""
    before, after = resumed_run["before"], resumed_run["after"]
    assert before.complete and [r["epoch"] for r in before.records] == [0, 1, 2]
    assert [r["epoch"] for r in after.records] == [0, 1, 2, 3, 4]
    assert after.records[:3] == before.records
    assert after.header["policy"]["monitor"] == "mrr@10"
    assert after.header["resumed_with_changes"][0]["from_epoch"] == 3
    assert after.header["resumed_with_changes"][0]["previous_policy"] == before.header["policy"]
    assert after.footer is not None and after.footer["epochs_trained"] == 5
    # min_delta 0.5 on an MRR@10 below 0.5: only the first evaluation the new policy sees improves. Replayed over
    # epochs 0-2 first, it waits 3 evaluations at epoch 3 and stops on the 4th at epoch 4; a policy started fresh
    # at epoch 3 would wait 0, then 1, restore epoch 3 and run out of epochs instead. The replayed policy would
    # restore epoch 0, but the first run only kept its own best snapshot: that epoch is restored instead.
    mrr = [r["valid"]["mrr@10"] for r in after.records]
    assert max(mrr) < 0.5
    kept = before.footer["best_epoch"]
    assert kept != 0, "the first policy must have kept another epoch than 0 for this test to mean anything"
    decisions = [(r["decision"]["wait_count"], r["decision"]["best_epoch"], r["decision"]["stop"])
                 for r in after.records[3:]]
    assert decisions == [(3, kept, False), (4, kept, True)]
    assert after.header["resumed_with_changes"][0]["best_without_weights"] == {"wanted": 0, "restored": kept}
    assert (after.footer["stop_epoch"], after.footer["stop_reason"]) == (4, "patience")
    assert resumed_run["summary"]["message"].startswith(
        "stopped at epoch 4: mrr@10 did not improve by more than 0.5 for 4 evaluations (4 epochs) since epoch 0")


def test_resume_under_another_policy_reports_one_best_epoch(resumed_run: dict[str, Any]) -> None:
    """The best epoch of the trace's last decision, of the footer and of the summary are one and the same."""
    after = resumed_run["after"]
    assert after.records[-1]["decision"]["best_epoch"] == after.footer["best_epoch"] == resumed_run["summary"]["best_epoch"]


def test_explain_a_run_resumed_under_a_longer_patience(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run -> `--resume RUN --set early_stopping.patience=3` -> `rec-es explain RUN`: the original policy's row
    (its stop and best epoch are the first run's own) and the caveat naming both policies."""
    from rec_es.cli.explain import main as explain_main

    cfg = write_config(in_tmp / "tiny.yaml", epochs=12)
    assert main(["--config", str(cfg), "--output-dir", "run", "--set", "early_stopping.patience=1",
                 "--no-progress", "--quiet"]) == 0
    first = read_trace(in_tmp / "run").footer
    assert first is not None and first["stop_reason"] == "patience" and first["stop_epoch"] < 11, \
        "patience 1 must stop the first run early for the original row to mean anything"
    stop, best = first["stop_epoch"], first["best_epoch"]
    capsys.readouterr()
    assert main(["--resume", "run", "--set", "early_stopping.patience=3", "--no-progress", "--quiet"]) == 0
    resumed = read_trace(in_tmp / "run")
    assert resumed.header["policy"]["patience"] == 3 and [r["epoch"] for r in resumed.records][-1] > stop
    capsys.readouterr()

    assert explain_main(["run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["observed_policy"]["patience"] == 3
    original = next(r for r in report["counterfactuals"] if r["policy"].startswith("original"))
    assert original["policy"] == f"original (epochs 0-{stop}): patience 1 evaluations"
    assert (original["status"], original["stop_epoch"], original["best_epoch"]) == ("stopped", stop, best)
    caveat = (f"run/trace.jsonl: the run was resumed at epoch {stop + 1} under another policy (patience 3 "
              "evaluations; it started with patience 1 evaluations)")
    assert [w for w in report["warnings"] if "resumed" in w] == [
        caveat + "; the report explains the final policy, and the table also replays the original one"]
    assert explain_main(["run"]) == 0
    text = capsys.readouterr().out
    assert re.search(rf"^  original \(epochs 0-{stop}\): patience 1 evaluations +stops at epoch {stop} +epoch {best} ",
                     text, flags=re.M)
    assert f"  - {caveat}" in text


def differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the tensors that differ between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_run_directory_contract(in_tmp: Path) -> None:
    """BPR with --record-test: every file of the contract, test metrics per record, weights-only best.pth
    holding the best epoch's tensors (not the last epoch's), and the test run on those."""
    cfg = write_config(in_tmp / "bpr.yaml", model="BPR", epochs=6, train_neg_sample_args={"uniform": 1},
                       eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "mode": "full"})
    cfg_text = cfg.read_text().replace("loss_type: CE\n", "")
    cfg.write_text(cfg_text)
    assert main(["--config", str(cfg), "--output-dir", "bpr", "--record-test", "--no-progress"]) == 0
    run = in_tmp / "bpr"
    assert sorted(p.name for p in run.iterdir()) == ["best.pth", "config.yaml", "last.pth", "per_user", "summary.json",
                                                     "trace.jsonl"]
    assert sorted(p.name for p in (run / "per_user").iterdir()) == ["test.bin", "test.json", "valid.bin", "valid.json"]
    trace = read_trace(run)
    assert trace.header["model"] == "BPR" and trace.header["record_test"] is True
    assert [r["epoch"] for r in trace.records] == [0, 1, 2, 3, 4, 5]
    assert all(set(r["test"]) == {"recall@10", "ndcg@10", "mrr@10"} for r in trace.records)
    assert all(r["test_seconds"] >= 0 and r["eval_seconds"] >= 0 for r in trace.records)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] < 5, "the best epoch must not be the last for the restore checks to mean anything"
    best = torch.load(run / "best.pth", weights_only=True)
    last = torch.load(run / "last.pth", weights_only=True)
    assert best["epoch"] == summary["best_epoch"] == trace.footer["best_epoch"]
    assert best["state_dict"] and all(isinstance(t, torch.Tensor) for t in best["state_dict"].values())
    assert differing(best["state_dict"], last["model"])  # the best epoch's weights, not the final ones
    # the test metrics recorded at the best epoch are the summary's test result (same weights)
    at_best = next(r for r in trace.records if r["epoch"] == summary["best_epoch"])
    assert at_best["test"] == summary["test_result"] != trace.records[-1]["test"]
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "BPR"
    # resuming a --record-test run keeps recording the test set
    assert main(["--resume", "bpr", "--set", "epochs=7", "--no-progress", "--quiet"]) == 0
    resumed = read_trace(run)
    assert [r["epoch"] for r in resumed.records] == list(range(7)) and "test" in resumed.records[6]
    assert resumed.header["epochs"] == 7 and resumed.header["resumed_with_changes"][0]["previous_epochs"] == 6
    assert resumed.header["policy"] == trace.header["policy"]
    assert read_per_user(run, "test").epochs == tuple(range(7))  # BPR: full ranking over users, one row each


def test_existing_run_directory_is_never_overwritten(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing non-empty --output-dir is refused before anything is written."""
    cfg = write_config(in_tmp / "tiny.yaml")
    (in_tmp / "old").mkdir()
    (in_tmp / "old" / "trace.jsonl").write_text("precious\n")
    assert main(["--config", str(cfg), "--output-dir", "old"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (in_tmp / "old" / "trace.jsonl").read_text() == "precious\n"
    assert sorted(p.name for p in (in_tmp / "old").iterdir()) == ["trace.jsonl"]


def test_resume_needs_a_run_directory(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--resume on a directory without last.pth says what is missing."""
    (in_tmp / "empty").mkdir()
    assert main(["--resume", "empty"]) == 2
    assert "cannot resume: empty/config.yaml is missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, extra, fragment",
    [
        ({"dataset": "my-own-data"}, [], "dataset 'my-own-data' not found: looked for"),
        ({"data_path": "/nowhere"}, [], "/nowhere/ml-100k-tiny/ml-100k-tiny.inter"),
        ({"model": "GRU4Recc"}, [], "model: error: 'GRU4Recc' is not a RecBole 1.2.1 model - did you mean GRU4Rec?"),
        # RecBole's get_trainer gives NCL its own NCLTrainer (an E-step every m_step epochs in its own fit())
        ({"model": "NCL"}, [], "model: error: NCL trains with RecBole's NCLTrainer, which runs its own fit() with "
                               "prototype clustering (an E-step) between epochs; rec_es drives models that use the base "
                               "Trainer"),
        ({"model": "RecVAE"}, [], "model: error: RecVAE trains with RecBole's RecVAETrainer"),
        ({}, ["--set", "early_stopping={monitor: hit@10}"], "RecBole will not compute hit@10"),
        ({}, ["--set", "lr_schedule={decay: linear}"], "lr_schedule.decay: allowed: none | step"),
        ({"stoping_step": 3}, [], "stoping_step: error: unknown key — did you mean 'stopping_step'?"),
    ],
)
def test_bad_input_fails_before_training(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                         overrides: dict[str, Any], extra: list[str], fragment: str) -> None:
    """Missing data, unknown model, a model with its own trainer, uncomputed monitor, bad schedule: exit 2,
    named cause, no run dir."""
    cfg = write_config(in_tmp / "bad.yaml", **overrides)
    assert main(["--config", str(cfg), "--output-dir", "run", *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert not (in_tmp / "run").exists() and not (in_tmp / "log").exists()


def test_cli_dispatch(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`rec-es` lists its commands, refuses an unknown one, and names a tool missing from the install."""
    from rec_es import cli

    assert cli.main(["--help"]) == 0 and "run" in capsys.readouterr().out
    assert cli.main(["fly"]) == 2 and "unknown command 'fly'" in capsys.readouterr().err
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("rec_es.ghost", "a tool that is not installed"))
    assert cli.main(["ghost"]) == 2 and "rec_es.ghost is missing" in capsys.readouterr().err
    assert cli.main(["run", "--config", "nowhere.yaml"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_dataset_resolution(in_tmp: Path) -> None:
    """ml-100k without data_path is the wheel's copy; a user's data_path is honoured, also for ml-100k."""
    from rec_es.config.datasets import resolve
    from rec_es.policy.errors import ConfigError

    embedded = resolve({"dataset": "ml-100k"})
    assert embedded.embedded and embedded.inter_file.is_file()
    assert embedded.inter_file.parent.parent.name == "dataset_example"
    own = resolve({"dataset": "ml-100k-tiny", "data_path": str(REPO / "datasets")})
    assert own.inter_file == REPO / "datasets" / "ml-100k-tiny" / "ml-100k-tiny.inter" and not own.embedded
    with pytest.raises(ConfigError, match=r"looked for .*/elsewhere/ml-100k/ml-100k.inter"):
        resolve({"dataset": "ml-100k", "data_path": "elsewhere"}, {"data_path": "mine.yaml"})


def test_non_finite_training_loss_stops_cleanly(in_tmp: Path) -> None:
    """A NaN training loss (SGD at lr 100) ends the run with a sentence and the last good weights, not a traceback."""
    cfg = write_config(in_tmp / "nan.yaml", learner="sgd", learning_rate=100, epochs=4)
    assert main(["--config", str(cfg), "--output-dir", "run", "--record-test", "--no-progress", "--quiet"]) == 0
    trace = read_trace(in_tmp / "run")
    summary = json.loads((in_tmp / "run" / "summary.json").read_text())
    assert trace.footer is not None and trace.footer["stop_reason"] == "non_finite"
    assert summary["message"].startswith("stopped at epoch 1: the training loss became nan during the epoch")
    assert "lower learning_rate" in summary["message"]
    assert summary["best_epoch"] == 0 and [r["epoch"] for r in trace.records] == [0]
    assert trace.records[0]["test"] == summary["test_result"]  # epoch 0's weights were restored for the test
    from rec_es.explain import explain

    stop = explain(in_tmp / "run")["stop"]  # not "used its whole budget": training itself failed at epoch 1
    assert (stop["ending"], stop["reason"], stop["stop_epoch"]) == ("stopped_in_training", "non_finite", 1)
    assert "the training loss became nan" in stop["sentence"]


def test_graph_model_runs_and_restores_cached_embeddings(in_tmp: Path) -> None:
    """LightGCN (needs the scipy dok_matrix._update shim; caches embeddings in other_parameter) end to end: the
    best epoch's cached embeddings are saved as tensors and restored for the test."""
    cfg = write_config(in_tmp / "lgcn.yaml", model="LightGCN", epochs=5, learning_rate=0.01,
                       train_neg_sample_args={"uniform": 1},
                       eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "mode": "full"})
    cfg.write_text(cfg.read_text().replace("loss_type: CE\n", ""))
    assert main(["--config", str(cfg), "--output-dir", "run", "--record-test", "--no-progress", "--quiet"]) == 0
    summary = json.loads((in_tmp / "run" / "summary.json").read_text())
    trace = read_trace(in_tmp / "run")
    assert summary["best_epoch"] < trace.records[-1]["epoch"], \
        "the best epoch must not be the last for the restore checks to mean anything"
    at_best = next(r for r in trace.records if r["epoch"] == summary["best_epoch"])
    assert at_best["test"] == summary["test_result"] != trace.records[-1]["test"]
    other = torch.load(in_tmp / "run" / "best.pth", weights_only=True)["other_parameter"]
    final = torch.load(in_tmp / "run" / "last.pth", weights_only=True)["other_parameter"]
    assert set(other) == {"restore_user_e", "restore_item_e"}
    assert all(isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[1] == 16 for t in other.values())
    assert differing(other, final)  # cached at the best epoch's evaluation, not the last one's
