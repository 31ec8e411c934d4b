"""make run's policy is the recommended policy file plus its time budget, so the two cannot drift apart."""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_make_run_uses_the_recommended_policy() -> None:
    """properties/gru4rec_ml100k.yaml's early_stopping is recommended.yaml's plus max_minutes only."""
    make_run = yaml.safe_load((REPO / "properties" / "gru4rec_ml100k.yaml").read_text())["early_stopping"]
    recommended = yaml.safe_load((REPO / "properties" / "policies" / "recommended.yaml").read_text())["early_stopping"]
    assert {k: v for k, v in make_run.items() if k != "max_minutes"} == recommended
    assert make_run["max_minutes"] == 9


def test_the_grid_candidate_named_recommended_replays_as_the_recommended_policy() -> None:
    """scripts/policy_table.py labels one grid candidate "recommended" in its frontier plot: that candidate
    stops and restores where recommended.yaml does on every committed long run."""
    from policy_table import RECOMMENDED, grid, load_runs

    from rec_es import build_policy
    from rec_es.replay import replay

    recommended = yaml.safe_load((REPO / "properties" / "policies" / "recommended.yaml").read_text())["early_stopping"]
    candidate = grid()[RECOMMENDED]["mapping"]
    runs = [tr for trs in load_runs(REPO / "docs" / "results" / "long_runs", False).values() for tr in trs]
    assert len(runs) >= 15
    for tr in runs:
        a, b = replay(build_policy(candidate), tr), replay(build_policy(recommended), tr)
        assert (a.stop_epoch, a.best_epoch) == (b.stop_epoch, b.best_epoch)
