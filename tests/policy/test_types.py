"""rec_es.policy.types: a Decision as the plain, JSON-able dict a trace records."""
from __future__ import annotations

import json

from rec_es import build_policy
from rec_es.policy.types import Decision, StopReason


def _decision(value: float | None, smoothed: float | None, best_score: float | None,
              measured: dict | None = None) -> Decision:
    return Decision(epoch=3, stop=True, improved=False, new_best=False, reason=StopReason.PATIENCE,
                    message="stopped", value=value, smoothed=smoothed, best_epoch=1, best_score=best_score,
                    wait_count=2, wait_epochs=4, patience=2, measured=measured or {})


def test_to_dict_writes_the_reason_as_its_string_and_drops_an_empty_measured() -> None:
    """Every field under its own name, ``reason`` as a plain str, finite scores kept as they are and no
    ``measured`` key when nothing was measured."""
    out = _decision(0.25, 0.5, 0.75).to_dict()
    assert out == {"epoch": 3, "stop": True, "improved": False, "new_best": False, "reason": "patience",
                   "message": "stopped", "value": 0.25, "smoothed": 0.5, "best_epoch": 1, "best_score": 0.75,
                   "wait_count": 2, "wait_epochs": 4, "patience": 2}
    assert type(out["reason"]) is str


def test_to_dict_keeps_a_non_empty_measured() -> None:
    """What a rule measured is written when there is something."""
    out = _decision(0.25, None, 0.75, measured={"noise_margin": 0.01}).to_dict()
    assert out["measured"] == {"noise_margin": 0.01}
    assert out["smoothed"] is None


def test_to_dict_turns_nan_and_infinities_into_none() -> None:
    """NaN, inf and -inf scores become None (JSON has no such numbers); the result dumps as strict JSON."""
    nan, inf = float("nan"), float("inf")
    for value, smoothed, best in ((nan, inf, -inf), (-inf, nan, inf), (inf, -inf, nan)):
        out = _decision(value, smoothed, best).to_dict()
        assert (out["value"], out["smoothed"], out["best_score"]) == (None, None, None)
        json.dumps(out, allow_nan=False)


def test_a_missed_nan_evaluation_is_recorded_as_null() -> None:
    """Through the policy: a NaN that counts as a miss is written as value None, the best stays 0.5."""
    policy = build_policy({"monitor": "ndcg@10", "check_finite": "miss"})
    policy.update(0, {"ndcg@10": 0.5})
    out = policy.update(1, {"ndcg@10": float("nan")}).to_dict()
    assert (out["value"], out["best_score"], out["reason"], out["wait_count"]) == (None, 0.5, "not_stopped", 1)
