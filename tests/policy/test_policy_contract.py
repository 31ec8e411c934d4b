"""StoppingPolicy's own promises, beside its rules': the all_of sentence, budgets under all_of, what a decision
carries, the status line's warmup and disabled notes, and load_state_dict's refusals word for word."""
from __future__ import annotations

import json

import pytest

from rec_es import build_policy
from rec_es.policy import rules
from rec_es.policy.base import Rule
from rec_es.policy.errors import StateError

GL_AND_PATIENCE = {"monitor": "ndcg@10", "patience": 2, "prechelt": [{"criterion": "GL", "alpha": 5}],
                   "combine": "all_of"}


def _run(settings: dict, values: list[float], epochs: list[int] | None = None) -> list:
    policy = build_policy(settings)
    return [policy.update(e, {"ndcg@10": v}) for e, v in zip(epochs or range(len(values)), values)]


def test_all_of_names_every_rule_that_fired_and_the_first_ones_hint() -> None:
    """all_of stops when patience and GL fire at once; the sentence joins both clauses with '; and ' and offers the
    first rule's fix (patience's, not GL's)."""
    decisions = _run(GL_AND_PATIENCE, [0.3, 0.2, 0.1])
    # GL: error 1 - ndcg: lowest 0.7 at epoch 0, now 0.9 -> 100 * (0.9 / 0.7 - 1) = 28.6 % > 5
    assert decisions[2].stop and decisions[2].reason.value == "all_of"
    assert decisions[2].message == (
        "stopped at epoch 2: every rule fired (combine: all_of): ndcg@10 did not improve for 2 evaluations "
        "(2 epochs) since epoch 0 (0.3); patience 2 evaluations; and generalization loss GL = 28.6% (error "
        "1 − ndcg@10 = 0.9 is 28.6% above its lowest, 0.7) exceeds alpha 5 (Prechelt GL_5); relax any one of "
        "them, e.g. raise early_stopping.patience or set early_stopping.enabled: false")


def test_all_of_does_not_hold_back_a_budget() -> None:
    """combine: all_of concerns plateau rules only: a used-up max_epochs stops alone, while the plateau rules are
    silent."""
    decisions = _run({**GL_AND_PATIENCE, "patience": 5, "max_epochs": 3}, [0.30, 0.31, 0.32])
    assert [d.stop for d in decisions] == [False, False, True]
    assert decisions[2].reason.value == "max_epochs"
    assert decisions[2].message == ("stopped at epoch 2: the budget of early_stopping.max_epochs: 3 epochs is used "
                                    "up; raise early_stopping.max_epochs")


def test_a_decision_carries_the_best_score_and_the_epochs_waited() -> None:
    """Evaluations every second epoch: after two without improvement the wait is 2 evaluations spanning 4 epochs,
    and the decision still names the best epoch and its score."""
    decisions = _run({"monitor": "ndcg@10", "patience": 10}, [0.30, 0.25, 0.20], epochs=[0, 2, 4])
    last = decisions[-1]
    assert (last.best_epoch, last.best_score) == (0, 0.30)
    assert (last.wait_count, last.wait_epochs) == (2, 4)


def test_the_status_line_notes_warmup_before_its_last_epoch_and_disabled_stopping() -> None:
    """warmup 2: epochs 0 and 1 say so, epoch 2 (stops allowed again) does not; enabled: false is said on every
    line, after everything else."""
    messages = [d.message for d in _run({"monitor": "ndcg@10", "patience": 2, "enabled": False, "warmup": 2},
                                        [0.30, 0.31, 0.30])]
    assert messages == [
        ("epoch 0: ndcg@10 0.3, best 0.3 at epoch 0, wait 0/2 evaluations, improved "
         "(warmup: no stop before epoch 2) (stopping disabled)"),
        ("epoch 1: ndcg@10 0.31, best 0.31 at epoch 1, wait 0/2 evaluations, improved "
         "(warmup: no stop before epoch 2) (stopping disabled)"),
        "epoch 2: ndcg@10 0.3, best 0.31 at epoch 1, wait 1/2 evaluations (stopping disabled)",
    ]


def _state() -> dict:
    policy = build_policy({"monitor": "ndcg@10", "patience": 3})
    policy.update(0, {"ndcg@10": 0.3})
    return policy.state_dict()


@pytest.mark.parametrize("version", [True, "1", 0, 10**6, None])
def test_a_version_that_is_not_a_plain_int_in_range_is_refused(version: object) -> None:
    """True is an int to Python but not a state version; a string is not compared with ints (a TypeError would not
    say what is wrong)."""
    state = {**_state(), "version": version}
    with pytest.raises(StateError, match=r"^policy state version .* cannot be loaded; this rec_es reads version"):
        build_policy({"monitor": "ndcg@10", "patience": 3}).load_state_dict(state)


def test_a_state_of_another_monitor_names_both_monitors_and_modes() -> None:
    state = _state()
    with pytest.raises(StateError) as err:
        build_policy({"monitor": "rmse", "patience": 3}).load_state_dict(state)
    assert str(err.value) == ("policy state is for monitor 'ndcg@10' (max), not 'rmse' (min); build the policy with "
                              "the same monitor")


def test_missing_and_unknown_keys_are_each_listed() -> None:
    """Two keys removed: both named, comma-separated; two foreign keys: both named, sorted."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 3})
    state = _state()
    inner = dict(state["state"])
    del inner["wait_count"], inner["best_score"]
    with pytest.raises(StateError) as err:
        policy.load_state_dict({**state, "state": inner})
    assert str(err.value) == "policy state is missing keys: best_score, wait_count"
    with pytest.raises(StateError) as err:
        policy.load_state_dict({**state, "state": {**state["state"], "zeta": 1, "alpha": 2}})
    assert str(err.value) == "policy state has unknown keys: alpha, zeta"


def test_every_stopping_rule_says_when_it_fires() -> None:
    """The policy reads each stopping rule's verdict from its ``update``: a stopping rule that kept Rule's no-op
    default would never fire (and the policy's lookup of its verdict assumes there is one)."""
    assert all(type(p).update is not Rule.update for p in rules.STOPPING)


def test_an_evaluation_out_of_order_asks_for_reset() -> None:
    policy = build_policy({"monitor": "ndcg@10", "patience": 3})
    policy.update(4, {"ndcg@10": 0.3})
    with pytest.raises(ValueError) as err:
        policy.update(4, {"ndcg@10": 0.3})
    assert str(err.value) == ("epoch 4 is not after the previous evaluation's epoch 4; call reset() before a new "
                              "fit")


def test_an_evaluation_before_start_from_epoch_is_reported_and_ignored() -> None:
    """Before start_from_epoch the value is passed through, nothing improves and nothing is kept as best."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 3, "start_from_epoch": 2})
    d = policy.update(1, {"ndcg@10": 0.25})
    assert (d.value, d.smoothed, d.improved, d.new_best, d.stop, d.best_epoch) == (0.25, None, False, False, False,
                                                                                   None)
    assert d.improved is False and d.new_best is False
    assert d.message == "epoch 1: ndcg@10 0.25 ignored (start_from_epoch 2)"


def test_a_missed_non_finite_evaluation_neither_improves_nor_becomes_best() -> None:
    """check_finite: miss counts a NaN as a miss: improved and new_best are False (not None, not True)."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 3, "check_finite": "miss"})
    policy.update(0, {"ndcg@10": 0.3})
    d = policy.update(1, {"ndcg@10": float("nan")})
    assert d.improved is False and d.new_best is False and not d.stop
    assert (d.best_epoch, d.wait_count) == (0, 1)


def test_a_held_stop_records_what_would_have_stopped_and_why() -> None:
    """A straight rise by 0.001 per epoch never beats min_delta 0.01: patience 10 would stop at epoch 10, but the
    still-learning rule (hold) holds it; the decision keeps the evaluation's values and records the hold."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 10, "min_delta": 0.01, "still_learning": "hold"})
    decisions = [policy.update(e, {"ndcg@10": round(0.3 + 0.001 * e, 4)}, train_loss=10.0 - 0.1 * e)
                 for e in range(11)]
    held = decisions[10]
    assert not held.stop
    assert (held.value, held.smoothed) == (0.31, 0.31)
    assert held.improved is False and held.new_best is False
    assert held.measured["held"]["reason"] == "patience"
    assert held.measured["held"]["because"].startswith("ndcg@10 is still learning (confidence ")
    assert "; patience would stop, held: ndcg@10 is still learning" in held.message


def test_a_stop_is_not_a_new_best() -> None:
    """The stopping decision's new_best is False (the stop itself keeps no new weights)."""
    decisions = _run({"monitor": "ndcg@10", "patience": 1}, [0.30, 0.20])
    assert decisions[1].stop and decisions[1].new_best is False


def test_a_state_is_a_snapshot_that_later_updates_leave_alone() -> None:
    """A state kept in memory (a search's checkpoint) must not grow with the policy: the still-learning history
    lists and the smoother's state are copies."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 10, "still_learning": "hold"})
    policy.update(0, {"ndcg@10": 0.30}, train_loss=1.0)
    kept = policy.state_dict()
    before = json.dumps(kept, sort_keys=True)
    for e in range(1, 4):
        policy.update(e, {"ndcg@10": 0.30 + 0.01 * e}, train_loss=1.0 - 0.1 * e)
    assert json.dumps(kept, sort_keys=True) == before


def test_scores_print_with_six_significant_digits_and_a_missing_one_as_none() -> None:
    """base.fmt is how every message prints a score."""
    from rec_es.policy.base import fmt

    assert (fmt(None), fmt(0.123456789), fmt(1234567.0), fmt(0.3)) == ("none", "0.123457", "1.23457e+06", "0.3")
