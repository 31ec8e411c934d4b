"""LR schedule: curve values, validation messages, plateau coordination, state round trip."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

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
        ([1, 2], "lr_schedule: must be a mapping"),
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
