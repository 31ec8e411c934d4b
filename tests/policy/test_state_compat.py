"""States and mappings written before the rule registry still load and decide the same."""
from __future__ import annotations

import json

from rec_es import build_policy
from rec_es.policy.policy import STATE_VERSION

# Written by rec_es before the rule registry (commit ffd4a0a): the policy below after 6 evaluations of
# SCORES, its state_dict, and what it decided at the 4 evaluations after that.
MAPPING = {"monitor": "ndcg@10", "patience": 3, "dynamic_patience": {"factor": 0.5, "max_patience": 6},
           "baseline": 0.2, "smoothing": "ema", "ema_alpha": 0.7,
           "prechelt": [{"criterion": "GL", "alpha": 20}, {"criterion": "UP", "s": 2, "strip": 2},
                        {"criterion": "PQ", "alpha": 0.5, "strip": 3}]}
SCORES = [0.1, 0.15, 0.22, 0.26, 0.3, 0.29, 0.31, 0.28, 0.27, 0.27]
STATE_V1 = json.loads("""{"format": "rec_es.policy_state", "version": 1, "monitor": "ndcg@10", "mode": "max",
 "state": {"evaluations": 6, "last_epoch": 5, "smoother": {"ema": 0.2876315}, "best_score": 0.2876315,
  "improved_epoch": 5, "wait_count": 0, "wait_epochs": 0, "patience_grown": 3, "baseline_beaten": true,
  "restore_score": 0.3, "restore_epoch": 4, "error_opt": 0.7123685,
  "prechelt": [{"losses": [], "prev_error": null, "rises": 0}, {"losses": [], "prev_error": 0.7123685, "rises": 0},
               {"losses": [], "prev_error": null, "rises": 0}]}}""")
# (stop, reason, wait_count, effective patience, best epoch) at epochs 6..9
AFTER = [(False, "not_stopped", 0, 4, 6), (False, "not_stopped", 1, 4, 6), (False, "not_stopped", 2, 4, 6),
         (True, "prechelt_up", 3, 4, 6)]


def _after(policy) -> list[tuple]:
    out = []
    for epoch in range(6, len(SCORES)):
        d = policy.update(epoch, {"ndcg@10": SCORES[epoch]}, train_loss=1.0 / (epoch + 1))
        out.append((d.stop, d.reason.value, d.wait_count, d.patience, d.best_epoch))
    return out


def test_version_1_state_loads_and_decides_as_before() -> None:
    """A version-1 state saved by the pre-registry code resumes to the decisions that code made."""
    policy = build_policy(MAPPING)
    policy.load_state_dict(STATE_V1)
    assert _after(policy) == AFTER


def test_state_layout_is_unchanged() -> None:
    """The same evaluations give the saved version-1 state: every one of its keys, with the same values."""
    policy = build_policy(MAPPING)
    for epoch, score in enumerate(SCORES[:6]):
        policy.update(epoch, {"ndcg@10": score}, train_loss=1.0 / (epoch + 1))
    state = policy.state_dict()
    assert state["version"] == STATE_VERSION >= 1
    assert {k: v for k, v in state.items() if k not in ("version", "state")} == {
        k: v for k, v in STATE_V1.items() if k not in ("version", "state")}
    assert {k: state["state"][k] for k in STATE_V1["state"]} == STATE_V1["state"]


def test_old_trace_header_mapping_builds_the_same_policy() -> None:
    """A `policy` mapping from an old trace header builds settings that write that mapping back unchanged."""
    header = {"enabled": True, "monitor": "ndcg@10", "mode": "max", "min_delta": 0.0, "min_delta_mode": "abs",
              "ties_improve": False, "patience": 3, "patience_unit": "evaluations",
              "dynamic_patience": {"factor": 0.5, "max_patience": 6, "min_gain": 0.0}, "warmup": 0,
              "start_from_epoch": 0, "smoothing": "ema", "ema_alpha": 0.7, "best_by": "raw",
              "stopping_threshold": None, "divergence_threshold": None, "baseline": 0.2, "check_finite": "stop",
              "max_epochs": None, "max_minutes": None,
              "prechelt": [{"alpha": 20, "criterion": "GL"}, {"criterion": "UP", "s": 2, "strip": 2},
                           {"alpha": 0.5, "criterion": "PQ", "strip": 3}],
              "error_offset": 1.0, "combine": "any_of"}
    written = build_policy(MAPPING).settings_mapping()
    assert {k: written[k] for k in header} == header  # a later rule may add its own key
    assert build_policy(header).settings == build_policy(MAPPING).settings
