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
    assert f"ndcg@10 expected by epoch {horizon}," in ds[10].message  # the monitor by name, not "the monitor"


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
    ({"learning_confidence": 0.8}, (r"early_stopping\.learning_confidence: learning_confidence is set but "
                                    r"still_learning is 'off'")),
])
def test_bad_settings_are_named(mapping: dict, pattern: str) -> None:
    """Bad still_learning settings are ConfigErrors naming the file, key, allowed values and what was given."""
    with pytest.raises(ConfigError, match=f"^p.yaml: {pattern}"):
        build_policy({"monitor": "ndcg@10", **mapping}, source="p.yaml")


def feed(mapping: dict, scores: list[float], losses: list[float | None], budget: int | None = 100) -> tuple:
    """The policy and its decisions up to the first stop, with the given training loss at each evaluation."""
    policy = build_policy({"monitor": "ndcg@10", **mapping}, budget=budget)
    out = []
    for epoch, (score, loss) in enumerate(zip(scores, losses)):
        d = policy.update(epoch, {"ndcg@10": score}, train_loss=loss)
        out.append(d)
        if d.stop:
            break
    return policy, out


HOLD = {"patience": 10, "min_delta": 0.01, "still_learning": "hold"}
FALLING_LOSS = [100.0 - i for i in range(30)]


def test_the_estimate_is_recorded_in_the_decision_and_the_state() -> None:
    """A held stop records the estimate it judged: the decision's measured `still_learning` has exactly the epoch,
    state, confidence, gain, its bounds, margin, noise and budget (not the facts); the saved state has the same and
    the facts, whose first sentence is the reason the stop was held."""
    policy, ds = feed(HOLD, LINE[:11], FALLING_LOSS)
    est = ds[10].measured["still_learning"]
    assert set(est) == {"epoch", "state", "confidence", "gain", "gain_lo", "gain_hi", "margin", "noise", "budget"}
    assert (est["epoch"], est["state"], est["budget"]) == (10, "learning", 100)
    assert est["gain_lo"] < est["gain"] < est["gain_hi"] and est["noise"] >= 0
    saved = policy.state_dict()["state"]["learning_estimate"]
    assert saved == {**est, "facts": saved["facts"]}
    assert ds[10].message.endswith(f"held: ndcg@10 is still learning (confidence 1.00): {saved['facts'][0]}")


def test_learning_confidence_sets_the_width_of_the_bounds() -> None:
    """`learning_confidence` is the one-sided level of each bound: on the straight rise at epoch 10 (one plausible
    curve, so each bound is gain -+ z * se) the half-widths scale with z(level): z(0.6) = 0.2533 and
    z(0.9) = 1.2816, a ratio of 0.1977; 0.99 widens them further."""
    def half_widths(level: float) -> tuple[float, float]:
        _, ds = feed({**HOLD, "learning_confidence": level}, LINE[:11], FALLING_LOSS)
        est = ds[10].measured["still_learning"]
        return est["gain"] - est["gain_lo"], est["gain_hi"] - est["gain"]

    low, default, high = half_widths(0.6), half_widths(0.9), half_widths(0.99)
    assert low[0] / default[0] == pytest.approx(0.1977, rel=0.01)
    assert low[1] / default[1] == pytest.approx(0.1977, rel=0.01)
    assert high[0] > default[0] and high[1] > default[1]


def test_stop_mode_holds_a_plateau_stop_too() -> None:
    """`stop` also holds back other stops: on the straight rise the patience stop at epoch 10 (and 21) is held,
    with the reason taken from the estimate `stop` mode already made at that evaluation."""
    _, ds = feed({**HOLD, "still_learning": "stop"}, LINE, FALLING_LOSS)
    assert not ds[-1].stop and [d.epoch for d in ds if "held" in d.measured] == [10, 21]
    assert "patience would stop, held: ndcg@10 is still learning (confidence 1.00): exponential curve on " \
           "epochs 3-10:" in ds[10].message


def test_a_stalled_training_loss_is_not_held() -> None:
    """The training loss is passed on: a loss flat at 1.0 (Prechelt's P_5 = 0 < 0.1 per mille) means the model is
    not learning, so the patience stop at epoch 10 on the straight rise is not held (a falling loss holds it)."""
    _, ds = feed(HOLD, LINE, [1.0] * 30)
    assert ds[-1].stop and ds[-1].epoch == 10 and ds[-1].reason is StopReason.PATIENCE
    assert "held" not in ds[-1].measured


def test_a_loss_missing_at_any_evaluation_is_not_used() -> None:
    """Evaluations without a training loss are fine, but then the loss history is not used at all: with no loss at
    epoch 0 and a flat 1.0 after (which alone would read as stalled), the rise is held at epochs 10 and 21."""
    policy, ds = feed(HOLD, LINE, [None] + [1.0] * 29)
    assert not ds[-1].stop and [d.epoch for d in ds if "held" in d.measured] == [10, 21]
    assert policy.state_dict()["state"]["learning_losses"][:2] == [None, 1.0]


def test_off_keeps_no_history() -> None:
    """`still_learning: off` records nothing: the saved state's histories stay empty and no estimate is made."""
    policy, ds = feed({"patience": 10, "min_delta": 0.01}, LINE[:5], FALLING_LOSS)
    state = policy.state_dict()["state"]
    assert [state[k] for k in ("learning_epochs", "learning_values", "learning_losses", "learning_estimate")] \
        == [[], [], [], None]
    assert "still_learning" not in ds[-1].measured


def test_off_never_holds_even_with_a_history() -> None:
    """A run saved with `hold` and resumed with `off` does not hold: the patience stop at epoch 10 goes through
    although the loaded history (epochs 0-9 of the straight rise) would read as learning under `hold`."""
    saved, _ = feed(HOLD, LINE[:10], FALLING_LOSS)
    off = build_policy({"monitor": "ndcg@10", "patience": 10, "min_delta": 0.01}, budget=100)
    off.load_state_dict(saved.state_dict())
    d = off.update(10, {"ndcg@10": LINE[10]}, train_loss=90.0)
    assert d.stop and d.reason is StopReason.PATIENCE and "held" not in d.measured


def test_a_non_finite_evaluation_is_neither_recorded_nor_held() -> None:
    """With `check_finite: miss` a NaN at epoch 10 of the straight rise is the tenth miss: patience stops there and
    the stop is not held (the NaN says nothing about learning), and the NaN is not added to the history."""
    scores = LINE[:10] + [math.nan] + LINE[11:]
    policy, ds = feed({**HOLD, "check_finite": "miss"}, scores, FALLING_LOSS)
    assert ds[-1].stop and ds[-1].epoch == 10 and ds[-1].reason is StopReason.PATIENCE
    assert "held" not in ds[-1].measured
    assert policy.state_dict()["state"]["learning_epochs"] == list(range(10))


def test_the_stop_message_gives_every_fact_and_the_setting() -> None:
    """A still_learning stop says what it measured, every fact joined by '; ', then which setting to change."""
    plateau = [round(0.3 - 0.2 * math.exp(-i / 2) + 0.001 * ((i * 7) % 5 - 2), 4) for i in range(60)]
    falling = [round(v - 0.0005 * max(0, i - 15), 4) for i, v in enumerate(plateau)]
    policy, ds = feed({"patience": None, "still_learning": "stop"}, falling, [100.0 - i for i in range(60)])
    last = ds[-1]
    assert last.stop and last.reason is StopReason.STILL_LEARNING
    est = policy.state_dict()["state"]["learning_estimate"]
    assert len(est["facts"]) == 3
    assert last.message == (f"stopped at epoch {last.epoch}: ndcg@10 has stopped learning (confidence "
                            f"{est['confidence']:.2f}): " + "; ".join(est["facts"])
                            + "; set early_stopping.still_learning: hold (only hold back other stops) or raise "
                              "early_stopping.learning_confidence")


@pytest.mark.parametrize("patience,expected", [
    (None, (30, "still_learning")),   # the only plateau criterion: all_of stops when it fires
    (18, (30, "all_of")),             # best at epoch 12, wait 18 at epoch 30: both fire at once
    (100, (None, "not_stopped")),     # patience far off: all_of waits for it, up to the last score (epoch 59)
])
def test_stop_mode_is_one_criterion_of_all_of(patience: int | None, expected: tuple) -> None:
    """`still_learning: stop` counts as one plateau criterion for `combine: all_of` (`hold` adds none): on the
    curve that saturates at epoch 12 (0.3015) and then falls 0.0005 per epoch, the rule fires from epoch 30 on. Alone
    it stops the run there; with patience 18 both fire at epoch 30 and all_of stops; with patience 100 all_of waits
    for patience and the scores run out first."""
    plateau = [round(0.3 - 0.2 * math.exp(-i / 2) + 0.001 * ((i * 7) % 5 - 2), 4) for i in range(60)]
    falling = [round(v - 0.0005 * max(0, i - 15), 4) for i, v in enumerate(plateau)]
    ds = run({"patience": patience, "still_learning": "stop", "combine": "all_of"}, falling, budget=100)
    last = ds[-1]
    assert (last.epoch if last.stop else None, last.reason.value) == expected
    assert len(ds) == (31 if last.stop else 60)
