"""scripts/bench_signals.py: the committed results are what the script computes from the committed recordings."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, load_script

RUNS = REPO / "docs" / "results" / "signal_runs"
OUT = REPO / "docs" / "results" / "signals"


@pytest.mark.parametrize("feature", ["list_churn", "coverage"])
def test_committed_result_reproduces(tmp_path: Path, feature: str) -> None:
    """Each registered feature's committed table (leave one model out, the three baselines) is recomputed exactly."""
    bench = load_script("bench_signals")
    out = tmp_path / "out.md"
    assert bench.main(["--runs", str(RUNS), "--features", "epoch", feature, "--out", str(out)]) == 0
    assert out.read_text() == (OUT / f"{feature}.md").read_text()


def test_the_decision_points_and_label_follow_the_registration() -> None:
    """A plateau decision needs 5 evaluations without a new smoothed best, 10 before and 10 after; the label is a
    later smoothed best above the best so far by more than twice the smoothed noise."""
    bench = load_script("bench_signals")
    noise = [0.002 * (-1) ** i for i in range(40)]
    peak = [min(0.02 * i, 0.16) - 0.001 * max(i - 8, 0) + noise[i] for i in range(40)]  # up to epoch 8, then down
    rising = peak[:25] + [0.3 + noise[i] for i in range(25, 40)]                     # ...and a late jump
    for raw, expect in ((peak, False), (rising, True)):
        run = bench.Run("r/seed1", "r", "m", "seed1", raw, {"target_churn": [None] + [0.1] * 39})
        rows = bench.decisions(run, ["epoch"])
        assert rows and all(10 <= r["t"] <= len(raw) - 11 for r in rows)
        early = [r for r in rows if r["t"] < 24]
        assert early and all(r["rises"] is expect for r in early)
