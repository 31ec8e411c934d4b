#!/usr/bin/env python
"""Is ``target_ce`` (cross-entropy at the target item) a steadier monitor than NDCG@10? Measured on recorded runs.

    python scripts/bench_target_ce.py [--runs docs/results/ce_runs] [--out docs/results/target_ce.md]

Reads every ``<regime>/seed<N>/`` run (``scripts/record_runs.py --target-ce``: stopping disabled, test metrics
and target_ce at every epoch) and reports, side by side for the two monitors on the same runs:

1. **Noise to signal**: sigma = ``rec_es.policy.stats.difference_noise`` of the validation curve (1.4826·MAD of
   first differences / √2: the evaluation-to-evaluation noise, robust to a trend), over the signal = how far the
   curve moves from the first evaluation to its best. Also the still-learning estimator's trend z
   (``rec_es.policy.learning.estimate_learning``, oriented so positive = improving) after 20 and 40 evaluations.
2. **What a user gets**: the test NDCG@10 of the epoch each monitor would pick in hindsight (its best validation
   epoch), and of the epoch ``recommended`` and ``recbole_legacy`` restore when replayed monitoring each, over the
   test NDCG@10 of the NDCG oracle (best validation NDCG@10 epoch), with the epochs trained.
Pure replay over the traces: seconds.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any, Callable


REPO = Path(__file__).resolve().parents[1]

from rec_es import build_policy
from rec_es.policy.learning import estimate_learning
from rec_es.policy.stats import difference_noise
from rec_es.replay import replay
from rec_es.rundir.trace import Trace, read_trace
from benchlib import shipped_policy

QUALITY = "ndcg@10"
MONITORS = {"ndcg@10": "max", "target_ce": "min"}
POLICIES = ("recommended", "recbole_legacy")
TREND_AT = (20, 40)


def policy_mapping(name: str, monitor: str) -> dict[str, Any]:
    """The shipped policy ``name`` with its monitor replaced (mode auto: min for target_ce)."""
    return {**shipped_policy(name), "monitor": monitor}


def curve(tr: Trace, key: str, split: str = "valid") -> list[float]:
    return [float(r[split][key]) for r in tr.records]


def oriented(values: list[float], mode: str) -> list[float]:
    return values if mode == "max" else [-v for v in values]


def pick(values: list[float], mode: str) -> int:
    """Index of the first best value (a tie is not an improvement), as a policy's best tracking picks it."""
    y = oriented(values, mode)
    return y.index(max(y))


def steadiness(tr: Trace, key: str, mode: str) -> dict[str, Any]:
    y = oriented(curve(tr, key), mode)
    best = max(y)
    sigma = difference_noise(y) or 0.0
    signal = best - y[0]
    epochs = [r["epoch"] for r in tr.records]
    budget = int(tr.header.get("epochs") or len(epochs))
    losses = [r.get("train_loss") for r in tr.records]
    z = {}
    for n in TREND_AT:
        if n <= len(y):
            est = estimate_learning(epochs[:n], y[:n], "max", budget, losses[:n])
            z[n] = est.trend_z
    return {"sigma": sigma, "signal": signal, "ns": sigma / signal if signal > 0 else float("inf"), "z": z}


def measure(tr: Trace) -> dict[str, Any]:
    test = curve(tr, QUALITY, "test")
    oracle = pick(curve(tr, QUALITY), "max")
    ref = test[oracle]
    out: dict[str, Any] = {"seed": tr.header.get("seed"), "budget": int(tr.header.get("epochs") or len(test)),
                           "oracle_epoch": tr.records[oracle]["epoch"], "hindsight": max(test) / ref}
    for key, mode in MONITORS.items():
        i = pick(curve(tr, key), mode)
        row = {"pick_epoch": tr.records[i]["epoch"], "pick_ratio": test[i] / ref, **steadiness(tr, key, mode)}
        for name in POLICIES:
            res = replay(build_policy(policy_mapping(name, key)), tr, name=f"{name}/{key}", need_test=True)
            row[name] = {"ratio": (res.metric(QUALITY) or 0.0) / ref, "epochs": res.epochs_trained,
                         "best": res.best_epoch}
        out[key] = row
    return out


def spread(values: list[float], fmt: str = ".3f") -> str:
    """``mean (min to max)``."""
    return f"{statistics.fmean(values):{fmt}} ({min(values):{fmt}} to {max(values):{fmt}})"


def report(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["Runs: " + ", ".join(f"{reg} ({len(rs)} seeds)" for reg, rs in runs.items())
             + ". Ratios are test NDCG@10 over the NDCG oracle's (best validation NDCG@10 epoch).", ""]
    lines += ["## Per run", "",
              "| run | oracle epoch | monitor | sigma | signal | noise/signal | trend z @" + " / @".join(map(str, TREND_AT))
              + " | best-valid epoch (test ratio) | recommended: ratio, epochs | recbole_legacy: ratio, epochs |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for reg, rs in runs.items():
        for r in rs:
            for key in MONITORS:
                m = r[key]
                z = " / ".join(f"{m['z'][n]:.1f}" if n in m["z"] else "-" for n in TREND_AT)
                pol = " | ".join(f"{m[p]['ratio']:.3f}, {m[p]['epochs']}" for p in POLICIES)
                lines.append(f"| {reg} seed {r['seed']} | {r['oracle_epoch']} | {key} | {m['sigma']:.2g} | "
                             f"{m['signal']:.3g} | {m['ns']:.3f} | {z} | {m['pick_epoch']} ({m['pick_ratio']:.3f}) | "
                             f"{pol} |")
    lines += ["", "## Summary per regime: mean (min to max) over seeds", "",
              "| regime | monitor | noise/signal | trend z @" + " / @".join(map(str, TREND_AT))
              + " | best-valid pick ratio | recommended ratio | recommended epochs | recbole_legacy ratio | "
              "recbole_legacy epochs |", "|---|---|---|---|---|---|---|---|---|"]
    for reg, rs in list(runs.items()) + [("all", [r for rs in runs.values() for r in rs])]:
        for key in MONITORS:
            get: Callable[[str], list[Any]] = lambda f, k=key: [r[k][f] for r in rs]  # noqa: E731
            zs = " / ".join(f"{statistics.fmean(v):.1f}" if (v := [r[key]['z'][n] for r in rs if n in r[key]['z']])
                            else "-" for n in TREND_AT)
            lines.append(f"| {reg} | {key} | {spread(get('ns'))} | {zs} | {spread(get('pick_ratio'))} | "
                         f"{spread([p['ratio'] for p in get('recommended')])} | "
                         f"{spread([p['epochs'] for p in get('recommended')], '.0f')} | "
                         f"{spread([p['ratio'] for p in get('recbole_legacy')])} | "
                         f"{spread([p['epochs'] for p in get('recbole_legacy')], '.0f')} |")
    every = [r for rs in runs.values() for r in rs]
    lines += ["", "## Paired per run: target_ce minus ndcg@10, mean (min to max); runs where target_ce is better", "",
              "| what | test ratio difference | target_ce better / worse / same | epochs trained difference |",
              "|---|---|---|---|"]
    for what in ("best-valid pick", *POLICIES):
        def ratio(r: dict[str, Any], key: str, w: str = what) -> float:
            return r[key]["pick_ratio"] if w == "best-valid pick" else r[key][w]["ratio"]
        d = [ratio(r, "target_ce") - ratio(r, "ndcg@10") for r in every]
        e = ([r["target_ce"]["pick_epoch"] - r["ndcg@10"]["pick_epoch"] for r in every] if what == "best-valid pick"
             else [r["target_ce"][what]["epochs"] - r["ndcg@10"][what]["epochs"] for r in every])
        better, worse = sum(x > 1e-9 for x in d), sum(x < -1e-9 for x in d)
        lines.append(f"| {what} | {spread(d, '+.3f')} | {better} / {worse} / {len(d) - better - worse} | "
                     f"{spread(e, '+.0f')}{' (picked epoch)' if what == 'best-valid pick' else ''} |")
    lines += ["", "Hindsight (best test epoch's NDCG@10 over the oracle's), per run: "
              + ", ".join(f"{reg} seed {r['seed']} {r['hindsight']:.3f}" for reg, rs in runs.items() for r in rs) + "."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=REPO / "docs" / "results" / "ce_runs")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown here (default: print it)")
    ap.add_argument("--partial", action="store_true", help="include runs still being recorded")
    args = ap.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(args.runs.glob("*/seed*/trace.jsonl")):
        tr = read_trace(p)
        if (tr.complete or args.partial) and "target_ce" in tr.records[0]["valid"]:
            runs.setdefault(p.parent.parent.name, []).append(measure(tr))
    if not runs:
        print(f"no finished runs with target_ce under {args.runs}")
        return 1
    text = "\n".join(report(runs)) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
