"""min_delta: auto and improvement: significant, driven by scripted scores (and per-user scores) with the
expected margins, p-values and stops worked out by hand in the comments."""
from __future__ import annotations

import json
import math

import pytest

from rec_es import ConfigError, build_policy
from rec_es.policy import StopReason
from rec_es.policy.errors import RecEsError

CURVE = [0.10, 0.12, 0.11, 0.13, 0.12, 0.14]
# the curve noise after 5 values: first differences .02 -.01 .02 -.01, median .005, |d - .005| all .015,
# so MAD .015 and the margin 1.4826 * .015
CURVE_MARGIN = 1.482602218505602 * 0.015


def run(mapping: dict, scores: list[float], per_user: list[list[float]] | None = None) -> list:
    policy = build_policy({"monitor": "ndcg@10", **mapping})
    out = []
    for epoch, score in enumerate(scores):
        users = None if per_user is None else {"ndcg@10": per_user[epoch]}
        d = policy.update(epoch, {"ndcg@10": score}, per_user=users)
        out.append(d)
        if d.stop:
            break
    return out


def test_auto_margin_from_the_curve() -> None:
    """No per-user scores: margin 0 until 5 values, then 1.4826·MAD(first differences) = 0.02224, so 0.14 does not
    beat the best 0.13 by it: the wait reaches patience 2 at epoch 5 (with min_delta 0 epoch 5 improves)."""
    ds = run({"patience": 2, "min_delta": "auto"}, CURVE)
    assert [d.improved for d in ds] == [True, True, False, True, False, False]
    assert ds[-1].stop and ds[-1].reason is StopReason.PATIENCE and ds[-1].epoch == 5
    assert ds[4].measured["min_delta"] == {"value": 0.0, "source": "not measured yet (fewer than 5 values)"}
    assert ds[5].measured["min_delta"]["value"] == pytest.approx(CURVE_MARGIN)
    assert "did not improve by more than the measured noise (0.022239)" in ds[-1].message
    assert "(min_delta: auto, curve: 1.4826·MAD(first differences))" in ds[-1].message
    assert run({"patience": 2}, CURVE)[5].improved


# per-user scores of 4 users; evaluation 1 - evaluation 0 = (.1, 0, 0, .1): mean .05, sd sqrt(4 * .05^2 / 3)
# = .057735, SE = sd / 2 = .028868 < .05: improves. Evaluation 2 - evaluation 1 = (.1, -.02, 0, 0): mean .02,
# squared deviations .0064 + .0016 + .0004 + .0004 = .0088, sd sqrt(.0088 / 3) = .054160, SE .027080 > .02.
USERS = [[0.1, 0.2, 0.3, 0.4], [0.2, 0.2, 0.3, 0.5], [0.3, 0.18, 0.3, 0.5]]
MEANS = [0.25, 0.3, 0.32]


def test_auto_margin_from_per_user_scores() -> None:
    """With per-user scores the margin is the SE of the paired difference to the best: epoch 1 improves by .05 >
    .028868, epoch 2 by .02 < .027080 does not, so patience 1 stops at epoch 2."""
    ds = run({"patience": 1, "min_delta": "auto"}, MEANS, USERS)
    assert [d.improved for d in ds] == [True, True, False]
    assert ds[1].measured["min_delta"]["value"] == pytest.approx(0.05773503 / 2)
    assert ds[2].measured["min_delta"] == {"value": pytest.approx(0.02708013), "source": "per-user paired SE vs epoch 1"}
    assert ds[-1].stop and "per-user paired SE vs epoch 1" in ds[-1].message


# evaluation 1 - evaluation 0 = (.1, 0, 0, .1): t = .05 / .028868 = sqrt(3), df 3. Student's t with 3 degrees of
# freedom has F(t) = 1/2 + (1/pi) (u / (1 + u^2) + atan u), u = t / sqrt(3) = 1: F = 1/2 + (1/2 + pi/4) / pi, so
# the one-sided p = 1/2 - 1/(2 pi) - 1/4 = 0.090845.
P_T3 = 0.25 - 1 / (2 * math.pi)


@pytest.mark.parametrize("alpha,improved,stop", [(0.05, False, True), (0.1, True, False)])
def test_significant_improvement_is_a_paired_t_test(alpha: float, improved: bool, stop: bool) -> None:
    """p = 0.0908 for epoch 1 against epoch 0: refused at alpha 0.05 (patience 1 stops, naming the test and p),
    accepted at alpha 0.1."""
    ds = run({"patience": 1, "improvement": "significant", "alpha": alpha}, MEANS[:2], USERS[:2])
    sig = ds[1].measured["significance"]
    assert sig["p_value"] == pytest.approx(P_T3) and sig["confirmed"] is improved
    assert sig["test"] == "paired t over 4 users vs epoch 0"
    assert ds[1].improved is improved and ds[1].stop is stop
    if stop:
        assert ds[1].reason is StopReason.PATIENCE
        assert f"paired t-test at alpha {alpha:g}; last p = 0.0908" in ds[1].message
        assert "raise early_stopping.alpha" in ds[1].message


def test_refused_improvement_does_not_move_the_best() -> None:
    """A refused improvement leaves the best (and the test's reference) where it was: epoch 2 is tested against
    epoch 0, not epoch 1 (diff (.2, -.02, 0, .1))."""
    ds = run({"patience": 3, "improvement": "significant", "alpha": 0.05}, MEANS, USERS)
    assert not ds[1].improved and ds[2].measured["significance"]["test"].endswith("vs epoch 0")
    assert ds[2].wait_count == 2


def test_significance_without_per_user_scores_falls_back_to_the_curve() -> None:
    """No per-user scores (a replayed stock log): a z-test of the gain against the curve noise; 0.14 - 0.13 = 0.01
    is z = 0.01 / 0.02224 = 0.4497, p = 0.3265 at epoch 5, so no improvement; the decision says which test."""
    ds = run({"patience": 5, "improvement": "significant"}, CURVE)
    sig = ds[5].measured["significance"]
    assert sig["test"] == "z against the curve noise (no per-user scores)"
    assert sig["p_value"] == pytest.approx(0.5 * math.erfc(0.01 / CURVE_MARGIN / math.sqrt(2)))
    assert not ds[5].improved and ds[3].improved  # before 5 values there is no noise to test against: accepted


def test_per_user_keys_and_composites() -> None:
    """The policy asks for the monitor's per-user scores only when a noise rule needs them; a composite monitor is
    tested on the weighted per-user sum."""
    assert build_policy({"monitor": "ndcg@10"}).per_user_keys == ()
    assert build_policy({"monitor": "ndcg@10", "min_delta": "auto"}).per_user_keys == ("ndcg@10",)
    assert build_policy({"monitor": "auc", "min_delta": "auto"}).per_user_keys == ()  # the curve's noise instead
    p = build_policy({"monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "improvement": "significant", "patience": 1})
    assert p.per_user_keys == ("ndcg@10", "recall@10")
    p.update(0, {"ndcg@10": 0.2, "recall@10": 0.4}, per_user={"ndcg@10": [0.1, 0.3], "recall@10": [0.2, 0.6]})
    # composite per user: (.15, .45) then (.25, .45): diff (.1, 0), mean .05, SE .05, t = 1, df 1: p = 1/4
    d = p.update(1, {"ndcg@10": 0.25, "recall@10": 0.45}, per_user={"ndcg@10": [0.2, 0.3], "recall@10": [0.3, 0.6]})
    assert d.measured["significance"]["p_value"] == pytest.approx(0.25)


def test_bad_per_user_input_is_refused() -> None:
    """Per-user scores lacking the monitor, or of another number of users than the best's, are errors."""
    p = build_policy({"monitor": "ndcg@10", "improvement": "significant"})
    with pytest.raises(RecEsError, match="per-user scores of ndcg@10 are needed"):
        p.update(0, {"ndcg@10": 0.1}, per_user={"recall@10": [0.1, 0.2]})
    p.reset()
    p.update(0, {"ndcg@10": 0.15}, per_user={"ndcg@10": [0.1, 0.2]})
    with pytest.raises(RecEsError, match="3 per-user scores, the best .epoch 0. had 2"):
        p.update(1, {"ndcg@10": 0.2}, per_user={"ndcg@10": [0.1, 0.2, 0.3]})


@pytest.mark.parametrize("mapping,pattern", [
    ({"improvement": "significant", "monitor": "auc"},
     (r"early_stopping\.improvement: the monitor's auc has no per-user values .*allowed: threshold \(a significance "
      r"test needs per-user scores\) \(got 'significant'\)")),
    ({"improvement": "significant", "monitor": {"ndcg@10": 0.5, "itemcoverage@10": 0.5}, "mode": "max"},
     r"early_stopping\.improvement: the monitor's itemcoverage@10 has no per-user values"),
    ({"improvement": "sometimes"}, r"early_stopping\.improvement: allowed: threshold \| significant \(got 'sometimes'\)"),
    ({"improvement": "significant", "alpha": 0}, r"early_stopping\.alpha: allowed: a number in \(0, 0\.5\] \(got 0\)"),
    ({"improvement": "significant", "alpha": 0.6}, r"early_stopping\.alpha: allowed: a number in \(0, 0\.5\] \(got 0\.6\)"),
    ({"alpha": 0.1}, r"early_stopping\.alpha: alpha is set but improvement is 'threshold'"),
    ({"min_delta": "big"}, r"early_stopping\.min_delta: allowed: a number >= 0 or auto \(got 'big'\)"),
    ({"min_delta": "auto", "min_delta_mode": "rel"},
     r"early_stopping\.min_delta_mode: min_delta: auto measures an absolute margin; allowed: abs with min_delta: auto"),
])
def test_bad_settings_are_named(mapping: dict, pattern: str) -> None:
    """Each bad noise setting is a ConfigError naming the file, key, allowed values and what was given."""
    with pytest.raises(ConfigError, match=f"^policy.yaml: {pattern}"):
        build_policy({"monitor": "ndcg@10", **mapping}, source="policy.yaml")


def test_version_1_state_loads_with_a_fresh_noise_state() -> None:
    """A state saved before the noise rule existed (version 1, no noise_* keys) loads; the rule starts afresh.
    Version 1's layout is today's without the keys of every rule whose ``state_since`` is later, as the loader
    reads it (so a rule added with state later needs no change here)."""
    from rec_es.policy import rules

    p = build_policy({"monitor": "ndcg@10", "min_delta": "auto"})
    p.update(0, {"ndcg@10": 0.1})
    state = json.loads(json.dumps(p.state_dict()))
    later = {k for part in rules.PARTS if part.state_since > 1 for k in part.fresh_state(p.settings)}
    assert {"noise_values"} <= later <= set(state["state"])
    old = {**state, "version": 1, "state": {k: v for k, v in state["state"].items() if k not in later}}
    q = build_policy({"monitor": "ndcg@10", "min_delta": "auto"})
    q.load_state_dict(old)
    assert q.state_dict()["state"]["noise_values"] == [] and q.best_epoch == 0


def test_per_user_keys_of_a_config() -> None:
    """The keys with one value per user: per-user top-k metrics at each k in RecBole's order (not the aggregate
    top-k ones), target_ce only under full ranking and without a pair-scored value metric (GAUC ranks)."""
    from rec_es.policy.monitor import per_user_keys

    assert per_user_keys(["Recall", "NDCG", "ItemCoverage"], [10, 20], True) == (
        "recall@10", "recall@20", "ndcg@10", "ndcg@20", "target_ce")
    assert per_user_keys("MRR", 10, False) == ("mrr@10",)
    assert per_user_keys(["NDCG", "GAUC"], [10], True) == ("ndcg@10", "target_ce")
    assert per_user_keys(["AUC", "LogLoss"], [10], True) == ()


def test_missing_per_user_scores_name_every_metric_needed_and_passed() -> None:
    """The error for per-user scores lacking the monitor names every monitor metric missing and every key that was
    passed (sorted, lower-cased), or 'none' when the mapping is empty."""
    p = build_policy({"monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "improvement": "significant"})
    needed = ("per-user scores of ndcg@10, recall@10 are needed (early_stopping.min_delta: auto or improvement: "
              "significant) but the evaluation passed only ")
    with pytest.raises(RecEsError) as info:
        p.update(0, {"ndcg@10": 0.1, "recall@10": 0.1}, per_user={"MRR@10": [0.1], "hit@10": [0.2]})
    assert str(info.value) == needed + "hit@10, mrr@10"
    p.reset()
    with pytest.raises(RecEsError) as info:
        p.update(0, {"ndcg@10": 0.1, "recall@10": 0.1}, per_user={})
    assert str(info.value) == needed + "none"


def test_per_user_columns_of_different_lengths_are_refused() -> None:
    """A composite monitor's per-user columns must have one value per user each: 2 and 3 users is an error."""
    p = build_policy({"monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "min_delta": "auto"})
    with pytest.raises(RecEsError) as info:
        p.update(0, {"ndcg@10": 0.15, "recall@10": 0.2},
                 per_user={"ndcg@10": [0.1, 0.2], "recall@10": [0.1, 0.2, 0.3]})
    assert str(info.value) == "per-user scores of the monitor's metrics have different numbers of users"


@pytest.mark.parametrize("monitor,before,after,se", [
    # weights 1 and 1: per user ndcg + recall, (.1 + .2, .3 + .2) then (.2 + .2, .3 + .6): difference (.1, .4);
    # with two users the SE of the mean difference is |d1 - d2| / 2 = .15 (ndcg alone would give .05)
    ({"ndcg@10": 1.0, "recall@10": 1.0}, {"ndcg@10": [0.1, 0.3], "recall@10": [0.2, 0.2]},
     {"ndcg@10": [0.2, 0.3], "recall@10": [0.2, 0.6]}, 0.15),
    # one metric of weight 2: difference 2 * (.1, 0) = (.2, 0), SE .1 (unweighted it would be .05)
    ({"ndcg@10": 2.0}, {"ndcg@10": [0.1, 0.3]}, {"ndcg@10": [0.2, 0.3]}, 0.1),
    # one metric of weight 1: difference (.1, 0), SE .05
    ({"ndcg@10": 1.0}, {"ndcg@10": [0.1, 0.3]}, {"ndcg@10": [0.2, 0.3]}, 0.05),
])
def test_per_user_margin_is_measured_on_the_weighted_monitor(monitor: dict, before: dict, after: dict,
                                                             se: float) -> None:
    """min_delta: auto measures the paired SE on the monitor as weighted: each user's weighted sum of the terms."""
    p = build_policy({"monitor": monitor, "min_delta": "auto"})
    mean = {k: sum(v) / len(v) for k, v in before.items()}
    p.update(0, mean, per_user=before)
    d = p.update(1, {k: sum(v) / len(v) for k, v in after.items()}, per_user=after)
    assert d.measured["min_delta"] == {"value": pytest.approx(se), "source": "per-user paired SE vs epoch 0"}


def test_p_equal_to_alpha_is_not_significant() -> None:
    """An improvement needs p < alpha strictly, and the decision records p, alpha, the test and the verdict. Ties
    improve (ties_improve: true), so epoch 5's 0.13 equal to the best 0.13 is tested: z = 0 against the curve noise
    of the first five values, p = 0.5 exactly, which at alpha 0.5 is refused; 0.131 (z > 0, p < 0.5) is not."""
    mapping = {"improvement": "significant", "alpha": 0.5, "ties_improve": True, "patience": 5}
    d = run(mapping, [0.10, 0.12, 0.11, 0.13, 0.12, 0.13])[5]
    assert not d.improved
    assert d.measured == {"significance": {"p_value": 0.5, "alpha": 0.5, "confirmed": False,
                                           "test": "z against the curve noise (no per-user scores)"}}
    d = run(mapping, [0.10, 0.12, 0.11, 0.13, 0.12, 0.131])[5]
    assert d.improved and d.measured["significance"]["confirmed"] is True


def test_significance_stop_message_in_full() -> None:
    """A patience stop under improvement: significant says, after the patience clause, that improvements must pass
    the test at alpha, and hints at alpha; with no p measured at the last evaluation (fewer than 5 values and no
    per-user scores) it names no p."""
    ds = run({"patience": 1, "improvement": "significant"}, [0.1, 0.1])
    assert ds[-1].message == (
        "stopped at epoch 1: ndcg@10 did not improve for 1 evaluation (1 epoch) since epoch 0 (0.1); patience 1 "
        "evaluations; improvements must pass a one-sided paired t-test at alpha 0.05; raise early_stopping.alpha "
        "or early_stopping.patience")


def test_other_stops_are_not_reworded_by_the_noise_rule() -> None:
    """Only a patience stop is reworded: an epoch budget stop under min_delta: auto and improvement: significant
    keeps the budget's own clause and hint."""
    ds = run({"patience": 5, "min_delta": "auto", "improvement": "significant", "max_epochs": 2}, [0.1, 0.2])
    assert ds[-1].reason is StopReason.MAX_EPOCHS
    assert ds[-1].message == ("stopped at epoch 1: the budget of early_stopping.max_epochs: 2 epochs is used up; "
                              "raise early_stopping.max_epochs")


def test_monitor_without_per_user_values_is_named_in_full() -> None:
    """Refusing improvement: significant for a monitor without per-user values names every such metric of the
    monitor, comma-separated, and lists RecBole's per-user top-k metrics (sorted) in the message."""
    with pytest.raises(ConfigError) as info:
        build_policy({"monitor": {"auc": 0.5, "itemcoverage@10": 0.5}, "mode": "max", "improvement": "significant"},
                     source="policy.yaml")
    assert str(info.value) == (
        "policy.yaml: early_stopping.improvement: the monitor's auc, itemcoverage@10 has no per-user values (only "
        "RecBole's top-k metrics hit, map, mrr, ndcg, precision, recall average one value per user); allowed: "
        "threshold (a significance test needs per-user scores) (got 'significant')")


def test_curve_fallback_tests_the_gain_in_a_smaller_is_better_monitor() -> None:
    """For a monitor where smaller is better (target_ce) the z-test against the curve noise takes the gain as
    best - value: CURVE mirrored (0.90, 0.88, 0.89, 0.87, 0.88) has the same noise 1.4826 * .015 = 0.022239 and
    best 0.87; 0.80 gains 0.07, z = 0.07 / 0.022239 = 3.1476, p = 0.000823 < 0.05: an improvement. (The gain
    taken as value - best, z = -3.15, p = 0.99918, would refuse it; as best + value, p would be 0.)"""
    policy = build_policy({"monitor": "target_ce", "improvement": "significant", "patience": 10})
    ds = [policy.update(e, {"target_ce": v}) for e, v in enumerate([0.90, 0.88, 0.89, 0.87, 0.88, 0.80])]
    assert [d.improved for d in ds] == [True, True, False, True, False, True]
    sig = ds[5].measured["significance"]
    assert sig["p_value"] == pytest.approx(0.5 * math.erfc(0.07 / CURVE_MARGIN / math.sqrt(2)))
    assert sig["p_value"] == pytest.approx(0.000823, abs=1e-6)
    assert sig["confirmed"] is True and sig["test"] == "z against the curve noise (no per-user scores)"


def test_a_non_finite_evaluation_is_neither_measured_nor_tested() -> None:
    """A NaN (check_finite: miss) is not tested for significance (no p, nothing in the decision's measured) and
    does not enter the curve noise: after CURVE's five values and a NaN, the next value is tested against the
    noise of those five values (0.022239) and the state holds only the finite values."""
    policy = build_policy({"monitor": "ndcg@10", "improvement": "significant", "check_finite": "miss",
                           "patience": 10})
    for epoch, v in enumerate(CURVE[:5]):
        policy.update(epoch, {"ndcg@10": v})
    d = policy.update(5, {"ndcg@10": math.nan})
    assert d.measured == {} and not d.improved
    assert policy.state_dict()["state"]["noise_p"] is None
    assert policy.state_dict()["state"]["noise_values"] == CURVE[:5]
    # 0.14 against the best 0.13: z = 0.01 / 0.022239 = 0.4497, p = 0.3265 (as without the NaN)
    d = policy.update(6, {"ndcg@10": 0.14})
    assert d.measured["significance"]["p_value"] == pytest.approx(0.5 * math.erfc(0.01 / CURVE_MARGIN / math.sqrt(2)))


def test_a_non_finite_evaluation_ignores_its_per_user_scores() -> None:
    """min_delta: auto at a NaN evaluation (check_finite: miss) measures no paired SE from its per-user scores
    (with two finite values before it the margin is 'not measured yet'), and per-user scores lacking the monitor
    are not an error there."""
    policy = build_policy({"monitor": "ndcg@10", "min_delta": "auto", "check_finite": "miss", "patience": 5})
    policy.update(0, {"ndcg@10": MEANS[0]}, per_user={"ndcg@10": USERS[0]})
    policy.update(1, {"ndcg@10": MEANS[1]}, per_user={"ndcg@10": USERS[1]})
    d = policy.update(2, {"ndcg@10": math.nan}, per_user={"ndcg@10": USERS[2]})
    # measured from USERS[2] against USERS[1] it would be SE .027080, "per-user paired SE vs epoch 1"
    assert d.measured == {"min_delta": {"value": 0.0, "source": "not measured yet (fewer than 5 values)"}}
    d = policy.update(3, {"ndcg@10": math.nan}, per_user={})
    assert not d.improved and d.measured["min_delta"]["value"] == 0.0


def test_no_noise_state_without_auto_or_significant() -> None:
    """With neither min_delta: auto nor improvement: significant the noise rule records nothing: no values, no
    reference (and per-user scores passed are not read)."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 3})
    for epoch, v in enumerate(CURVE):
        policy.update(epoch, {"ndcg@10": v}, per_user={"recall@10": [0.1, 0.2]})
    state = policy.state_dict()["state"]
    assert state["noise_values"] == [] and state["noise_reference"] is None and state["noise_reference_epoch"] is None


# a jump then alternating noise: 0.30, 0.34, then -0.01, +0.01, ... (odd epochs 0.34, even epochs 0.33).
JUMPY = [0.30] + [0.34 if e % 2 else 0.33 for e in range(1, 22)]


def test_curve_noise_window_is_the_last_20_values() -> None:
    """The curve noise is measured over the last 20 raw values, and the state keeps exactly those 20 (the ones the
    next measurement reads).
    At epoch 20 the 20 values 0.30 .. 0.34 have 19 differences: .04, nine -.01 and nine +.01; median +.01,
    absolute deviations nine .02, nine 0 and one .03, MAD .02: margin 1.4826 * .02 = 0.029652 (over the last 19
    values alone, the jump left out: median 0, MAD .01, margin 0.014826)."""
    policy = build_policy({"monitor": "ndcg@10", "min_delta": "auto", "patience": 30})
    ds = [policy.update(e, {"ndcg@10": v}) for e, v in enumerate(JUMPY)]
    assert ds[20].measured["min_delta"]["value"] == pytest.approx(1.482602218505602 * 0.02)
    assert ds[20].measured["min_delta"]["value"] == pytest.approx(0.029652, abs=1e-6)
    assert policy.state_dict()["state"]["noise_values"] == JUMPY[-20:]
    assert len(JUMPY) == 22
