#!/usr/bin/env python
"""Does the "still learning" estimator predict what the rest of a run delivers? Measured on recorded runs.

    python scripts/bench_learning.py [--runs docs/results/long_runs] [--every 5] [--out FILE.md]

Every recorded full-budget run (``<regime>/seed<N>/trace.jsonl``, stopping disabled) is cut after many
evaluations (every ``--every`` from the 10th on); the estimator sees only the history up to the cut (validation
ndcg@10 and the training loss, as a stock RecBole log would give them) and the budget. What the rest of the run
actually delivered is measured on a smoothed curve (a centred moving average of 9 evaluations, shorter at the
ends), so that one lucky evaluation is not the truth:

* ``realized`` = level at the last epoch - level at the cut (what the estimator predicts: the change of the
  level by the budget's end); ``realized_max`` = best level after the cut - level at the cut (what a stopper
  restoring the best could still have gained);
* **coverage**: share of cuts whose ``realized`` lies in the estimator's interval (each bound one-sided at 0.9,
  so 0.8 nominal), **MAE** and **bias** of the expected gain;
* **state**: when the estimator says ``learning``, how often the rest of the run still gained more than the
  margin (precision); when it says ``stopped``, how often it did not.

Variants are measured side by side (the default, other windows, one curve family, and two baselines: "flat",
gain 0, and "trend", the window's least-squares slope carried on to the budget). Spread over runs: mean, min and
max of the per-run numbers. Runs still being recorded (no footer) are skipped unless ``--partial``.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rec_es.policy.learning import LearningEstimate, estimate_learning  # noqa: E402
from rec_es.policy.stats import normal_quantile  # noqa: E402
from rec_es.trace import read_trace  # noqa: E402

METRIC = "ndcg@10"
HALF = 4  # the smoothed "truth": a centred moving average of 2 * HALF + 1 evaluations


def level(values: list[float]) -> list[float]:
    n = len(values)
    return [statistics.fmean(values[max(0, i - HALF):min(n, i + HALF + 1)]) for i in range(n)]


def load(run: Path, partial: bool) -> dict[str, Any] | None:
    tr = read_trace(run)
    if not tr.complete and not partial:
        return None
    recs = [r for r in tr.records if r["valid"].get(METRIC) is not None]
    if len(recs) < 15:
        return None
    budget = int(tr.header.get("epochs") or len(recs)) if tr.complete else recs[-1]["epoch"] + 1
    return {"name": f"{run.parent.name}/{run.name}", "epochs": [r["epoch"] for r in recs],
            "values": [r["valid"][METRIC] for r in recs], "losses": [r.get("train_loss") for r in recs],
            "budget": budget}


def trend_baseline(est: LearningEstimate, budget: int, z: float) -> tuple[float, float, float]:
    if est.trend_slope is None or est.epoch is None:
        return 0.0, 0.0, 0.0
    left = budget - 1 - est.epoch
    se = abs(est.trend_slope / est.trend_z) if est.trend_z else 0.0
    g = est.trend_slope * left
    return g, g - z * se * left, g + z * se * left


VARIANTS: dict[str, Callable[..., LearningEstimate]] = {
    "default (both families, window 0.5)": lambda e, v, b, l: estimate_learning(e, v, "max", b, l),
    "window 0.3": lambda e, v, b, l: estimate_learning(e, v, "max", b, l, window=0.3),
    "window 1.0 (whole history)": lambda e, v, b, l: estimate_learning(e, v, "max", b, l, window=1.0),
    "exponential only": lambda e, v, b, l: estimate_learning(e, v, "max", b, l, families=("exponential",)),
    "power law only": lambda e, v, b, l: estimate_learning(e, v, "max", b, l, families=("power law",)),
}


def measure(run: dict[str, Any], every: int) -> dict[str, dict[str, float]]:
    lv = level(run["values"])
    n, budget = len(lv), run["budget"]
    z = normal_quantile(0.9)
    rows: dict[str, list[tuple[float, float, float, float, float, str, float]]] = {k: [] for k in VARIANTS}
    rows["flat baseline (gain 0)"] = []
    rows["trend baseline (slope to the budget)"] = []
    for cut in range(10, n - 4, every):
        realized = lv[-1] - lv[cut - 1]
        realized_max = max(lv[cut:]) - lv[cut - 1]
        args = (run["epochs"][:cut], run["values"][:cut], budget, run["losses"][:cut])
        for name, fn in VARIANTS.items():
            est = fn(*args)
            if est.gain is None:
                continue
            rows[name].append((est.gain, est.gain_lo, est.gain_hi, realized, realized_max, est.state, est.margin))
            if name.startswith("default"):
                rows["flat baseline (gain 0)"].append((0.0, 0.0, 0.0, realized, realized_max, "stopped", est.margin))
                g, lo, hi = trend_baseline(est, budget, z)
                state = "learning" if lo > est.margin else "stopped" if hi <= est.margin else "unknown"
                rows["trend baseline (slope to the budget)"].append((g, lo, hi, realized, realized_max, state, est.margin))
    out = {}
    for name, rs in rows.items():
        if not rs:
            continue
        learning = [r for r in rs if r[5] == "learning"]
        stopped = [r for r in rs if r[5] == "stopped"]
        out[name] = {
            "cuts": len(rs),
            "coverage": statistics.fmean(1.0 if r[1] <= r[3] <= r[2] else 0.0 for r in rs),
            "mae": statistics.fmean(abs(r[0] - r[3]) for r in rs),
            "bias": statistics.fmean(r[0] - r[3] for r in rs),
            "learning_share": len(learning) / len(rs),
            "learning_precision": statistics.fmean(1.0 if r[4] > r[6] else 0.0 for r in learning) if learning else math.nan,
            "stopped_share": len(stopped) / len(rs),
            "stopped_precision": statistics.fmean(1.0 if r[4] <= r[6] else 0.0 for r in stopped) if stopped else math.nan,
            "width": statistics.fmean(r[2] - r[1] for r in rs),
        }
    return out


def at_patience_stops(run: dict[str, Any], patience: int) -> list[dict[str, Any]]:
    """Where plain patience (min_delta 0, raw values) would stop the run, each time it would (restarting the
    count after each): what the estimator says there, and what the rest of the run delivered (smoothed)."""
    lv, vals = level(run["values"]), run["values"]
    out, best, wait = [], -math.inf, 0
    for i, v in enumerate(vals):
        if v > best:
            best, wait = v, 0
            continue
        wait += 1
        if wait < patience:
            continue
        wait = 0
        est = estimate_learning(run["epochs"][:i + 1], vals[:i + 1], "max", run["budget"], run["losses"][:i + 1])
        gain = max(lv[i + 1:], default=lv[i]) - lv[i]
        out.append({"state": est.state, "trend_z": est.trend_z or 0.0, "gain_point": est.gain or 0.0,
                    "margin": est.margin or 0.0, "delivered": gain, "worth": gain > (est.margin or 0.0)})
    return out


def spread(values: list[float], digits: int = 2) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "-"
    f = f"{{:.{digits}f}}"
    return f"{f.format(statistics.fmean(vals))} ({f.format(min(vals))}-{f.format(max(vals))})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=REPO / "docs" / "results" / "long_runs")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--partial", action="store_true", help="also measure runs still being recorded (cut at their end)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)
    runs = [r for r in (load(p.parent, args.partial) for p in sorted(args.runs.glob("*/seed*/trace.jsonl"))) if r]
    if not runs:
        print(f"no finished runs under {args.runs}")
        return 1
    results = {r["name"]: res for r in runs if (res := measure(r, args.every))}
    lines = [f"# Still-learning estimator: predicted vs delivered gain ({len(runs)} runs, cut every {args.every} "
             "evaluations)", "",
             "Per variant: mean over runs (min-max over runs). Coverage: share of cuts whose delivered change of the "
             "smoothed level by the budget's end lies in the interval (nominal 0.80); MAE/bias of the expected gain "
             "(ndcg@10); learning/stopped: share of cuts given that state and, of those, how often the rest of the "
             "run agreed (still gained more than the margin / did not).", "",
             "| variant | cuts | coverage | MAE | bias | interval width | learning share | learning right | "
             "stopped share | stopped right |", "|---|---|---|---|---|---|---|---|---|---|"]
    names = next(iter(results.values())).keys()
    for name in names:
        per = [results[r][name] for r in results if name in results[r]]
        lines.append(f"| {name} | {sum(p['cuts'] for p in per)} | {spread([p['coverage'] for p in per])} | "
                     f"{spread([p['mae'] for p in per], 4)} | {spread([p['bias'] for p in per], 4)} | "
                     f"{spread([p['width'] for p in per], 4)} | {spread([p['learning_share'] for p in per])} | "
                     f"{spread([p['learning_precision'] for p in per])} | {spread([p['stopped_share'] for p in per])} | "
                     f"{spread([p['stopped_precision'] for p in per])} |")
    lines += ["", "Per run (default variant):", "", "| run | cuts | coverage | MAE | bias | learning right | stopped right |",
              "|---|---|---|---|---|---|---|"]
    for run, res in results.items():
        d = next(iter(res.values()))
        lines.append(f"| {run} | {d['cuts']} | {d['coverage']:.2f} | {d['mae']:.4f} | {d['bias']:+.4f} | "
                     f"{d['learning_precision']:.2f} | {d['stopped_precision']:.2f} |")
    lines += ["", "At the evaluations where plain patience (min_delta 0) would stop, restarting the count after each: "
              "how often the rest of the run still gained more than the margin (worth continuing), and what each "
              "hold criterion says there.", "",
              "| patience | stops | worth continuing | curve: learning (lower bound > margin) right / held | "
              "trend z > 1.28 and expected gain > margin right / held |", "|---|---|---|---|---|"]
    z = normal_quantile(0.9)
    for patience in (5, 10, 20):
        pts = [p for r in runs for p in at_patience_stops(r, patience)]
        if not pts:
            continue
        worth = sum(p["worth"] for p in pts)
        cells = []
        for rule in (lambda p: p["state"] == "learning", lambda p: p["trend_z"] > z and p["gain_point"] > p["margin"]):
            held = [p for p in pts if rule(p)]
            cells.append(f"{sum(p['worth'] for p in held)} / {len(held)}")
        lines.append(f"| {patience} | {len(pts)} | {worth} | {cells[0]} | {cells[1]} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
