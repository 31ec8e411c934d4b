"""Same inputs, same stop epoch: rec_es against Lightning's and Keras' EarlyStopping and RecBole's own rule.

Lightning and Keras are not installed here, so their decision logic is transcribed below, line for line, from
lightning/pytorch/callbacks/early_stopping.py (_evaluate_stopping_criteria) and
keras/src/callbacks/early_stopping.py (on_epoch_end); RecBole's rule is imported from RecBole itself.
"""
from __future__ import annotations

import math
import operator

from hypothesis import given, settings
from hypothesis import strategies as st

from rec_es import build_policy

scores = st.lists(st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.4]) | st.floats(0, 1, allow_nan=False), min_size=1, max_size=40)
modes = st.sampled_from(["max", "min"])


def lightning_stop_epoch(values, mode, patience, min_delta=0.0, stopping_threshold=None, divergence_threshold=None,
                         check_finite=True):
    op = operator.gt if mode == "max" else operator.lt
    delta = min_delta if mode == "max" else -min_delta
    best = -math.inf if mode == "max" else math.inf
    wait = 0
    for epoch, current in enumerate(values):
        if check_finite and not math.isfinite(current):
            return epoch
        elif stopping_threshold is not None and op(current, stopping_threshold):
            return epoch
        elif divergence_threshold is not None and op(-current, -divergence_threshold):
            return epoch
        elif op(current - delta, best):
            best, wait = current, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch
    return None


def keras_stop_epoch(values, mode, patience, min_delta=0.0, baseline=None, start_from_epoch=0):
    op = operator.gt if mode == "max" else operator.lt
    delta = abs(min_delta) * (1 if mode == "max" else -1)
    best = -math.inf if mode == "max" else math.inf
    wait = 0
    for epoch, current in enumerate(values):
        if epoch < start_from_epoch:
            continue
        wait += 1
        if op(current - delta, best):
            best = current
            if baseline is None or op(current - delta, baseline):
                wait = 0
            continue
        if wait >= patience and epoch > 0:
            return epoch
    return None


def rec_es_stop_epoch(values, mapping):
    policy = build_policy(mapping)
    for epoch, v in enumerate(values):
        if policy.update(epoch, {"m@10": v}).stop:
            return epoch
    return None


@settings(max_examples=300, deadline=None)
@given(values=scores, mode=modes, patience=st.integers(1, 6), min_delta=st.sampled_from([0.0, 0.01, 0.05]),
       stop_thr=st.none() | st.floats(0, 1), div_thr=st.none() | st.floats(0, 1))
def test_matches_lightning(values, mode, patience, min_delta, stop_thr, div_thr) -> None:
    """monitor/mode/patience/min_delta/stopping_threshold/divergence_threshold decide like Lightning."""
    mapping = {"monitor": "m@10", "mode": mode, "patience": patience, "min_delta": min_delta,
               "stopping_threshold": stop_thr, "divergence_threshold": div_thr}
    assert rec_es_stop_epoch(values, mapping) == lightning_stop_epoch(values, mode, patience, min_delta, stop_thr, div_thr)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(0, 1) | st.just(math.nan), min_size=1, max_size=30), patience=st.integers(1, 5),
       check_finite=st.booleans())
def test_matches_lightning_check_finite(values, patience, check_finite) -> None:
    """check_finite true stops on NaN; false counts it as a miss, as Lightning's comparison with NaN does."""
    mapping = {"monitor": "m@10", "patience": patience, "check_finite": check_finite}
    assert rec_es_stop_epoch(values, mapping) == lightning_stop_epoch(values, "max", patience, check_finite=check_finite)


@settings(max_examples=300, deadline=None)
@given(values=scores, mode=modes, patience=st.integers(1, 6), min_delta=st.sampled_from([0.0, 0.01]),
       baseline=st.none() | st.floats(0, 1), start=st.integers(0, 5))
def test_matches_keras(values, mode, patience, min_delta, baseline, start) -> None:
    """baseline and start_from_epoch (with patience/min_delta/mode) decide like Keras."""
    mapping = {"monitor": "m@10", "mode": mode, "patience": patience, "min_delta": min_delta, "baseline": baseline,
               "start_from_epoch": start}
    assert rec_es_stop_epoch(values, mapping) == keras_stop_epoch(values, mode, patience, min_delta, baseline, start)


@settings(max_examples=400, deadline=None)
@given(values=st.lists(st.sampled_from([0.1, 0.2, 0.3]) | st.floats(-1, 1) | st.just(math.nan), min_size=1, max_size=40),
       stopping_step=st.integers(0, 6), bigger=st.booleans())
def test_recbole_legacy_matches_recbole(values, stopping_step, bigger) -> None:
    """recbole_legacy equals recbole.utils.early_stopping decision for decision (stop, update, best)."""
    from recbole.utils import early_stopping

    policy = build_policy({"preset": "recbole_legacy", "monitor": "mrr@10" if bigger else "rmse",
                           "stopping_step": stopping_step})
    best, cur_step = (-math.inf if bigger else math.inf), 0
    for epoch, value in enumerate(values):
        best, cur_step, stop_flag, update_flag = early_stopping(value, best, cur_step, stopping_step, bigger)
        d = policy.update(epoch, {"mrr@10" if bigger else "rmse": value})
        assert (d.stop, d.new_best, d.wait_count) == (stop_flag, update_flag, cur_step)
        if update_flag:
            assert policy.best_epoch == epoch and policy.best_score == best
        if stop_flag:
            break
