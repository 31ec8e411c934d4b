#!/usr/bin/env python
"""Score ``rec-es explain``'s "was it premature?" verdict on stock RecBole logs whose future is known (issue 13).

    python scripts/bench_explain.py RUNS_DIR [RUNS_DIR ...] [--held-out REGIME ...] [--out DIR] [--logs DIR]
                                    [--stopping-steps 1 3 5 10 20 50] [--metrics mrr@10 ndcg@10]
    OMP_NUM_THREADS=1 python scripts/bench_explain.py --stock-check [--out DIR]

Every ``trace.jsonl`` under RUNS_DIR that was recorded with stopping disabled and test metrics at every epoch
(``scripts/record_runs.py``: ``<regime>/seed<N>/``) is one full run. For each ``valid_metric`` and
``stopping_step``, RecBole's rule (``recbole_legacy``, the same decision as ``recbole.utils.early_stopping``) is
replayed on it; where the rule stops, the run is cut there and written as the log stock RecBole 1.2.1 would have
written (``rec_es.recbole_log.write``), and ``rec_es.explain`` reads that log like any other.

The truth comes from the full run, which the log does not show: the *oracle* is the full run's best-validation
epoch on that valid_metric (the first one, if tied); the *restored* epoch is where the cut run's rule restored.
The stop was **premature** when the oracle's test NDCG@10 is at least 5 % higher than the restored epoch's, **not
premature** when at most 1 % higher (or lower); cases in between are left out of the score. A rule that never
stops inside the run gives no case. The verdict counts as right when it says premature for a premature stop and
not premature for a not premature one; "cannot tell" is never right. Goal: >= 90 % right, "cannot tell" on at
most 10 % of the cases.

``--held-out PATTERN`` (a regime, ``REGIME/seedN`` or a glob such as ``*/seed2021``) reports those runs in a table
of their own: the verdict's thresholds were chosen on the other runs only, so the held-out table is the honest one.

``--stock-check`` runs stock RecBole (``recbole.quick_start.run_recbole`` with ``stopping_step``) and a rec_es
recording (stopping disabled, ``--record-test``) of the same config on datasets/ml-100k-tiny and on ml-100k, and
checks that the log cut from the recording parses as the stock log does: the same evaluation epochs and
valid scores, the same "Saving current" epochs, the same stop and best epoch, the same train losses.

Writes ``cases.csv`` and ``confusion.md`` into ``--out`` (default docs/results/bench_explain). ``--record JSON``
also writes what ``rec-es explain`` states beside a verdict (per rule: its confidence, its record leaving one
regime out, and the premature share of the rule that cannot tell) computed from that ``cases.csv``; the library
reads the one at ``rec_es/explain/verdict_record.json``, and ``tests/test_bench_explain.py`` checks it is what the
committed ``cases.csv`` gives.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import yaml

from benchlib import (FINE_AT, METRICS, PREMATURE_AT, STOPPING_STEPS, TEST_METRIC, Case, cases_of, CALLS, CANNOT_TELL, NOT_PREMATURE, PREMATURE, TUNE_HEADROOM, TUNE_SLOW, TUNE_Z, WRONG_WEIGHT,
                      Point, choose, find_runs, leave_one_regime_out, loro_calls, record_text, tally, untuned, utility,
                      verdict_record)
from rec_es.explain.verdict import LEANING_Z, LOSS_HEADROOM, SLOW_LOSS

REPO = Path(__file__).resolve().parents[1]
#: bootstrap resamples of the test users per case (``reproducibility``)
RESAMPLES = 1000


def reproducibility(cases: Sequence[Case], run_dir: Path, resamples: int = RESAMPLES, seed: int = 0) -> None:
    """Set each scored case's ``reproduces``: the share of ``resamples`` bootstrap resamples of the test users in
    which the truth (premature / not premature, from the oracle's and the restored epoch's mean test NDCG@10) is
    the one observed; None for every case when the run has no per-user test scores (``per_user/test.*``)."""
    import numpy as np

    from rec_es.rundir.per_user import read_per_user
    from rec_es.policy.errors import StateError

    try:
        scores = read_per_user(run_dir, "test")
    except (StateError, OSError):
        return
    rng = np.random.default_rng(seed)
    for case in cases:
        if not case.scored:
            continue
        oracle = np.asarray(scores.at(case.oracle_epoch)[TEST_METRIC], dtype=np.float64)
        restored = np.asarray(scores.at(case.restored_epoch)[TEST_METRIC], dtype=np.float64)
        idx = rng.integers(0, len(oracle), size=(resamples, len(oracle)))
        ratio = oracle[idx].mean(axis=1) / np.maximum(restored[idx].mean(axis=1), 1e-12)
        same = ratio >= PREMATURE_AT if case.truth == PREMATURE else ratio <= FINE_AT
        case.reproduces = float(same.mean())


def ceiling(cases: Sequence[Case]) -> list[str]:
    """How reproducible the truth itself is: the bootstrap share per scored case, its mean, and the mean over
    the cases the verdict got right and wrong."""
    known = [c for c in cases if c.reproduces is not None]
    if not known:
        return []
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    right = [c.reproduces for c in known if c.right]
    wrong = [c.reproduces for c in known if not c.right]
    shaky = sum(c.reproduces < 0.8 for c in known)
    return ["### how often the truth itself reproduces", "",
            f"The truth of a case is one draw: {TEST_METRIC} of the run's test users at two epochs. Resampling them "
            f"({RESAMPLES} bootstrap resamples per case, per-user test scores from the run's sidecar) gives the same "
            f"truth in **{100 * mean([c.reproduces for c in known]):.1f} %** of resamples on average over "
            f"{len(known)} scored cases ({shaky} below 80 %): a verdict that always named the truth a fresh test "
            f"set would most often give would agree with the recorded truth about that often, so the goal of 90 % "
            f"sits that close to what any verdict can reach. On the cases the verdict got right the truth "
            f"reproduces {100 * mean(right):.1f} % of the time, on those it got wrong {100 * mean(wrong):.1f} %"
            + (" (its misses are not mostly noisy truths)." if wrong and mean(wrong) > 0.85 else "."), ""]


def per_regime(cases: Sequence[Case]) -> list[str]:
    """Right verdicts per regime."""
    scored = [c for c in cases if c.scored]
    lines = ["### per regime", "", "| regime | premature | not premature | right |", "|---|---:|---:|---:|"]
    for reg in sorted({c.regime for c in scored}):
        group = [c for c in scored if c.regime == reg]
        right = sum(c.right for c in group)
        lines.append(f"| {reg} | {sum(c.truth == PREMATURE for c in group)} | "
                     f"{sum(c.truth == NOT_PREMATURE for c in group)} | {right}/{len(group)} "
                     f"({100 * right / len(group):.0f} %) |")
    return lines + [""]


def call_of(report: dict[str, Any]) -> tuple[str, float | None]:
    """The verdict as premature / not premature / cannot tell, and its stated confidence (None if none)."""
    premature = report["premature"]
    if premature.get("call"):
        return premature["call"].replace("_", " "), premature.get("confidence")
    verdict = premature["verdict"].lower()  # verdicts before issue 13 have only the sentence
    if verdict.startswith(("likely premature", "possibly premature")):
        return PREMATURE, None
    if verdict.startswith(("not premature", "probably not premature")):
        return NOT_PREMATURE, None
    return CANNOT_TELL, None


def judge(cases: list[tuple[Case, str]], logs: Path) -> None:
    from rec_es.explain import explain

    for case, text in cases:
        folder = logs / f"{case.regime}-seed{case.seed}-{case.valid_metric.replace('@', '')}-ss{case.stopping_step}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / case.log
        path.write_text(text, encoding="utf-8")
        report = explain(path)
        case.call, case.confidence = call_of(report)
        case.verdict = report["premature"]["verdict"]
        evidence = report["premature"].get("evidence") or {}
        case.rule = report["premature"].get("rule", "")
        window = (report["premature"].get("estimate") or {}).get("trend_window")
        case.trend_z = (report["premature"].get("estimate") or {}).get("trend_z")
        if window and evidence.get("epochs_left") is not None:
            case.room = evidence["epochs_left"] / max(window[1] - window[0], 1)
        case.headroom = evidence.get("loss_headroom")
        case.window_loss_fall = evidence.get("window_loss_fall")
        lost = report.get("lost") or {}
        if lost:  # the fitted level at the budget's end against the level at the restored epoch, and its bounds
            case.actual_gain = case.end_level - lost["restored_level"]
            case.expected_gain = lost["gain_over_restored"]
            case.gain_lo = lost["gain_over_restored"] - lost["gain"] + lost["gain_lo"]
            case.gain_hi = lost["gain_over_restored"] - lost["gain"] + lost["gain_hi"]
        case.log = str(path)


def confusion(cases: Sequence[Case], title: str) -> list[str]:
    """A markdown confusion table (truth x verdict) and the two goal numbers."""
    scored = [c for c in cases if c.scored]
    lines = [f"### {title}", "", f"| truth \\ verdict | {' | '.join(CALLS)} | total |", "|---|---:|---:|---:|---:|"]
    for t in (PREMATURE, NOT_PREMATURE):
        row = [sum(1 for c in scored if c.truth == t and c.call == k) for k in CALLS]
        lines.append(f"| {t} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    n = len(scored)
    right = sum(c.right for c in scored)
    unsure = sum(c.call == CANNOT_TELL for c in scored)
    between = sum(c.truth == "between" for c in cases)
    decided = n - unsure
    lines += ["", f"{n} scored cases ({between} between 1 % and 5 % left out): **{right}/{n} right"
              + (f" ({100 * right / n:.0f} %)" if n else "") + f"**, cannot tell on {unsure}/{n}"
              + (f" ({100 * unsure / n:.0f} %)" if n else "") + f"; of the {decided} verdicts given, {right} right"
              + (f" ({100 * right / decided:.0f} %)" if decided else "") + ".", ""]
    return lines


def coverage(cases: Sequence[Case]) -> list[str]:
    """How often explain's projected gain band held the full run's actual gain (valid_metric, budget's end)."""
    banded = [c for c in cases if c.gain_lo is not None and c.gain_hi is not None and c.actual_gain is not None]
    if not banded:
        return []
    inside = sum(c.gain_lo <= c.actual_gain <= c.gain_hi for c in banded)
    above = sum(c.actual_gain > c.gain_hi for c in banded)
    errors = sorted(abs(c.expected_gain - c.actual_gain) for c in banded if c.expected_gain is not None)
    return ["### expected gain of continuing", "", f"On {len(banded)} cut logs with a learning-curve fit, the full "
            "run's actual gain (mean of its last 5 evaluations minus the curve's level at the restored epoch) fell "
            "inside the estimator's bounds "
            f"{inside} times, above it {above}, below it {len(banded) - inside - above}; median absolute error of "
            f"the expected gain {errors[len(errors) // 2]:.4f}.", ""]


def _slow(w: float) -> str:
    """A ``SLOW_LOSS`` grid value as the tables print it (negative: the rule is off)."""
    return "off" if w < 0 else f"{100 * w:g} %"


def _point(p: Point) -> str:
    return f"{100 * p[0]:g} %, {p[1]:g}, {_slow(p[2])}"


def tune(cases: Sequence[Case], which: str = "runs used to choose it") -> list[str]:
    """Verdicts over a grid of (``LOSS_HEADROOM``, ``LEANING_Z``, ``SLOW_LOSS``) on ``cases``, and leave one regime
    out: the grid point best on the other regimes by ``utility``, scored on the one left out (how the rule does on
    a regime it has not seen), against the shipped thresholds on the same cases."""
    scored = [c for c in cases if c.scored]
    fmt = lambda t: f"{t[0]}/{t[1]}/{t[2]}"  # noqa: E731
    best = choose(scored)
    lines = [f"### threshold grid ({which}): right / wrong / cannot tell", "",
             f"Chosen by right - {WRONG_WEIGHT} x wrong (a \"cannot tell\" costs 1/{WRONG_WEIGHT + 1} of a wrong "
             f"verdict: a call is worth giving when it is right {WRONG_WEIGHT} times in {WRONG_WEIGHT + 1}); "
             f"{len(scored)} scored logs; best (LOSS_HEADROOM, LEANING_Z, SLOW_LOSS): {_point(best)}. The grid "
             f"at SLOW_LOSS {_slow(best[2])}:", "",
             "| LOSS_HEADROOM \\ LEANING_Z | " + " | ".join(f"{z:g}" for z in TUNE_Z) + " |",
             "|---|" + "---:|" * len(TUNE_Z)]
    for h in TUNE_HEADROOM:
        lines.append(f"| {100 * h:g} % | " + " | ".join(fmt(tally(scored, h, z, best[2])) for z in TUNE_Z) + " |")
    lines += ["", f"SLOW_LOSS at LOSS_HEADROOM {100 * best[0]:g} % and LEANING_Z {best[1]:g}: "
              + ", ".join(f"{_slow(w)} {fmt(tally(scored, best[0], best[1], w))}" for w in TUNE_SLOW) + "."]
    chosen = leave_one_regime_out(scored)
    if len(chosen) > 1:
        lines += ["", "### leave one regime out: thresholds chosen on the other regimes", "",
                  "| regime left out | chosen (LOSS_HEADROOM, LEANING_Z, SLOW_LOSS) | on the others | on it |",
                  "|---|---|---:|---:|"]
        total = [0, 0, 0]
        for reg, p in chosen.items():
            got = tally([c for c in scored if c.regime == reg], *p)
            total = [a + b for a, b in zip(total, got)]
            lines.append(f"| {reg} | {_point(p)} | {fmt(tally([c for c in scored if c.regime != reg], *p))} "
                         f"| {fmt(got)} |")
        given = total[0] + total[1]
        lines.append(f"| all | | | **{fmt(total)}: {100 * total[0] / len(scored):.0f} % right, "
                     f"{100 * total[2] / len(scored):.0f} % cannot tell, {100 * total[0] / max(given, 1):.0f} % "
                     f"of the calls given right** |")
        shipped = tally(scored, LOSS_HEADROOM, LEANING_Z, SLOW_LOSS)
        lines += ["", f"Objective, right - {WRONG_WEIGHT} x wrong: {utility(tuple(total)):g} with the thresholds "
                  f"chosen on the other regimes, {utility(shipped):g} with the shipped ones "
                  f"({_point((LOSS_HEADROOM, LEANING_Z, SLOW_LOSS))}: {fmt(shipped)})."]
    return lines + [""]


def per_rule(cases: Sequence[Case]) -> list[str]:
    """Per verdict rule: its cases, how many were premature in truth, the right verdicts, the share
    (right + 1) / (n + 2) that explain states as that rule's confidence (``verdict.CONFIDENCE``; none for a
    rule that cannot tell, whose premature share ``verdict.UNDECIDED`` states instead), its right verdicts on the
    held-out regimes, and its right verdicts leaving one regime out (``untuned``), which explain states beside the
    confidence (``verdict.UNTUNED``)."""
    scored = [c for c in cases if c.scored]
    decided = loro_calls(scored)
    loro = untuned(scored, decided)
    calls = {rule: call for _, call, rule in decided} | {c.rule: c.call for c in scored}
    lines = ["### per rule (all runs: the confidence explain states)", "",
             "| rule | call | cases | premature in truth | right | (right + 1) / (cases + 2) | right on held-out "
             "regimes | right leaving one regime out |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for rule in sorted({c.rule for c in scored} | set(loro)):
        group = [c for c in scored if c.rule == rule]
        right = sum(c.right for c in group)
        held = [c for c in group if c.held_out]
        call = calls[rule]
        share = "-" if call == CANNOT_TELL or not group else f"{(right + 1) / (len(group) + 2):.2f}"
        on_held = "-" if call == CANNOT_TELL or not held else f"{sum(c.right for c in held)}/{len(held)}"
        r, n = loro.get(rule, (0, 0))
        left_out = "-" if call == CANNOT_TELL or not n else f"{r}/{n}"
        lines.append(f"| {rule} | {call} | {len(group)} | {sum(c.truth == PREMATURE for c in group)} | {right} | "
                     f"{share} | {on_held} | {left_out} |")
    return lines + [""]


def held(name: str, patterns: Sequence[str]) -> bool:
    """``name`` (regime/seedN) matches a pattern: the regime, the name, or a glob such as ``*/seed2021``."""
    return any(name.split("/")[0] == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def bench(args: argparse.Namespace) -> int:
    runs = find_runs(args.runs, args.include_partial)
    if not runs:
        print(f"no recorded runs with test metrics under {', '.join(map(str, args.runs))}", file=sys.stderr)
        return 1
    all_cases: list[tuple[Case, str]] = []
    for name, trace, run_dir in runs:
        run_cases = cases_of(name, trace, args.metrics, args.stopping_steps)
        reproducibility([c for c, _ in run_cases], run_dir)
        for case, text in run_cases:
            case.held_out = held(name, args.held_out)
            all_cases.append((case, text))
    with tempfile.TemporaryDirectory() as tmp:
        logs = args.logs or Path(tmp)
        judge(all_cases, logs)
    cases = [c for c, _ in all_cases]
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "cases.csv", "w", newline="", encoding="utf-8") as fh:
        fields = [k for k in asdict(cases[0]) if k != "log"] if cases else []
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for c in cases:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in asdict(c).items()})
    if args.record:  # from cases.csv as written: the test recomputes it from the committed file the same way
        with open(args.out / "cases.csv", newline="", encoding="utf-8") as fh:
            args.record.write_text(record_text(verdict_record(csv.DictReader(fh))), encoding="utf-8")
    names = ", ".join(n for n, _, _ in runs)
    lines = [f"# bench_explain: {len(runs)} runs, {len(cases)} cut logs", "", f"Runs: {names}", ""]
    if args.held_out:
        lines += confusion([c for c in cases if not c.held_out], "runs used to choose the thresholds")
        lines += confusion([c for c in cases if c.held_out], f"held-out runs ({', '.join(args.held_out)})")
    lines += confusion(cases, "all runs")
    lines += per_regime(cases) + ceiling(cases)
    lines += coverage(cases)
    if args.tune:
        lines += tune([c for c in cases if not c.held_out])
        if any(c.held_out for c in cases):  # else the grid above already covers every regime
            lines += tune(cases, "every regime, held-out ones included: the grid a next change would start from")
        lines += per_rule(cases)
    wrong = [c for c in cases if c.scored and not c.right]
    if wrong:
        lines += ["### wrong or cannot tell", "", "| run | valid_metric | stopping_step | stop | restored | oracle "
                  "| test ratio | truth | verdict |", "|---|---|---:|---:|---:|---:|---:|---|---|"]
        lines += [f"| {c.regime}/seed{c.seed} | {c.valid_metric} | {c.stopping_step} | {c.stop_epoch} | "
                  f"{c.restored_epoch} | {c.oracle_epoch} | {c.ratio:.3f} | {c.truth} | {c.verdict} |" for c in wrong]
    text = "\n".join(lines) + "\n"
    (args.out / "confusion.md").write_text(text, encoding="utf-8")
    print(text)
    return 0



# --- --stock-check: do the cut logs read like logs stock RecBole writes? --------------------------------------

STOCK = """
import json, sys
from recbole.quick_start import run_recbole
cfg = json.loads(sys.argv[1])
run_recbole(model=cfg["model"], dataset=cfg["dataset"], config_dict=cfg, saved=True)
"""
COMMON = {"model": "GRU4Rec", "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 20,
          "loss_type": "CE", "train_neg_sample_args": None, "use_gpu": False, "show_progress": False,
          "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}, "topk": [10],
          "seed": 2020}
# (name, RecBole keys): the stopping_step and valid_metric the stock run uses are part of the keys
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("tiny-ss1-ndcg", {**COMMON, "dataset": "ml-100k-tiny", "data_path": str(REPO / "datasets"),
                       "embedding_size": 16, "hidden_size": 16, "metrics": ["Recall", "NDCG", "MRR"],
                       "valid_metric": "NDCG@10", "learning_rate": 0.01, "epochs": 30, "stopping_step": 1}),
    ("tiny-ss3-mrr", {**COMMON, "dataset": "ml-100k-tiny", "data_path": str(REPO / "datasets"),
                      "embedding_size": 16, "hidden_size": 16, "metrics": ["Recall", "NDCG", "MRR"],
                      "valid_metric": "MRR@10", "learning_rate": 0.01, "epochs": 30, "stopping_step": 3}),
    ("ml100k-ss1-mrr", {**COMMON, "dataset": "ml-100k", "embedding_size": 32, "hidden_size": 32,
                        "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "valid_metric": "MRR@10",
                        "learning_rate": 0.01, "epochs": 12, "stopping_step": 1}),
]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _stock(work: Path, cfg: dict[str, Any]) -> subprocess.Popen[str]:
    work.mkdir(parents=True, exist_ok=True)
    keys = {**cfg, "checkpoint_dir": str(work / "saved")}
    return subprocess.Popen([sys.executable, "-c", STOCK, json.dumps(keys)], cwd=work, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _record(work: Path, cfg: dict[str, Any]) -> subprocess.Popen[str]:
    work.mkdir(parents=True, exist_ok=True)
    keys = {k: v for k, v in cfg.items() if k != "stopping_step"}
    (work / "config.yaml").write_text(yaml.safe_dump({**keys, "checkpoint_dir": str(work / "saved")}))
    return subprocess.Popen([sys.executable, "-m", "rec_es", "run", "--config", "config.yaml",
                             str(REPO / "properties" / "policies" / "disabled.yaml"), "--record-test",
                             "--output-dir", str(work / "run"), "--no-progress", "--quiet"],
                            cwd=work, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _compare(name: str, cfg: dict[str, Any], stock_log: Path, run_dir: Path, out: Path) -> list[tuple[str, bool, str]]:
    from rec_es.explain import explain
    from rec_es.recbole_log import parse_recbole_log
    from rec_es.recbole_log.write import stock_log_name, stock_log_text
    from rec_es.rundir.trace import read_trace

    trace = read_trace(run_dir)
    cut = out / name / stock_log_name(trace)
    cut.parent.mkdir(parents=True, exist_ok=True)
    cut.write_text(stock_log_text(trace, cfg["valid_metric"], cfg["stopping_step"]), encoding="utf-8")
    real, ours = parse_recbole_log(stock_log), parse_recbole_log(cut)
    checks = [
        ("evaluation epochs", [e.epoch for e in real.evaluations], [e.epoch for e in ours.evaluations]),
        ("valid_score", real.scores(), ours.scores()),
        ("valid result", [e.valid for e in real.evaluations], [e.valid for e in ours.evaluations]),
        ("Saving current", [e.epoch for e in real.evaluations if e.saved], [e.epoch for e in ours.evaluations if e.saved]),
        ("train losses", {k: round(v, 4) for k, v in real.train_losses.items()},
         {k: round(v, 4) for k, v in ours.train_losses.items()}),
        ("ending, best epoch", (real.ending, real.finished_best_epoch), (ours.ending, ours.finished_best_epoch)),
        ("settings", (real.epochs, real.eval_step, real.stopping_step, real.valid_metric),
         (ours.epochs, ours.eval_step, ours.stopping_step, ours.valid_metric)),
    ]
    a, b = explain(stock_log)["premature"], explain(cut)["premature"]
    checks.append(("explain verdict", a["verdict"], b["verdict"]))
    return [(f"{name}: {what}", x == y, f"stock {x!r}" + ("" if x == y else f" != cut {y!r}")) for what, x, y in checks]


def stock_check(out: Path) -> int:
    """Train every config stock and recorded, compare, print; 0 when every check passes.

    For each config below, stock RecBole 1.2.1 trains it with ``stopping_step`` (``recbole.quick_start.run_recbole``,
    ``saved=True`` so it writes "Saving current" lines; under torch>=2.6 its test step then fails in torch.load, after
    the log of training is complete), and ``rec-es run`` records the same config with stopping disabled and test
    metrics at every epoch. The log cut from the recording (``rec_es.recbole_log.write``) must parse as the stock
    log does: the same evaluations (epochs, valid_score, every valid metric), the same "Saving current" epochs, the
    same train losses (4 decimals), the same ending and best epoch; and ``rec-es explain`` must give both the same
    verdict. Each check is printed; the exit status is 1 if any fails.
    """
    out = Path(out) / "stock_check"
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_explain_stock_") as tmp:
        for name, cfg in CONFIGS:
            work = Path(tmp) / name
            print(f"{name}: training stock RecBole and a rec_es recording ...", file=sys.stderr, flush=True)
            procs = {"stock": _stock(work / "stock", cfg), "record": _record(work / "record", cfg)}
            errors = {k: p.communicate(timeout=3600)[1] for k, p in procs.items()}
            if procs["record"].returncode != 0:
                results.append((f"{name}: rec_es recording", False, errors["record"][-2000:]))
                continue
            logs = sorted((work / "stock" / "log").rglob("*.log"))
            if len(logs) != 1:
                results.append((f"{name}: stock log", False, errors["stock"][-2000:]))
                continue
            (out / name).mkdir(parents=True, exist_ok=True)
            kept = out / name / f"stock-{logs[0].name}"
            kept.write_text(logs[0].read_text(encoding="utf-8"), encoding="utf-8")
            results += _compare(name, cfg, kept, work / "record" / "run", out)
    lines = [f"{'ok  ' if ok else 'FAIL'} {what}: {detail}" for what, ok, detail in results]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "checks.txt").write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(ok for _, ok, _ in results) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_explain.py", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", type=Path, help="directories holding recorded runs (any depth)")
    p.add_argument("--stopping-steps", nargs="+", type=int, default=list(STOPPING_STEPS))
    p.add_argument("--metrics", nargs="+", default=list(METRICS), type=str.lower)
    p.add_argument("--held-out", nargs="+", default=[], metavar="PATTERN", help="regimes, regime/seedN names or "
                   "globs (*/seed2021) not used to choose thresholds, reported apart")
    p.add_argument("--include-partial", action="store_true", help="also runs still being recorded (no footer): "
                   "their truth is only what is recorded so far")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "bench_explain")
    p.add_argument("--logs", type=Path, default=None, help="keep the cut logs here (default: a temp dir)")
    p.add_argument("--tune", action="store_true", help="also print the threshold grid on the non-held-out runs")
    p.add_argument("--record", type=Path, default=None, metavar="JSON", help="also write the record explain states "
                   "beside a verdict, from these cases (the shipped one: rec_es/explain/verdict_record.json)")
    p.add_argument("--stock-check", action="store_true", help="train stock RecBole and compare its logs")
    args = p.parse_args(argv)
    if args.stock_check:
        return stock_check(args.out)
    if not args.runs:
        p.error("give RUNS_DIR (or --stock-check)")
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
