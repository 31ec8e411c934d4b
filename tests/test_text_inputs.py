"""Bytes that are not UTF-8, in every text input of every command: one error naming the file, the line and what
it should hold; exit status 2 (``rec-es check``: an error finding, status 1, as for any bad file); no traceback.

Real files on disk: property files, --policies files, a trace, a trace-cache sidecar, each with one stray
Latin-1 byte (0xe9, "é" in Latin-1) or 0xff.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rec_es.cli.compare import main as compare_main
from rec_es.compare.cache import CacheError, TraceCache
from rec_es.cli.explain import main as explain_main
from rec_es.cli.check import main as check_main
from rec_es.cli.run import main as run_main
from rec_es.rundir.textio import TextInputError, read_text
from rec_es.rundir.trace import read_trace

from conftest import small_trace, tiny_recbole_config

LATIN1 = b"# tuned by Ren\xe9\n"


def latin1_config(path: Path, **overrides: object) -> Path:
    """A valid property file with one comment line in Latin-1 (byte 0xe9 on line 1)."""
    path.write_bytes(LATIN1 + yaml.safe_dump(tiny_recbole_config(**overrides)).encode())
    return path


def good_config(path: Path) -> Path:
    path.write_text(yaml.safe_dump(tiny_recbole_config(epochs=2)))
    return path


def trace_with_byte(path: Path) -> Path:
    """A real 3-evaluation trace whose second record (line 3) holds a 0xff byte in a JSON key."""
    small_trace(path, patience=5)
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"lr"', b'"l\xffr"')
    path.write_bytes(b"\n".join(lines))
    return path


def assert_names(err: str, path: Path, line: int, byte: str) -> None:
    assert f"{path}" in err and f"line {line}" in err and f"byte 0x{byte} is not UTF-8" in err, err
    assert "Traceback" not in err and "UnicodeDecodeError" not in err


def test_reader_names_file_line_column_and_what_was_expected(tmp_path: Path) -> None:
    """read_text: line 3, column 5 for a byte after two lines and four characters; says what the file should hold."""
    p = tmp_path / "x.yaml"
    p.write_bytes(b"a: 1\nb: 2\nc: \xe9\n")
    with pytest.raises(TextInputError) as info:
        read_text(p, "a property file")
    assert str(info.value) == (f"{p}: line 3, column 4: byte 0xe9 is not UTF-8 text; expected a property file. "
                               "Save the file as UTF-8 (rec_es reads text files as UTF-8 only)")
    assert read_text(p, "a log", lenient=True).endswith("c: \ufffd\n")


def test_run_with_a_latin1_property_file(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rec-es run: exit 2, the file and line named, no run directory."""
    cfg = latin1_config(in_tmp / "latin1.yaml")
    assert run_main(["--config", str(cfg), "--output-dir", "run"]) == 2
    assert_names(capsys.readouterr().err, cfg, 1, "e9")
    assert not (in_tmp / "run").exists()


def test_check_with_a_latin1_property_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rec-es check: one error finding naming the file (status 1, like any file it cannot read)."""
    cfg = latin1_config(tmp_path / "latin1.yaml")
    assert check_main([str(cfg)]) == 1
    assert_names(capsys.readouterr().out, cfg, 1, "e9")


@pytest.mark.parametrize("which", ["--config", "--policies"])
def test_compare_with_a_latin1_file(in_tmp: Path, capsys: pytest.CaptureFixture[str], which: str) -> None:
    """rec-es compare: a bad --config or --policies file is exit 2 before anything trains."""
    bad = latin1_config(in_tmp / "bad.yaml")
    good = good_config(in_tmp / "good.yaml")
    policy = in_tmp / "patience.yaml"
    policy.write_text("early_stopping: {patience: 3}\n")
    config, policies = (bad, policy) if which == "--config" else (good, bad)
    status = compare_main(["--config", str(config), "--policies", str(policies), "--seeds", "1", "--no-progress",
                           "--output", str(in_tmp / "out"), "--cache-dir", str(in_tmp / "cache")])
    assert status == 2
    assert_names(capsys.readouterr().err, bad, 1, "e9")
    assert not (in_tmp / "cache").exists() and not (in_tmp / "out").exists()


def test_explain_with_a_latin1_policies_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rec-es explain --policies FILE: exit 2 naming it."""
    policy = tmp_path / "p.yaml"
    policy.write_bytes(b"early_stopping: {patience: 3}  # \xe9\n")
    assert explain_main([str(trace_with_byte(tmp_path / "trace.jsonl")), "--policies", str(policy)]) == 2
    assert_names(capsys.readouterr().err, policy, 1, "e9")


def test_explain_and_read_trace_with_a_byte_in_the_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trace with a 0xff byte on line 3: explain exits 2 naming file and line; read_trace raises TextInputError."""
    (tmp_path / "run").mkdir()
    trace = trace_with_byte(tmp_path / "run" / "trace.jsonl")
    assert explain_main([str(tmp_path / "run")]) == 2
    assert_names(capsys.readouterr().err, trace, 3, "ff")
    with pytest.raises(TextInputError, match="line 3"):
        read_trace(trace)


def test_cache_sidecar_with_a_byte_is_a_cache_error(tmp_path: Path) -> None:
    """A trace-cache entry whose cache.json is not UTF-8: CacheError with the --refresh-cache hint."""
    entry = tmp_path / "cache" / "abc"
    entry.mkdir(parents=True)
    (entry / "cache.json").write_bytes(json.dumps({"key": "abc"}).encode() + b"\xff")
    with pytest.raises(CacheError, match=r"cache\.json: line 1, column \d+: byte 0xff is not UTF-8.*--refresh-cache"):
        TraceCache(tmp_path / "cache").verify(entry, "abc", {})
