#!/usr/bin/env python
"""Score ``rec-es explain --probe N`` by replaying the recorded future of the committed long runs (issue 33).

    python scripts/bench_probe.py RUNS_DIR [RUNS_DIR ...] [--n 5 10 20 30] [--out DIR]
    python scripts/bench_probe.py RUNS_DIR --calibrate [--out DIR]

The runs are those of ``scripts/bench_explain.py`` (recorded with stopping disabled, test metrics and per-user
scores at every epoch) and they are cut where it cuts them (``benchlib.cases_of``: RecBole's rule, each
``valid_metric`` x ``stopping_step``). A probe of a cut run continues it from its stop with stopping disabled,
which is what the recording did: a resume is deterministic, so the probe's evaluations are the recorded ones after
the stop, and its measured verdict is ``rec_es.explain.probe.measure_probe`` on the recording (the suite checks
that a live probe equals this replay, ``tests/integration/test_probe.py``).

For each case and N the probe's call (premature / not premature / cannot tell, ``probe_stats.probe_call``) is
scored against two truths:

* the **full run's validation outcome**: the same corrected test over every evaluation after the stop to the
  budget's end ("did the best of the rest of the run beat the stop-time best by more than the noise?");
  premature when it says so, not premature otherwise;
* the **test-based truth** of the verdict benchmark (``benchlib.truth``: the full run's best-validation epoch
  has >= 5 % higher test NDCG@10 than the restored one: premature; <= 1 %: not premature; between: left out).

Beside them: the full run's validation outcome scored on the test truth (the bar the probe must reach there), and
the log-only verdict's record on the same cases (``docs/results/bench_explain/cases.csv``). A probe that reaches
the budget's end before N epochs costs only the epochs left.

``--calibrate`` measures the two corrections for the best of K evaluations (``probe_stats.CORRECTIONS``) before
any case is scored: their false-positive rate on a null made from each case's own per-user differences by
flipping each user's sign (one sign per user across the K evaluations, so their correlation is kept and every
expected gain is zero), and how often each calls "premature" on the real continuations. No truth is read.

Writes ``cases.csv``, ``summary.md`` and ``summary.json`` (or ``calibration.md``) into ``--out`` (default
docs/results/bench_probe).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]

import benchlib  # noqa: E402
from rec_es.explain.probe import continuation_epochs, measure_probe, monitor_matrix  # noqa: E402
from rec_es.explain.probe_stats import (ALPHA, CANNOT_TELL, CORRECTION, CORRECTIONS, NOT_PREMATURE, TREND_Z,  # noqa: E402
                                        PREMATURE, probe_call, best_of_n_differences)
from rec_es.rundir.per_user import PerUserScores, read_per_user  # noqa: E402

PROBE_EPOCHS = (5, 10, 20, 30)
OUT = REPO / "docs" / "results" / "bench_probe"
VERDICT_CASES = REPO / "docs" / "results" / "bench_explain" / "cases.csv"
#: the goal of issue 33: at the smallest N that reaches it
GOAL_AGREEMENT, GOAL_CANNOT_TELL = 0.95, 0.05
WORDS = {PREMATURE: "premature", NOT_PREMATURE: "not premature", CANNOT_TELL: "cannot tell"}


@dataclass
class ProbeCase:
    """One cut run probed N epochs: the cut (bench_explain's case), the probe's call and the two truths."""

    regime: str
    seed: int | None
    valid_metric: str
    stopping_step: int
    stop_epoch: int
    restored_epoch: int
    n: int
    epochs: int  # epochs the probe trained (fewer than n where the budget ends)
    call: str
    p_value: float
    best_epoch: int
    gain: float
    lower: float
    trend_z: float | None
    valid_truth: str  # the full run's validation outcome: premature | not premature
    valid_p: float
    test_truth: str  # bench_explain's: premature | not premature | between
    log_call: str  # the log-only verdict on the same cut (bench_explain's cases.csv)


def probe_cases(runs: Sequence[tuple[str, Any, Path]], ns: Sequence[int],
                log_calls: dict[tuple[str, int, str, int], str]) -> tuple[list[ProbeCase], int]:
    """Every (case, N) of ``runs``, and the number of cuts left out because nothing follows the stop."""
    out: list[ProbeCase] = []
    no_future = 0
    for name, trace, run_dir in runs:
        scores = read_per_user(run_dir, "valid", trace=trace)
        last = trace.records[-1]["epoch"]
        for case, _ in benchlib.cases_of(name, trace, benchlib.METRICS, benchlib.STOPPING_STEPS):
            terms = ((case.valid_metric, 1.0),)
            full = measure_probe(scores, terms, "max", case.restored_epoch, case.stop_epoch, last - case.stop_epoch)
            if full is None:
                no_future += 1
                continue
            valid_truth = PREMATURE if full.p_value < full.alpha else NOT_PREMATURE
            log_call = log_calls.get((case.regime, case.seed, case.valid_metric, case.stopping_step), "")
            for n in ns:
                test = measure_probe(scores, terms, "max", case.restored_epoch, case.stop_epoch, n)
                assert test is not None
                epochs = continuation_epochs(scores, case.stop_epoch, n)
                out.append(ProbeCase(
                    regime=case.regime, seed=case.seed, valid_metric=case.valid_metric,
                    stopping_step=case.stopping_step, stop_epoch=case.stop_epoch,
                    restored_epoch=case.restored_epoch, n=n, epochs=epochs[-1] - case.stop_epoch,
                    call=WORDS[probe_call(test)], p_value=test.p_value, best_epoch=epochs[test.best], gain=test.gain,
                    lower=test.lower, trend_z=test.trend_z, valid_truth=WORDS[valid_truth], valid_p=full.p_value,
                    test_truth=case.truth, log_call=log_call))
    return out, no_future


def read_log_calls(path: Path = VERDICT_CASES) -> dict[tuple[str, int, str, int], str]:
    """(regime, seed, valid_metric, stopping_step) -> the log-only verdict's call, from bench_explain's cases.csv."""
    with open(path, encoding="utf-8") as fh:
        return {(r["regime"], int(r["seed"]), r["valid_metric"], int(r["stopping_step"])): r["call"]
                for r in csv.DictReader(fh)}


def score(calls: Sequence[str], truths: Sequence[str]) -> tuple[int, int, int]:
    """(agree, disagree, cannot tell) of ``calls`` against ``truths`` (cases whose truth is 'between' left out)."""
    pairs = [(c, t) for c, t in zip(calls, truths) if t in (WORDS[PREMATURE], WORDS[NOT_PREMATURE])]
    agree = sum(c == t for c, t in pairs)
    unsure = sum(c == WORDS[CANNOT_TELL] for c, _ in pairs)
    return agree, len(pairs) - agree - unsure, unsure


def summary_rows(cases: Sequence[ProbeCase], ns: Sequence[int]) -> list[dict[str, Any]]:
    """One row per N (and the log-only verdict, the full run's validation outcome): counts against both truths,
    the share of cannot tell, the epochs trained."""
    rows = []
    first = [c for c in cases if c.n == ns[0]]
    rows.append(_row("log-only verdict (no training)", [c.log_call for c in first], first, epochs=0.0))
    rows.append(_row("full run's validation outcome", [c.valid_truth for c in first], first,
                     epochs=float(np.mean([c.epochs for c in cases if c.n == ns[-1]] or [0])), full=True))
    for n in ns:
        group = [c for c in cases if c.n == n]
        rows.append(_row(f"probe N = {n}", [c.call for c in group], group,
                         epochs=float(np.mean([c.epochs for c in group])), n=n))
    return rows


def _row(label: str, calls: Sequence[str], group: Sequence[ProbeCase], epochs: float, n: int | None = None,
         full: bool = False) -> dict[str, Any]:
    valid = score(calls, [c.valid_truth for c in group])
    test = score(calls, [c.test_truth for c in group])
    return {"label": label, "n": n, "cases": len(group), "valid": valid, "test": test,
            "test_scored": sum(test), "cannot_tell": sum(c == WORDS[CANNOT_TELL] for c in calls),
            "premature": sum(c == WORDS[PREMATURE] for c in calls), "mean_epochs": epochs, "full": full}


def advised(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The smallest N that meets the goal (validation agreement, cannot tell, no worse than the full run's own
    validation outcome on the test truth), or None, with the reasons each N falls short; ``advice``: that N, or
    when none meets the goal the N with the highest agreement with the full run's validation outcome (the
    shorter on a tie): what explain offers (``rec_es.explain.probe.ADVISED_EPOCHS``)."""
    bar = next(r for r in rows if r["full"])
    bar_test = bar["test"][0] / max(bar["test_scored"], 1)
    shortfalls = {}
    for r in rows:
        if r["n"] is None:
            continue
        agree = r["valid"][0] / r["cases"]
        unsure = r["cannot_tell"] / r["cases"]
        test = r["test"][0] / max(r["test_scored"], 1)
        missing = [what for ok, what in ((agree >= GOAL_AGREEMENT, f"validation agreement {agree:.3f} < "
                                          f"{GOAL_AGREEMENT}"),
                                         (unsure <= GOAL_CANNOT_TELL, f"cannot tell {unsure:.3f} > {GOAL_CANNOT_TELL}"),
                                         (test >= bar_test, f"test agreement {test:.3f} < the full run's "
                                          f"{bar_test:.3f}")) if not ok]
        if not missing:
            return {"n": r["n"], "met": True, "advice": r["n"], "shortfalls": shortfalls}
        shortfalls[r["n"]] = missing
    probes = [r for r in rows if r["n"] is not None]
    best = max(probes, key=lambda r: (r["valid"][0] / r["cases"], -r["n"]))  # ties: the shorter probe
    return {"n": None, "met": False, "advice": best["n"], "shortfalls": shortfalls}


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.0f} %)" if b else "-"


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| | cases | agree with the full run's validation outcome | cannot tell | agree with the test truth "
             "(scored) | premature calls | epochs trained (mean) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        valid = "(the truth)" if r["full"] else _pct(r["valid"][0], r["cases"])
        lines.append(f"| {r['label']} | {r['cases']} | {valid} | {_pct(r['cannot_tell'], r['cases'])} | "
                     f"{_pct(r['test'][0], r['test_scored'])} | {r['premature']} | {r['mean_epochs']:.1f} |")
    return lines


def per_regime(cases: Sequence[ProbeCase], n: int) -> list[str]:
    group = [c for c in cases if c.n == n]
    lines = [f"### per regime, N = {n}", "", "| regime | cases | agree (validation) | cannot tell | agree (test) |",
             "|---|---:|---:|---:|---:|"]
    for reg in sorted({c.regime for c in group}):
        g = [c for c in group if c.regime == reg]
        valid = score([c.call for c in g], [c.valid_truth for c in g])
        test = score([c.call for c in g], [c.test_truth for c in g])
        lines.append(f"| {reg} | {len(g)} | {_pct(valid[0], len(g))} | {_pct(valid[2], len(g))} | "
                     f"{_pct(test[0], sum(test))} |")
    return lines + [""]


def misses(cases: Sequence[ProbeCase], n: int) -> list[str]:
    """How the probe's calls at N sit against the validation outcome (a confusion table)."""
    group = [c for c in cases if c.n == n]
    counts = Counter((c.valid_truth, c.call) for c in group)
    calls = [WORDS[PREMATURE], WORDS[NOT_PREMATURE], WORDS[CANNOT_TELL]]
    lines = [f"### full run's validation outcome x probe call, N = {n}", "",
             "| validation outcome \\ probe | " + " | ".join(calls) + " |", "|---|---:|---:|---:|"]
    for t in calls[:2]:
        lines.append(f"| {t} | " + " | ".join(str(counts[(t, c)]) for c in calls) + " |")
    return lines + [""]


def boundary(cases: Sequence[ProbeCase], n: int) -> list[str]:
    """The probe's calls at N that disagree with the full run's validation outcome, with both p-values: how close to
    alpha the two tests were."""
    wrong = [c for c in cases if c.n == n and c.call != c.valid_truth and c.call != WORDS[CANNOT_TELL]]
    if not wrong:
        return []
    lines = [f"### disagreements at N = {n}: the probe's p and the full run's", "",
             "| run | valid_metric | stopping_step | stop | probe | its p | full run | its p |",
             "|---|---|---:|---:|---|---:|---|---:|"]
    lines += [f"| {c.regime}/seed{c.seed} | {c.valid_metric} | {c.stopping_step} | {c.stop_epoch} | {c.call} | "
              f"{c.p_value:.3f} | {c.valid_truth} | {c.valid_p:.3f} |" for c in wrong]
    return lines + [""]


def with_trend_rule(cases: Sequence[ProbeCase], ns: Sequence[int], rows: Sequence[dict[str, Any]]) -> list[str]:
    """The same probes under the call shipped before the registered test (docs/signals_registration.md): "cannot
    tell" when not premature but the per-user trend over the probe had z >= TREND_Z."""
    bar = next(r for r in rows if r["full"])
    lines = ["### the call shipped before: 'cannot tell' while the monitor still rose", "",
             f"Not premature calls whose trend over the probe had z >= {TREND_Z:g} counted as cannot tell (never "
             "agreeing), as the first benchmark scored them.", "",
             "| | agree with the full run's validation outcome | cannot tell | agree with the test truth (scored) |",
             "|---|---:|---:|---:|"]
    for n in ns:
        group = [c for c in cases if c.n == n]
        calls = [WORDS[CANNOT_TELL] if c.call == WORDS[NOT_PREMATURE] and c.trend_z is not None
                 and c.trend_z >= TREND_Z else c.call for c in group]
        valid = score(calls, [c.valid_truth for c in group])
        test = score(calls, [c.test_truth for c in group])
        unsure = sum(c == WORDS[CANNOT_TELL] for c in calls)
        lines.append(f"| probe N = {n} | {_pct(valid[0], len(group))} | {_pct(unsure, len(group))} | "
                     f"{_pct(test[0], sum(test))} |")
    lines.append(f"| full run's validation outcome | (the truth) | 0 | {_pct(bar['test'][0], bar['test_scored'])} |")
    return lines + [""]


def bench(args: argparse.Namespace) -> int:
    runs = benchlib.find_runs(args.runs, include_partial=False)
    if not runs:
        print(f"no recorded runs with test metrics under {', '.join(map(str, args.runs))}", file=sys.stderr)
        return 1
    cases, no_future = probe_cases(runs, args.n, read_log_calls())
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "cases.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(cases[0])))
        writer.writeheader()
        for c in cases:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in asdict(c).items()})
    rows = summary_rows(cases, args.n)
    advice = advised(rows)
    per_n = len([c for c in cases if c.n == args.n[0]])
    lines = [f"# bench_probe: {len(runs)} runs, {per_n} cut runs probed at N = "
             f"{', '.join(map(str, args.n))}", "",
             f"Cuts of scripts/bench_explain.py with an evaluation after the stop ({no_future} without: the rule "
             f"stopped at the budget's last epoch). Correction: {CORRECTION}, alpha {ALPHA}. Agreement counts "
             "'cannot tell' as not agreeing; the test truth leaves out the cases between 1 % and 5 %.", ""]
    lines += table(rows) + [""]
    if advice["met"]:
        lines += [f"**Goal met at N = {advice['n']}** (>= {GOAL_AGREEMENT:.0%} agreement with the full run's validation "
                  f"outcome, <= {GOAL_CANNOT_TELL:.0%} cannot tell, test agreement no worse than the full run's).", ""]
    else:
        lines += ["**Goal not met at any N**: " + "; ".join(f"N = {n}: {', '.join(m)}"
                                                           for n, m in advice["shortfalls"].items()) + ".", ""]
    for n in args.n:
        lines += misses(cases, n)
    lines += per_regime(cases, advice["advice"]) + boundary(cases, advice["advice"]) + with_trend_rule(cases, args.n, rows)
    text = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    (args.out / "summary.json").write_text(json.dumps({"rows": rows, "advised": advice, "correction": CORRECTION,
                                                       "alpha": ALPHA}, indent=1) + "\n", encoding="utf-8")
    print(text)
    return 0


def calibrate(args: argparse.Namespace) -> int:
    """False positives on a sign-flip null and premature calls on the real continuations, per correction and N
    (and over the whole rest of each run, the full run's validation outcome), with the mean critical values."""
    runs = benchlib.find_runs(args.runs, include_partial=False)
    lengths: list[int | None] = [*args.n, None]  # None: every evaluation after the stop
    null = {(c, n): [] for c in CORRECTIONS for n in lengths}
    real = {(c, n): [] for c in CORRECTIONS for n in lengths}
    critical = {(c, n): [] for c in CORRECTIONS for n in lengths}
    for index, (name, trace, run_dir) in enumerate(runs):
        scores: PerUserScores = read_per_user(run_dir, "valid", trace=trace)
        last = trace.records[-1]["epoch"]
        rng = np.random.default_rng(1000 + index)
        for case, _ in benchlib.cases_of(name, trace, benchlib.METRICS, benchlib.STOPPING_STEPS):
            terms = ((case.valid_metric, 1.0),)
            base = monitor_matrix(scores, terms, [case.restored_epoch])[0]
            for n in lengths:
                epochs = continuation_epochs(scores, case.stop_epoch, last - case.stop_epoch if n is None else n)
                if not epochs:
                    continue
                d = monitor_matrix(scores, terms, epochs) - base[None, :]
                flipped = d * rng.choice([-1.0, 1.0], size=d.shape[1])[None, :]
                for c in CORRECTIONS:
                    null[(c, n)].append(best_of_n_differences(flipped, epochs, correction=c).p_value < ALPHA)
                    got = best_of_n_differences(d, epochs, correction=c)
                    real[(c, n)].append(got.p_value < ALPHA)
                    critical[(c, n)].append(got.critical)
    lines = ["# bench_probe --calibrate: the correction for the best of K evaluations", "",
             f"{len(runs)} runs, each cut where scripts/bench_explain.py cuts it; alpha {ALPHA}. The null flips each "
             "user's per-user differences (continuation minus restored best) with one random sign for all K "
             "evaluations: every expected gain is zero and the evaluations' correlation is kept. 'rest': every "
             "evaluation after the stop to the budget's end (the full run's validation outcome). No truth is read.",
             "", "| N | cases | false positives, max_t | false positives, bonferroni | premature calls on the real "
             "continuations, max_t | premature calls, bonferroni | mean critical value, max_t | bonferroni |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in lengths:
        lines.append(f"| {'rest' if n is None else n} | {len(null[('max_t', n)])} | "
                     + " | ".join(f"{np.mean(v[(c, n)]):.3f}" for v in (null, real) for c in CORRECTIONS)
                     + " | " + " | ".join(f"{np.mean(critical[(c, n)]):.2f}" for c in CORRECTIONS) + " |")
    pooled = {c: np.mean([x for n in args.n for x in null[(c, n)]]) for c in CORRECTIONS}
    lines += ["", "False positives pooled over N = " + ", ".join(map(str, args.n)) + ": "
              + ", ".join(f"{c} {pooled[c]:.3f}" for c in CORRECTIONS) + "."]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_probe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="directories holding recorded runs (any depth)")
    p.add_argument("--n", nargs="+", type=int, default=list(PROBE_EPOCHS), help="probe lengths in epochs")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--calibrate", action="store_true", help="measure the corrections on a null; no scoring")
    args = p.parse_args(argv)
    return calibrate(args) if args.calibrate else bench(args)


if __name__ == "__main__":
    sys.exit(main())
