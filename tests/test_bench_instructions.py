"""scripts/bench_instructions.py: callgrind dumps are read per mode and epoch, missing tools are named, and a
real (very small) run under valgrind counts the same work for two identical stock fits."""
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


@pytest.mark.skipif(shutil.which("valgrind") is None or not (shutil.which("cc") or shutil.which("gcc")),
                    reason="needs valgrind and a C compiler")
def test_real_run_under_callgrind_counts_identical_stock_fits_alike() -> None:
    """Smallest real run: two identical stock fits must count within 0.1 % (the method's premise), and every
    mode must be counted. A subprocess: valgrind runs the script again."""
    cmd = [sys.executable, "scripts/bench_instructions.py", "--set", f"data_path={REPO / 'datasets'}",
           "--set", "dataset=ml-100k-tiny", "--set", "embedding_size=4", "--set", "hidden_size=4",
           "--set", "MAX_ITEM_LIST_LENGTH=3", "--set", "train_batch_size=4096"]
    out = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line[:17].strip(): line.split() for line in out.stdout.splitlines()
            if line[:17].strip() in bench.MODES}
    assert set(rows) == set(bench.MODES), out.stdout
    control = float(rows["stock (control)"][-3])
    assert abs(control - 1.0) < 0.001, out.stdout
    assert "target <= 1.01:" in out.stdout
