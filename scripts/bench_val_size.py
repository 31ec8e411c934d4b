#!/usr/bin/env python
"""What the shipped policies do on a smaller validation set: replay over recorded runs with the validation
metrics averaged over a random subset of the validation users (issue 12: "a policy a user does not have to tune").

    python scripts/bench_val_size.py [--runs docs/results/long_runs] [--sizes 943 471 236 118] [--subsets 10]
                                     [--policies recommended recbole_legacy ...] [--auto-multiples 1.8 2.5 3]
                                     [--null] [--out docs/results/val_size.md]

Every recorded run holds each validation user's NDCG@10, Recall@10 and MRR@10 at every epoch (``per_user/``), so
the run a smaller validation set would have produced is known without training: the same weights at every epoch,
the validation metrics averaged over ``n`` users drawn without replacement (a validation set of n users from the
same population; hit@10 = recall@10 and precision@10 = recall@10 / 10 under leave-one-out). Test metrics stay
those of the full test set. Each policy is replayed over ``--subsets`` such draws per run and size, and scored two
ways:

- **/ oracle**: the restored epoch's test NDCG@10 over the full-validation oracle's (the best validation NDCG@10
  epoch with all users, as in docs/results/policy_table.md): what the user gets;
- **/ subset oracle**: over the test NDCG@10 of the best *subset*-validation epoch of the whole run: the best any
  stopping rule could do with that validation set, so the stopping decision is scored apart from the noisier pick.

Policies that read per-user scores (``improvement: significant``, ``min_delta: auto``) are skipped: a subset has
no sidecar of its own. ``--auto-multiples`` adds ``recommended`` at other noise multiples of its GL ``alpha: auto``;
``--null`` adds how often GL alpha auto fires on a flat curve of pure noise. Pure replay; under a minute.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from rec_es import build_policy, read_per_user
from rec_es.config.properties import RECBOLE_DEFAULTS
from rec_es.replay import oracle, replay
from rec_es.rundir.trace import Trace, read_trace
from benchlib import emit, shipped_policy, test_at

METRIC = "ndcg@10"
#: name prefix of the --auto-multiples variants of recommended (tables only, not the plot)
VARIANT = "recommended, noise_multiple "
POLICIES = ("recommended", "prechelt_gl", "recbole_legacy", "patience_min_delta", "composite_ema_warmup")


def subset_trace(tr: Trace, values: dict[str, np.ndarray], users: np.ndarray) -> Trace:
    """``tr`` with each record's validation metrics averaged over ``users`` (column indices into the sidecar) and
    rounded as RecBole logs them (``metric_decimal_place``): a rule that counts ties sees the ties a log of that
    validation set would show, and the full set gives back the recorded run."""
    places = (tr.header.get("config") or {}).get("metric_decimal_place", RECBOLE_DEFAULTS["metric_decimal_place"])
    means = {m: v[:, users].astype(np.float64).mean(axis=1) for m, v in values.items()}
    records = []
    for i, r in enumerate(tr.records):
        valid = {"ndcg@10": means["ndcg@10"][i], "recall@10": means["recall@10"][i], "mrr@10": means["mrr@10"][i],
                 "hit@10": means["recall@10"][i], "precision@10": means["recall@10"][i] / 10}
        records.append({**r, "valid": {k: round(float(x), places) for k, x in valid.items()}})
    return Trace(tr.path.with_name("subset-has-no-sidecar.jsonl"), tr.header, records, tr.footer)


def best_valid(tr: Trace) -> tuple[int, float]:
    """(epoch, test NDCG@10) of ``tr``'s best validation NDCG@10 epoch: its oracle."""
    epoch = oracle(tr, build_policy({"monitor": METRIC, "enabled": False})).best_epoch
    return epoch, test_at(tr, epoch, METRIC)


def score(policy_map: dict[str, Any], sub: Trace, sub_oracle: tuple[int, float],
          full_test: float) -> dict[str, float]:
    """One policy on one subset run, against the full-set oracle's test value and the subset's own oracle."""
    res = replay(build_policy(policy_map), sub, need_test=True)
    got = test_at(sub, res.best_epoch, METRIC)
    return {"oracle": got / full_test, "subset": got / sub_oracle[1], "past": res.stop_epoch - sub_oracle[0],
            "epochs": res.epochs_trained}


def p10(xs: list[float]) -> float:
    """The 10th percentile of ``xs`` as the tables give it (the lowest tenth's largest value)."""
    xs = sorted(xs)
    return xs[max(0, int(0.1 * len(xs)) - 1)]


def spread(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.3f} ({p10(xs):.3f})"


def plot(rows: dict[tuple[str, int], list[dict[str, float]]], maps: dict[str, Any], sizes: list[int],
         path: Path) -> None:
    """Test NDCG@10 over the oracle's against the validation users: the mean (line) and the 10th percentile
    (dashed) per shipped policy (not the --auto-multiples variants), sizes on a log axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = sorted(sizes)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, name in enumerate(n for n in maps if not n.startswith(VARIANT)):
        ratios = [[x["oracle"] for x in rows[(name, n)]] for n in xs]
        colour = f"C{i}"
        ax.plot(xs, [statistics.fmean(r) for r in ratios], "o-", color=colour, label=name)
        ax.plot(xs, [p10(r) for r in ratios], "--", color=colour, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(n) for n in xs])
    ax.minorticks_off()
    ax.axhline(0.99, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("validation users (random subsets of ml-100k's 943)")
    ax.set_ylabel("test NDCG@10 / oracle's")
    ax.set_title("Stopping on a smaller validation set: mean (solid), 10th percentile (dashed)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def null_table(multiples: list[float], seed: int, reps: int = 4000) -> str:
    """How often GL alpha auto on an EMA-0.5 monitor fires on a flat curve of unit white noise within T
    evaluations: the margin is ``k`` times the SD of a difference of two evaluations, sqrt(2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(reps, 90))
    ema = np.empty_like(x)
    ema[:, 0] = x[:, 0]
    for t in range(1, x.shape[1]):
        ema[:, t] = 0.5 * x[:, t] + 0.5 * ema[:, t - 1]
    fall = np.maximum.accumulate(ema, axis=1) - ema
    lines = ["| noise_multiple | fires within 30 evaluations | within 90 |", "|---:|---:|---:|"]
    for k in sorted(set(multiples) | {1.8, 2.5, 3.0}):
        hit = fall > k * np.sqrt(2)
        lines.append(f"| {k:g} | {hit[:, :30].any(axis=1).mean():.3f} | {hit.any(axis=1).mean():.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=REPO / "docs" / "results" / "long_runs")
    ap.add_argument("--sizes", type=int, nargs="+", default=[943, 471, 236, 118])
    ap.add_argument("--subsets", type=int, default=10, help="random user subsets per run and size (default 10)")
    ap.add_argument("--policies", nargs="+", default=list(POLICIES))
    ap.add_argument("--auto-multiples", type=float, nargs="*", default=[],
                    help="also replay recommended at these noise_multiple values of its GL alpha: auto")
    ap.add_argument("--null", action="store_true",
                    help="print how often GL alpha auto fires on a flat curve of white noise, per noise_multiple")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None, help="also draw test NDCG@10 / oracle's against the "
                    "validation users, per policy (mean and 10th percentile), into this PNG")
    args = ap.parse_args(argv)
    start = time.time()
    maps = {}
    for name in args.policies:
        m = shipped_policy(name)
        if build_policy(m).per_user_keys:
            print(f"{name}: skipped (reads per-user scores)")
            continue
        maps[name] = m
    for k in args.auto_multiples:
        maps[f"{VARIANT}{k:g}"] = {**shipped_policy("recommended"),
                                                      "prechelt": {"criterion": "GL", "alpha": "auto",
                                                                   "noise_multiple": k}}
    runs = [read_trace(p) for p in sorted(args.runs.glob("*/seed*/trace.jsonl"))]
    runs = [tr for tr in runs if tr.complete]
    rows: dict[tuple[str, int], list[dict[str, float]]] = {(n, s): [] for n in maps for s in args.sizes}
    for tr in runs:
        pu = read_per_user(tr.path.parent, "valid", trace=tr)
        values = {m: pu.values(m) for m in ("ndcg@10", "recall@10", "mrr@10")}
        full_test = best_valid(tr)[1]
        n_users = len(pu.user_ids)
        # one stream per run, seeded by its name: adding a run does not redraw the other runs' subsets
        rng = random.Random(f"{args.seed}:{tr.path.parent.parent.name}/{tr.path.parent.name}")
        for size in args.sizes:
            draws = 1 if size >= n_users else args.subsets
            for _ in range(draws):
                users = np.array(sorted(rng.sample(range(n_users), min(size, n_users))))
                sub = subset_trace(tr, values, users)
                sub_oracle = best_valid(sub)
                for name, m in maps.items():
                    rows[(name, size)].append(score(m, sub, sub_oracle, full_test))
    lines = [f"Runs: {len(runs)} ({', '.join(sorted({p.parent.parent.name for p in (t.path for t in runs)}))}); "
             f"{args.subsets} random validation-user subsets per run and size (the full set once); test metrics on "
             f"the full test set. Cells: mean (10th percentile) over runs x subsets.", "",
             "| policy | validation users | test NDCG@10 / oracle's | / subset oracle's | worst | "
             "epochs past the subset oracle, mean | epochs trained, mean | cases |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    for name in maps:
        for size in args.sizes:
            xs = rows[(name, size)]
            lines.append(f"| {name} | {size} | {spread([x['oracle'] for x in xs])} | "
                         f"{spread([x['subset'] for x in xs])} | {min(x['subset'] for x in xs):.3f} | "
                         f"{statistics.fmean(x['past'] for x in xs):+.1f} | "
                         f"{statistics.fmean(x['epochs'] for x in xs):.0f} | {len(xs)} |")
    if args.plot:
        plot(rows, maps, args.sizes, args.plot)
        lines += ["", f"Plot: {args.plot.name}"]
    if args.null:
        lines += ["", "GL alpha: auto on a flat curve of white noise under an EMA of 0.5 (4000 curves): how often it "
                  "stops, by noise_multiple", "", null_table(args.auto_multiples, args.seed)]
    lines += ["", f"({sum(len(v) for v in rows.values())} replays in {time.time() - start:.0f} s)"]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
