"""rec_es.tune's results, read from trial directories on disk (no Ray started): stop reasons and best.json."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rec_es.rundir.trace import TraceWriter, read_trace
from rec_es.tune.search import collect, write_results

HEADER = {"config": {}, "policy": {}, "versions": {}, "model": "GRU4Rec", "dataset": "tiny"}


def _trial(root: Path, name: str, lr: float, scores: list[float], *, summary: dict[str, Any] | None = None,
           error: str | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "trial.json").write_text(json.dumps({"trial": name, "params": {"learning_rate": lr}}))
    w = TraceWriter(d / "trace.jsonl")
    w.header(**HEADER)
    best = max(range(len(scores)), key=lambda i: scores[i], default=None)
    for e, s in enumerate(scores):
        w.record(epoch=e, valid={"ndcg@10": s},
                 decision={"epoch": e, "stop": False, "new_best": e == best, "value": s,
                           "best_epoch": max(i for i in range(e + 1) if scores[i] == max(scores[:e + 1])),
                           "best_score": max(scores[:e + 1]), "message": ""})
    if summary is not None:
        w.footer(stop_epoch=len(scores) - 1, stop_reason=summary["stop_reason"], message="", best_epoch=best)
        (d / "summary.json").write_text(json.dumps({**summary, "best_epoch": best, "stop_epoch": len(scores) - 1,
                                                    "best_valid_score": scores[best]}))
    if error is not None:
        (d / "error.txt").write_text(error)
    return d


def test_stop_reasons_and_the_best_on_validation(tmp_path: Path) -> None:
    """Policy/budget stops come from summary.json, a crash from error.txt, a trace without footer is the
    scheduler's (and gets a `scheduler` footer); best.json is the best finished trial, not the cut one."""
    trials = tmp_path / "trials"
    _trial(trials, "t0", 0.01, [0.1, 0.3, 0.2], summary={"stop_reason": "patience", "test_result": {"ndcg@10": 0.25}})
    _trial(trials, "t1", 0.05, [0.2, 0.4, 0.35], summary={"stop_reason": "max_epochs", "test_result": {"ndcg@10": 0.3}})
    cut = _trial(trials, "t2", 1e-7, [0.5])  # higher, but cut by the scheduler: never the pick
    _trial(trials, "t3", -1.0, [], error="ConfigError: learning_rate: must be a number > 0")
    table = collect(trials, ["learning_rate"], interrupted=False)
    assert [(r.trial, r.stopped_by, r.stop_reason) for r in table] == [
        ("t0", "policy", "patience"), ("t1", "budget", "max_epochs"), ("t2", "scheduler", "scheduler"),
        ("t3", "failed", "failed")]
    assert table[3].message.startswith("ConfigError: learning_rate")
    assert read_trace(cut / "trace.jsonl").footer["stop_reason"] == "scheduler"
    summary = json.loads((cut / "summary.json").read_text())
    assert (summary["stopped_by"], summary["stop_reason"], summary["stop_epoch"], summary["best_epoch"]) == (
        "scheduler", "scheduler", 0, 0)
    assert summary["best_valid_score"] == 0.5 and summary["test_result"] is None
    assert summary["message"].startswith("stopped by Ray Tune's ASHA scheduler after epoch 0")
    again = collect(trials, ["learning_rate"], interrupted=False)  # the written summary keeps it the scheduler's
    assert [(r.trial, r.stopped_by) for r in again][2] == ("t2", "scheduler")
    best = write_results(table, tmp_path, ["learning_rate"], "max")
    assert best is not None and best.trial == "t1"
    saved = json.loads((tmp_path / "best.json").read_text())
    assert saved["params"] == {"learning_rate": 0.05} and saved["test_result"] == {"ndcg@10": 0.3}
    with open(tmp_path / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:8] == ["trial", "learning_rate", "best_valid_score", "best_epoch", "stop_epoch",
                                 "stop_reason", "stopped_by", "run_dir"]
    assert (rows[1]["best_valid_score"], rows[1]["best_epoch"]) == ("0.4", "1")
    assert write_results(table, tmp_path, ["learning_rate"], "min").trial == "t0"  # a min monitor: lowest wins


def test_interrupted_search_marks_running_trials(tmp_path: Path) -> None:
    """After Ctrl-C a trial without footer is `interrupted`, not the scheduler's, and its trace is left as is."""
    d = _trial(tmp_path / "trials", "t0", 0.01, [0.1, 0.2])
    [row] = collect(tmp_path / "trials", ["learning_rate"], interrupted=True)
    assert (row.stopped_by, row.stop_epoch) == ("interrupted", 1)
    assert read_trace(d / "trace.jsonl").footer is None


def test_the_command_line_names_the_scheduler_cut() -> None:
    """`rec-es tune` prints "scheduler cut it at epoch N", not "scheduler: scheduler"."""
    from rec_es.cli.tune import _stopped
    from rec_es.tune.search import TrialRow

    row = TrialRow("t2", {}, 0.5, 0, 3, "scheduler", "scheduler", "d", "")
    assert _stopped(row) == "scheduler cut it at epoch 3"
    assert _stopped(TrialRow("t0", {}, 0.5, 0, 3, "patience", "policy", "d", "")) == "policy: patience"
