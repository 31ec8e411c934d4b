"""The stdlib statistics of the policy core against scipy (the reference) and against values worked out by hand."""
from __future__ import annotations

import math
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from types import FrameType

import pytest
import scipy.stats as ss

from rec_es.policy import stats


def _diffs(seed: int, n: int, shift: float, zeros: float) -> list[float]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(0.0 if rng.random() < zeros else round(rng.gauss(shift, 0.2), 3))
    return out


@pytest.mark.parametrize("seed,n,shift,zeros", [(0, 30, 0.05, 0.0), (1, 943, 0.01, 0.6), (2, 200, -0.02, 0.3),
                                                (3, 12, 0.1, 0.2), (4, 943, 0.0, 0.8)])
def test_paired_t_matches_scipy(seed: int, n: int, shift: float, zeros: float) -> None:
    """The one-sided paired t p-value equals scipy.stats.ttest_1samp(alternative='greater')."""
    d = _diffs(seed, n, shift, zeros)
    assert stats.paired_t(d).p_value == pytest.approx(ss.ttest_1samp(d, 0.0, alternative="greater").pvalue, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed,n,shift,zeros", [(0, 60, 0.05, 0.0), (1, 943, 0.01, 0.6), (2, 200, -0.02, 0.3),
                                                (3, 80, 0.1, 0.2), (4, 943, 0.0, 0.8)])
def test_wilcoxon_matches_scipy_zsplit_normal(seed: int, n: int, shift: float, zeros: float) -> None:
    """Wilcoxon with zsplit, normal approximation and tie correction equals scipy's (as Optuna calls it)."""
    d = _diffs(seed, n, shift, zeros)
    ref = ss.wilcoxon(d, alternative="greater", zero_method="zsplit", method="approx", correction=False).pvalue
    assert stats.wilcoxon(d).p_value == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_wilcoxon_all_zero_is_a_coin_flip() -> None:
    """All-zero differences (no user changed): zsplit splits the ranks evenly, p = 0.5."""
    assert stats.wilcoxon([0.0] * 10).p_value == 0.5


def test_t_sf_hand_values() -> None:
    """Student's t tail: t = 0 gives 0.5; df = 1 is Cauchy, P(T > 1) = 1/4; large df tends to the normal."""
    assert stats.t_sf(0.0, 5) == pytest.approx(0.5)
    assert stats.t_sf(1.0, 1) == pytest.approx(0.25)
    assert stats.t_sf(1.96, 1e7) == pytest.approx(stats.normal_sf(1.96), rel=1e-5)
    assert stats.t_sf(-2.0, 3) == pytest.approx(1 - stats.t_sf(2.0, 3))


def test_normal_sf_tail() -> None:
    """normal_sf(1.959964) = 0.025 and stays accurate far out, where 1 - cdf would round to 0."""
    assert stats.normal_sf(1.959964) == pytest.approx(0.025, rel=1e-6)
    assert stats.normal_sf(10.0) == pytest.approx(7.6198530241604696e-24, rel=1e-9)


def test_bootstrap_is_deterministic_and_sides() -> None:
    """The paired bootstrap is seeded; a clear positive shift gives a small p, a negative one a large p."""
    d = _diffs(5, 300, 0.05, 0.0)
    assert stats.paired_bootstrap(d).p_value == stats.paired_bootstrap(d).p_value
    assert stats.paired_bootstrap(d).p_value < 0.01
    assert stats.paired_bootstrap([-x for x in d]).p_value > 0.99


def test_difference_noise_hand_value() -> None:
    """Alternating +-s around a line: first differences are trend +- 2s, MAD 2s, noise 1.4826 * 2s / sqrt(2)."""
    s = 0.003
    y = [0.05 + 0.001 * i + (s if i % 2 else -s) for i in range(21)]
    assert stats.difference_noise(y) == pytest.approx(stats.MAD_SCALE * 2 * s / math.sqrt(2))
    assert stats.difference_noise([1.0, 2.0]) is None


def test_fit_line_hand_value() -> None:
    """y = 1 + 2x exactly: slope 2, intercept 1, residual 0; slope SE = sigma / sqrt(Sxx) with Sxx = 10 on 0..4."""
    line = stats.fit_line([0, 1, 2, 3, 4], [1, 3, 5, 7, 9])
    assert (line.intercept, line.slope, line.resid_sd) == pytest.approx((1.0, 2.0, 0.0))
    assert line.slope_se(1.0) == pytest.approx(1 / math.sqrt(10))


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds`` (so a ranking loop that never ends fails instead of hanging)."""
    def _expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"did not finish within {seconds} s")
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("t", [0.5, 1.0, 2.0, 3.0, 5.0, 10.0])
def test_t_sf_is_exact_to_a_few_ulps_for_one_and_two_degrees_of_freedom(t: float) -> None:
    """The continued fraction is run until it has converged, so t_sf agrees with the closed forms to a few ulps (not
    only to scipy's 1e-9): df = 1 (Cauchy) P(T > t) = atan(1/t) / pi; df = 2 P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2
    = 1 / ((t + sqrt(t^2 + 2)) * sqrt(t^2 + 2)) (written without the cancellation)."""
    root = math.sqrt(t * t + 2.0)
    assert stats.t_sf(t, 1) == pytest.approx(math.atan(1.0 / t) / math.pi, rel=4e-15, abs=0.0)
    assert stats.t_sf(t, 2) == pytest.approx(1.0 / ((t + root) * root), rel=4e-15, abs=0.0)


def test_t_sf_far_tail_is_a_probability_even_for_astronomical_df() -> None:
    """t = 1e100 is beyond every quantile (df = 1e200 makes T standard normal): P(T > t) = 0, P(T > -t) = 1. Here
    x = df / (df + t^2) = 1/2, the front factor underflows to 0 and the continued fraction's coefficients overflow to
    inf / inf = NaN; the Lentz guard (|d|, |c| > tiny is false for NaN) keeps the fraction finite, so 0, not NaN."""
    assert stats.t_sf(1e100, 1e200) == 0.0
    assert stats.t_sf(-1e100, 1e200) == 1.0


@pytest.mark.parametrize("name", ["t", "wilcoxon", "bootstrap"])
def test_paired_tests_need_two_users(name: str) -> None:
    """Each paired test (looked up by its name in TESTS) refuses one user with the exact message, accepts two, and
    names itself in the result."""
    test = stats.TESTS[name]
    with pytest.raises(ValueError) as err:
        test([0.5])
    assert str(err.value) == "a paired test needs at least 2 users"
    result = test([0.5, 0.25])
    assert (result.test, result.n) == (name, 2)


def test_paired_t_hand_value() -> None:
    """d = 1, 2, 3: mean 2, sample variance 1, SE 1/sqrt(3) = 0.57735, t = 2 * sqrt(3) on 2 df, where
    P(T > t) = (1 - t / sqrt(2 + t^2)) / 2 = (1 - sqrt(6/7)) / 2 = 0.0370899501..."""
    result = stats.paired_t([1.0, 2.0, 3.0])
    assert result.p_value == pytest.approx(0.03708995011372429, rel=1e-12)
    assert (result.test, result.mean_diff, result.n) == ("t", 2.0, 3)
    assert result.se == pytest.approx(0.5773502691896257, rel=1e-15)


def test_paired_t_without_variance_the_sign_decides() -> None:
    """All-equal differences have SE 0: p = 0 if they are positive, 1 if zero or negative, and the result still
    carries the test's name, the mean difference, SE 0 and n."""
    assert stats.paired_t([0.5, 0.5]) == stats.PairedTest("t", 0.0, 0.5, 0.0, 2)
    assert stats.paired_t([0.0, 0.0, 0.0]) == stats.PairedTest("t", 1.0, 0.0, 0.0, 3)
    assert stats.paired_t([-0.25, -0.25]) == stats.PairedTest("t", 1.0, -0.25, 0.0, 2)


def test_wilcoxon_hand_value_with_a_tie_at_the_top() -> None:
    """d = 1, -2, 2: |d| = 1, 2, 2, the two 2s (the largest) share rank 2.5, one tie group of 2. R+ = 1 + 2.5 = 3.5,
    E = n(n+1)/4 = 3, Var = (3*4*7 - 0.5 * 2*(4-1)) / 24 = 81/24, z = 0.5 / sqrt(81/24) = sqrt(2/27) = 0.27217,
    p = P(Z > z) = 0.392747...; mean difference 1/3, SE sqrt((4/9 + 49/9 + 25/9) / 2 / 3) = sqrt(13)/3."""
    with _deadline(5):
        result = stats.wilcoxon([1.0, -2.0, 2.0])
    assert result.p_value == pytest.approx(0.3927473735591771, rel=1e-12)
    assert (result.test, result.n) == ("wilcoxon", 3)
    assert (result.mean_diff, result.se) == pytest.approx((1 / 3, math.sqrt(13) / 3), rel=1e-15)


def test_wilcoxon_hand_value_with_a_zero_and_a_tie_in_the_middle() -> None:
    """d = 0, 1, -1, 3: |d| = 0, 1, 1, 3 get ranks 1, 2.5, 2.5, 4; zsplit gives the zero's rank half to R+:
    R+ = 2.5 + 4 + 0.5 = 7, E = 4*5/4 = 5, Var = (4*5*9 - 0.5 * 2*(4-1)) / 24 = 177/24, z = 2 / sqrt(7.375) = 0.73646,
    p = 0.230725...; mean 0.75, SE sqrt(8.75/3 / 4) = 0.853913."""
    with _deadline(5):
        result = stats.wilcoxon([0.0, 1.0, -1.0, 3.0])
    assert result.p_value == pytest.approx(0.2307254939166804, rel=1e-12)
    assert (result.test, result.mean_diff, result.n) == ("wilcoxon", 0.75, 4)
    assert result.se == pytest.approx(math.sqrt(8.75 / 12), rel=1e-15)


def test_bootstrap_p_counts_resampled_sums_at_or_below_zero() -> None:
    """p = (1 + #resamples with sum <= 0) / (1 + resamples), 2000 resamples by default: all-positive differences
    never resample to <= 0 (p = 1/2001; 1/10 with 9 resamples), all-zero and all-negative ones always do (p = 1).
    d = 0.25, 0.5: mean 0.375, SE sqrt((0.125^2 + 0.125^2) / 1 / 2) = 0.125."""
    assert stats.paired_bootstrap([0.25, 0.5]) == stats.PairedTest("bootstrap", 1 / 2001, 0.375, 0.125, 2)
    assert stats.paired_bootstrap([0.25, 0.5], resamples=9).p_value == 0.1
    assert stats.paired_bootstrap([0.0, 0.0]).p_value == 1.0
    assert stats.paired_bootstrap([-0.25, -0.5]).p_value == 1.0


def test_bootstrap_seed_fixes_the_resampling() -> None:
    """The seed makes the bootstrap deterministic: the same seed gives the same p (for a p near 1/2, where the count
    varies most), the default seed is 0, and another seed resamples differently."""
    d = [1.0, -1.0, 0.5, -0.25]
    ps = [stats.paired_bootstrap(d, seed=s).p_value for s in range(3)]
    assert ps == [stats.paired_bootstrap(d, seed=s).p_value for s in range(3)]
    assert stats.paired_bootstrap(d).p_value == ps[0]
    assert ps[0] != ps[1]


def test_paired_se_needs_the_same_users_at_least_two() -> None:
    """new - old = 2, 3, 4: SE = sqrt(1 / 3); different user counts, or a single user, are refused with the message."""
    assert stats.paired_se([3.0, 5.0, 7.0], [1.0, 2.0, 3.0]) == pytest.approx(math.sqrt(1 / 3), rel=1e-15)
    for new, old in (([1.0, 2.0, 3.0], [1.0, 2.0]), ([1.0], [0.5])):
        with pytest.raises(ValueError) as err:
            stats.paired_se(new, old)
        assert str(err.value) == "paired scores need the same users, at least 2"


def test_betainc_at_the_ends_of_the_unit_interval() -> None:
    """I_0(a, b) = 0 and I_1(a, b) = 1 exactly, without evaluating log(0) in the front factor."""
    assert stats.betainc(2.0, 3.0, 0.0) == 0.0
    assert stats.betainc(2.0, 3.0, 1.0) == 1.0


@pytest.mark.parametrize("a,b,x,exact", [
    # at the switch point x = (a + 1) / (a + b + 2) = 2/16: I = 1 - (7/8)^13 = (8^13 - 7^13) / 8^13
    (1.0, 13.0, 0.125, 452866803481 / 2**39),
    # above the switch point 2/15 (the complement's fraction): I = 1 - (13/16)^12 = (16^12 - 13^12) / 16^12
    (1.0, 12.0, 0.1875, 258176891588175 / 2**48),
    # below the switch point 7/9 (the direct fraction): I = (47/64)^6 = 47^6 / 64^6
    (6.0, 1.0, 47 / 64, 10779215329 / 2**36),
    # far above the switch point 2/5, near 1: I = 1 - (1/64)^2 = 4095/4096
    (1.0, 2.0, 63 / 64, 4095 / 4096),
    # b = a + 2: I = 1 - (3/4)^3 = 37/64
    (1.0, 3.0, 0.25, 37 / 64),
])
def test_betainc_is_exact_to_a_few_ulps_on_both_sides_of_the_switch(a: float, b: float, x: float,
                                                                      exact: float) -> None:
    """betainc evaluates the continued fraction of I_x(a, b) for x < (a + 1) / (a + b + 2) and of 1 - I_{1-x}(b, a)
    from there on, where each converges fast and loses nothing to cancellation: against the closed forms
    I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b at dyadic x (exact values, written as fractions) it is within
    4 ulps, at the switch point, just on either side of it and near 1."""
    assert abs(stats.betainc(a, b, x) - exact) <= 4 * math.ulp(exact)


def test_t_sf_beyond_every_quantile() -> None:
    """t = +-inf: P(T > t) is 0 and 1; t = +-1e200 (t^2 overflows, x = df / (df + t^2) = 0) gives the same."""
    assert stats.t_sf(math.inf, 5) == 0.0
    assert stats.t_sf(-math.inf, 5) == 1.0
    assert stats.t_sf(1e200, 5) == 0.0
    assert stats.t_sf(-1e200, 5) == 1.0


def test_median_of_odd_and_even_counts() -> None:
    """Odd count: the middle value of the sorted values; even count: the mean of the two middle ones; no values:
    ValueError with the message."""
    assert stats.median([5.0, 1.0, 4.0, 2.0, 3.0]) == 3.0
    assert stats.median([1.0, 2.0, 4.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.median([3.0, 1.0]) == 2.0
    with pytest.raises(ValueError) as err:
        stats.median([])
    assert str(err.value) == "median of no values"


def test_difference_noise_from_three_values() -> None:
    """Three values are enough: 0, 1, 3 have differences 1, 2, median 1.5, absolute deviations 0.5, 0.5, MAD 0.5,
    noise 1.482602218505602 * 0.5 / sqrt(2) = 0.52417904..."""
    assert stats.difference_noise([0.0, 1.0, 3.0]) == pytest.approx(0.5241790412537652, rel=1e-15)


def test_fit_line_through_two_points_and_its_refusals() -> None:
    """Two points (two consecutive epochs): the line through them, Sxx = 0.5, residual SD 0 (no dof left), slope SE
    sigma / sqrt(0.5); one point, or x and y of different lengths: ValueError with the message."""
    line = stats.fit_line([0.0, 1.0], [1.0, 3.0])
    assert line == stats.Line(1.0, 2.0, 0.5, 0.0, 2)
    assert line.slope_se(1.0) == pytest.approx(math.sqrt(2.0), rel=1e-15)
    for x, y in (([1.0], [2.0]), ([0.0, 1.0, 2.0], [1.0, 2.0])):
        with pytest.raises(ValueError) as err:
            stats.fit_line(x, y)
        assert str(err.value) == "a line needs at least 2 points"


def test_fit_line_residual_sd_has_n_minus_2_dof() -> None:
    """x = 0, 1, 2, y = 0, 2, 1: slope 1/2, intercept 1/2, residuals -0.5, 1, -0.5, SSE 1.5, residual SD
    sqrt(1.5 / 1); x = 0..3, y = 0, 2, 1, 3: Sxy = 4, Sxx = 5, slope 0.8, intercept 0.3, residuals -0.3, 0.9, -0.9,
    0.3, SSE 1.8, residual SD sqrt(1.8 / 2); n is the number of points."""
    three = stats.fit_line([0.0, 1.0, 2.0], [0.0, 2.0, 1.0])
    assert (three.intercept, three.slope, three.sxx, three.n) == (0.5, 0.5, 2.0, 3)
    assert three.resid_sd == pytest.approx(math.sqrt(1.5), rel=1e-15)
    four = stats.fit_line([0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 1.0, 3.0])
    assert (four.intercept, four.slope, four.sxx) == pytest.approx((0.3, 0.8, 5.0), rel=1e-14)
    assert four.n == 4
    assert four.resid_sd == pytest.approx(math.sqrt(0.9), rel=1e-14)


def test_fit_line_without_spread_in_x_is_flat() -> None:
    """All x equal (learning_curve fits the window's trend before it notices that the evaluations share one epoch):
    no ZeroDivisionError but a flat line through the mean y = 3, Sxx = 0, residual SD sqrt((4 + 1 + 9) / 1), and
    an infinite slope SE."""
    line = stats.fit_line([2.0, 2.0, 2.0], [1.0, 2.0, 6.0])
    assert (line.intercept, line.slope, line.sxx, line.n) == (3.0, 0.0, 0.0, 3)
    assert line.resid_sd == pytest.approx(math.sqrt(14.0), rel=1e-15)
    assert line.slope_se(1.0) == math.inf


def _exact_slope(x: list[float], y: list[float]) -> float:
    """The least-squares slope of the float inputs in exact rational arithmetic (the reference)."""
    fx, fy = [Fraction(v) for v in x], [Fraction(v) for v in y]
    mx, my = sum(fx) / len(fx), sum(fy) / len(fy)
    return float(sum((a - mx) * (b - my) for a, b in zip(fx, fy)) / sum((a - mx) ** 2 for a in fx))


@pytest.mark.parametrize("x,y", [
    # a plateau: level 0.3, steps of 1e-4 (products with the level would cost about 12 digits of the slope)
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [0.3012, 0.3015, 0.3013, 0.3016, 0.3014, 0.3017, 0.3015, 0.3018]),
    # epochs numbered from 1000 (products with the epoch would cost about 12 digits of the slope)
    ([1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1005.0, 1006.0, 1007.0],
     [0.0512, 0.0587, 0.0611, 0.0634, 0.0641, 0.0650, 0.0652, 0.0655]),
])
def test_fit_line_centres_x_and_y_before_multiplying(x: list[float], y: list[float]) -> None:
    """The slope is sum((x - mean x) (y - mean y)) / Sxx with both centred first, so neither a high level of the
    curve nor large epoch numbers cost precision: it matches the exact slope of the inputs to 1e-15."""
    assert stats.fit_line(x, y).slope == pytest.approx(_exact_slope(x, y), rel=1e-15, abs=0.0)


def test_training_progress_per_mille_and_at_a_zero_or_negative_minimum() -> None:
    """P = 1000 (sum / (k min) - 1): losses 2, 4 give 1000 (6 / 4 - 1) = 500. With a minimum <= 0 the ratio is
    undefined: infinite progress if the losses differ (0, 1 and -1, 0), none if they are all equal (0, 0 and -1, -1)."""
    assert stats.training_progress([2.0, 4.0]) == 500.0
    assert stats.training_progress([0.0, 1.0]) == math.inf
    assert stats.training_progress([-1.0, 0.0]) == math.inf
    assert stats.training_progress([0.0, 0.0]) == 0.0
    assert stats.training_progress([-1.0, -1.0]) == 0.0
