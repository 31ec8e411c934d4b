"""Output paths are checked before any work starts: run --output-dir, compare --output/--cache-dir, explain --plot.

Each bad path is exit 2 with a message naming the option and the path, before anything trains or is written;
in particular compare refuses --output FILE before the comparison trains, not after.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from rec_es.cli.compare import main as compare_main
from rec_es.cli.explain import main as explain_main
from rec_es.rundir.paths import check_output_dir, check_output_file
from rec_es.cli.run import main as run_main

from conftest import small_trace, tiny_recbole_config


@pytest.fixture
def tiny_cfg(in_tmp: Path) -> Path:
    cfg = in_tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_recbole_config(epochs=2)))
    return cfg


def a_file(path: Path) -> Path:
    path.write_text("precious\n")
    return path


def a_run(run: Path) -> Path:
    """A run directory with a real 3-evaluation trace (what explain reads)."""
    small_trace(run / "trace.jsonl")
    return run


@pytest.mark.parametrize("output, needle", [
    ("a_file/sub", "cannot create directory a_file/sub: {root}/a_file is a file, not a directory"),
    ("a_file", "a_file is an existing file, not a directory"),
    ("a_file/sub/deeper", "cannot create directory a_file/sub/deeper: {root}/a_file is a file, not a directory"),
])
def test_run_output_dir_under_or_at_a_file(tiny_cfg: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                           output: str, needle: str) -> None:
    """rec-es run --output-dir a_file/sub: exit 2 naming --output-dir, the file untouched, no log written."""
    a_file(in_tmp / "a_file")
    assert run_main(["--config", str(tiny_cfg), "--output-dir", output]) == 2
    err = capsys.readouterr().err
    assert "error: --output-dir: " + needle.format(root=in_tmp) in err and "Traceback" not in err
    assert (in_tmp / "a_file").read_text() == "precious\n" and not (in_tmp / "log").exists()


@pytest.mark.parametrize("plot, needle", [
    ("missing_dir/x.png", "missing_dir/x.png: directory missing_dir does not exist"),
    ("a_file/x.png", "a_file/x.png: a_file is a file, not a directory"),
    ("plot.txt", "plot.txt: cannot write a .txt file; give it one of the extensions .png, .pdf"),
    ("run/trace.jsonl", "run/trace.jsonl: cannot write a .jsonl file"),
    ("a_dir.png", "a_dir.png exists and is not a file"),
])
def test_explain_plot_paths(in_tmp: Path, capsys: pytest.CaptureFixture[str], plot: str, needle: str) -> None:
    """rec-es explain --plot: a missing directory, a file as directory, a non-image or a run's own file: exit 2,
    before the report is built; the run's trace keeps every byte."""
    run = a_run(in_tmp / "run")
    a_file(in_tmp / "a_file")
    (in_tmp / "a_dir.png").mkdir()
    before = hashlib.sha256((run / "trace.jsonl").read_bytes()).hexdigest()
    assert explain_main([str(run), "--plot", plot]) == 2
    err = capsys.readouterr().err
    assert f"error: --plot: {needle}" in err and "Traceback" not in err
    assert hashlib.sha256((run / "trace.jsonl").read_bytes()).hexdigest() == before


def test_explain_plot_without_extension_writes_a_png(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--plot curve (no extension) writes curve.png, as matplotlib would, and says so."""
    assert explain_main([str(a_run(in_tmp / "run")), "--plot", "curve"]) == 0
    assert (in_tmp / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "plot: curve.png" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--output", "--cache-dir"])
def test_compare_output_that_is_a_file_is_refused_before_training(tiny_cfg: Path, in_tmp: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 option: str) -> None:
    """rec-es compare --output an_existing_file: exit 2 at once (nothing trained, no cache written)."""
    a_file(in_tmp / "an_existing_file")
    policy = in_tmp / "patience.yaml"
    policy.write_text("early_stopping: {patience: 3}\n")
    other = {"--output": ["--cache-dir", "cache"], "--cache-dir": ["--output", "out"]}[option]
    status = compare_main(["--config", str(tiny_cfg), "--policies", str(policy), "--seeds", "1", "--no-progress",
                           option, "an_existing_file", *other])
    err = capsys.readouterr().err
    assert status == 2 and f"error: {option}: an_existing_file is an existing file, not a directory" in err
    assert not (in_tmp / "cache").exists() and not (in_tmp / "log").exists()
    assert (in_tmp / "an_existing_file").read_text() == "precious\n"


def test_path_checks_accept_what_will_be_created(tmp_path: Path) -> None:
    """New nested directories and files in existing directories pass; the checks create nothing."""
    assert check_output_dir(tmp_path / "a" / "b", "--output") == tmp_path / "a" / "b"
    assert check_output_file(tmp_path / "x.PDF", "--plot") == tmp_path / "x.PDF"
    assert sorted(tmp_path.iterdir()) == []
