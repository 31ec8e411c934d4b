"""StopController: the policy decides, the LR schedule may defer a patience stop, the policy gets a fresh window."""
from __future__ import annotations

import pytest

from rec_es import build_policy
from rec_es.policy.controller import StopController
from rec_es.policy.schedule import LRSchedule


def _controller(max_reductions: int = 1) -> StopController:
    policy = build_policy({"monitor": "ndcg@10", "patience": 1})
    schedule = LRSchedule({"reduce_on_plateau": {"factor": 0.5, "max_reductions": max_reductions}}, base_lr=0.01)
    return StopController(policy, schedule)


def test_patience_stop_is_deferred_once_then_stands() -> None:
    """patience 1, one reduction: the first miss cuts the LR and restarts the wait; the next miss stops."""
    ctl = _controller()
    first = ctl.update(0, {"ndcg@10": 0.5})
    assert (first.stop, first.deferred, first.action) == (False, False, None)
    second = ctl.update(1, {"ndcg@10": 0.4})          # miss 1 of patience 1: the policy wants to stop
    assert second.decision.stop and second.deferred and not second.stop
    assert second.action is not None and (second.action.lr_before, second.action.lr_after) == pytest.approx((0.01, 0.005))
    assert ctl.policy.wait_count == 0                   # granted a fresh window
    assert ctl.schedule is not None and ctl.schedule.lr_for_epoch(2) == pytest.approx(0.005)
    third = ctl.update(2, {"ndcg@10": 0.45})          # best is still 0.5: a miss, and no reduction is left
    assert third.stop and not third.deferred and third.decision.reason.value == "patience"


def test_without_a_schedule_the_policy_alone_decides() -> None:
    """No schedule: no action, and the step stops exactly when the decision does."""
    ctl = StopController(build_policy({"monitor": "ndcg@10", "patience": 1}))
    steps = [ctl.update(e, {"ndcg@10": v}) for e, v in enumerate([0.5, 0.4])]
    assert [(s.stop, s.decision.stop, s.action) for s in steps] == [(False, False, None), (True, True, None)]


def test_other_reasons_are_never_deferred() -> None:
    """A threshold stop stands even with reductions left."""
    policy = build_policy({"monitor": "ndcg@10", "stopping_threshold": 0.3})
    ctl = StopController(policy, LRSchedule({"reduce_on_plateau": {}}, base_lr=0.01))
    step = ctl.update(0, {"ndcg@10": 0.4})
    assert step.stop and not step.deferred and step.action is None


def test_follow_replays_recorded_deferrals() -> None:
    """Following recorded evaluations (with the recorded deferral) leaves the policy as the live run left it."""
    live = _controller(max_reductions=2)
    records = []
    for epoch, value in enumerate([0.5, 0.4, 0.45, 0.3]):
        step = live.update(epoch, {"ndcg@10": value})
        records.append({"epoch": epoch, "valid": {"ndcg@10": value},
                        "lr_action": step.action.to_dict() if step.action is not None else None})
    follower = StopController(build_policy({"monitor": "ndcg@10", "patience": 1}))
    follower.follow(records)
    assert follower.policy.state_dict() == live.policy.state_dict()


def test_reset_forgets_policy_and_schedule() -> None:
    """reset() returns both halves to a fresh fit: full LR, no best."""
    ctl = _controller()
    ctl.update(0, {"ndcg@10": 0.5})
    ctl.update(1, {"ndcg@10": 0.4})
    ctl.reset()
    assert ctl.policy.best_epoch is None and ctl.schedule is not None and ctl.schedule.lr_for_epoch(2) == 0.01


def test_per_user_scores_reach_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """update(per_user=...) hands the per-user scores to every rule's context; no current rule asks for them."""
    from rec_es.policy.rules.patience import Patience

    seen = []
    original = Patience.update

    def spy(self, ctx, state):  # type: ignore[no-untyped-def]
        seen.append(ctx.per_user)
        return original(self, ctx, state)

    monkeypatch.setattr(Patience, "update", spy)
    ctl = StopController(build_policy({"monitor": "ndcg@10"}))
    ctl.update(0, {"ndcg@10": 0.5}, per_user={"ndcg@10": [0.4, 0.6]})
    ctl.update(1, {"ndcg@10": 0.6})
    assert seen == [{"ndcg@10": [0.4, 0.6]}, None] and ctl.policy.per_user_keys == ()


def test_follow_hands_each_records_loss_time_and_per_user_scores_to_the_policy() -> None:
    """follow passes a record's train_loss, elapsed_seconds and per_user(epoch) to update, None where it has none."""
    calls = []

    class Spy:
        def update(self, epoch, valid, train_loss=None, elapsed_seconds=None, per_user=None):  # type: ignore[no-untyped-def]
            calls.append((epoch, valid, train_loss, elapsed_seconds, per_user))
            return epoch

    records = [{"epoch": 0, "valid": {"ndcg@10": 0.1}, "train_loss": 1.5, "elapsed_seconds": 3.0},
               {"epoch": 2, "valid": {"ndcg@10": 0.2}}]
    assert StopController(Spy()).follow(records, per_user=lambda e: {"ndcg@10": [e, e + 1]}) == [0, 2]  # type: ignore[arg-type]
    assert calls == [(0, {"ndcg@10": 0.1}, 1.5, 3.0, {"ndcg@10": [0, 1]}),
                     (2, {"ndcg@10": 0.2}, None, None, {"ndcg@10": [2, 3]})]
    calls.clear()
    StopController(Spy()).follow(records)  # type: ignore[arg-type]
    assert [c[4] for c in calls] == [None, None]


def test_update_hands_every_input_on_and_the_schedule_a_reason_only_for_a_stop() -> None:
    """update passes train_loss, elapsed_seconds and per_user to the policy; the schedule gets improved as a bool
    and the stop reason only when the policy stops (None otherwise)."""
    seen: dict[str, list] = {"policy": [], "schedule": []}

    class Schedule:
        def on_evaluation(self, epoch, improved, stop_reason):  # type: ignore[no-untyped-def]
            seen["schedule"].append((epoch, improved, stop_reason))

    policy = build_policy({"monitor": "ndcg@10", "patience": 3, "max_minutes": 1})
    original = policy.update

    def update(epoch, metrics, train_loss=None, elapsed_seconds=None, per_user=None):  # type: ignore[no-untyped-def]
        seen["policy"].append((train_loss, elapsed_seconds, per_user))
        return original(epoch, metrics, train_loss=train_loss, elapsed_seconds=elapsed_seconds, per_user=per_user)

    policy.update = update  # type: ignore[method-assign]
    ctl = StopController(policy, Schedule())  # type: ignore[arg-type]
    assert not ctl.update(0, {"ndcg@10": 0.5}, train_loss=2.0, elapsed_seconds=3.0, per_user={"ndcg@10": [0.5]}).stop
    assert not ctl.update(1, {"ndcg@10": 0.4}, train_loss=1.9, elapsed_seconds=6.0).stop
    assert ctl.update(2, {"ndcg@10": 0.3}, elapsed_seconds=61.0).stop
    assert seen["policy"] == [(2.0, 3.0, {"ndcg@10": [0.5]}), (1.9, 6.0, None), (None, 61.0, None)]
    assert seen["schedule"] == [(0, True, None), (1, False, None), (2, False, "time_budget")]
