"""scripts/bench_search.py: its Ray Tune trainable decides as rec_es.replay does, and its committed subset
(through Ray Tune) is what the in-process engine gives again. No Ray is started."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_script
from rec_es import build_policy
from rec_es.replay import replay
from rec_es.rundir.trace import read_trace

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "docs" / "results" / "long_runs" / "stamp-lr0.005" / "seed2021"
OUT = REPO / "docs" / "results" / "bench_search"


@pytest.mark.parametrize("policy", ["recommended", "prechelt_gl", "recbole_legacy", "disabled"])
def test_trainable_stops_and_restores_where_replay_does(policy: str) -> None:
    """The trainable's reports end at replay's stop epoch with replay's restored epoch, one report per
    evaluation, each the recorded validation NDCG@10 and the epochs trained so far."""
    bench = load_script("bench_search")
    mapping = bench.Scheme(policy, policy, False).mapping()
    reports: list[dict] = []
    bench.replay_trainable({"trace": str(RUN), "policy": mapping}, report=reports.append)
    want = replay(build_policy(mapping), RUN)
    trace = read_trace(RUN)
    assert len(reports) == want.evaluations == want.stop_epoch + 1
    assert [r["epochs"] for r in reports] == list(range(1, want.stop_epoch + 2))
    assert [r["valid_score"] for r in reports] == [rec["valid"]["ndcg@10"] for rec in trace.records[:len(reports)]]
    last = reports[-1]
    assert [r["final"] for r in reports] == [False] * (len(reports) - 1) + [True]
    assert last["best_epoch"] == want.best_epoch and last["reason"] == want.reason
    assert last["epochs_trained"] == want.epochs_trained
    if policy == "prechelt_gl":
        assert want.stopped and want.stop_epoch < 99  # a stop inside the budget, not just the budget's end


def test_committed_subset_is_what_the_direct_engine_gives() -> None:
    """subset.json (9 trials, ASHA + the recommended policy over 3 orders, run through ray.tune.Tuner) is,
    trial by trial, what the benchmark's in-process ASHAScheduler engine computes again."""
    bench = load_script("bench_search")
    committed = json.loads((OUT / "subset.json").read_text(encoding="utf-8"))
    got = json.loads(json.dumps(bench.subset("direct", committed["asha"])))
    assert got == committed
    assert committed["asha"] == json.loads((OUT / "summary.json").read_text(encoding="utf-8"))["choice"]["default"]
