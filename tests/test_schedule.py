"""LR schedule: curve values, validation messages, plateau coordination, state round trip."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rec_es.policy.errors import ConfigError, StateError
from rec_es.policy.schedule import LRSchedule, validate_lr_schedule


@pytest.mark.parametrize(
    "mapping, expected",
    [
        ({}, [1e-3] * 5),
        ({"warmup_epochs": 4, "warmup_start_factor": 0.2}, [2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3]),
        ({"decay": "step", "step_size": 2, "gamma": 0.5}, [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]),
        ({"decay": "exponential", "gamma": 0.5}, [1e-3, 5e-4, 2.5e-4, 1.25e-4]),
        ({"decay": "cosine", "t_max": 2, "eta_min": 1e-4}, [1e-3, 5.5e-4, 1e-4, 1e-4]),
        ({"warmup_epochs": 2, "decay": "exponential", "gamma": 0.5}, [1e-4, 5.5e-4, 1e-3, 5e-4, 2.5e-4]),
    ],
)
def test_lr_curve(mapping: dict, expected: list[float]) -> None:
    """Warmup and each decay give the documented LR per 0-based epoch (decay starts after warmup)."""
    sched = LRSchedule(mapping, base_lr=1e-3)
    assert [sched.lr_for_epoch(e) for e in range(len(expected))] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "mapping, fragment",
    [
        ({"decay": "linear"}, "lr_schedule.decay: allowed: none | step | exponential | cosine (got 'linear')"),
        ({"decay": "step", "gamma": 0.5}, "lr_schedule.step_size: required by decay: step; allowed: an integer >= 1 (got nothing)"),
        ({"decay": "exponential", "gamma": 1.5}, "lr_schedule.gamma: allowed: a number in (0, 1] (got 1.5)"),
        ({"warmup_epoch": 3}, "lr_schedule.warmup_epoch: unknown key — did you mean 'warmup_epochs'?"),
        ({"warmup_epochs": -1}, "lr_schedule.warmup_epochs: allowed: an integer >= 0 (got -1)"),
        ({"warmup_epochs": 2.5}, "lr_schedule.warmup_epochs: allowed: an integer >= 0 (got 2.5)"),
        ({"gamma": 0.5}, "lr_schedule.gamma: gamma is set but decay is 'none'; allowed: only with decay: step | exponential"),
        ({"reduce_on_plateau": {"factor": 1.0}}, "lr_schedule.reduce_on_plateau.factor: allowed: a number in (0, 1) (got 1.0)"),
        ({"reduce_on_plateau": {"patiance": 2}}, "did you mean 'patience'?"),
        ({"reduce_on_plateau": 5}, "lr_schedule.reduce_on_plateau: allowed: a mapping of factor, patience, min_lr, max_reductions, true or null (got 5)"),
        ([1, 2], ("lr_schedule: must be a mapping of warmup_epochs, warmup_start_factor, decay, step_size, gamma, "
                  "t_max, eta_min, reduce_on_plateau (got [1, 2])")),
    ],
)
def test_validation_messages(mapping: object, fragment: str) -> None:
    """Every bad value is refused with the file, the key, the allowed values and what was given."""
    with pytest.raises(ConfigError) as info:
        validate_lr_schedule(mapping, "props/my.yaml")
    assert str(info.value).startswith("props/my.yaml: ")
    assert fragment in str(info.value)


def test_message_without_a_file_names_the_key_once() -> None:
    """Without a source file the message starts at the key: no doubled `lr_schedule: lr_schedule.` prefix."""
    with pytest.raises(ConfigError) as info:
        validate_lr_schedule({"warmup_epochs": -1})
    assert str(info.value) == "lr_schedule.warmup_epochs: allowed: an integer >= 0 (got -1)"
    with pytest.raises(ConfigError) as info:
        LRSchedule({"decay": "cosine", "t_max": 3, "eta_min": 0.1}, base_lr=0.01)
    assert str(info.value) == "lr_schedule.eta_min: allowed: a number <= learning_rate 0.01 (got 0.1)"


def test_defaults_filled() -> None:
    """Validation returns the mapping with every default written out."""
    assert validate_lr_schedule({"reduce_on_plateau": {}}, "x") == {
        "warmup_epochs": 0, "warmup_start_factor": 0.1, "decay": "none",
        "reduce_on_plateau": {"factor": 0.1, "patience": None, "min_lr": 0.0, "max_reductions": 3},
    }
    assert validate_lr_schedule(None, "x") is None


def test_patience_stop_deferred_until_reductions_used_up() -> None:
    """A patience stop is deferred max_reductions times (LR x factor each), then it stands."""
    sched = LRSchedule({"reduce_on_plateau": {"factor": 0.5, "max_reductions": 2}}, base_lr=1e-2)
    first = sched.on_evaluation(4, improved=False, stop_reason="patience")
    assert first is not None and first.defer_stop and first.reduced
    assert (first.lr_before, first.lr_after) == pytest.approx((1e-2, 5e-3))
    assert sched.lr_for_epoch(5) == pytest.approx(5e-3)
    second = sched.on_evaluation(8, improved=False, stop_reason="patience")
    assert second is not None and second.defer_stop and sched.lr_for_epoch(9) == pytest.approx(2.5e-3)
    assert sched.on_evaluation(12, improved=False, stop_reason="patience") is None  # stop stands


def test_other_stop_reasons_never_deferred() -> None:
    """Threshold, budget and non-finite stops are not deferred by a plateau reduction."""
    sched = LRSchedule({"reduce_on_plateau": {}}, base_lr=1e-2)
    for reason in ("stopping_threshold", "non_finite", "max_epochs", "time_budget"):
        assert sched.on_evaluation(3, improved=False, stop_reason=reason) is None
    assert sched.reductions_ == 0


def test_own_patience_and_min_lr() -> None:
    """With its own patience the LR drops after N misses in a row, never below min_lr."""
    sched = LRSchedule({"reduce_on_plateau": {"factor": 0.1, "patience": 2, "min_lr": 5e-4,
                                              "max_reductions": 5}}, base_lr=1e-2)
    assert sched.on_evaluation(0, improved=True, stop_reason=None) is None
    assert sched.on_evaluation(1, improved=False, stop_reason=None) is None
    act = sched.on_evaluation(2, improved=False, stop_reason=None)
    assert act is not None and act.reduced and not act.defer_stop
    assert sched.lr_for_epoch(3) == pytest.approx(1e-3)
    assert sched.on_evaluation(3, improved=False, stop_reason=None) is None  # counter restarted
    act = sched.on_evaluation(4, improved=False, stop_reason=None)
    assert act is not None and sched.lr_for_epoch(5) == pytest.approx(5e-4)  # floored at min_lr
    assert sched.on_evaluation(5, improved=False, stop_reason="patience") is None  # at min_lr: cannot defer


def test_state_round_trip_and_refusal() -> None:
    """state_dict/load_state_dict restore the plateau scale; an incomplete state is refused."""
    a = LRSchedule({"reduce_on_plateau": {"factor": 0.5}}, base_lr=1.0)
    a.on_evaluation(0, improved=False, stop_reason="patience")
    b = LRSchedule({"reduce_on_plateau": {"factor": 0.5}}, base_lr=1.0)
    b.load_state_dict(a.state_dict())
    assert b.lr_for_epoch(7) == a.lr_for_epoch(7) == 0.5
    with pytest.raises(StateError, match="lacks scale"):
        b.load_state_dict({"version": 1, "reductions": 0, "wait": 0})
    b.reset()
    assert b.lr_for_epoch(7) == 1.0


@given(st.integers(0, 20), st.integers(1, 30), st.floats(0.0, 0.9), st.integers(0, 200))
def test_cosine_stays_between_eta_min_and_base(warmup: int, t_max: int, eta_frac: float, epoch: int) -> None:
    """Cosine decay after warmup never leaves [eta_min, base_lr]."""
    sched = LRSchedule({"warmup_epochs": warmup, "decay": "cosine", "t_max": t_max, "eta_min": eta_frac * 0.1},
                       base_lr=0.1)
    lr = sched.lr_for_epoch(epoch)
    if epoch >= warmup:
        assert eta_frac * 0.1 - 1e-12 <= lr <= 0.1 + 1e-12
    assert math.isfinite(lr) and lr >= 0.0


def test_reduce_on_plateau_true_is_the_defaults_and_false_is_off() -> None:
    """`reduce_on_plateau: true` turns the reduction on with every default; `false` (like null) turns it off."""
    defaults = {"factor": 0.1, "patience": None, "min_lr": 0.0, "max_reductions": 3}
    assert validate_lr_schedule({"reduce_on_plateau": True})["reduce_on_plateau"] == defaults  # type: ignore[index]
    assert validate_lr_schedule({"reduce_on_plateau": False})["reduce_on_plateau"] is None  # type: ignore[index]
    assert validate_lr_schedule({"reduce_on_plateau": None})["reduce_on_plateau"] is None  # type: ignore[index]
    # true behaves as configured: a patience stop at epoch 0 is deferred, LR 1.0 -> 0.1
    act = LRSchedule({"reduce_on_plateau": True}, base_lr=1.0).on_evaluation(0, improved=False,
                                                                            stop_reason="patience")
    assert act is not None and act.defer_stop and act.lr_after == pytest.approx(0.1)
    assert LRSchedule({"reduce_on_plateau": False}, base_lr=1.0).on_evaluation(
        0, improved=False, stop_reason="patience") is None


@pytest.mark.parametrize("base_lr, given", [(0, "0"), (0.0, "0.0"), (-0.5, "-0.5"), (True, "True"),
                                             (float("inf"), "inf"), (float("nan"), "nan"), ("0.01", "'0.01'")])
def test_learning_rate_must_be_positive(base_lr: float, given: str) -> None:
    """A learning rate <= 0, a boolean (YAML `learning_rate: yes`), a non-finite number or a string is refused naming the file, the key `learning_rate`, what is allowed and what was given."""
    with pytest.raises(ConfigError) as info:
        LRSchedule({}, base_lr=base_lr, source="props/my.yaml")
    assert str(info.value) == f"props/my.yaml: learning_rate: allowed: a number > 0 (got {given})"
    assert info.value.key == "learning_rate"


def test_schedule_errors_name_the_file() -> None:
    """LRSchedule passes its source on: a bad schedule key and a too large eta_min both name the file."""
    with pytest.raises(ConfigError) as info:
        LRSchedule({"warmup_epochs": -1}, base_lr=0.01, source="props/my.yaml")
    assert str(info.value) == "props/my.yaml: lr_schedule.warmup_epochs: allowed: an integer >= 0 (got -1)"
    with pytest.raises(ConfigError) as info:
        LRSchedule({"decay": "cosine", "t_max": 2, "eta_min": 0.02}, base_lr=0.01, source="props/my.yaml")
    assert str(info.value) == "props/my.yaml: lr_schedule.eta_min: allowed: a number <= learning_rate 0.01 (got 0.02)"


def test_cosine_eta_min_may_equal_the_learning_rate() -> None:
    """eta_min == learning_rate is allowed (`<= learning_rate`): the cosine curve is then flat."""
    sched = LRSchedule({"decay": "cosine", "t_max": 2, "eta_min": 0.01}, base_lr=0.01)
    assert [sched.lr_for_epoch(e) for e in range(4)] == pytest.approx([0.01] * 4, rel=1e-12)


@pytest.mark.parametrize(
    "min_lr, base_lr, reduced",
    [
        (1.0, 1.0, False),  # LR == min_lr: nothing left to cut
        (1.0, 1.0 + 5e-10, False),  # within 1e-9 relative of min_lr: counts as at min_lr
        (1.0, 1.000001, True),  # 1e-6 above: cut (floored at min_lr 1.0)
        (0.0, 1e-12, False),  # min_lr 0: an LR of 1e-12 (the absolute tolerance) counts as 0
        (0.0, 2e-12, True),  # just above it: cut to 2e-13
    ],
)
def test_lr_at_min_lr_is_not_reduced_and_the_stop_stands(min_lr: float, base_lr: float, reduced: bool) -> None:
    """A patience stop is deferred only while the LR is above min_lr (beyond 1e-9 relative + 1e-12 absolute)."""
    sched = LRSchedule({"reduce_on_plateau": {"min_lr": min_lr}}, base_lr=base_lr)
    assert sched.can_reduce(1) is reduced
    act = sched.on_evaluation(0, improved=False, stop_reason="patience")
    assert (act is not None) is reduced
    if act is not None:
        assert act.lr_after == pytest.approx(max(base_lr * 0.1, min_lr), rel=1e-12)


def test_deferred_stop_action_reports_the_next_epochs_lr() -> None:
    """A deferred patience stop at epoch 1 reports the LR of epoch 2, the cut LR, the count and a message;
    to_dict is that action as the trace's `lr_action`."""
    # exponential gamma 0.5 from 1.0: lr(2) = 0.25; factor 0.1 -> 0.025
    sched = LRSchedule({"decay": "exponential", "gamma": 0.5, "reduce_on_plateau": {"max_reductions": 2}},
                       base_lr=1.0)
    act = sched.on_evaluation(1, improved=False, stop_reason="patience")
    assert act is not None
    assert act.to_dict() == {
        "reduced": True, "defer_stop": True, "lr_before": 0.25, "lr_after": 0.025, "reductions": 1,
        "message": "epoch 1: patience ran out; reduced the learning rate 0.25 -> 0.025 (reduction 1 of 2) and gave "
                   "the policy a fresh patience window instead of stopping",
    }
    assert sched.lr_for_epoch(2) == pytest.approx(0.025)


def test_own_patience_action_reports_the_cut_without_deferring() -> None:
    """The schedule's own patience cut reports defer_stop False (not null), the LRs of the next epoch, the count
    and a message naming the setting."""
    # patience 2: misses at epochs 0 and 1 -> cut after epoch 1; lr(2) = 1.0 * 0.5**2 = 0.25 -> 0.025
    sched = LRSchedule({"decay": "exponential", "gamma": 0.5, "reduce_on_plateau": {"patience": 2}}, base_lr=1.0)
    assert sched.on_evaluation(0, improved=False, stop_reason=None) is None
    act = sched.on_evaluation(1, improved=False, stop_reason=None)
    assert act is not None
    assert act.to_dict() == {
        "reduced": True, "defer_stop": False, "lr_before": 0.25, "lr_after": 0.025, "reductions": 1,
        "message": "epoch 1: no improvement for 2 evaluations; reduced the learning rate 0.25 -> 0.025 "
                   "(reduction 1 of 3, lr_schedule.reduce_on_plateau.patience: 2)",
    }
    assert act.defer_stop is False


def test_fresh_schedule_has_waited_nothing() -> None:
    """A new (or reset) schedule has waited 0 evaluations: with patience 2 the first miss does not cut the LR."""
    sched = LRSchedule({"reduce_on_plateau": {"patience": 2}}, base_lr=1.0)
    assert sched.state_dict() == {"version": 1, "scale": 1.0, "reductions": 0, "wait": 0}
    assert sched.on_evaluation(0, improved=False, stop_reason=None) is None
    sched.reset()
    assert sched.state_dict() == {"version": 1, "scale": 1.0, "reductions": 0, "wait": 0}
    assert sched.on_evaluation(0, improved=False, stop_reason=None) is None


def test_loaded_state_continues_the_count() -> None:
    """load_state_dict restores reductions and the evaluations waited: the loaded schedule goes on where the saved
    one was (one more miss reaches patience 2; max_reductions 2 leaves one more deferral)."""
    a = LRSchedule({"reduce_on_plateau": {"factor": 0.5, "patience": 2, "max_reductions": 2}}, base_lr=1.0)
    a.on_evaluation(0, improved=False, stop_reason="patience")  # deferral 1: LR 1.0 -> 0.5, wait 0
    a.on_evaluation(1, improved=False, stop_reason=None)  # wait 1
    saved = a.state_dict()
    assert saved == {"version": 1, "scale": 0.5, "reductions": 1, "wait": 1}
    b = LRSchedule({"reduce_on_plateau": {"factor": 0.5, "patience": 2, "max_reductions": 2}}, base_lr=1.0)
    b.load_state_dict(saved)
    assert b.state_dict() == saved
    act = b.on_evaluation(2, improved=False, stop_reason=None)  # wait 2 -> own cut, reduction 2 of 2
    assert act is not None and act.reductions == 2 and act.lr_after == pytest.approx(0.25)
    assert b.on_evaluation(6, improved=False, stop_reason="patience") is None  # used up: the stop stands


def test_state_refusal_messages() -> None:
    """An incomplete state names every missing key and the keys it has; another version names both versions."""
    sched = LRSchedule({"reduce_on_plateau": {}}, base_lr=1.0)
    with pytest.raises(StateError) as info:
        sched.load_state_dict({"version": 1})
    assert str(info.value) == "lr schedule state lacks scale, reductions, wait (got keys ['version'])"
    with pytest.raises(StateError) as info:
        sched.load_state_dict({"version": 2, "scale": 1.0, "reductions": 0, "wait": 0})
    assert str(info.value) == "lr schedule state version 2 is not 1"
