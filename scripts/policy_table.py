#!/usr/bin/env python
"""Every shipped policy on every recorded regime, by replay over the committed long runs (docs/choosing_a_policy.md).

    python scripts/policy_table.py [--runs docs/results/long_runs] [--policies FILE.yaml ...] [--partial]
                                   [--out docs/results/policy_table.md] [--grid] [--select-on REGIME ...]
                                   [--frontier docs/results/policy_frontier.png]

Reads each ``<regime>/seed<N>/`` run directory (stopping disabled, test metrics and per-user scores at every
epoch), replays each policy through ``rec_es.replay`` (per-user scores from the sidecars, the budget from the
trace) and compares the restored epoch's **test** NDCG@10 with the oracle's: the best validation NDCG@10 epoch of
the full run (``rec_es.replay.oracle``). Also: the hindsight bound (the best test epoch), epochs trained, epochs
past the oracle epoch, and the budget saved on runs whose oracle comes in the first half. The rows: every
``properties/policies/*.yaml`` (a policy that changes training, reduce_on_plateau, cannot be replayed and is
listed as such), ``make run``'s policy (the ``early_stopping:`` of ``properties/gru4rec_ml100k.yaml``) and
the policy ``make run`` used before the recommended one (``docs/results/make_run_policy.yaml``).

``--grid`` replays a small grid of candidate settings for the recommended policy, scored only on the regimes of
``--select-on`` (the others are held out), so the choice is not made on the runs the table reports.
``--frontier PNG`` (with ``--grid``) plots every candidate's worst-run test ratio against its mean epochs past the
oracle epoch, with the goal's corner shaded: the trade-off the goal asks to beat, as one picture.
Pure replay: seconds on a fresh clone.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

from rec_es import build_policy
from rec_es.replay import oracle, replay, why_not_replayable
from rec_es.rundir.trace import Trace, read_trace
from benchlib import emit, test_at

METRIC = "ndcg@10"
MAKE_RUN = REPO / "properties" / "gru4rec_ml100k.yaml"
#: the policy make run used before the recommended one (patience 10, min_delta 0.0005), kept for the compare docs
OLD_MAKE_RUN = REPO / "docs" / "results" / "make_run_policy.yaml"
GOAL = {"ratio": 0.99, "past": 15.0, "saved": 0.30}
#: the grid candidate that is properties/policies/recommended.yaml (tests/test_recommended.py checks it is)
RECOMMENDED = "GL auto x3, still_learning hold, ema 0.5"
#: the candidate ranked first on the first 15 runs, which smaller validation sets (docs/results/val_size.md) and
#: then the held-out BPR runs refuted
FASTEST_SAFE = "GL 1.0, still_learning off"


MODELS = {"gru4rec": "GRU4Rec", "sasrec": "SASRec", "stamp": "STAMP", "narm": "NARM", "caser": "Caser", "npe": "NPE",
          "core": "CORE"}
#: the by-regime table of docs/choosing_a_policy.md: these policies as columns, one row per regime
#: (``BY_REGIME_SECTION``; the page holds a copy, tests/test_readme.py checks it is this one, and that the pooled
#: cells the README quotes are this table's)
BY_REGIME_POLICIES = {"recommended": "**recommended** (`make run`'s)", "prechelt_gl": "prechelt_gl",
                   "patience_min_delta": "patience_min_delta", "composite_ema_warmup": "composite_ema_warmup",
                   "dynamic_patience": "dynamic_patience", "recbole_legacy": "recbole_legacy (RecBole's rule)",
                   "make run's old policy (patience 10)": "make run's old policy (patience 10)"}
BY_REGIME_SECTION = "## By regime (choosing_a_policy.md's table): worst run / mean epochs trained"


def pretty(regime: str) -> str:
    """``gru4rec-bpr-lr0.005`` -> ``GRU4Rec BPR lr 0.005``: a regime directory's name as the docs write it."""
    words = regime.split("-")
    out = [MODELS.get(words[0], words[0])]
    for w in words[1:]:
        out.append(f"lr {w[2:]}" if w.startswith("lr") else w.upper())
    return " ".join(out)


def policy_files(paths: list[Path] | None) -> dict[str, dict[str, Any]]:
    """name -> {"mapping", "file", "live"} for every policy file (and make run's config)."""
    files = paths or sorted((REPO / "properties" / "policies").glob("*.yaml"))
    out: dict[str, dict[str, Any]] = {}
    names = {MAKE_RUN: "make run (gru4rec_ml100k.yaml)", OLD_MAKE_RUN: "make run's old policy (patience 10)"}
    for f in [MAKE_RUN, OLD_MAKE_RUN, *files] if paths is None else files:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        name = names.get(f, f.stem)
        live = why_not_replayable(data.get("lr_schedule"), None)
        out[name] = {"mapping": data.get("early_stopping") or {}, "file": f, "live": live}
    return out


def load_runs(root: Path, partial: bool) -> dict[str, list[Trace]]:
    runs: dict[str, list[Trace]] = {}
    for p in sorted(root.glob("*/seed*/trace.jsonl")):
        tr = read_trace(p)
        if tr.complete or partial:
            runs.setdefault(p.parent.parent.name, []).append(tr)
    return runs


def measure(mapping: dict[str, Any], tr: Trace, ref: dict[str, Any], name: str) -> dict[str, Any]:
    res = replay(build_policy(mapping), tr, name=name, need_test=True)
    budget = int(tr.header.get("epochs") or tr.records[-1]["epoch"] + 1)
    test = res.metric(METRIC) or 0.0
    return {"ratio": test / ref["test"], "epochs": res.epochs_trained, "past": res.stop_epoch - ref["epoch"],
            "saved": 1 - res.epochs_trained / budget, "early_oracle": ref["epoch"] < budget / 2,
            "stop": res.stop_epoch, "reason": res.reason, "best": res.best_epoch, "notes": res.notes}


def reference(tr: Trace) -> dict[str, Any]:
    orc = oracle(tr, build_policy({"monitor": METRIC, "enabled": False}))
    tests = [(r.get("test") or {}).get(METRIC) or 0.0 for r in tr.records]
    return {"epoch": orc.best_epoch, "test": test_at(tr, orc.best_epoch, METRIC), "hindsight": max(tests) / test_at(tr, orc.best_epoch, METRIC),
            "hindsight_epoch": tr.records[tests.index(max(tests))]["epoch"],
            "budget": int(tr.header.get("epochs") or len(tr.records))}


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    early = [r["saved"] for r in rows if r["early_oracle"]]
    return {"ratio_mean": statistics.fmean(r["ratio"] for r in rows), "ratio_min": min(r["ratio"] for r in rows),
            "ratio_max": max(r["ratio"] for r in rows), "epochs": statistics.fmean(r["epochs"] for r in rows),
            "epochs_min": min(r["epochs"] for r in rows), "epochs_max": max(r["epochs"] for r in rows),
            "past": statistics.fmean(r["past"] for r in rows),
            "saved_early": statistics.fmean(early) if early else math.nan, "n_early": len(early), "n": len(rows)}


def meets(s: dict[str, float]) -> bool:
    saved_ok = math.isnan(s["saved_early"]) or s["saved_early"] >= GOAL["saved"]
    return s["ratio_min"] >= GOAL["ratio"] and s["past"] <= GOAL["past"] and saved_ok


def fmt_row(name: str, s: dict[str, float]) -> str:
    saved = "-" if math.isnan(s["saved_early"]) else f"{s['saved_early']:.0%} ({s['n_early']})"
    return (f"| {name} | {s['ratio_mean']:.3f} (best {s['ratio_max']:.3f}) | {s['ratio_min']:.3f} | "
            f"{s['epochs']:.0f} ({s['epochs_min']}-{s['epochs_max']}) | {s['past']:+.0f} | "
            f"{saved} | {'yes' if meets(s) else 'no'} |")


HEAD = ("| policy | test NDCG@10 / oracle's, mean (best run) | worst run | epochs trained, mean (range) | "
        "epochs past the oracle epoch, mean | budget saved, oracle in first half (runs) | meets the goal |"
        "\n|---|---|---|---|---|---|---|")


def rank(results: dict[str, Any], rows_of: Any) -> list[str]:
    """Candidates best first: meeting the goal, then the highest worst-run ratio, then the fewest epochs."""
    def key(name: str) -> tuple[float, float, float]:
        s = summary(rows_of(name))
        return (-float(meets(s)), -round(s["ratio_min"], 3), s["epochs"])
    return sorted(results, key=key)


def grid() -> dict[str, dict[str, Any]]:
    """Candidate recommended policies: patience x what counts as an improvement x still_learning x smoothing,
    Prechelt's GL x still_learning x smoothing, and GL alpha auto x noise multiple x smoothing."""
    out = {}
    improvements = {"min_delta 0": {"min_delta": 0.0}, "min_delta auto": {"min_delta": "auto"},
                    "significant 0.1": {"improvement": "significant", "alpha": 0.1}}
    for patience, (label, how), learning, ema in itertools.product(
            (10, 15, 20, 30, None), improvements.items(), ("off", "hold", "stop"), (None, 0.5)):
        if patience is None and learning != "stop":
            continue  # nothing would stop the run
        m: dict[str, Any] = {"monitor": METRIC, "patience": patience, **how, "still_learning": learning}
        if ema:
            m.update(smoothing="ema", ema_alpha=ema)
        name = f"patience {patience}, {label}, still_learning {learning}" + (f", ema {ema}" if ema else "")
        out[name] = {"mapping": m, "live": None}
    # Prechelt's GL (stop once the monitor's error 1 - value is alpha % above its best): a drop rule, which a
    # plateau does not trigger, with the shipped prechelt_gl's warmup
    for alpha, learning, ema in itertools.product((0.3, 0.5, 0.75, 1.0), ("off", "hold"), (None, 0.5)):
        m = {"monitor": METRIC, "patience": None, "prechelt": {"criterion": "GL", "alpha": alpha},
             "error_offset": 1.0, "warmup": 10, "still_learning": learning}
        if ema:
            m.update(smoothing="ema", ema_alpha=ema)
        out[f"GL {alpha}, still_learning {learning}" + (f", ema {ema}" if ema else "")] = {"mapping": m, "live": None}
    # GL with the threshold measured from the curve noise (alpha: auto): noise_multiple x EMA or raw
    for k, ema in itertools.product((2.0, 2.5, 3.0, 4.0), (None, 0.5)):
        m = {"monitor": METRIC, "patience": None, "prechelt": {"criterion": "GL", "alpha": "auto", "noise_multiple": k},
             "error_offset": 1.0, "warmup": 10, "still_learning": "hold"}
        if ema:
            m.update(smoothing="ema", ema_alpha=ema)
        out[f"GL auto x{k:g}, still_learning hold" + (f", ema {ema}" if ema else "")] = {"mapping": m, "live": None}
    # the recommended GL with a plateau cap as well: a patience rule on the raw best, which shortens the long
    # stays past the oracle (the miss of the epochs goal) and cuts the plateaus that precede a later best
    for k, patience in itertools.product((3.0,), (30, 40, 50, 60)):
        m = {"monitor": METRIC, "patience": patience, "min_delta": 0.0,
             "prechelt": {"criterion": "GL", "alpha": "auto", "noise_multiple": k}, "error_offset": 1.0,
             "warmup": 10, "still_learning": "hold", "smoothing": "ema", "ema_alpha": 0.5, "best_by": "raw"}
        out[f"GL auto x{k:g}, ema 0.5, patience {patience}"] = {"mapping": m, "live": None}
    return out


#: the families of the frontier plot, by how a grid candidate's name starts
FAMILIES = (("GL auto", "GL alpha auto (noise-scaled)", "o"), ("GL 0", "GL, fixed alpha", "s"),
            ("GL 1", "GL, fixed alpha", "s"), ("patience", "patience rules", "^"))


def frontier(summaries: dict[str, dict[str, float]], path: Path, chosen: str) -> None:
    """Worst-run test ratio against mean epochs past the oracle epoch, one marker per candidate (filled when it
    also saves the budget goal's share on early-oracle runs), the goal's corner shaded, ``chosen`` labelled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    lo_y = min(0.65, min(s["ratio_min"] for s in summaries.values()) - 0.02)
    ax.fill_between([-200, GOAL["past"]], GOAL["ratio"], 1.02, color="tab:green", alpha=0.15, lw=0,
                    label=f"goal: worst run >= {GOAL['ratio']}, <= {GOAL['past']:g} epochs past")
    seen = set()
    for name, s in summaries.items():
        fam = next((f for f in FAMILIES if name.startswith(f[0])), ("", "other", "x"))
        colour = {"o": "tab:blue", "s": "tab:orange", "^": "tab:grey", "x": "tab:red"}[fam[2]]
        saved = math.isnan(s["saved_early"]) or s["saved_early"] >= GOAL["saved"]
        label = fam[1] if fam[1] not in seen else None
        seen.add(fam[1])
        ax.scatter(s["past"], min(s["ratio_min"], 1.015), marker=fam[2], s=28, label=label,
                   facecolors=colour if saved else "none", edgecolors=colour, linewidths=1.0)
    for name, text, offset in ((chosen, "recommended", (12, -22)),
                               (FASTEST_SAFE, "GL 1.0 raw (ranked first on the first 15 runs)", (-150, 40))):
        if name in summaries:
            s = summaries[name]
            ax.annotate(text, (s["past"], s["ratio_min"]), xytext=offset, textcoords="offset points",
                        fontsize=8, arrowprops={"arrowstyle": "-", "lw": 0.6})
    xs = [s["past"] for s in summaries.values()]
    ax.set_xlim(min(xs) - 5, max(xs) + 5)
    ax.set_ylim(lo_y, 1.02)
    ax.set_xlabel("epochs past the oracle epoch, mean over the runs (negative: stopped before it)")
    ax.set_ylabel("worst run: test NDCG@10 / oracle's")
    ax.set_title(f"{len(summaries)} candidate policies on {summaries[chosen]['n'] if chosen in summaries else ''} "
                 "recorded runs (hollow: saves < 30 % on early-oracle runs)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=REPO / "docs" / "results" / "long_runs")
    ap.add_argument("--policies", type=Path, nargs="+", default=None)
    ap.add_argument("--partial", action="store_true", help="include runs still being recorded")
    ap.add_argument("--grid", action="store_true", help="replay the candidate grid instead of the shipped policies")
    ap.add_argument("--select-on", nargs="+", default=None, metavar="REGIME",
                    help="with --grid: regimes the candidates are scored on (the rest are held out)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--frontier", type=Path, default=None, metavar="PNG",
                    help="with --grid: plot worst-run ratio against epochs past the oracle for every candidate")
    args = ap.parse_args(argv)
    if args.frontier and not args.grid:
        ap.error("--frontier plots the candidate grid: give --grid as well")
    start = time.time()
    runs = load_runs(args.runs, args.partial)
    if not runs:
        print(f"no finished runs under {args.runs}")
        return 1
    refs = {id(tr): reference(tr) for trs in runs.values() for tr in trs}
    policies = grid() if args.grid else policy_files(args.policies)
    lines = [f"Runs: " + ", ".join(f"{reg} ({len(trs)} seeds)" for reg, trs in runs.items()) + ".", ""]
    lines += ["## Oracle and hindsight per run", "",
              "| run | budget | oracle epoch (best valid) | oracle test NDCG@10 | best test epoch | hindsight / oracle |",
              "|---|---|---|---|---|---|"]
    for reg, trs in runs.items():
        for tr in trs:
            r = refs[id(tr)]
            lines.append(f"| {reg} seed {tr.header.get('seed')} | {r['budget']} | {r['epoch']} | {r['test']:.4f} | "
                         f"{r['hindsight_epoch']} | {r['hindsight']:.3f} |")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, p in policies.items():
        if p["live"]:
            continue
        results[name] = {reg: [measure(p["mapping"], tr, refs[id(tr)], name) for tr in trs] for reg, trs in runs.items()}
    if args.grid:
        chosen = args.select_on or list(runs)
        held = [r for r in runs if r not in chosen]
        pool = lambda n, regs: [x for reg in regs for x in results[n][reg]]  # noqa: E731
        scored = rank(results, lambda n: pool(n, chosen))
        lines += ["", f"## Candidates, scored on {', '.join(chosen)}; held out: {', '.join(held) or 'none'}", "", HEAD]
        for name in scored:
            sel = summary(pool(name, chosen))
            out = summary(pool(name, held)) if held else None
            lines.append(fmt_row(name, sel) + (f" held out: {out['ratio_min']:.3f} worst, {out['epochs']:.0f} epochs, "
                                               f"{'meets' if meets(out) else 'misses'} |" if out else ""))
        lines += ["", "## Leave one run out: the candidate ranked first on all other runs, on the run left out", "",
                  "| run left out | chosen on the others | test / oracle's | epochs trained | past the oracle epoch |",
                  "|---|---|---|---|---|"]
        flat = [(reg, i) for reg in runs for i in range(len(runs[reg]))]
        for reg, i in flat:
            others = lambda n: [x for r2, j in flat if (r2, j) != (reg, i) for x in [results[n][r2][j]]]  # noqa: E731
            best = rank(results, others)[0]
            x = results[best][reg][i]
            lines.append(f"| {reg} seed {runs[reg][i].header.get('seed')} | {best} | {x['ratio']:.3f} | {x['epochs']} | "
                         f"{x['past']:+d} |")
        if args.frontier:
            frontier({n: summary(pool(n, chosen)) for n in results}, args.frontier, RECOMMENDED)
            lines += ["", f"Frontier plot: {args.frontier}"]
    else:
        per = {name: {reg: summary(results[name][reg]) for reg in runs} for name in results}
        for reg in runs:
            lines += ["", f"## {reg}", "", HEAD]
            for name, p in policies.items():
                if p["live"]:
                    lines.append(f"| {name} | not replayable: {p['live']} | | | | | |")
                    continue
                lines.append(fmt_row(name, per[name][reg]))
        n_runs = sum(len(t) for t in runs.values())
        overall = {name: summary([x for reg in runs for x in results[name][reg]]) for name in results}
        cell = lambda p: f"{p['ratio_min']:.3f} / {p['epochs']:.0f} ep"  # noqa: E731
        pooled = lambda s: (f"{s['ratio_min']:.3f}, {s['past']:+.0f}, "  # noqa: E731
                            + ("-" if math.isnan(s["saved_early"]) else f"{s['saved_early']:.0%}"))
        lines += ["", "## Summary: worst run / mean epochs trained, per regime", "",
                  "| policy | " + " | ".join(pretty(reg) for reg in runs) + f" | all {n_runs} "
                  "runs: worst, epochs past the oracle, budget saved | goal |",
                  "|---|" + "---|" * (len(runs) + 2)]
        for name in results:
            lines.append(f"| {name} | " + " | ".join(cell(per[name][reg]) for reg in runs)
                         + f" | {pooled(overall[name])} | {'yes' if meets(overall[name]) else 'no'} |")
        shown = [n for n in BY_REGIME_POLICIES if n in results]
        lines += ["", BY_REGIME_SECTION, "", "| regime | " + " | ".join(BY_REGIME_POLICIES[n] for n in shown) + " |",
                  "|---|" + "---|" * len(shown)]
        for reg in runs:
            lines.append(f"| {pretty(reg)} | " + " | ".join(cell(per[n][reg]) for n in shown) + " |")
        lines.append(f"| all {n_runs} runs: worst, epochs past the oracle, budget saved | "
                     + " | ".join(pooled(overall[n]) for n in shown) + " |")
        lines += ["", "## All runs", "", HEAD]
        for name in results:
            lines.append(fmt_row(name, overall[name]))
        lines += ["", "## Per run (stop epoch / restored epoch / test ratio)", "",
                  "| policy | " + " | ".join(f"{reg} {tr.header.get('seed')}" for reg, trs in runs.items() for tr in trs)
                  + " |", "|---|" + "---|" * sum(len(t) for t in runs.values())]
        for name in results:
            cells = [f"{x['stop']} / {x['best']} / {x['ratio']:.3f}" for reg in runs for x in results[name][reg]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        notes = sorted({n for name in results for reg in runs for x in results[name][reg] for n in x["notes"]})
        if notes:
            lines += ["", "Notes from replay:", ""] + [f"- {n}" for n in notes]
    lines += ["", f"({len(results)} policies x {sum(len(t) for t in runs.values())} runs replayed in "
                  f"{time.time() - start:.1f} s)"]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
