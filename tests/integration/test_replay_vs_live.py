"""Replay equals live, with real RecBole 1.2.1 on the tiny ml-100k slice (GRU4Rec, about 0.7 s per epoch).

One recording run (stopping disabled, test metrics every epoch) is shared by the tests of this module.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
import yaml

from conftest import tiny_recbole_config
from rec_es import build_policy
from rec_es.cli.compare import main
from rec_es.compare import TraceCache, recording_config, run_cached
from rec_es.tune.workers import train_with_rec_es
from rec_es.config.properties import load_config
from rec_es.replay import replay
from rec_es.rundir.trace import read_trace

BUDGET = 8
# lr 0.01 makes the tiny model peak early (valid NDCG@10 best at epoch 2 for seed 2020), so patience 2 stops
# well inside the budget.
RECBOLE = tiny_recbole_config(epochs=BUDGET, learning_rate=0.01, seed=2020)
PATIENCE2 = "early_stopping:\n  monitor: ndcg@10\n  patience: 2\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Inside a temp dir with one torch thread: the tiny config, a patience-2 policy, and one recorded run
    (stored in the trace cache that the compare test then reuses)."""
    import torch

    tmp = tmp_path_factory.mktemp("replay_vs_live")
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(RECBOLE))
    (tmp / "patience2.yaml").write_text(PATIENCE2)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        rec = recording_config([str(tmp / "tiny.yaml")], {}, BUDGET, None)
        recorded, _ = run_cached(TraceCache(tmp / "cache"), rec, 2020, BUDGET, live=False, record_test=True,
                                 train=train_with_rec_es)
        yield {"dir": tmp, "config": str(tmp / "tiny.yaml"), "policy": str(tmp / "patience2.yaml"),
               "recorded": read_trace(recorded)}
    torch.set_num_threads(threads)


def test_replay_equals_live_run(workdir: dict[str, Any]) -> None:
    """A live patience-2 run and its replay on the recorded full run agree on stop epoch, restored epoch and
    test metrics; the live run's epochs up to its stop are identical to the recording's (record_test does
    not disturb the seeded training)."""
    cfg = load_config([workdir["config"], workdir["policy"]])
    live_dir = workdir["dir"] / "live"
    train_with_rec_es(cfg, live_dir, record_test=False)
    summary = json.loads((live_dir / "summary.json").read_text())
    live = read_trace(live_dir)
    recorded = workdir["recorded"]

    r = replay(cfg.build_policy(), recorded, name="patience2", need_test=True)

    assert summary["stop_reason"] == "patience" and summary["stop_epoch"] < BUDGET - 1  # it really stopped early
    assert (r.stop_epoch, r.best_epoch, r.epochs_trained) == (
        summary["stop_epoch"], summary["best_epoch"], summary["epochs_trained"])
    assert r.best_test == summary["test_result"]
    assert r.best_valid == summary["best_valid_result"]
    assert r.reason == summary["stop_reason"]
    n = len(live.records)
    assert [(x["epoch"], x["train_loss"], x["valid"]) for x in live.records] == [
        (x["epoch"], x["train_loss"], x["valid"]) for x in recorded.records[:n]]
    assert [d.to_dict()["message"] for d in replay(cfg.build_policy(), recorded, keep_decisions=True).decisions] == [
        x["decision"]["message"] for x in live.records]


def test_compare_command_end_to_end(workdir: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`rec-es compare` with a replayed and a live policy writes table/CSV/plot; a rerun trains nothing."""
    plateau = workdir["dir"] / "plateau.yaml"
    plateau.write_text("early_stopping:\n  monitor: ndcg@10\n  patience: 1\n"
                       "lr_schedule:\n  reduce_on_plateau:\n    factor: 0.1\n    max_reductions: 1\n")
    out, cache = workdir["dir"] / "out", workdir["dir"] / "cache"
    argv = ["--config", workdir["config"], "--policies", workdir["policy"], str(plateau), "--seeds", "1",
            "--max-epochs", str(BUDGET), "--output", str(out), "--cache-dir", str(cache), "--no-progress"]
    assert main(argv) == 0  # the recording is already cached by the fixture: only the live run trains
    first = capsys.readouterr().out
    assert "| patience2 | replay |" in first and "| plateau | live |" in first and "| oracle | oracle |" in first
    for name in ("table.csv", "runs.csv", "table.md", "compare.png"):
        assert (out / name).is_file()
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 2  # one recording + one live run
    stamps = {p: (cache / p / "trace.jsonl").stat().st_mtime_ns for p in entries}

    assert main(argv) == 0
    assert capsys.readouterr().out.split("\n\nbudget")[0] == first.split("\n\nbudget")[0]
    assert sorted(p.name for p in cache.iterdir()) == entries
    assert {p: (cache / p / "trace.jsonl").stat().st_mtime_ns for p in entries} == stamps

    with open(out / "runs.csv") as fh:
        live_row = [line for line in fh if line.startswith("plateau,")][0]
    assert ",live,2020," in live_row


def test_recorded_elapsed_seconds_drive_a_replayed_time_budget(workdir: dict[str, Any]) -> None:
    """Each record of a real run keeps elapsed_seconds (docs/CONTRACT.md), rising and within the footer's wall time;
    a replayed max_minutes stops at the first evaluation whose recorded elapsed time reaches it."""
    recorded = workdir["recorded"]
    elapsed = [r.get("elapsed_seconds") for r in recorded.records]
    assert all(isinstance(e, float) and e > 0 for e in elapsed), elapsed
    assert elapsed == sorted(elapsed) and len(set(elapsed)) == len(elapsed)
    assert elapsed[-1] <= recorded.footer["wall_seconds"]
    for epoch in (2, 5):
        policy = {"monitor": "ndcg@10", "patience": None, "max_minutes": elapsed[epoch] / 60}
        r = replay(build_policy(policy), recorded)
        assert (r.stop_epoch, r.reason) == (epoch, "time_budget")
        between = {**policy, "max_minutes": (elapsed[epoch] + elapsed[epoch + 1]) / 2 / 60}
        r = replay(build_policy(between), recorded)
        assert (r.stop_epoch, r.reason) == (epoch + 1, "time_budget")
