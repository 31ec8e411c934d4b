"""scripts/mutate.py's record of a run: ``write_results`` merges one run's statuses into the group's results,
names a survivor whose mutation changed under its name, and drops the mutants a ``--rerun`` pattern matches.

mutmut's two read-outs (``statuses``: ``mutmut results``; ``mutated_lines``: ``mutmut show``) and its version
(mutmut is not installed for ``make test``) are replaced by what a run would print, so that the merging and the
warnings are checked without a mutmut run (which takes minutes).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import load_script

mutate = load_script("mutate")
GROUP = mutate.Group(("rec_es/x.py",), ("tests/test_x.py",), 1)
A, B, C, D = (f"rec_es.x.x_f__mutmut_{n}" for n in (1, 2, 3, 4))  # D survives with no row in docs/mutation.md


def one_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, found: dict[str, str], lines: dict[str, str],
            keep: list[str] | None = None) -> dict[str, Any]:
    """Record a run that found ``found`` (mutmut's statuses) with survivors putting ``lines`` in place (a survivor
    without a line makes the stand-in for ``mutmut show`` fail: only listed survivors may be shown)."""
    monkeypatch.setattr(mutate, "REPO", tmp_path)
    monkeypatch.setattr(mutate, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(mutate, "version", lambda package: "3.8.1")  # make test runs without the mutate extra
    monkeypatch.setattr(mutate, "equivalents", lambda: {A: "equivalent", B: "killed: test_x", C: "equivalent"})
    monkeypatch.setattr(mutate, "statuses", lambda dest: dict(found))
    monkeypatch.setattr(mutate, "mutated_lines", lambda dest, names: {n: lines[n] for n in names})
    mutate.write_results("g", GROUP, tmp_path, 0.0, keep=keep)
    return json.loads((tmp_path / "results" / "g.json").read_text())


def test_a_run_keeps_what_it_did_not_reach_and_records_what_survivors_put_in_place(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A mutant the second run did not reach keeps the first run's status; a listed survivor's line is recorded and
    dropped once it is killed; a survivor no row lists is not shown."""
    one_run(monkeypatch, tmp_path, {A: "survived", B: "killed", C: "survived", D: "survived"},
            {A: "x >= 1", C: "y = None"})
    data = one_run(monkeypatch, tmp_path, {A: "not checked", B: "killed", C: "killed"}, {})
    assert data["mutants"] == {A: "survived", B: "killed", C: "killed", D: "survived"}
    assert data["survivor_lines"] == {A: "x >= 1"}


def test_a_survivor_whose_mutation_changed_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The function changed and mutant 1 is now another mutation: the run says so (its triage row describes the
    old one); an unchanged survivor is not named."""
    one_run(monkeypatch, tmp_path, {A: "survived", C: "survived"}, {A: "if gain >= cut:", C: "y = None"})
    capsys.readouterr()
    data = one_run(monkeypatch, tmp_path, {A: "survived", C: "survived"}, {A: "rho = None", C: "y = None"})
    out = capsys.readouterr().out
    assert f"{A} is now `rho = None`, recorded as `if gain >= cut:`" in out
    assert C not in out.replace(f"{A} is now", "")
    assert data["survivor_lines"][A] == "rho = None"


def test_a_pattern_drops_the_recorded_mutants_it_matches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--rerun 'rec_es.x.x_f*'`` after the function shrank: its recorded mutants go, the new run's stay."""
    one_run(monkeypatch, tmp_path, {A: "killed", B: "killed", C: "survived"}, {C: "y = None"})
    data = one_run(monkeypatch, tmp_path, {A: "killed", B: "survived"}, {B: "z = 2"}, keep=["rec_es.x.x_f*"])
    assert data["mutants"] == {A: "killed", B: "survived"}
    assert data["survivor_lines"] == {B: "z = 2"}
