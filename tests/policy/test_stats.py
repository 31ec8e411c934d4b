"""The stdlib statistics of the policy core against scipy (the reference) and against values worked out by hand."""
from __future__ import annotations

import math
import random

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
