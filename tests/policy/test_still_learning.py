"""still_learning: hold back a plateau stop while the curve still rises; stop once it confidently does not."""
from __future__ import annotations

import math

import pytest

from rec_es import ConfigError, build_policy
from rec_es.policy import StopReason

# A straight rise of 0.001 per epoch with min_delta 0.01 and patience 10: epoch 0 is the best, epochs 1..10 gain
# 0.001..0.010, never more than 0.01, so the wait reaches 10 at epoch 10 and patience stops there; epoch 11 gains
# 0.011 > 0.01 and would improve.
LINE = [round(0.3 + 0.001 * i, 4) for i in range(30)]
# Alternating 0.30/0.31: the best 0.31 comes at epoch 1, ties do not count, so patience 9 stops at epoch 10.
FLAT = [0.30 if i % 2 == 0 else 0.31 for i in range(30)]


def run(mapping: dict, scores: list[float], budget: int | None = 100) -> list:
    policy = build_policy({"monitor": "ndcg@10", **mapping}, budget=budget)
    out = []
    for epoch, score in enumerate(scores):
        d = policy.update(epoch, {"ndcg@10": score}, train_loss=100.0 - epoch)
        out.append(d)
        if d.stop:
            break
    return out


@pytest.mark.parametrize("name,mapping,scores,expected", [
    # id, settings, scores, expected (stop epoch or None, reason, epochs at which a stop was held back)
    ("off: patience stops the straight rise", {"patience": 10, "min_delta": 0.01}, LINE, (10, "patience", [])),
    ("hold: the rise goes on (and the same wait comes back 11 epochs later)",
     {"patience": 10, "min_delta": 0.01, "still_learning": "hold"}, LINE, (None, "not_stopped", [10, 21])),
    ("hold: a flat curve still stops", {"patience": 9, "still_learning": "hold"}, FLAT, (10, "patience", [])),
    ("hold: too early to tell (7 evaluations < 8)", {"patience": 6, "min_delta": 0.01, "still_learning": "hold"},
     LINE, (6, "patience", [])),
])
def test_hold_table(name: str, mapping: dict, scores: list[float], expected: tuple) -> None:
    """Scripted curves: the straight rise is held at epoch 10 (and improves at 11), a flat one is not held."""
    ds = run(mapping, scores)
    last = ds[-1]
    got = (last.epoch if last.stop else None, last.reason.value, [d.epoch for d in ds if "held" in d.measured])
    assert got == expected
    if expected[2]:
        held = ds[expected[2][0]]
        assert held.measured["held"]["reason"] == "patience"
        assert "patience would stop, held: ndcg@10 is still learning" in held.message
        assert ds[11].improved


@pytest.mark.parametrize("budget,max_epochs,horizon", [(100, None, 99), (100, 50, 49), (None, None, 21)])
def test_the_horizon_is_the_budget(budget: int | None, max_epochs: int | None, horizon: int) -> None:
    """The estimate looks to the budget's last epoch: the run's epochs, max_epochs when smaller, and without either
    as long again as the run so far (11 evaluations at epoch 10: epoch 21)."""
    mapping = {"patience": 10, "min_delta": 0.01, "still_learning": "hold"}
    if max_epochs is not None:
        mapping["max_epochs"] = max_epochs
    ds = run(mapping, LINE[:11], budget=budget)
    est = ds[10].measured["still_learning"]
    assert est["budget"] == horizon + 1
    assert f"expected by epoch {horizon}," in ds[10].message


def test_stop_mode_stops_a_falling_curve_not_a_plateau() -> None:
    """A curve saturated by epoch 15 (0.3 - 0.2 exp(-t/2), wiggle up to ±0.002) that then falls 0.0005 per epoch
    (overfitting), budget 100, no patience: stop mode stops it once the gain's upper bound is under the noise
    margin, and says what it measured. The same curve without the fall is a plateau, and a plateau is not stopped
    before the budget's end: the calibrated upper discrepancy (DISCREPANCY, fitted on 24 recorded runs, where
    plateaus rose again) keeps the upper bound above the margin while epochs are left. hold never stops."""
    plateau = [round(0.3 - 0.2 * math.exp(-i / 2) + 0.001 * ((i * 7) % 5 - 2), 4) for i in range(60)]
    falling = [round(v - 0.0005 * max(0, i - 15), 4) for i, v in enumerate(plateau)]
    ds = run({"patience": None, "still_learning": "stop"}, falling, budget=100)
    last = ds[-1]
    assert last.stop and last.reason is StopReason.STILL_LEARNING and 20 <= last.epoch < 40
    est = last.measured["still_learning"]
    assert est["state"] == "stopped" and est["gain_hi"] <= est["margin"] and est["gain"] < 0
    assert "ndcg@10 has stopped learning (confidence" in last.message
    assert "set early_stopping.still_learning: hold" in last.message
    assert not any(d.stop for d in run({"patience": None, "still_learning": "stop"}, plateau, budget=100))
    assert not any(d.stop for d in run({"patience": None, "still_learning": "stop"}, plateau[:49], budget=50))
    assert not any(d.stop for d in run({"patience": None, "still_learning": "hold"}, falling, budget=100))


def test_stop_mode_lets_a_rising_curve_run() -> None:
    """The straight rise never looks finished: stop mode with no patience trains to the end of the scores."""
    assert not any(d.stop for d in run({"patience": None, "still_learning": "stop"}, LINE))


@pytest.mark.parametrize("mapping,pattern", [
    ({"still_learning": "maybe"}, r"early_stopping\.still_learning: allowed: off \| hold \| stop \(got 'maybe'\)"),
    ({"still_learning": "hold", "learning_confidence": 1},
     r"early_stopping\.learning_confidence: allowed: a number in \(0\.5, 1\) \(got 1\)"),
    ({"learning_confidence": 0.8}, r"early_stopping\.learning_confidence: learning_confidence is set but "
                                   r"still_learning is 'off'"),
])
def test_bad_settings_are_named(mapping: dict, pattern: str) -> None:
    """Bad still_learning settings are ConfigErrors naming the file, key, allowed values and what was given."""
    with pytest.raises(ConfigError, match=f"^p.yaml: {pattern}"):
        build_policy({"monitor": "ndcg@10", **mapping}, source="p.yaml")
