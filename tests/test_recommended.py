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
