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

**Calibration of the bounds** (the section ``calibration`` prints; ``--calibrate`` also fits the discrepancy):
each run is cut every ``--every`` evaluations from the ``MIN_POINTS``-th on (while 5 evaluations remain after
the cut); the truth is what ``scripts/bench_explain.py`` scores, the full run's *end level* (mean of its last 5
evaluations) minus the estimator's fitted level at the cut, and the gain interval holds it or misses it below
or above (each bound is one-sided at 0.9: nominal 10 % misses per side, 80 % coverage). The interval is for the
level, the end level a mean of 5 noisy evaluations, so each side is widened by that noise (``z sigma / sqrt 5``
in quadrature) when it is scored; "raw coverage" scores the interval as it is. The continuation band
is scored the same way at 10, 25 and 50 epochs past the cut against the smoothed level there. ``--calibrate``
chooses the discrepancy factors (below, above) of ``rec_es.policy.learning.DISCREPANCY`` per side as the
smallest on a 0.25 grid whose misses, averaged over runs, are at most 10 %: on all runs (the shipped value),
on the seed-2020 runs only (checked on the other seeds), and leaving each run out in turn (checked on it).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]

from rec_es.policy import learning
from rec_es.policy.learning import DISCREPANCY, MIN_POINTS, LearningEstimate, estimate_learning
from rec_es.policy.stats import normal_quantile
from rec_es.rundir.trace import read_trace
from benchlib import emit

METRIC = "ndcg@10"
HALF = 4  # the smoothed "truth": a centred moving average of 2 * HALF + 1 evaluations
#: the discrepancy factors fitted on the first nine runs (GRU4Rec lr 0.001 and 0.005, STAMP lr 0.001) and shipped
#: until session 8, scored beside the shipped ones on the runs recorded after them
FIRST_NINE = (1.5, 0.5)


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
    f"bounds fitted on the first nine runs {FIRST_NINE}":
        lambda e, v, b, l: estimate_learning(e, v, "max", b, l, discrepancy=FIRST_NINE),
    "fit uncertainty only (discrepancy 0: the bounds before calibration)":
        lambda e, v, b, l: estimate_learning(e, v, "max", b, l, discrepancy=(0.0, 0.0)),
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


HORIZONS = (10, 25, 50)  # epochs past the cut where the continuation band is scored
GRID = tuple(i / 4 for i in range(17))  # discrepancy factors tried by --calibrate
CAPS = (0.0, 1.0, 3.0, 10.0, math.inf)  # horizon caps tried by --calibrate
#: score the level's interval against a noisy truth: widen each side by the end level's own noise (z sigma / sqrt 5)
TRUTH_NOISE = True
Z = normal_quantile(0.9)


def regime(name: str) -> str:
    return name.split("/")[0]


def calibration_cuts(run: dict[str, Any], every: int, discrepancy: tuple[float, float]) -> list[dict[str, Any]]:
    """One row per cut: where the end level fell against the gain interval, its width, the band's hits."""
    vals, epochs = run["values"], run["epochs"]
    lv, n = level(vals), len(vals)
    at = {e: i for i, e in enumerate(epochs)}
    end = statistics.fmean(vals[-5:])
    rows = []
    for cut in range(MIN_POINTS, n - 4, every):
        est = estimate_learning(epochs[:cut], vals[:cut], "max", run["budget"], run["losses"][:cut],
                                discrepancy=discrepancy)
        if est.gain is None or est.gain_lo is None or est.gain_hi is None or not est.continuation:
            continue
        actual = end - (est.continuation[-1].mean - est.gain)  # end level - the fitted level at the cut
        lo, hi = est.gain_lo, est.gain_hi
        if TRUTH_NOISE:  # the end level is a mean of 5 noisy evaluations: score the interval widened by that noise
            extra = Z * (est.noise or 0.0) / math.sqrt(5)
            lo, hi = est.gain - math.hypot(est.gain - lo, extra), est.gain + math.hypot(hi - est.gain, extra)
        band = {}
        for h in HORIZONS:
            target = epochs[cut - 1] + h
            if target not in at:
                continue
            point = min(est.continuation, key=lambda p: abs(p.epoch - target))
            if point.epoch in at:
                band[h] = point.lo <= lv[at[point.epoch]] <= point.hi
        rows.append({"below": actual < lo, "above": actual > hi, "raw": est.gain_lo <= actual <= est.gain_hi,
                     "width": est.gain_hi - est.gain_lo,
                     "band": band, "state": est.state})
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    below = statistics.fmean(float(r["below"]) for r in rows)
    above = statistics.fmean(float(r["above"]) for r in rows)
    out = {"cuts": len(rows), "coverage": 1.0 - below - above, "below": below, "above": above,
           "raw coverage": statistics.fmean(float(r["raw"]) for r in rows),
           "width": statistics.fmean(r["width"] for r in rows), "median width": statistics.median(r["width"] for r in rows),
           "learning": statistics.fmean(float(r["state"] == "learning") for r in rows),
           "stopped": statistics.fmean(float(r["state"] == "stopped") for r in rows)}
    for h in HORIZONS:
        hits = [r["band"][h] for r in rows if h in r["band"]]
        out[f"band +{h}"] = statistics.fmean(map(float, hits)) if hits else math.nan
    return out


def calibration(runs: list[dict[str, Any]], every: int, settings: dict[str, tuple[float, float]],
                held_out: tuple[str, ...] = ()) -> list[str]:
    """Coverage of the gain interval and the band per setting: overall, on the ``held_out`` regimes together (runs
    recorded after the shipped factors were fitted) and per regime, with the spread over runs."""
    lines = ["## Calibration of the bounds", "",
             f"Cuts every {every} evaluations from the {MIN_POINTS}th; truth: the full run's end level (mean of its last "
             "5 evaluations) minus the fitted level at the cut. The bounds are for the level, the truth is a mean of 5 "
             "noisy evaluations: coverage/below/above score the interval widened on each side by that noise "
             "(z sigma / sqrt 5, in quadrature); raw coverage scores the interval as it is (what "
             "scripts/bench_explain.py counts). Nominal 0.80 (each bound one-sided at 0.9: 0.10 below, 0.10 above); "
             "band: share of the continuation band holding the smoothed level 10/25/50 epochs past the cut. Mean over "
             "runs (min-max over runs); width (of the interval as it is) in ndcg@10.", "",
             "| bounds | runs | cuts | coverage | below | above | raw coverage | width (mean) | width (median) | band +10 "
             "| band +25 | band +50 | says learning | says stopped |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, k in settings.items():
        per = {r["name"]: summarize(calibration_cuts(r, every, k)) for r in runs}
        groups = [("all", list(per))] + [(g, [n for n in per if regime(n) == g]) for g in sorted({regime(n) for n in per})]
        if held_out:
            groups.insert(1, ("held out", [n for n in per if regime(n) in held_out]))
            groups.insert(1, ("fitting runs", [n for n in per if regime(n) not in held_out]))
        for group, names in groups:
            rs = [per[n] for n in names]
            cells = [spread([r[key] for r in rs], 4 if "width" in key else 2)
                     for key in ("coverage", "below", "above", "raw coverage", "width", "median width", "band +10", "band +25",
                                 "band +50", "learning", "stopped")]
            lines.append(f"| {label}, {group} | {len(rs)} | {sum(r['cuts'] for r in rs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def fit_discrepancy(runs: list[dict[str, Any]], every: int) -> list[str]:
    """Per horizon cap, the per-side discrepancy factors chosen on all runs, on the seed-2020 runs, and leaving each
    run out in turn, with the coverage each gives on the runs it was not fitted on."""
    names = [r["name"] for r in runs]
    tune = [n for n in names if n.endswith("seed2020")]
    held = [n for n in names if n not in tune]
    lines = ["## Choosing the discrepancy (below, above) and the horizon cap", "",
             "Per side, the smallest factor on the grid whose misses on that side, averaged over the fitting runs, are "
             "at most 0.10; coverage (mean over runs, min-max) on the runs named. Cap: the discrepancy grows as "
             "sqrt(1 + min(h / span, cap)) with the horizon h against the fitted window's span (0: constant).", "",
             "| cap | fitted on all runs | in-sample coverage | mean width | fitted on seed 2020 | coverage on the other "
             "seeds | leave one run out: factors | coverage on the run left out |", "|---|---|---|---|---|---|---|---|"]
    saved = learning.HORIZON_CAP
    loro_detail = ""
    try:
        for cap in CAPS:
            learning.HORIZON_CAP = cap
            miss: dict[float, dict[str, dict[str, float]]] = {
                k: {r["name"]: summarize(calibration_cuts(r, every, (k, k))) for r in runs} for k in GRID}

            def choose(subset: list[str]) -> tuple[float, float]:
                return (next((k for k in GRID if statistics.fmean(miss[k][n]["below"] for n in subset) <= 0.10), GRID[-1]),
                        next((k for k in GRID if statistics.fmean(miss[k][n]["above"] for n in subset) <= 0.10), GRID[-1]))

            def cover(subset: list[str], k: tuple[float, float]) -> list[float]:
                return [1.0 - miss[k[0]][n]["below"] - miss[k[1]][n]["above"] for n in subset]

            k_all = choose(names)
            width = statistics.fmean(miss[k_all[0]][n]["width"] / 2 + miss[k_all[1]][n]["width"] / 2 for n in names)
            loro = {n: choose([m for m in names if m != n]) for n in names}
            out = [cover([n], loro[n])[0] for n in names]
            k_tune = choose(tune) if tune and held else None
            lines.append(f"| {cap:g} | {k_all} | {spread(cover(names, k_all))} | {width:.4f} | {k_tune or '-'} | "
                         f"{spread(cover(held, k_tune)) if k_tune else '-'} | {', '.join(map(str, sorted(set(loro.values()))))} "
                         f"| {spread(out)} |")
            if cap == saved:
                loro_detail = "; ".join(f"{n} {loro[n]}: {c:.2f}" for n, c in zip(names, out))
    finally:
        learning.HORIZON_CAP = saved
    lines += ["", "Mean width: the mean over runs of the two factors' half-widths (an approximation: each side's width "
              "at its own factor). " + f"Shipped: DISCREPANCY = {DISCREPANCY}, HORIZON_CAP = {saved:g}. Leave one run "
              f"out at the shipped cap, per run (factors fitted without it: coverage on it): {loro_detail}.", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=REPO / "docs" / "results" / "long_runs")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--partial", action="store_true", help="also measure runs still being recorded (cut at their end)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    ap.add_argument("--calibrate", action="store_true", help="also fit the discrepancy factors (about a minute)")
    ap.add_argument("--held-out", nargs="+", default=[], metavar="REGIME",
                    help="regimes recorded after the shipped factors were fitted: also scored together")
    args = ap.parse_args(argv)
    runs = [r for r in (load(p.parent, args.partial) for p in sorted(args.runs.glob("*/seed*/trace.jsonl"))) if r]
    if not runs:
        print(f"no finished runs under {args.runs}")
        return 1
    unknown = sorted(set(args.held_out) - {regime(r["name"]) for r in runs})
    if unknown:
        ap.error(f"--held-out: no finished runs of {', '.join(unknown)} under {args.runs}; regimes there: "
                 f"{', '.join(sorted({regime(r['name']) for r in runs}))}")
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
    lines += [""] + calibration(runs, args.every, {"before (fit uncertainty only)": (0.0, 0.0),
                                                   f"fitted on the first nine runs {FIRST_NINE}": FIRST_NINE,
                                                   f"shipped (discrepancy {DISCREPANCY})": DISCREPANCY},
                              tuple(args.held_out))
    if args.calibrate:
        lines += fit_discrepancy(runs, args.every)
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
