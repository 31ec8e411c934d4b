"""A trace whose fields have the wrong types (edited, or from elsewhere): read_trace refuses it naming file, line
and field, so replay and explain end with a sentence (explain: exit 1, "RUN cannot be read"), never a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from rec_es import build_policy
from rec_es.policy.errors import StateError
from rec_es.cli.explain import main as explain_main
from rec_es.replay import replay
from rec_es.rundir.trace import read_trace

from conftest import small_trace

Edit = Callable[[list[dict[str, Any]]], None]


def _set(line: int, *path: str, value: Any) -> Edit:
    def edit(lines: list[dict[str, Any]]) -> None:
        obj = lines[line - 1]
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return edit


@pytest.mark.parametrize("edit, line, needle", [
    (_set(1, "config", value="x"), 1, "header field 'config' must be object"),
    (_set(1, "epochs", value="40"), 1, "header field 'epochs' must be int or null"),
    (_set(2, "valid", "ndcg@10", value="0.3"), 2, "valid metric 'ndcg@10' must be a number or null"),
    (_set(2, "valid", value=[0.3]), 2, "record field 'valid' must be an object"),
    (_set(3, "test", value="none"), 3, "record field 'test' must be an object"),
    (_set(2, "train_loss", value={"a": 1}), 2, "record field 'train_loss' must be number or null"),
    (_set(2, "decision", value=[]), 2, "record field 'decision' must be an object"),
    (_set(3, "decision", "wait_count", value="1"), 3, "decision field 'wait_count' must be int"),
    (_set(3, "decision", "stop", value="yes"), 3, "decision field 'stop' must be bool"),
    (_set(3, "decision", "epoch", value=7), 3, "decision epoch 7 is not the record's epoch 1"),
    (_set(4, "stop_epoch", value="2"), 4, "footer field 'stop_epoch' must be int"),
])
def test_wrong_field_types_are_refused_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       edit: Edit, line: int, needle: str) -> None:
    """Each edit: read_trace raises naming file:line and the field; replay and explain say the same, no traceback."""
    path = small_trace(tmp_path / "run" / "trace.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    edit(lines)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(StateError, match=f"trace.jsonl:{line}: {needle}"):
        read_trace(path)
    with pytest.raises(StateError, match=needle):
        replay(build_policy({"monitor": "ndcg@10", "patience": 3}), path)
    assert explain_main([str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"trace.jsonl:{line}: {needle}" in err and "Traceback" not in err


def test_decision_without_the_fields_explain_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A record whose decision is {} (a synthetic trace, fine for replay): explain names the missing fields."""
    path = small_trace(tmp_path / "run" / "trace.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[1]["decision"] = {}
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = replay(build_policy({"monitor": "ndcg@10", "patience": 3}), path)
    assert (result.stopped, result.stop_epoch) == (False, 1)
    assert explain_main([str(tmp_path / "run")]) == 1
    assert "the record of epoch 0 has no decision epoch, stop" in capsys.readouterr().err


def test_a_number_python_cannot_read_is_refused(tmp_path: Path) -> None:
    """A 5000-digit integer (over Python's int-parsing limit) in a record: StateError naming the line."""
    path = small_trace(tmp_path / "trace.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"train_loss":1.0', '"train_loss":' + "1" * 5000)
    path.write_text("".join(lines))
    with pytest.raises(StateError, match=r"trace.jsonl:2: a value cannot be read .*4300 digits"):
        read_trace(path)
