#!/usr/bin/env python
"""Can a label-free signal tell a plateau that will rise from a real peak? Scored as pre-registered (issue 32).

    python scripts/bench_signals.py [--runs DIR ...] [--features target_churn] [--out FILE.md] [--json FILE]

The registration is docs/signals_registration.md; this script implements it and nothing else:

* **decision points**: every evaluation ``t`` with at least 10 evaluations before it (the recommended policy's
  warmup) and 10 after it, at which the smoothed monitor (EMA, alpha 0.5, of validation ndcg@10: the
  recommended policy's smoothing) has not set a new best for 5 evaluations (a plateau, or the start of a fall);
* **label** ``rises``: the best smoothed value after ``t`` beats the best up to ``t`` by more than twice the
  smoothed curve's noise (``difference_noise`` of the raw curve over the whole run x sqrt(alpha / (2 - alpha)));
* **model**: logistic regression on at most two features plus an intercept (three coefficients), fitted by
  Newton's method; **calls**: "rises" where the fitted probability is at least ``hi``, "peak" where it is at most
  ``lo``, each threshold the one that calls the most training decisions with >= 90 % of them right;
* **score**: leave one *model* out (fit and thresholds on the other models' runs, calls on the left-out
  model's), pooled: the share of decisions called and the share of the calls that are right;
* **baselines**: the epoch index alone (as a feature), the regime alone (the label's rate on the other seeds of
  the same regime: "rises" at >= 90 %, "peak" at <= 10 %), and the features shuffled across the runs of one
  regime (each run takes the next seed's features at the same evaluation).

Features (each the mean of the last 3 evaluations, over the lowest such mean so far, as a log ratio: a signal
at its floor reads 0): ``target_churn`` (share of users whose hit@10 changed since the last evaluation; from the
per-user sidecar, every recorded run has it), and from ``RUN/ranked/`` (``rec-es run --ranked 10``):
``list_churn`` (1 - mean Jaccard of each user's top-10 with the last evaluation's), ``coverage``
(distinct items listed / catalogue; as the ratio to the highest so far, a collapse reads below 0).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rec_es.policy.stats import difference_noise
from rec_es.rundir.per_user import read_per_user
from rec_es.rundir.ranked import read_ranked, signals
from rec_es.rundir.trace import read_trace
from benchlib import emit

REPO = Path(__file__).resolve().parents[1]
ALPHA = 0.5
WARMUP, AHEAD, STALE, WINDOW = 10, 10, 5, 3
PRECISION = 0.9
FEATURES = ("epoch", "target_churn", "list_churn", "coverage")


@dataclass
class Run:
    name: str
    regime: str
    model: str
    seed: str
    raw: list[float]
    signals: dict[str, list[float | None]] = field(default_factory=dict)


def ema(values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


def load(run_dir: Path, root: Path) -> Run:
    trace = read_trace(run_dir)
    raw = [float(r["valid"].get("ndcg@10", r["valid"].get("NDCG@10"))) for r in trace.records]
    regime = run_dir.parent.name
    model = str(trace.header.get("model") or regime.split("-")[0]).lower()
    run = Run(str(run_dir.relative_to(root)), regime, model, run_dir.name, raw)
    hits = read_per_user(run_dir, "valid", trace=trace).values("recall@10") > 0
    churn: list[float | None] = [None] + [float((hits[i] != hits[i - 1]).mean()) for i in range(1, len(hits))]
    run.signals["target_churn"] = churn
    if (run_dir / "ranked" / "valid.json").is_file():  # the signals computed from the lists themselves
        lists = read_ranked(run_dir, trace=trace)
        ranked = [signals(lists.items[i - 1] if i else None, lists.items[i], lists.n_items)
                  for i in range(len(lists.epochs))]
        run.signals["list_churn"] = [r["churn"] for r in ranked]
        run.signals["coverage"] = [r["coverage"] for r in ranked]
    return run


def relative(series: Sequence[float | None], ceiling: bool) -> list[float | None]:
    """log(mean of the last WINDOW values / the lowest (``ceiling``: highest) such mean so far)."""
    out: list[float | None] = []
    extreme = None
    for t in range(len(series)):
        window = [v for v in series[max(0, t - WINDOW + 1):t + 1] if v is not None]
        if len(window) < WINDOW or min(window) <= 0:
            out.append(None)
            continue
        m = statistics.fmean(window)
        extreme = m if extreme is None else (max(extreme, m) if ceiling else min(extreme, m))
        out.append(math.log(m / extreme))
    return out


def feature_series(run: Run, name: str) -> list[float | None]:
    if name == "epoch":
        return [float(t) for t in range(len(run.raw))]
    return relative(run.signals[name], ceiling=name == "coverage")


def decisions(run: Run, features: Sequence[str]) -> list[dict[str, Any]]:
    """One row per decision point: epoch index, label, features."""
    s = ema(run.raw)
    noise = difference_noise(run.raw) or 0.0
    bar = 2 * noise * math.sqrt(ALPHA / (2 - ALPHA))
    series = {f: feature_series(run, f) for f in features}
    rows = []
    for t in range(WARMUP, len(s) - AHEAD):
        best_at = max(range(t + 1), key=lambda i: (s[i], -i))
        if t - best_at < STALE:
            continue
        values = {f: series[f][t] for f in features}
        if any(v is None for v in values.values()):
            continue
        rows.append({"run": run.name, "regime": run.regime, "model": run.model, "seed": run.seed, "t": t,
                     "rises": max(s[t + 1:]) - s[best_at] > bar, **values})
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Coefficients (intercept first) by Newton's method with a tiny ridge (separable data stay finite)."""
    X = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(X.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-X @ w))
        g = X.T @ (p - y) + ridge * w
        H = (X * (p * (1 - p))[:, None]).T @ X + ridge * np.eye(len(w))
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(np.column_stack([np.ones(len(x)), x]) @ w)))


def thresholds(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(hi, lo): the calls "rises" at p >= hi and "peak" at p <= lo that each call the most training decisions
    with >= PRECISION right (inf / -inf: no such call)."""
    hi, lo = math.inf, -math.inf
    for c in sorted(set(p.tolist())):
        sel = p >= c
        if sel.any() and y[sel].mean() >= PRECISION:
            hi = c
            break
    for c in sorted(set(p.tolist()), reverse=True):
        sel = p <= c
        if sel.any() and (1 - y[sel]).mean() >= PRECISION:
            lo = c
            break
    return hi, min(lo, hi - 1e-12) if lo > -math.inf else lo


def calls(p: np.ndarray, hi: float, lo: float) -> np.ndarray:
    """1: rises, 0: peak, -1: not called."""
    out = np.full(len(p), -1)
    out[p >= hi] = 1
    out[p <= lo] = 0
    return out


def score(called: np.ndarray, y: np.ndarray) -> dict[str, float]:
    n = len(y)
    made = called >= 0
    right = (called[made] == y[made]).sum()
    return {"decisions": int(n), "called": float(made.mean()) if n else 0.0,
            "right": float(right / made.sum()) if made.any() else float("nan"), "n_called": int(made.sum())}


def lomo(rows: list[dict[str, Any]], cols: Sequence[str], probs: np.ndarray | None = None) -> np.ndarray:
    """Leave one model out: each row's call by a model fitted on the other models' rows (``probs``, if given,
    receives each row's out-of-sample probability)."""
    out = np.full(len(rows), -1)
    models = sorted({r["model"] for r in rows})
    y = np.array([r["rises"] for r in rows], dtype=float)
    x = np.array([[r[c] for c in cols] for r in rows], dtype=float)
    for m in models:
        test = np.array([r["model"] == m for r in rows])
        mu, sd = x[~test].mean(axis=0), x[~test].std(axis=0) + 1e-12
        w = fit_logistic((x[~test] - mu) / sd, y[~test])
        hi, lo = thresholds(predict(w, (x[~test] - mu) / sd), y[~test])
        out[test] = calls(predict(w, (x[test] - mu) / sd), hi, lo)
        if probs is not None:
            probs[test] = predict(w, (x[test] - mu) / sd)
    return out


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (the chance that a random 'rises' decision gets a higher probability than a
    random 'peak' one; ties count half). Descriptive: not part of the registered decision rule."""
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def regime_alone(rows: list[dict[str, Any]]) -> np.ndarray:
    out = np.full(len(rows), -1)
    for i, r in enumerate(rows):
        others = [o["rises"] for o in rows if o["regime"] == r["regime"] and o["seed"] != r["seed"]]
        if others:
            rate = statistics.fmean(others)
            out[i] = 1 if rate >= PRECISION else (0 if rate <= 1 - PRECISION else -1)
    return out


def shuffled(rows: list[dict[str, Any]], runs: list[Run], features: Sequence[str]) -> list[dict[str, Any]]:
    """The rows with each run's features replaced by the next seed's (same regime) at the same evaluation."""
    by_regime: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_regime[run.regime].append(run)
    series = {run.name: {f: feature_series(run, f) for f in features} for run in runs}
    donor = {}
    for group in by_regime.values():
        group.sort(key=lambda r: r.seed)
        for i, run in enumerate(group):
            donor[run.name] = group[(i + 1) % len(group)].name if len(group) > 1 else None
    out = []
    for r in rows:
        d = donor[r["run"]]
        if d is None:
            continue
        vals = {f: (series[d][f][r["t"]] if r["t"] < len(series[d][f]) else None) for f in features}
        if all(v is not None for v in vals.values()):
            out.append({**r, **vals})
    return out


def find(roots: Sequence[Path]) -> list[tuple[Path, Path]]:
    found = []
    for root in roots:
        for trace in sorted(root.glob("*/seed*/trace.jsonl")):
            if (trace.parent / "summary.json").is_file():  # finished runs only
                found.append((trace.parent, root))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_signals.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", type=Path, default=[REPO / "docs" / "results" / "long_runs"])
    p.add_argument("--features", nargs="+", default=["target_churn"], choices=FEATURES)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if len(args.features) > 2:
        p.error("at most two features (the registration allows three coefficients)")
    runs = [load(d, root) for d, root in find(args.runs)]
    rows = [r for run in runs for r in decisions(run, args.features)]
    y = np.array([r["rises"] for r in rows], dtype=int)
    p_feat, p_epoch = np.zeros(len(rows)), np.zeros(len(rows))
    results = {
        "features": lomo(rows, args.features, p_feat),
        "epoch index alone": lomo([{**r, "epoch": r["t"]} for r in rows], ["epoch"], p_epoch),
        "regime alone": regime_alone(rows),
    }
    shuf = shuffled(rows, runs, args.features)
    p_shuf = np.zeros(len(shuf))
    y_shuf = np.array([r["rises"] for r in shuf], dtype=int)
    table = {name: score(c, y) for name, c in results.items()}
    table["features shuffled within regime"] = score(lomo(shuf, args.features, p_shuf), y_shuf)
    aucs = {"features": auc(p_feat, y), "epoch index alone": auc(p_epoch, y), "regime alone": float("nan"),
            "features shuffled within regime": auc(p_shuf, y_shuf)}
    for name in table:
        table[name]["auc"] = aucs[name]
    models = sorted({r["model"] for r in rows})
    lines = [f"# Label-free signals: {', '.join(args.features)} (leave one model out)", "",
             f"{len(runs)} runs, {len(models)} models ({', '.join(models)}), {len(rows)} decision points, "
             f"{y.mean():.0%} of them 'rises'.", "",
             "| predictor | decisions | called | right of calls | AUC (descriptive) |", "|---|---|---|---|---|"]
    for name, s in table.items():
        lines.append(f"| {name} | {s['decisions']} | {s['called']:.1%} ({s['n_called']}) | {s['right']:.1%} | "
                     f"{'-' if math.isnan(s['auc']) else format(s['auc'], '.3f')} |")
    lines += ["", "AUC: leave-one-model-out probabilities ranked against the label; descriptive, not part of the "
              "registered decision rule (docs/signals_registration.md).", "",
              "Per left-out model (features): called / right", ""]
    for m in models:
        sel = np.array([r["model"] == m for r in rows])
        s = score(results["features"][sel], y[sel])
        lines.append(f"- {m}: {s['decisions']} decisions, {y[sel].mean():.0%} rises; called {s['called']:.0%}, "
                     f"right {s['right']:.0%}")
    if args.json:
        args.json.write_text(json.dumps({"features": args.features, "table": table}, indent=1) + "\n")
    return emit(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
