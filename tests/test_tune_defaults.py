"""rec-es tune's ASHA defaults are the measured best of scripts/bench_search.py, and docs/ray.md states them."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rec_es.cli.tune import build_parser
from rec_es.policy.errors import ConfigError
from rec_es.tune.search import GRACE_PERIOD, REDUCTION_FACTOR, TIME_ATTR, Asha

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_benchmarks_choice_and_the_docs_say_so() -> None:
    """Code, command line, the benchmark's summary.json and docs/ray.md agree on grace period and factor."""
    summary = json.loads((REPO / "docs/results/bench_search/summary.json").read_text(encoding="utf-8"))
    assert summary["choice"]["default"] == [GRACE_PERIOD, REDUCTION_FACTOR]
    args = build_parser().parse_args(["--config", "a.yaml", "--space", "s"])
    assert (args.grace_period, args.reduction_factor) == (GRACE_PERIOD, REDUCTION_FACTOR)
    assert (Asha().grace_period, Asha().reduction_factor) == (GRACE_PERIOD, REDUCTION_FACTOR)
    doc = (REPO / "docs/ray.md").read_text(encoding="utf-8")
    stated = re.findall(r"defaults?: `grace_period` (\d+) epochs, `reduction_factor` (\d+)", doc)
    assert stated and all((int(g), int(rf)) == (GRACE_PERIOD, REDUCTION_FACTOR) for g, rf in stated)


def test_asha_is_built_in_epochs_and_not_at_all_past_the_budget() -> None:
    """ASHAScheduler counts epochs, with max_t one past the budget; a grace period >= the budget builds none."""
    sched = Asha().scheduler(100)
    assert sched is not None
    assert sched._time_attr == TIME_ATTR == "epochs" and sched._max_t == 101
    assert [m for m, _ in sched._brackets[0]._rungs] == [GRACE_PERIOD * REDUCTION_FACTOR ** k for k in (1, 0)]
    assert Asha(3, 2).scheduler(3) is None and Asha(2, 2).scheduler(3) is not None
    with pytest.raises(ConfigError, match="--grace-period must be an integer >= 1"):
        Asha(0)
    with pytest.raises(ConfigError, match="--reduction-factor must be > 1"):
        Asha(5, 1)
