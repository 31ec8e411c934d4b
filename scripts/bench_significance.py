#!/usr/bin/env python
"""Which paired test for ``improvement: significant``? Measured on the recorded per-user sidecars.

    python scripts/bench_significance.py [--runs docs/results/long_runs] [--alpha 0.05]

For every recorded run (``<regime>/seed<N>/`` with per-user valid and test ndcg@10) and the three candidate
one-sided paired tests (paired t, Wilcoxon signed-rank zsplit with the normal approximation, paired bootstrap):

1. **Null calibration**: pairs of evaluations with each user's difference given a random sign (an A/A pair with
   this data's zeros, ties and skew): the share of p < alpha should be alpha.
2. **Agreement with the test split**: over pairs (i < j) of one run, when the validation test says "j improves on
   i" (p < alpha), how often does the test split's mean ndcg@10 also improve (precision), and how often is a
   significant test-split improvement found on validation (recall). Pairs in the second half of a run (the
   plateau, where a stopping rule decides) are reported apart.
3. **Repeated testing**: the rule tests every evaluation against the current best. Null sequences (each user's
   score drawn from one of two evaluations at random, so every evaluation has the same expected mean) give the
   chance that at least one of K evaluations is called a significant improvement, against 1 - (1 - alpha)^K.
4. **Noise**: the SE of the paired difference of consecutive evaluations (per-user) against the curve's
   1.4826·MAD(first differences), the two estimates of ``min_delta: auto``.

scipy/numpy implement the tests here for speed; ``tests/policy/test_stats.py`` checks the policy core's stdlib
versions against the same scipy calls.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats as ss

REPO = Path(__file__).resolve().parents[1]

from rec_es.rundir.per_user import read_per_user
from rec_es.policy.stats import MAD_SCALE
from rec_es.rundir.trace import read_trace

TESTS = ("t", "wilcoxon", "bootstrap")
METRIC = "ndcg@10"


def runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/seed*/trace.jsonl")
                  if (p.parent / "per_user" / "valid.json").is_file() and (p.parent / "per_user" / "test.json").is_file())


def p_values(d: np.ndarray, rng: np.random.Generator, resamples: int = 2000) -> dict[str, float]:
    """One-sided p of "mean(d) > 0" for each test."""
    out = {}
    if np.all(d == d[0]):
        out["t"] = 0.0 if d[0] > 0 else 1.0
    else:
        out["t"] = float(ss.ttest_1samp(d, 0.0, alternative="greater").pvalue)
    out["wilcoxon"] = float(ss.wilcoxon(d, alternative="greater", zero_method="zsplit", method="approx",
                                        correction=False).pvalue) if np.any(d != 0) else 0.5
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    means = d[idx].mean(axis=1)
    out["bootstrap"] = float((1 + np.sum(means <= 0)) / (1 + resamples))
    return out


def load(run: Path) -> tuple[np.ndarray, np.ndarray]:
    tr = read_trace(run)
    valid = read_per_user(run, "valid", trace=tr).values(METRIC).astype(np.float64)
    test = read_per_user(run, "test", trace=tr).values(METRIC).astype(np.float64)
    return valid, test


def null_calibration(valid: np.ndarray, rng: np.random.Generator, alpha: float, pairs: int = 150) -> dict[str, float]:
    n = len(valid)
    hits = {t: 0 for t in TESTS}
    for _ in range(pairs):
        i, j = sorted(rng.choice(n, 2, replace=False))
        d = (valid[j] - valid[i]) * rng.choice([-1.0, 1.0], size=valid.shape[1])
        for t, p in p_values(d, rng, 1000).items():
            hits[t] += p < alpha
    return {t: hits[t] / pairs for t in TESTS}


def agreement(valid: np.ndarray, test: np.ndarray, rng: np.random.Generator, alpha: float,
              max_gap: int = 10) -> dict[str, dict[str, float]]:
    """Pairs (i, j = i+1 .. i+max_gap): precision and recall of the validation verdict against the test split."""
    n = len(valid)
    rows: dict[str, dict[str, list[float]]] = {part: {t: [] for t in TESTS} for part in ("all", "late")}
    truth: dict[str, list[bool]] = {"all": [], "late": []}
    test_sig: dict[str, list[bool]] = {"all": [], "late": []}
    for i in range(n):
        for j in range(i + 1, min(n, i + 1 + max_gap)):
            dv, dt = valid[j] - valid[i], test[j] - test[i]
            pv = p_values(dv, rng, 1000)
            better = dt.mean() > 0
            pt = ss.ttest_1samp(dt, 0.0, alternative="greater").pvalue if np.any(dt != dt[0]) else 1.0
            for part in ("all", "late") if i >= n // 2 else ("all",):
                truth[part].append(bool(better))
                test_sig[part].append(bool(pt < alpha))
                for t in TESTS:
                    rows[part][t].append(pv[t])
    out: dict[str, dict[str, float]] = {}
    for part in rows:
        tr, ts = np.array(truth[part]), np.array(test_sig[part])
        for t in TESTS:
            sig = np.array(rows[part][t]) < alpha
            out[f"{part}:{t}"] = {"pairs": float(len(sig)), "called": float(sig.mean()) if len(sig) else math.nan,
                                  "precision": float(tr[sig].mean()) if sig.any() else math.nan,
                                  "recall": float(sig[ts].mean()) if ts.any() else math.nan,
                                  "base_rate": float(tr.mean()) if len(tr) else math.nan}
    return out


def repeated(valid: np.ndarray, rng: np.random.Generator, alpha: float, ks: tuple[int, ...] = (1, 5, 10, 20, 50),
             sequences: int = 40) -> dict[str, dict[int, float]]:
    """Null sequences of max(ks) evaluations mixing two late evaluations user by user; the share of sequences in
    which the ratchet rule (test against the current best, a significant one becomes the best) fires by K."""
    n = len(valid)
    a, b = valid[n - 2], valid[n - 1]
    first_fire: dict[str, list[int]] = {t: [] for t in TESTS}
    kmax = max(ks)
    for _ in range(sequences):
        seq = [np.where(rng.random(a.shape) < 0.5, a, b) for _ in range(kmax + 1)]
        for t in TESTS:
            best, fired = seq[0], kmax + 1
            for k in range(1, kmax + 1):
                d = seq[k] - best
                if d.mean() > 0 and p_values(d, rng, 500)[t] < alpha:
                    fired = min(fired, k)
                    best = seq[k]
            first_fire[t].append(fired)
    return {t: {k: float(np.mean(np.array(first_fire[t]) <= k)) for k in ks} for t in TESTS}


def noise(valid: np.ndarray) -> dict[str, float]:
    means = valid.mean(axis=1)
    se = [float(np.std(valid[i + 1] - valid[i], ddof=1) / math.sqrt(valid.shape[1])) for i in range(len(valid) - 1)]
    half = len(valid) // 2
    d = np.diff(means[half:])
    mad = float(MAD_SCALE * np.median(np.abs(d - np.median(d))))
    return {"paired_se_median": float(np.median(se[half:])), "curve_diff_sd": mad,
            "paired_se_first_half": float(np.median(se[:half]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=REPO / "docs" / "results" / "long_runs")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    found = runs(args.runs)
    if not found:
        print(f"no runs with per-user valid and test sidecars under {args.runs}")
        return 1
    table: dict[str, Any] = {}
    for run in found:
        name = f"{run.parent.name}/{run.name}"
        valid, test = load(run)
        table[name] = {"evaluations": len(valid), "null": null_calibration(valid, rng, args.alpha),
                       "agreement": agreement(valid, test, rng, args.alpha), "repeated": repeated(valid, rng, args.alpha),
                       "noise": noise(valid)}
        print(f"done {name} ({len(valid)} evaluations)", file=sys.stderr)
    a = args.alpha
    print(f"# Paired tests for improvement: significant (alpha {a}, metric {METRIC})\n")
    print("## 1. Null calibration (sign-flipped pairs; should be alpha)\n")
    print("| run | evals | " + " | ".join(TESTS) + " |\n|---|---|" + "---|" * len(TESTS))
    for name, r in table.items():
        print(f"| {name} | {r['evaluations']} | " + " | ".join(f"{r['null'][t]:.3f}" for t in TESTS) + " |")
    for part, what in (("all", "all pairs up to 10 evaluations apart"), ("late", "pairs in the second half of the run")):
        print(f"\n## 2. Agreement with the test split ({what})\n")
        print("precision: share of validation-significant pairs whose test-split mean also improved (base rate: share "
              "of all pairs whose test mean improved); recall: share of test-split-significant pairs found on "
              "validation; called: share of pairs called significant.\n")
        print("| run | pairs | base rate | " + " | ".join(f"{t} precision / recall / called" for t in TESTS)
              + " |\n|---|---|---|" + "---|" * len(TESTS))
        for name, r in table.items():
            ag = r["agreement"]
            first = ag[f"{part}:t"]
            cells = " | ".join(f"{ag[f'{part}:{t}']['precision']:.2f} / {ag[f'{part}:{t}']['recall']:.2f} / "
                               f"{ag[f'{part}:{t}']['called']:.2f}" for t in TESTS)
            print(f"| {name} | {int(first['pairs'])} | {first['base_rate']:.2f} | {cells} |")
    ks = sorted(next(iter(table.values()))["repeated"]["t"])
    print("\n## 3. Repeated testing under the null: P(at least one false improvement within K evaluations)\n")
    print("| run | test | " + " | ".join(f"K={k}" for k in ks) + " |\n|---|---|" + "---|" * len(ks))
    print("| (independent tests) | 1-(1-alpha)^K | " + " | ".join(f"{1 - (1 - a) ** k:.3f}" for k in ks) + " |")
    for name, r in table.items():
        for t in TESTS:
            print(f"| {name} | {t} | " + " | ".join(f"{r['repeated'][t][k]:.3f}" for k in ks) + " |")
    print("\n## 4. Noise of one evaluation-to-evaluation difference (second half of each run)\n")
    print("| run | per-user paired SE (median) | curve 1.4826·MAD(first differences) | paired SE, first half |\n|---|---|---|---|")
    for name, r in table.items():
        nz = r["noise"]
        print(f"| {name} | {nz['paired_se_median']:.4f} | {nz['curve_diff_sd']:.4f} | {nz['paired_se_first_half']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
