"""The statistics the policy core needs, in the standard library only (no numpy/scipy in ``rec_es.policy``).

Paired tests over per-user scores (one-sided: "is ``a`` better than ``b``?"): the paired t-test (Student's t
tail via the regularized incomplete beta function), the Wilcoxon signed-rank test with ``zero_method="zsplit"``
and the normal approximation with the tie correction, as ``scipy.stats.wilcoxon`` computes it for Optuna's
``WilcoxonPruner``, and a paired bootstrap of the mean difference. Curve helpers: a robust noise scale from
first differences and ordinary least squares. Each test returns a one-sided p-value; tests against scipy live in
``tests/policy/test_stats.py``.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

_NORMAL = NormalDist()
#: MAD -> standard deviation for normal data
MAD_SCALE = 1.482602218505602


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z, via ``math.erfc`` (accurate in the far tail)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """The standard normal quantile: ``normal_quantile(0.975)`` = 1.95996..."""
    return _NORMAL.inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes 6.4)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


@dataclass(frozen=True)
class PairedTest:
    """A one-sided paired test of "the new scores are better": the p-value, the mean difference (new - old,
    oriented so positive is better) and its standard error, the number of users and the test's name."""

    test: str
    p_value: float
    mean_diff: float
    se: float
    n: int


def _mean_se(diffs: Sequence[float]) -> tuple[float, float]:
    n = len(diffs)
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def paired_t(diffs: Sequence[float]) -> PairedTest:
    """One-sided paired t-test of mean(diffs) > 0 (df = n - 1). All-equal differences: p = 0 if positive,
    1 otherwise (no variance: the sign decides)."""
    n = len(diffs)
    if n < 2:
        raise ValueError("a paired test needs at least 2 users")
    mean, se = _mean_se(diffs)
    if se == 0.0:
        return PairedTest("t", 0.0 if mean > 0 else 1.0, mean, se, n)
    return PairedTest("t", t_sf(mean / se, n - 1), mean, se, n)


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) of ``values`` and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def wilcoxon(diffs: Sequence[float]) -> PairedTest:
    """One-sided Wilcoxon signed-rank test of "diffs tend to be positive", ``zero_method="zsplit"`` (zero
    differences are ranked and their rank sum split evenly between the signs, so all-zero input gives p = 0.5),
    normal approximation with scipy's tie correction, no continuity correction."""
    n = len(diffs)
    if n < 2:
        raise ValueError("a paired test needs at least 2 users")
    ranks, ties = _ranks([abs(d) for d in diffs])
    r_plus = (math.fsum(r for r, d in zip(ranks, diffs) if d > 0)
              + 0.5 * math.fsum(r for r, d in zip(ranks, diffs) if d == 0))
    mn = n * (n + 1) / 4.0
    var = (n * (n + 1) * (2 * n + 1) - 0.5 * sum(t * (t * t - 1) for t in ties)) / 24.0
    mean, se = _mean_se(diffs)  # var >= n (n + 1)^2 / 16 > 0, its least when all n are tied
    return PairedTest("wilcoxon", normal_sf((r_plus - mn) / math.sqrt(var)), mean, se, n)


def paired_bootstrap(diffs: Sequence[float], resamples: int = 2000, seed: int = 0) -> PairedTest:
    """One-sided paired bootstrap: p = share of resampled mean differences <= 0 (with the +1 correction of
    Davison & Hinkley: (1 + count) / (1 + resamples)); a fixed ``seed`` makes it deterministic."""
    n = len(diffs)
    if n < 2:
        raise ValueError("a paired test needs at least 2 users")
    mean, se = _mean_se(diffs)
    rng = random.Random(seed)
    values = list(diffs)
    count = sum(1 for _ in range(resamples) if math.fsum(rng.choices(values, k=n)) <= 0.0)
    return PairedTest("bootstrap", (1 + count) / (1 + resamples), mean, se, n)


TESTS = {"t": paired_t, "wilcoxon": wilcoxon, "bootstrap": paired_bootstrap}


def paired_se(new: Sequence[float], old: Sequence[float]) -> float:
    """Standard error of the mean of the per-user differences ``new - old``."""
    if len(new) != len(old) or len(new) < 2:
        raise ValueError("paired scores need the same users, at least 2")
    return _mean_se([a - b for a, b in zip(new, old)])[1]


def training_progress(strip_losses: Sequence[float]) -> float:
    """Prechelt's training progress P_k(t) = 1000 * (sum of the strip's train losses / (k * min of them) - 1),
    in per mille."""
    lowest = min(strip_losses)
    if lowest <= 0:
        return math.inf if sum(strip_losses) > lowest * len(strip_losses) else 0.0
    return 1000.0 * (sum(strip_losses) / (len(strip_losses) * lowest) - 1.0)


def median(values: Sequence[float]) -> float:
    """The median (mean of the two middle values for an even count)."""
    s = sorted(values)
    n = len(s)
    if not n:
        raise ValueError("median of no values")
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def difference_noise(values: Sequence[float]) -> float | None:
    """Evaluation-to-evaluation noise of a curve: ``1.4826 * MAD(first differences) / sqrt(2)``.

    If each value is a smooth level plus independent noise of SD sigma, a first difference has SD sigma*sqrt(2);
    the MAD is taken around the median difference, so a steady trend does not count as noise, and a few jumps
    (a learning phase, a collapse) do not inflate it. None with fewer than 3 values.
    """
    if len(values) < 3:
        return None
    d = [b - a for a, b in zip(values, values[1:])]
    centre = median(d)
    return MAD_SCALE * median([abs(x - centre) for x in d]) / math.sqrt(2.0)


@dataclass(frozen=True)
class Line:
    """An ordinary least-squares line ``y = intercept + slope * x`` and the residual SD (n - 2 dof)."""

    intercept: float
    slope: float
    sxx: float
    resid_sd: float
    n: int

    def slope_se(self, sigma: float) -> float:
        """SE of the slope for independent noise of SD ``sigma``."""
        return sigma / math.sqrt(self.sxx) if self.sxx > 0 else math.inf


def fit_line(x: Sequence[float], y: Sequence[float]) -> Line:
    """Least squares on at least 2 points with distinct x."""
    n = len(x)
    if n < 2 or n != len(y):
        raise ValueError("a line needs at least 2 points")
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    sxx = math.fsum((a - mx) ** 2 for a in x)
    slope = math.fsum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx if sxx > 0 else 0.0
    intercept = my - slope * mx
    sse = math.fsum((b - intercept - slope * a) ** 2 for a, b in zip(x, y))
    return Line(intercept, slope, sxx, math.sqrt(sse / (n - 2)) if n > 2 else 0.0, n)
