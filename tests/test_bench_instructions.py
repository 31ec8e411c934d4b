"""scripts/bench_instructions.py: callgrind dumps are read per mode and epoch, missing tools are named, and the
counting pipeline under valgrind measures a workload whose ratios are known. The full count on RecBole fits (about
4 minutes even at the smallest size, most of it importing torch under valgrind) runs from the script only:
docs/benchmarks.md."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, load_script



bench = load_script("bench_instructions")


def _dump(path: Path, trigger: str, total: int) -> None:
    path.write_text(f"version: 1\ncreator: callgrind-3.19.0\ncmd: python\npart: 1\n\ndesc: I1 cache: \n"
                    f"desc: Trigger: {trigger}\n\npositions: line\nevents: Ir\nsummary: {total}\n\nfl=(1) x.c\n"
                    f"fn=(1) main\n0 {total}\n\ntotals: {total}\n")


def test_counts_are_read_per_mode_and_epoch_and_other_dumps_ignored(tmp_path: Path) -> None:
    _dump(tmp_path / "callgrind.out.1", "Client Request: stock|1", 1000)
    _dump(tmp_path / "callgrind.out.2", "Client Request: stock|2", 1010)
    _dump(tmp_path / "callgrind.out.3", "Client Request: rec_es default|1", 1020)
    _dump(tmp_path / "callgrind.out", "Program termination", 99)
    assert bench.read_counts(tmp_path) == {"stock": {1: 1000, 2: 1010}, "rec_es default": {1: 1020}}


def test_report_gives_ratios_to_stock_and_judges_the_target() -> None:
    counts = {"stock": {1: 1_000_000_000, 2: 1_000_000_000}, "rec_es default": {1: 1_005_000_000},
              "rec_es richest": {1: 1_020_000_000}, "stock (control)": {1: 1_000_000_000}}
    lines = bench.report(counts)
    row = {line.split("  ")[0]: line for line in lines}
    assert "1.00500" in row["rec_es default"] and "+5.00 M" in row["rec_es default"]
    assert "1.02000" in row["rec_es richest"]
    assert lines[-1] == "target <= 1.01: NOT met (highest rec_es ratio: 1.02000)"
    assert lines[-2] == "resolution: the two stock fits differ by 0.0000 % (within the 0.1 % the method needs)"
    counts["stock (control)"] = {1: 1_002_000_000}
    assert bench.report(counts)[-2].endswith("differ by 0.2000 % (NOT within the 0.1 % the method needs)")
    counts["stock (control)"] = {1: 1_000_000_000}
    counts["rec_es richest"] = {1: 1_010_000_000}
    assert bench.report(counts)[-1].startswith("target <= 1.01: met")
    with pytest.raises(bench.BenchError, match="no instruction counts for stock \\(control\\)"):
        bench.report({m: c for m, c in counts.items() if m != "stock (control)"})


def test_a_missing_compiler_or_valgrind_is_named_with_what_to_install(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    with pytest.raises(bench.BenchError, match="no C compiler found .*apt-get install gcc"):
        bench.build_helper(tmp_path)
    with pytest.raises(bench.BenchError, match="valgrind not found on PATH: install it"):
        bench.main([])


def test_arguments_are_checked_before_valgrind_starts(capsys: pytest.CaptureFixture[str]) -> None:
    """--epochs below 2 (nothing to count) and an unknown workload are usage errors (exit 2) naming the option."""
    for argv, needle in ((["--epochs", "1"], "--epochs must be >= 2"),
                         (["--workload", "tiny"], "argument --workload: invalid choice: 'tiny'")):
        with pytest.raises(SystemExit) as info:
            bench.main(argv)
        assert info.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("valgrind") is None or not (shutil.which("cc") or shutil.which("gcc")),
                    reason="needs valgrind and a C compiler")
def test_counting_pipeline_under_callgrind_measures_known_ratios() -> None:
    """The whole pipeline (helper, valgrind, client requests, dumps, report) on the trivial workload: identical
    fits count within 0.1 % and the rec_es modes come out at the extra loop work they were given. A subprocess:
    valgrind runs the script again."""
    cmd = [sys.executable, "scripts/bench_instructions.py", "--workload", "trivial", "--epochs", "3"]
    out = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line[:17].strip(): line.split() for line in out.stdout.splitlines()
            if line[:17].strip() in bench.MODES}
    assert set(rows) == set(bench.MODES), out.stdout
    for mode, extra in bench.TRIVIAL_EXTRA.items():
        assert rows[mode][-6] == "2", out.stdout  # epochs 1 and 2 counted
        assert float(rows[mode][-3]) == pytest.approx(1 + extra, abs=0.001), (mode, out.stdout)
    assert "within the 0.1 % the method needs" in out.stdout
    assert "target <= 1.01: NOT met (highest rec_es ratio: 1.02" in out.stdout  # richest does 2 % more by design
