"""Hypothesis invariants of every policy: warmup, smoothing identity, state round-trips, reuse."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rec_es import build_policy
from rec_es.errors import StateError
from rec_es.policy import StopReason

values_st = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40)


@st.composite
def mappings(draw) -> dict:
    m: dict = {"monitor": "ndcg@10", "patience": draw(st.none() | st.integers(1, 6))}
    if draw(st.booleans()):
        m["min_delta"] = draw(st.sampled_from([0.001, 0.01, 0.05]))
        m["min_delta_mode"] = draw(st.sampled_from(["abs", "rel"]))
    m["ties_improve"] = draw(st.booleans())
    m["patience_unit"] = draw(st.sampled_from(["evaluations", "epochs"]))
    smoothing = draw(st.sampled_from(["none", "ema", "window"]))
    m["smoothing"] = smoothing
    if smoothing == "ema":
        m["ema_alpha"] = draw(st.floats(0.05, 1))
    if smoothing == "window":
        m["window"] = draw(st.integers(1, 5))
    m["best_by"] = draw(st.sampled_from(["raw", "smoothed"]))
    m["warmup"] = draw(st.integers(0, 10))
    if draw(st.booleans()):
        m["baseline"] = draw(st.floats(0, 1))
    if m["patience"] is not None and draw(st.booleans()):
        m["dynamic_patience"] = {"factor": draw(st.floats(0.1, 2)), "max_patience": m["patience"] + draw(st.integers(0, 10))}
    crit = draw(st.sampled_from([None, "GL", "PQ", "UP"]))
    if crit == "GL":
        m["prechelt"] = {"criterion": "GL", "alpha": draw(st.floats(0.1, 20))}
    elif crit == "PQ":
        m["prechelt"] = {"criterion": "PQ", "alpha": draw(st.floats(0.1, 5)), "strip": draw(st.integers(1, 4))}
    elif crit == "UP":
        m["prechelt"] = {"criterion": "UP", "s": draw(st.integers(1, 3)), "strip": draw(st.integers(1, 4))}
    m["combine"] = draw(st.sampled_from(["any_of", "all_of"]))
    if draw(st.booleans()):
        m["stopping_threshold"] = draw(st.floats(0.5, 1))
        m["divergence_threshold"] = draw(st.floats(0, 0.05))
    return m


def decisions(policy, values, step=1, cut=None):
    """Run a sequence; with ``cut``, save the state after ``cut`` evaluations, JSON round-trip it, load it into
    a fresh policy and go on with that one."""
    out = []
    for i, v in enumerate(values):
        if cut is not None and i == cut:
            state = json.loads(json.dumps(policy.state_dict()))
            policy = build_policy(policy.settings_mapping())
            policy.load_state_dict(state)
        epoch = (i + 1) * step - 1
        d = policy.update(epoch, {"ndcg@10": v}, train_loss=1.0 / (i + 1), elapsed_seconds=float(i))
        out.append(d)
        if d.stop:
            break
    return out


@settings(max_examples=200, deadline=None)
@given(m=mappings(), values=values_st, step=st.integers(1, 3))
def test_never_stops_in_warmup(m, values, step) -> None:
    """Without budgets and with finite values, no stop happens before the warmup epoch."""
    for d in decisions(build_policy(m), values, step):
        if d.stop:
            assert d.epoch >= m["warmup"]


@settings(max_examples=200, deadline=None)
@given(m=mappings(), values=values_st, cut=st.integers(0, 40))
def test_state_roundtrip_changes_nothing(m, values, cut) -> None:
    """Saving, JSON-serialising and restoring the state at any point changes no later decision."""
    straight = decisions(build_policy(m), values)
    resumed = decisions(build_policy(m), values, cut=cut)
    assert resumed == straight


@settings(max_examples=150, deadline=None)
@given(m=mappings(), first=values_st, second=values_st)
def test_reuse_after_reset_equals_fresh(m, first, second) -> None:
    """A policy reset after one fit decides the next fit exactly like a fresh one (Keras' `best` bug)."""
    reused = build_policy(m)
    decisions(reused, first)
    reused.reset()
    assert decisions(reused, second) == decisions(build_policy(m), second)


def test_keras_best_not_reset_regression() -> None:
    """Fit 1 reaches 0.9; fit 2 peaks at 0.3. A reused policy must still see fit 2's improvements."""
    p = build_policy({"monitor": "ndcg@10", "patience": 2})
    decisions(p, [0.5, 0.9, 0.8])
    p.reset()
    d = decisions(p, [0.1, 0.2, 0.3, 0.25])
    assert p.best_epoch == 2 and p.best_score == 0.3 and not d[-1].stop


def test_second_fit_without_reset_is_refused() -> None:
    """Feeding epoch 0 again without reset() is an error, not silently carried-over state."""
    p = build_policy({"monitor": "ndcg@10"})
    p.update(0, {"ndcg@10": 0.1})
    with pytest.raises(ValueError, match="call reset"):
        p.update(0, {"ndcg@10": 0.1})


@settings(max_examples=200, deadline=None)
@given(m=mappings(), values=values_st)
def test_ema_alpha_one_equals_raw(m, values) -> None:
    """EMA with alpha 1 decides exactly like no smoothing."""
    m = {k: v for k, v in m.items() if k not in ("ema_alpha", "window")}
    raw = decisions(build_policy({**m, "smoothing": "none"}), values)
    ema = decisions(build_policy({**m, "smoothing": "ema", "ema_alpha": 1.0}), values)
    strip = lambda ds: [(d.stop, d.reason, d.best_epoch, d.wait_count, d.smoothed) for d in ds]  # noqa: E731
    assert strip(ema) == [(d.stop, d.reason, d.best_epoch, d.wait_count, d.value) for d in raw]


@settings(max_examples=200, deadline=None)
@given(values=values_st)
def test_best_is_first_argmax_without_smoothing(values) -> None:
    """With no smoothing, min_delta 0 and ties not counting, the restored best is the first maximum."""
    p = build_policy({"monitor": "ndcg@10", "patience": None})
    decisions(p, values)
    assert p.best_score == max(values) and p.best_epoch == values.index(max(values))


@settings(max_examples=200, deadline=None)
@given(m=mappings(), values=values_st)
def test_dynamic_patience_stays_within_bounds(m, values) -> None:
    """Effective patience never drops below `patience` nor exceeds `max_patience`."""
    for d in decisions(build_policy(m), values):
        if m["patience"] is not None:
            cap = m.get("dynamic_patience", {}).get("max_patience", m["patience"])
            assert m["patience"] <= d.patience <= cap


@settings(max_examples=100, deadline=None)
@given(m=mappings(), values=st.lists(st.floats(0, 1) | st.just(math.nan), min_size=1, max_size=30))
def test_disabled_never_stops(m, values) -> None:
    """enabled: false never stops, whatever the values, but still tracks the best."""
    ds = decisions(build_policy({**m, "enabled": False, "max_epochs": 1, "check_finite": "stop"}), values)
    assert len(ds) == len(values) and not any(d.stop for d in ds)
    finite = [v for v in values if math.isfinite(v)]
    assert (ds[-1].best_epoch is None) == (not finite)


def test_load_state_refuses_missing_keys_and_other_versions() -> None:
    """A state missing keys, of another version, or for another monitor is refused with a clear error."""
    p = build_policy({"monitor": "ndcg@10"})
    p.update(0, {"ndcg@10": 0.1})
    state = p.state_dict()
    broken = {**state, "state": {k: v for k, v in state["state"].items() if k != "wait_count"}}
    with pytest.raises(StateError, match="missing keys: wait_count"):
        build_policy({"monitor": "ndcg@10"}).load_state_dict(broken)
    with pytest.raises(StateError, match="version 99"):
        build_policy({"monitor": "ndcg@10"}).load_state_dict({**state, "version": 99})
    with pytest.raises(StateError, match="for monitor 'ndcg@10'"):
        build_policy({"monitor": "recall@10"}).load_state_dict(state)
    with pytest.raises(StateError, match="not a rec_es policy state"):
        build_policy({"monitor": "ndcg@10"}).load_state_dict({"wait_count": 0})


def test_state_holds_no_settings() -> None:
    """state_dict carries learned state only: changing patience and reloading uses the new patience."""
    p = build_policy({"monitor": "ndcg@10", "patience": 1})
    p.update(0, {"ndcg@10": 0.5})
    assert "min_delta" not in p.state_dict()["state"]
    q = build_policy({"monitor": "ndcg@10", "patience": 3})
    q.load_state_dict(p.state_dict())
    assert q.update(1, {"ndcg@10": 0.1}).reason is StopReason.NOT_STOPPED
