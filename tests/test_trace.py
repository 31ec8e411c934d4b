"""trace.jsonl writer and reader: strict JSON, resume truncation, validation errors with file:line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rec_es.policy.errors import StateError
from rec_es.rundir.trace import TraceWriter, read_trace

HEADER = {"config": {"model": "GRU4Rec"}, "policy": {"patience": 3}, "versions": {}, "model": "GRU4Rec",
          "dataset": "ml-100k"}


def _decision(epoch: int) -> dict:
    return {"epoch": epoch, "stop": False, "reason": "not_stopped"}


def test_write_and_read_back(tmp_path: Path) -> None:
    """Header, records and footer round-trip; numpy values and NaN become plain JSON."""
    w = TraceWriter(tmp_path / "trace.jsonl")
    w.header(**HEADER)
    w.record(epoch=0, valid={"NDCG@10": np.float64(0.1)}, decision=_decision(0), train_loss=float("nan"))
    w.record(epoch=1, valid={"NDCG@10": 0.2}, decision=_decision(1))
    w.footer(stop_epoch=1, stop_reason="max_epochs", message="done", best_epoch=1)
    assert w.lines == 4
    t = read_trace(tmp_path)
    assert t.complete and [r["epoch"] for r in t] == [0, 1]
    assert t.metric("ndcg@10") == [0.1, 0.2]
    assert t.records[0]["train_loss"] is None
    assert "NaN" not in (tmp_path / "trace.jsonl").read_text()


def test_never_overwrites(tmp_path: Path) -> None:
    """A new writer refuses a non-empty existing trace."""
    (tmp_path / "trace.jsonl").write_text('{"type": "header"}\n')
    with pytest.raises(StateError, match="never overwritten"):
        TraceWriter(tmp_path / "trace.jsonl")


def test_resume_truncates_to_checkpoint_count(tmp_path: Path) -> None:
    """Resuming keeps exactly the lines the checkpoint counted, dropping later and partial lines."""
    w = TraceWriter(tmp_path / "trace.jsonl")
    w.header(**HEADER)
    for e in range(3):
        w.record(epoch=e, valid={}, decision=_decision(e))
    with open(tmp_path / "trace.jsonl", "a") as fh:
        fh.write('{"type": "eval", "epo')  # killed mid-write
    w2 = TraceWriter(tmp_path / "trace.jsonl", keep_lines=3)
    assert w2.lines == 3
    assert [r["epoch"] for r in read_trace(tmp_path).records] == [0, 1]
    with pytest.raises(StateError, match="expects at least 9"):
        TraceWriter(tmp_path / "trace.jsonl", keep_lines=9)


@pytest.mark.parametrize(
    "lines, fragment",
    [
        (["{\"type\": \"eval\"}"], ":1: first line must be the trace header"),
        ([json.dumps({"type": "header", "format": "other", "version": 1})], "is not rec_es.trace version 1"),
        ([json.dumps({"type": "header", "format": "rec_es.trace", "version": 1, **HEADER}), "{oops"],
         ":2: not valid JSON"),
        ([json.dumps({"type": "header", "format": "rec_es.trace", "version": 1, **HEADER}),
          json.dumps({"type": "eval", "epoch": 0, "valid": {}})], ":2: record lacks decision"),
        ([json.dumps({"type": "header", "format": "rec_es.trace", "version": 1, **HEADER}),
          json.dumps({"type": "eval", "epoch": 2, "valid": {}, "decision": {}}),
          json.dumps({"type": "eval", "epoch": 2, "valid": {}, "decision": {}})], ":3: record epoch 2 does not follow"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path: Path, lines: list[str], fragment: str) -> None:
    """Corrupted traces are detected, never silently used."""
    (tmp_path / "trace.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(StateError) as info:
        read_trace(tmp_path / "trace.jsonl")
    assert fragment in str(info.value) and "trace.jsonl" in str(info.value)
