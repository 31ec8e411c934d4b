"""The probe's measured verdict: the best-of-K tests (Bonferroni against scipy, max-T calibrated on a null), the
per-user trend and the call."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rec_es.explain.probe_stats import (ALPHA, NOT_PREMATURE, PREMATURE, TREND_Z, best_of_n,
                                        curve_best_of_n, paired_trend, probe_call, t_quantile, best_of_n_differences)


def _null(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Per-user differences of K correlated evaluations whose expected gain is zero."""
    user = rng.normal(0, 0.1, n)
    return user[None, :] + rng.normal(0, 0.05, (k, n))


def test_bonferroni_is_k_times_the_t_tail() -> None:
    """Bonferroni: p = min(1, K * P(t_{n-1} > max T)), critical value t_{n-1} at 1 - alpha / K (scipy)."""
    rng = np.random.default_rng(3)
    d = _null(rng, 200, 6) + 0.01
    got = best_of_n_differences(d, list(range(6)), correction="bonferroni")
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(200))
    assert got.t == pytest.approx(tuple(t))
    assert got.p_value == pytest.approx(min(1.0, 6 * stats.t.sf(t.max(), 199)), rel=1e-9)
    assert got.critical == pytest.approx(stats.t.ppf(1 - ALPHA / 6, 199), rel=1e-9)
    assert t_quantile(0.975, 10) == pytest.approx(stats.t.ppf(0.975, 10), rel=1e-9)


def test_max_t_of_one_evaluation_is_the_paired_t_test() -> None:
    """With K = 1 there is nothing to correct: the max-T bootstrap p is the paired t-test's, within Monte Carlo
    error, and the best evaluation is that one."""
    rng = np.random.default_rng(5)
    base = rng.random(400)
    cont = base + rng.normal(0.004, 0.05, 400)
    got = best_of_n(base, cont[None, :], [7])
    assert got.best == 0 and got.k == 1
    assert got.p_value == pytest.approx(got.p_single, abs=0.02)
    assert got.p_single == pytest.approx(stats.ttest_rel(cont, base, alternative="greater").pvalue, rel=1e-6)


def test_max_t_keeps_the_familywise_error_and_beats_bonferroni() -> None:
    """On null differences of 8 correlated evaluations, max-T calls 'better' in about alpha of the cases (at most
    alpha plus Monte Carlo error), Bonferroni in fewer (conservative), and max-T's critical value is lower."""
    rng = np.random.default_rng(11)
    hits = {"max_t": 0, "bonferroni": 0}
    draws = 80
    for _ in range(draws):
        d = _null(rng, 150, 8)
        for c in hits:
            hits[c] += best_of_n_differences(d, list(range(8)), correction=c, resamples=400).p_value < ALPHA
    assert hits["max_t"] / draws <= ALPHA + 0.05
    assert hits["bonferroni"] <= hits["max_t"]
    d = _null(rng, 150, 8)
    assert (best_of_n_differences(d, list(range(8)), correction="max_t").critical
            < best_of_n_differences(d, list(range(8)), correction="bonferroni").critical)


def test_a_real_gain_is_found_and_located() -> None:
    """A gain of several standard errors at one evaluation: premature, at that evaluation, with a positive
    simultaneous lower bound; the same numbers in 'min' mode with the signs flipped."""
    rng = np.random.default_rng(2)
    base = rng.random(500)
    cont = np.stack([base + rng.normal(0, 0.03, 500) for _ in range(5)])
    cont[3] += 0.02
    got = best_of_n(base, cont, [10, 11, 12, 13, 14])
    assert got.best == 3 and got.p_value < 0.01 and got.lower > 0
    assert probe_call(got) == PREMATURE
    flipped = best_of_n(-base, -cont, [10, 11, 12, 13, 14], mode="min")
    assert (flipped.best, flipped.gain, flipped.p_value) == (got.best, pytest.approx(got.gain), got.p_value)


def test_the_bootstrap_is_deterministic() -> None:
    """A fixed seed gives the same p-value every time (the report and the benchmark replay agree)."""
    rng = np.random.default_rng(8)
    d = _null(rng, 120, 4)
    assert best_of_n_differences(d, [1, 2, 3, 4]).p_value == best_of_n_differences(d, [1, 2, 3, 4]).p_value


def test_paired_trend_is_the_slope_of_the_means() -> None:
    """The per-user slope's mean is the least-squares slope of the mean curve; a steady rise gives a large z;
    fewer than 3 evaluations give no trend."""
    rng = np.random.default_rng(4)
    epochs = [3, 4, 5, 6, 7]
    values = np.stack([rng.normal(0, 0.05, 300) + 0.01 * e for e in epochs])
    slope, z = paired_trend(values, epochs)
    assert slope == pytest.approx(np.polyfit(epochs, values.mean(axis=1), 1)[0], rel=1e-9)
    assert z is not None and z > 5
    assert paired_trend(values[:2], epochs[:2]) == (None, None)


@pytest.mark.parametrize("p, trend_z, call", [
    (0.01, None, PREMATURE),          # beaten by more than the noise of the best of K
    (0.01, -3.0, PREMATURE),          # a gain that has faded again is still a gain
    (0.30, TREND_Z, NOT_PREMATURE),   # not beaten, still rising at the end: reported, not a third call
    (0.30, 9.0, NOT_PREMATURE),
    (0.30, None, NOT_PREMATURE),      # too few evaluations for a trend
    (ALPHA, 0.0, NOT_PREMATURE),      # p must be below alpha
])
def test_probe_call(p: float, trend_z: float | None, call: str) -> None:
    """The rule chosen by the registered tests: p < alpha premature, else not premature, whatever the trend."""
    rng = np.random.default_rng(0)
    got = best_of_n_differences(_null(rng, 50, 3), [1, 2, 3])
    from dataclasses import replace

    assert probe_call(replace(got, p_value=p, trend_z=trend_z)) == call


def test_curve_fallback_without_per_user_scores() -> None:
    """Without per-user scores the gain is tested against the curve's noise, Bonferroni over K, and says so."""
    curve = [0.10, 0.11, 0.105, 0.112, 0.108, 0.111, 0.109]
    got = curve_best_of_n(0.112, [0.150, 0.113, 0.110], [7, 8, 9], curve)
    assert got is not None and not got.paired and got.correction == "bonferroni" and got.best == 0
    assert probe_call(got) == PREMATURE
    flat = curve_best_of_n(0.112, [0.110, 0.111, 0.112], [7, 8, 9], curve)
    assert flat is not None and probe_call(flat) == NOT_PREMATURE
    assert curve_best_of_n(0.1, [0.2], [3], [0.1, 0.1]) is None  # noise needs 3 values
