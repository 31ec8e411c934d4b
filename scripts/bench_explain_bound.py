#!/usr/bin/env python
"""How far can *any* verdict read from a stock log go? A bound for the verdict's goal, leave one regime out.

    python scripts/bench_explain_bound.py RUNS_DIR [RUNS_DIR ...] [--cases docs/results/bench_explain/cases.csv]
                                          [--out docs/results/bench_explain] [--draws 5]

``scripts/bench_explain.py`` scores the shipped verdict's hand-written rules. This asks whether other rules could
do much better on the same evidence: two learned classifiers, fitted to everything the benchmark's cut logs
hold, each regime's cases predicted by a model fitted on the *other* regimes only (leave one regime out, as
a model or learning rate not recorded here would be met), and every reject band ``(lo, hi)`` on their
predicted probability of "premature" tried (below ``lo``: not premature; at or above ``hi``: premature; between:
cannot tell). The band is chosen *after* seeing the left-out predictions, so the numbers are optimistic: an
upper bound for classifiers of this evidence, not a verdict one could ship.

What the classifiers see, per scored case of ``cases.csv`` (the run's trace cut at the stop: what the log shows):

* the verdict's own evidence: the monitor's trend z, the loss headroom, the loss's fall over the trend window,
  the extrapolated gain and its bounds, the share of the budget used, log(stopping_step);
* the curves: the training loss's fall over the second half of the evaluations against its fall over the first
  half; the monitor's best in the second half above the first half's best, against the first half's rise; the
  restored epoch as a share of the stop epoch; the best above the second half's mean in units of its noise; the
  trend z of recall@10 (another metric the log holds) over the second half; and both curves' shapes, resampled
  at ``SHAPE`` points (monitor over its maximum, loss over its first value).

Printed and written to ``OUT/bound.md`` (and ``bound.png``: calls right against the share of stops that get a
call, for each classifier, with the shipped verdict's point and the goal's corner):

* per classifier, the largest share of stops that can get a call with at least 90 % of the calls right, and the
  share right when every stop gets a call;
* the same for the shipped rules, and for the rules with thresholds chosen leaving one regime out
  (``benchlib.loro_calls``);
* how the bound grows with the number of regimes the classifier is fitted on (``--draws`` random subsets of k
  of the other regimes per left-out regime): whether more recorded regimes would be likely to lift it.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from benchlib import find_runs, loro_calls, rule_inputs
from rec_es.policy.stats import difference_noise, fit_line

PREMATURE, NOT_PREMATURE = "premature", "not premature"
#: the share of calls that must be right (the verdict's goal), and the share of stops that must get one
CALLS_RIGHT, COVERAGE = 0.9, 0.9
#: points each curve's shape is resampled to
SHAPE = 10
#: sentinel for a feature an early stop does not have (no trend window, no fit): the trees split it off
MISSING = -9.0
_BAND = np.round(np.arange(0, 51) / 100, 2)
#: the columns of ``features`` each classifier is tried on: the verdict's evidence, then the curves' summaries,
#: then their shapes
FEATURE_SETS = {"the verdict's evidence": slice(0, 8), "evidence and curve summaries": slice(0, 13),
                "evidence, summaries and shapes": slice(0, 13 + 2 * SHAPE)}
#: the feature set of the plot and of the growth table (the best left out on the first ten regimes)
GROWTH = "evidence and curve summaries"


def _number(x: str) -> float:
    return float(x) if x not in ("", None) else math.nan


def _z(epochs: Sequence[int], values: Sequence[float]) -> float:
    """Least-squares slope's z against the curve's difference noise (as the verdict's trend z)."""
    noise = difference_noise(values) if len(epochs) >= 4 else None
    if not noise:
        return math.nan
    line = fit_line(epochs, values)
    return line.slope / line.slope_se(noise)


def features(row: dict[str, str], records: Sequence[dict[str, Any]]) -> list[float]:
    """One scored case's features (module docstring), from its ``cases.csv`` row and its run's trace records."""
    stop, metric = int(row["stop_epoch"]), row["valid_metric"]
    seen = [r for r in records if r["epoch"] <= stop]
    epochs = [r["epoch"] for r in seen]
    loss = np.array([r["train_loss"] for r in seen], dtype=float)
    monitor = np.array([r["valid"][metric] for r in seen], dtype=float)
    recall = [r["valid"]["recall@10"] for r in seen]
    own = [_number(row[k]) for k in ("trend_z", "headroom", "window_loss_fall", "expected_gain", "gain_lo",
                                     "gain_hi")]
    own += [(stop + 1) / int(row["budget"]), math.log(int(row["stopping_step"]))]
    h = len(seen) // 2
    if len(seen) >= 8:
        first, second = slice(0, h + 1), slice(h, None)
        rise = monitor[first].max() - monitor[0]
        noise = difference_noise(list(monitor[second])) or 1.0
        curves = [(loss[h] - loss[-1]) / max(loss[0] - loss[h], 1e-12),
                  (monitor[second].max() - monitor[first].max()) / max(rise, 1e-9),
                  int(row["restored_epoch"]) / max(stop, 1),
                  (monitor.max() - monitor[second].mean()) / noise,
                  _z(epochs[h:], recall[h:])]
    else:
        curves = [math.nan] * 5
    grid = np.linspace(0, len(seen) - 1, SHAPE)
    at = np.arange(len(seen))
    shape = list(np.interp(grid, at, monitor) / max(monitor.max(), 1e-12)) + list(np.interp(grid, at, loss) / loss[0])
    return [MISSING if not math.isfinite(x) else float(x) for x in own + curves + shape]


def load(cases: Path, roots: Sequence[Path]) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray, np.ndarray]:
    """(scored rows, features, truth is premature, regime) of every scored case in ``cases`` whose run is found
    under ``roots`` (``<regime>/seed<N>/trace.jsonl``)."""
    traces = {tuple(name.split("/seed")): trace.records for name, trace, _ in find_runs(roots, include_partial=False)}
    with open(cases, encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["truth"] in (PREMATURE, NOT_PREMATURE)]
    missing = sorted({f"{r['regime']}/seed{r['seed']}" for r in rows if (r["regime"], r["seed"]) not in traces})
    if missing:
        raise SystemExit(f"{cases}: no trace.jsonl under {', '.join(map(str, roots))} for {', '.join(missing)}")
    x = np.array([features(r, traces[(r["regime"], r["seed"])]) for r in rows])
    return rows, x, np.array([r["truth"] == PREMATURE for r in rows]), np.array([r["regime"] for r in rows])


def operating_points(p: np.ndarray, y: np.ndarray) -> list[tuple[float, float, float, float]]:
    """(coverage, calls right, lo, hi) of every reject band on the predicted probabilities ``p``."""
    out = []
    for lo in _BAND:
        for hi in _BAND + 0.5:
            call = np.where(p >= hi, 1, np.where(p < lo, 0, -1))
            made = call >= 0
            if made.any():
                out.append((float(made.mean()), float((call[made] == y[made]).mean()), float(lo), float(hi)))
    return out


def bound(points: Sequence[tuple[float, float, float, float]], calls_right: float = CALLS_RIGHT) -> float:
    """The largest coverage among ``points`` with at least ``calls_right`` of the calls right (0 if none)."""
    return max((cov for cov, right, _, _ in points if right >= calls_right - 1e-12), default=0.0)


def everything_called(p: np.ndarray, y: np.ndarray) -> float:
    """Share right when every stop gets a call (premature at p >= 0.5)."""
    return float(((p >= 0.5) == y).mean())


def classifiers() -> dict[str, Callable[[], Any]]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {"logistic regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
            "gradient boosting (100 trees, depth 2)":
                lambda: GradientBoostingClassifier(n_estimators=100, max_depth=2, random_state=0)}


def left_out(make: Callable[[], Any], x: np.ndarray, y: np.ndarray, regime: np.ndarray,
             train: Callable[[str], Sequence[str]] | None = None) -> np.ndarray:
    """Each regime's predicted P(premature) from a model fitted on ``train(regime)`` (default: every other
    regime)."""
    p = np.zeros(len(y))
    for reg in sorted(set(regime)):
        fit_on = np.isin(regime, list(train(reg))) if train else regime != reg
        if len(set(y[fit_on])) < 2:  # one class only: the model can say nothing but that class
            p[regime == reg] = float(y[fit_on].mean())
            continue
        p[regime == reg] = make().fit(x[fit_on], y[fit_on]).predict_proba(x[regime == reg])[:, 1]
    return p


def rule_point(calls: Sequence[str], truths: Sequence[str]) -> tuple[float, float]:
    """(coverage, calls right) of verdicts ``calls`` against ``truths``."""
    made = [(c, t) for c, t in zip(calls, truths) if c != "cannot tell"]
    return len(made) / len(calls), sum(c == t for c, t in made) / max(len(made), 1)


def growth(make: Callable[[], Any], x: np.ndarray, y: np.ndarray, regime: np.ndarray, draws: int,
           seed: int = 0) -> list[tuple[int, list[float]]]:
    """(k, bound per draw) with each regime predicted by a model fitted on k random other regimes."""
    rng = np.random.default_rng(seed)
    regimes = sorted(set(regime))
    out = []
    for k in range(3, len(regimes), 2):
        got = []
        for _ in range(draws if k < len(regimes) - 1 else 1):
            picks = {reg: list(rng.choice([r for r in regimes if r != reg], size=k, replace=False))
                     for reg in regimes}
            got.append(bound(operating_points(left_out(make, x, y, regime, picks.__getitem__), y)))
        out.append((k, got))
    if not out or out[-1][0] != len(regimes) - 1:
        out.append((len(regimes) - 1, [bound(operating_points(left_out(make, x, y, regime), y))]))
    return out


def plot(curves: dict[str, list[tuple[float, float, float, float]]], marks: dict[str, tuple[float, float]],
         path: Path) -> None:
    """Per classifier, the best share of calls right at each coverage (left out), the rules' points and the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.fill_between([COVERAGE, 1.0], CALLS_RIGHT, 1.0, color="tab:green", alpha=0.15, label="issue 13's goal")
    for name, pts in curves.items():  # the frontier: the best calls-right share at each coverage
        frontier: dict[float, float] = {}
        for cov, right, _, _ in pts:
            key = round(cov, 2)
            frontier[key] = max(frontier.get(key, 0.0), right)
        xs = sorted(frontier)
        best = [max(frontier[c] for c in xs if c >= x0) for x0 in xs]
        ax.plot(xs, best, label=f"{name.split(' (')[0]}, left out")
    for (name, (cov, right)), marker in zip(marks.items(), "o^s"):
        ax.plot([cov], [right], marker, color="black", label=name)
    ax.set_xlabel("share of stops that get a call (1 - \"cannot tell\")")
    ax.set_ylabel("share of the calls that are right")
    ax.set_xlim(0.3, 1.0)
    ax.set_ylim(0.75, 1.005)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"What a verdict from a stock log's evidence reaches, leave one regime out\n(classifiers on "
                 f"{GROWTH};\nreject band chosen after seeing the left-out predictions)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(rows: list[dict[str, str]], x: np.ndarray, y: np.ndarray, regime: np.ndarray, draws: int,
           png: Path | None) -> list[str]:
    truths = [r["truth"] for r in rows]
    shipped = rule_point([r["call"] for r in rows], truths)
    loro = rule_point([call for _, call, _ in loro_calls(rule_inputs(rows))], truths)  # in the order of rows
    n_reg = len(set(regime))
    lines = [f"# What any verdict from a stock log's evidence reaches: {len(rows)} scored cut logs, {n_reg} regimes",
             "", "`python scripts/bench_explain_bound.py docs/results/long_runs` (scripts/bench_explain_bound.py "
             "says what the classifiers see). The verdict's goal is a call on at least "
             f"{100 * COVERAGE:.0f} % of the stops with at least {100 * CALLS_RIGHT:.0f} % of the calls right.", "",
             "Each cell: the largest share of stops that can get a call with at least 90 % of the calls right, "
             "then the share right when every stop gets a call. *Left out*: each regime predicted by a model "
             "fitted on the other regimes, the reject band chosen after seeing those predictions (optimistic). "
             "*In sample*: fitted and scored on every regime.", "",
             "| verdict | features | left out | in sample |", "|---|---|---:|---:|",
             f"| the shipped rules | the verdict's evidence | {loro[0]:.2f} (calls right {loro[1]:.2f}; "
             f"thresholds chosen on the other regimes) | {shipped[0]:.2f} (calls right {shipped[1]:.2f}) |"]
    curves = {}
    makers = classifiers()
    for name, make in makers.items():
        for cols, columns in FEATURE_SETS.items():
            p = left_out(make, x[:, columns], y, regime)
            pts = operating_points(p, y)
            if columns == FEATURE_SETS[GROWTH]:
                curves[name] = pts
            inside = make().fit(x[:, columns], y).predict_proba(x[:, columns])[:, 1]
            lines.append(f"| {name} | {cols} | {bound(pts):.2f}, {everything_called(p, y):.2f} | "
                         f"{bound(operating_points(inside, y)):.2f}, {everything_called(inside, y):.2f} |")
    lines += ["", f"Leave one regime out, each regime predicted by the gradient-boosting model on {GROWTH} fitted on k of the "
              f"other regimes (random subsets, {draws} draws; the largest k is every other regime): the largest "
              "share of stops that gets a call with >= 90 % of the calls right", "",
              "| regimes fitted on | bound (mean over draws) | per draw |", "|---:|---:|---|"]
    for k, got in growth(makers["gradient boosting (100 trees, depth 2)"], x[:, FEATURE_SETS[GROWTH]], y, regime,
                         draws):
        lines.append(f"| {k} | {sum(got) / len(got):.2f} | {' '.join(f'{g:.2f}' for g in got)} |")
    if png is not None:
        plot(curves, {"shipped verdict": shipped, "rules, thresholds left out": loro}, png)
        lines += ["", f"![calls right against stops called]({png.name})"]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_explain_bound.py", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="directories holding the recorded runs of the cases")
    p.add_argument("--cases", type=Path, default=REPO / "docs" / "results" / "bench_explain" / "cases.csv")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "bench_explain")
    p.add_argument("--draws", type=int, default=5, help="random subsets per k in the growth table")
    args = p.parse_args(argv)
    rows, x, y, regime = load(args.cases, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(report(rows, x, y, regime, args.draws, args.out / "bound.png")) + "\n"
    (args.out / "bound.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
