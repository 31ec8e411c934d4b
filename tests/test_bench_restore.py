"""scripts/bench_restore.py: its selection of epochs is the product's, and its report rebuilds from its csv."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from rec_es.policy.restore import RestoreSpec, epochs_to_average

from conftest import REPO, load_script

OUT = REPO / "docs" / "results" / "restore"


@pytest.mark.parametrize("mode", ["best_k", "window", "peak", "ema"])
def test_the_benchmark_averages_what_restore_would(mode: str) -> None:
    """On random curves cut at random stops, bench_restore's epochs for each registered mode are exactly
    epochs_to_average's for the same setting (the best: the earliest highest raw value, as best_by raw)."""
    bench = load_script("bench_restore")
    params = bench.MODES[mode]
    spec = RestoreSpec.parse({"average": mode, **params})
    rng = random.Random(mode)
    for _ in range(200):
        valid = [round(rng.random(), 2) for _ in range(rng.randint(1, 40))]  # rounding makes ties
        stop = rng.randrange(len(valid))
        best = max(range(stop + 1), key=lambda e: (valid[e], -e))
        history = [(e, valid[e], valid[e]) for e in range(stop + 1)]
        assert bench.epochs_for(mode, params, valid, stop, best) == epochs_to_average(spec, history)


def test_report_rebuilds_from_the_committed_csv(tmp_path: Path) -> None:
    """--from-csv gives the committed report byte for byte (nothing evaluated)."""
    bench = load_script("bench_restore")
    out = tmp_path / "restore.md"
    assert bench.main(["--from-csv", str(OUT / "runs.csv"), "--out", str(out)]) == 0
    assert out.read_text() == (OUT / "restore.md").read_text()
