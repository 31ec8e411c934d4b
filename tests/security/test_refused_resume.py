"""A refused `rec-es run --resume` changes nothing: every file of the run directory is byte-identical afterwards.

One real 3-epoch GRU4Rec run on the tiny dataset is trained once per module; each test damages a copy of it (a
checkpoint, a trace line, config.yaml, the new config, a sidecar), resumes it, and compares the SHA-256 of every
file (and every file name) before and after. The last tests show what is *not* refused: a trace cut off by a
kill, and a trace that is a link to a file outside the run, which is left as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rec_es.cli.run import main
from rec_es.rundir.trace import read_trace

from conftest import tiny_recbole_config, trained_once

QUIET = ["--no-progress", "--quiet"]


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file (a link: its target) under ``root``, directories included."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-epoch run directory (trained once for the module, ``conftest.trained_once``; tests copy it)."""
    root = tmp_path_factory.mktemp("finished")

    def train() -> None:
        (root / "tiny.yaml").write_text(yaml.safe_dump(tiny_recbole_config(epochs=3)))
        assert main(["--config", "tiny.yaml", "--output-dir", "run", *QUIET]) == 0

    trained_once("finished_run", root, train)
    return root / "run"


@pytest.fixture
def run(finished_run: Path, in_tmp: Path) -> Path:
    """A fresh copy of the finished run in this test's working directory."""
    return Path(shutil.copytree(finished_run, in_tmp / "run", symlinks=True))


def refused(run: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Resume ``run`` with ``args``; assert exit 2, a message and no byte changed; return stderr."""
    before = snapshot(run)
    status = main(["--resume", str(run), *args, *QUIET])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert snapshot(run) == before, "a refused resume changed the run directory"
    return err


def edit_checkpoint(run: Path, **changes: Any) -> None:
    """Rewrite RUN/last.pth with keys changed (a value of ``...`` deletes the key)."""
    data = torch.load(run / "last.pth", weights_only=True)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    torch.save(data, run / "last.pth")


def trace_lines(run: Path) -> list[str]:
    return (run / "trace.jsonl").read_text().splitlines(keepends=True)


def test_unreadable_checkpoint_with_a_new_policy_leaves_config_yaml_alone(run: Path, in_tmp: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """last.pth is garbage, a new policy is given: refused, and config.yaml still holds the policy it ran."""
    (run / "last.pth").write_bytes(b"\x00not a checkpoint" * 10)
    (in_tmp / "new_policy.yaml").write_text("early_stopping: {monitor: mrr@10, patience: 4}\nepochs: 6\n")
    err = refused(run, capsys, "--config", "new_policy.yaml")
    assert "last.pth" in err and "cannot be read as a weights-only checkpoint" in err


def test_corrupt_trace_line_keeps_the_trace_and_its_footer(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A record that is not JSON: refused naming file:line; the trace is not cut back, the footer stays."""
    lines = trace_lines(run)
    lines[2] = "{not json\n"
    (run / "trace.jsonl").write_text("".join(lines))
    err = refused(run, capsys, "--set", "epochs=5")
    assert "trace.jsonl:3: not valid JSON" in err


def test_trace_bytes_that_are_not_utf8_are_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 0xff byte in the trace: refused with the line, not a UnicodeDecodeError."""
    data = (run / "trace.jsonl").read_bytes().replace(b'"train_loss"', b'"train\xff_loss"', 1)
    (run / "trace.jsonl").write_bytes(data)
    err = refused(run, capsys, "--set", "epochs=5")
    assert "trace.jsonl" in err and "line 2" in err and "0xff is not UTF-8" in err


def test_edited_metric_in_the_trace_is_refused_naming_line_and_epoch(run: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A recorded ndcg@10 changed by hand disagrees with last.pth: refused (the checkpoint's digest of the line)."""
    lines = trace_lines(run)
    record = json.loads(lines[2])
    record["valid"]["ndcg@10"] = 0.99
    lines[2] = json.dumps(record, separators=(",", ":")) + "\n"
    (run / "trace.jsonl").write_text("".join(lines))
    err = refused(run, capsys, "--set", "epochs=5")
    assert "line 3 (the record of epoch 1) is not what last.pth was saved with" in err


def test_edited_best_metric_is_refused_for_a_checkpoint_without_digests(run: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """An older last.pth (no line digests): an edited record of the best epoch still disagrees with its snapshot."""
    edit_checkpoint(run, trace_digests=...)
    best_epoch = torch.load(run / "last.pth", weights_only=True)["best"]["epoch"]
    lines = trace_lines(run)
    record = json.loads(lines[best_epoch + 1])
    record["valid"]["ndcg@10"] += 0.5
    lines[best_epoch + 1] = json.dumps(record, separators=(",", ":")) + "\n"
    (run / "trace.jsonl").write_text("".join(lines))
    err = refused(run, capsys, "--set", "epochs=5")
    assert f"epoch {best_epoch}, the best epoch in last.pth" in err


@pytest.mark.parametrize("changes, needle", [
    ({"optimizer": ...}, "field 'optimizer' must be dict"),
    ({"trace_lines": "3"}, "field 'trace_lines' must be int"),
    ({"trace_lines": 40}, "last.pth counted 40"),
    ({"epoch": -3}, "out of range"),
    ({"policy": {"format": "something else"}}, "the policy state cannot be restored"),
])
def test_damaged_checkpoint_fields_are_refused(run: Path, capsys: pytest.CaptureFixture[str],
                                               changes: dict[str, Any], needle: str) -> None:
    """A last.pth missing a field, with a wrong type or an inconsistent count: refused before anything is read on."""
    edit_checkpoint(run, **changes)
    err = refused(run, capsys, "--set", "epochs=5")
    assert needle in err


def test_removed_trace_lines_are_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trace shorter than the lines last.pth counted: refused, saying so."""
    (run / "trace.jsonl").write_text("".join(trace_lines(run)[:2]))
    err = refused(run, capsys, "--set", "epochs=5")
    assert "last.pth counted 4" in err


@pytest.mark.parametrize("args, needle", [
    (["--set", "model=SASRec", "--set", "epochs=5"], "the run trained model 'GRU4Rec'"),
    (["--set", "epochs=2"], "epochs 2 (from --set) is below the 3 epochs"),
    ([], "the run has finished (3 epochs trained) and this resume would train nothing more"),
    (["--set", "early_stopping={patience: 9}"], "would train nothing more"),
    (["--set", "epochs=[1,"], "not valid YAML"),
    (["--set", "epochs=abc"], "epochs: must be an integer >= 1 (got 'abc')"),
    (["--set", "early_stopping.patiance=3", "--set", "epochs=5"], "patiance"),
])
def test_a_new_config_that_does_not_fit_is_refused(run: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                                   needle: str) -> None:
    """Another model, fewer epochs than trained, a finished run resumed with no more to train, bad --set: refused."""
    assert needle in refused(run, capsys, *args)


def test_recorded_config_yaml_that_is_not_utf8_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RUN/config.yaml with a byte that is not UTF-8: refused naming it."""
    (run / "config.yaml").write_bytes((run / "config.yaml").read_bytes() + b"# caf\xe9\n")
    err = refused(run, capsys, "--set", "epochs=5")
    assert "config.yaml" in err and "0xe9 is not UTF-8" in err


def _sidecar_replaced_by_a_file(run: Path, victim: Path) -> None:
    shutil.rmtree(run / "per_user")
    (run / "per_user").write_text("not a directory\n")


def _sidecar_truncated(run: Path, victim: Path) -> None:
    data = (run / "per_user" / "valid.bin").read_bytes()
    (run / "per_user" / "valid.bin").write_bytes(data[: len(data) // 2])


def _sidecar_linked_elsewhere(run: Path, victim: Path) -> None:
    shutil.move(run / "per_user" / "valid.bin", victim)
    (run / "per_user" / "valid.bin").symlink_to(victim)


def _sidecar_flipped_byte(run: Path, victim: Path) -> None:
    data = bytearray((run / "per_user" / "valid.bin").read_bytes())
    data[-1] ^= 0xFF
    (run / "per_user" / "valid.bin").write_bytes(bytes(data))


def _sidecar_index_edited(run: Path, victim: Path) -> None:
    index = json.loads((run / "per_user" / "valid.json").read_text())
    index["metrics"] = 7
    (run / "per_user" / "valid.json").write_bytes(json.dumps(index).encode() + b" \xff\n")


def _sidecar_index_wrong_types(run: Path, victim: Path) -> None:
    index = json.loads((run / "per_user" / "valid.json").read_text())
    index["user_ids"] = ["a"] * len(index["user_ids"])
    (run / "per_user" / "valid.json").write_text(json.dumps(index))


@pytest.mark.parametrize("damage, needle", [
    (_sidecar_replaced_by_a_file, "per_user must be a directory"),
    (_sidecar_index_edited, "0xff is not UTF-8"),
    (_sidecar_index_wrong_types, "index fields of the wrong type"),
    (_sidecar_truncated, "truncated"),
    (_sidecar_linked_elsewhere, "per_user holds something other than regular files"),
    (_sidecar_flipped_byte, "fails its checksum"),
])
def test_a_damaged_per_user_sidecar_is_refused(run: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                               damage: Any, needle: str) -> None:
    """RUN/per_user replaced by a file, its index damaged, records cut short, linked outside or a byte flipped: refused
    before any write (the sidecar is checked before the trace is touched), the linked file keeps its bytes."""
    victim = in_tmp / "victim.bin"
    damage(run, victim)
    before = victim.read_bytes() if victim.exists() else None
    assert needle in refused(run, capsys, "--set", "epochs=5")
    assert (victim.read_bytes() if victim.exists() else None) == before


def test_checkpoint_that_does_not_fit_the_model_is_refused_before_any_write(run: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--set embedding_size=32 builds another model shape: refused once RecBole built it, still nothing written."""
    err = refused(run, capsys, "--set", "embedding_size=32", "--set", "epochs=5")
    assert "does not fit the model built from the config" in err and "last.pth" in err


def test_a_trace_cut_off_by_a_kill_still_resumes(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No footer and a half-written last line (a kill): not refused; the fragment is dropped and the run ends."""
    lines = trace_lines(run)
    assert json.loads(lines[-1])["type"] == "footer"
    (run / "trace.jsonl").write_text("".join(lines[:-1]) + '{"type":"eval","epo')
    assert main(["--resume", str(run), *QUIET]) == 0, capsys.readouterr().err
    trace = read_trace(run)
    assert [r["epoch"] for r in trace.records] == [0, 1, 2] and trace.complete


def test_a_linked_trace_is_replaced_and_its_target_left_alone(run: Path, in_tmp: Path) -> None:
    """RUN/trace.jsonl as a link to a file elsewhere: the resume writes a new trace, the target keeps every byte."""
    target = in_tmp / "elsewhere.jsonl"
    shutil.move(run / "trace.jsonl", target)
    (run / "trace.jsonl").symlink_to(target)
    before = target.read_bytes()
    assert main(["--resume", str(run), "--set", "epochs=4", *QUIET]) == 0
    assert target.read_bytes() == before
    assert not (run / "trace.jsonl").is_symlink()
    assert [r["epoch"] for r in read_trace(run).records] == [0, 1, 2, 3]
