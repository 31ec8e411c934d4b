"""estimate_learning's verdict and facts at their edges: the training loss's relative change over the window, the
state at a margin exactly equal to a bound, a trend z exactly at the quantile, and the noise and trend sentences."""
from __future__ import annotations

import math

import pytest

from rec_es.policy.learning import LEARNING, STOPPED, UNKNOWN, estimate_learning
from rec_es.policy.stats import normal_quantile

T = list(range(40))  # evaluations at epochs 0-39: the fitted window (default 0.5) is epochs 20-39
LINE = [0.2 + 0.001 * x for x in T]  # a straight rise of 0.001 per epoch: +0.1000 per 100 epochs
EXP = [0.1 - 0.05 * math.exp(-x / 20) for x in T]  # still rising exponential (learning with noise 0.0005)


def _change(losses: list[float | None]) -> float | None:
    return estimate_learning(T, LINE, "max", 200, train_losses=losses, noise=0.02).loss_change


# ---- loss_change: the relative fall of the training loss over the fitted window ----


def test_loss_change_is_the_relative_fall_over_the_window() -> None:
    """loss_change = (first - last) / |first| of the losses known in the window (epochs 20-39), not of the whole
    history (5.0 before it) nor of the neighbours of either end: 2.0 at epoch 20 (1.5 at 21), 1.2 at 38, 1.0 at 39,
    one missing loss at 30 skipped -> (2.0 - 1.0) / 2.0 = 0.5 exactly."""
    losses: list[float | None] = [5.0] * 20 + [2.0, 1.5] + [1.3] * 16 + [1.2, 1.0]
    losses[30] = None
    assert _change(losses) == 0.5


def test_loss_change_needs_two_window_losses_and_a_nonzero_first_one() -> None:
    """Two losses in the window are enough: 1.0 at epoch 20 and 0.75 at 39 -> (1.0 - 0.75) / 1.0 = 0.25 (a loss at
    epoch 10, before the window, is not one of them); with only the one at 39 there is no change (None, not 0); a
    window starting at a loss of exactly 0 has no relative change either (None, not a division by zero)."""
    two: list[float | None] = [None] * 40
    two[10], two[20], two[39] = 3.0, 1.0, 0.75
    assert _change(two) == 0.25
    one = list(two)
    one[20] = None
    assert _change(one) is None
    zero_first: list[float | None] = [1.0] * 40
    zero_first[20] = 0.0
    assert _change(zero_first) is None


# ---- the state at a margin exactly equal to a bound ----


def test_learning_needs_the_lower_bound_strictly_above_the_margin() -> None:
    """The rising exponential (noise 0.0005, lower bound about 0.0045): with the margin one float below the lower
    bound it is learning, with the margin equal to it, not (unknown: the upper bound is far above). With a stalled
    training loss (all 1.0: P_5 = 0) a lower bound at most the margin means stopped, so a margin equal to it stops,
    while one float below it leaves the state unknown (stalled, so not learning; lower bound above the margin)."""
    lo = estimate_learning(T, EXP, "max", 200, noise=0.0005).gain_lo
    assert 0.004 < lo < 0.005
    below = math.nextafter(lo, 0.0)
    assert estimate_learning(T, EXP, "max", 200, noise=0.0005, margin=below).state == LEARNING
    assert estimate_learning(T, EXP, "max", 200, noise=0.0005, margin=lo).state == UNKNOWN
    stalled = [1.0] * 40
    assert estimate_learning(T, EXP, "max", 200, stalled, noise=0.0005, margin=lo).state == STOPPED
    assert estimate_learning(T, EXP, "max", 200, stalled, noise=0.0005, margin=below).state == UNKNOWN


def test_stopped_allows_the_upper_bound_at_the_margin_unless_the_trend_rises() -> None:
    """The straight rise with noise 0.02 (trend z 0.5 < 1.28: not confidently rising) is stopped with the margin
    equal to its upper bound and unknown one float below it. With noise 0.0001 (z 23.1) the same margin-equal-to-
    the-upper-bound leaves it unknown, and the third fact says why, with the window's first epoch and the slope
    per 100 epochs; one float below, the third fact is the plain trend sentence."""
    hi = estimate_learning(T, LINE, "max", 200, noise=0.02).gain_hi
    assert estimate_learning(T, LINE, "max", 200, noise=0.02, margin=hi).state == STOPPED
    assert estimate_learning(T, LINE, "max", 200, noise=0.02, margin=math.nextafter(hi, 0.0)).state == UNKNOWN
    hi = estimate_learning(T, LINE, "max", 200, noise=0.0001).gain_hi
    at = estimate_learning(T, LINE, "max", 200, noise=0.0001, margin=hi)
    assert at.state == UNKNOWN
    assert at.facts[2] == ("but the trend over epochs 20-39 still rises, +0.1000 per 100 epochs (z = 23.1 > 1.28), "
                           "so saturation is not taken for granted")
    under = estimate_learning(T, LINE, "max", 200, noise=0.0001, margin=math.nextafter(hi, 0.0))
    assert under.state == UNKNOWN
    assert under.facts[2] == "trend over epochs 20-39: +0.1000 per 100 epochs (z = 23.1)"


def noise_at_quantile(low: float = 0.005, high: float = 0.01) -> float | None:
    """The noise that gives the straight rise a trend z of exactly z_0.9, by bisection down to adjacent floats (the
    trend z falls as the noise grows: above z_0.9 at ``low``, below at ``high``), or None where the z steps over
    it between two adjacent floats (a maths library that rounds otherwise)."""
    z = normal_quantile(0.9)

    def trend_z(noise: float) -> float:
        return estimate_learning(T, LINE, "max", 200, noise=noise, margin=1.0).trend_z

    assert trend_z(low) > z > trend_z(high)
    while math.nextafter(low, high) < high:  # low and high are never z itself: the loop ends on adjacent floats
        middle = (low + high) / 2
        found = trend_z(middle)
        if found == z:
            return middle
        low, high = (middle, high) if found > z else (low, middle)
    return None


def test_a_trend_z_equal_to_the_quantile_is_not_rising() -> None:
    """"Confidently rising" is trend z strictly above z_0.9: the straight rise with a noise of about 0.0075942 has
    trend z exactly z_0.9 (found by bisection), so with a margin of 1.0 (the upper bound, about 0.097,
    is below it) it is stopped and the third fact is the plain trend sentence."""
    noise = noise_at_quantile()
    if noise is None:
        pytest.skip("on this platform no float noise gives a trend z of exactly z_0.9")
    est = estimate_learning(T, LINE, "max", 200, noise=noise, margin=1.0)
    assert est.trend_z == normal_quantile(0.9)
    assert est.gain_hi < 1.0
    assert est.state == STOPPED
    assert est.facts[2] == "trend over epochs 20-39: +0.1000 per 100 epochs (z = 1.3)"


# ---- the noise sentence ----


@pytest.mark.parametrize("values,noise,fact", [
    # flat: noise (the curve's own) 0 and fit residual 0, which is not above it
    ([0.25] * 40, None, "noise 0.0000 per evaluation (curve: 1.4826·MAD(first differences)/√2)"),
    # an exponential with a +0.003/-0.0015/-0.0015 wiggle: residual SD 0.0023, above a given noise of 0 ...
    ([v + (0.003 if x % 3 == 0 else -0.0015) for x, v in zip(T, EXP)], 0.0,
     "noise 0.0000 per evaluation (given); fit residual SD 0.0023"),
    # ... and not above a given noise of 0.01
    ([v + (0.003 if x % 3 == 0 else -0.0015) for x, v in zip(T, EXP)], 0.01, "noise 0.0100 per evaluation (given)"),
])
def test_the_noise_fact_names_the_residual_sd_only_when_it_is_larger(values: list[float], noise: float | None,
                                                                     fact: str) -> None:
    """The second fact gives the noise used (0 when it is 0) and where it came from, and adds the fit's residual SD
    only when that is strictly larger than the noise (then the residual is what sigma is)."""
    assert estimate_learning(T, values, "max", 200, noise=noise).facts[1] == fact


# ---- the continuation: the fitted curve from the next epoch to the budget's last, and its band ----


def test_the_continuation_runs_from_the_next_epoch_to_the_last_in_at_most_60_steps() -> None:
    """Seen to epoch 39: with budget 60 (20 epochs left) one point per epoch, 40-59; with budget 200 (160 left) 60
    steps of 160 / 60 = 8/3 epochs rounded, i.e. 3, 5 and 8 epochs past each multiple of 8 after 39, ending at 199;
    with the budget's last epoch already reached (budget 40) or passed (budget 30) no continuation at all."""
    def epochs(budget: int) -> list[int]:
        return [p.epoch for p in estimate_learning(T, EXP, "max", budget, noise=0.0005).continuation]
    assert epochs(60) == list(range(40, 60))
    assert epochs(200) == [39 + 8 * j + d for j in range(20) for d in (3, 5, 8)]
    assert epochs(40) == [] and epochs(30) == []


def test_the_continuation_follows_the_fitted_curve_inside_its_band() -> None:
    """On the noise-free exponential 0.1 - 0.05 e^(-t/20) the continuation's mean is the curve itself (to 1e-7) at
    its first point, epoch 42 (0.0938772), and its last, 199 (0.0999976), and every point's band contains it."""
    est = estimate_learning(T, EXP, "max", 200, noise=0.0005)
    first, last = est.continuation[0], est.continuation[-1]
    assert (first.epoch, last.epoch) == (42, 199)
    assert first.mean == pytest.approx(0.1 - 0.05 * math.exp(-42 / 20), abs=1e-7)
    assert last.mean == pytest.approx(0.1 - 0.05 * math.exp(-199 / 20), abs=1e-7)
    assert all(p.lo < p.mean < p.hi for p in est.continuation)


def test_the_continuation_band_is_the_fits_se_and_the_discrepancy() -> None:
    """A flat 0.25 seen at epochs 0-39 (window 20-39, span 19), noise 0.002, budget 41: one point, epoch 40 (h = 1),
    mean 0.25. Without discrepancy, exponential family only, the band is +- z sigma sqrt(1/n + (g(40) - g_mean)^2 /
    S_gg) of the widest shape, tau 38: g = e^(-(t - 20)/38) has mean 0.787798 and S_gg 0.284484 over 20-39, g(40) =
    e^(-20/38) = 0.590778, so the leverage is 0.136448 and the half-width 1.2815516 * 0.002 * sqrt(0.05 +
    0.136448) = 0.00110674. With the discrepancy (1e4, 2e4) that swamps the SE, the band is -z 1e4 sigma
    sqrt(1 + 1/19) = -26.29688 and +z 2e4 sigma sqrt(1 + 1/19) = +52.59377 around 0.25."""
    flat = [0.25] * 40
    (p,) = estimate_learning(T, flat, "max", 41, noise=0.002, discrepancy=(0.0, 0.0), families=("exponential",)
                             ).continuation
    assert (p.epoch, p.mean) == (40, 0.25)
    assert p.lo == pytest.approx(0.25 - 0.00110674, abs=1e-8)
    assert p.hi == pytest.approx(0.25 + 0.00110674, abs=1e-8)
    (p,) = estimate_learning(T, flat, "max", 41, noise=0.002, discrepancy=(1e4, 2e4)).continuation
    assert p.lo == pytest.approx(0.25 - 26.29688, abs=1e-4)
    assert p.hi == pytest.approx(0.25 + 52.59377, abs=1e-4)


def test_a_fitted_estimate_reports_the_level_it_was_given() -> None:
    """The level (0.8 here) is reported on a fitted estimate too, not only on a too-short history."""
    est = estimate_learning(T, EXP, "max", 200, noise=0.0005, level=0.8)
    assert est.method != "none" and est.level == 0.8
