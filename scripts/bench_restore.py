#!/usr/bin/env python
"""Which weights to restore at the stop: the best evaluation's, or an average around it? Scored as registered.

    python scripts/bench_restore.py --runs DIR --weights DIR [--out FILE.md] [--csv FILE]
    python scripts/bench_restore.py --from-csv FILE [--out FILE.md]      # the report again, nothing evaluated

The registration is docs/signals_registration.md (issue 31). For every run recorded by ``scripts/record_runs.py
--weights`` (stopping disabled, test metrics and per-user scores at every evaluation, the weights after each):

1. the recommended policy (``properties/policies/recommended.yaml``) is replayed on the recorded validation
   curve: it would have stopped at ``stop`` and restored the best raw evaluation up to it (no extra epochs);
2. each restore mode builds its weights from the evaluations up to ``stop`` (``best``; ``best_k`` K = 5;
   ``window`` W = 10; ``peak`` W = 9; ``ema`` decay 0.9), evaluated on validation (per user) and test;
3. **fallback**: an averaged model whose validation NDCG@10 is below the best evaluation's by more than twice
   the paired per-user standard error is not restored; the best evaluation is (and is scored);
4. score: test NDCG@10 over the oracle's (the full run's best-validation epoch) and over the hindsight best
   test epoch; the leave-one-model-out choice of the recommended restore (the mode with the highest mean ratio
   among those at >= 1.00 on every run of the other models; ``best`` if none), scored on the left-out model.

Cost: one data set build per run and two evaluation passes per mode (about 3 minutes for 14 ml-100k runs).
"""
from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rec_es import build_policy
from rec_es.policy.stats import paired_se
from rec_es.replay import replay
from rec_es.rundir.trace import read_trace
from rec_es.training.averaging import average_state_dicts
from benchlib import emit, load, scratch_cwd, shipped_policy

REPO = Path(__file__).resolve().parents[1]
METRIC = "ndcg@10"
MODES: dict[str, dict[str, Any]] = {"best": {}, "best_k": {"k": 5}, "window": {"window": 10},
                                    "peak": {"window": 9}, "ema": {"decay": 0.9}}


def epochs_for(mode: str, params: dict[str, Any], valid: Sequence[float], stop: int, best: int) -> list[int]:
    """The evaluations (0-based epochs, every epoch evaluated) a mode averages, from those up to ``stop``."""
    seen = list(range(stop + 1))
    if mode == "best":
        return [best]
    if mode == "best_k":
        return sorted(sorted(seen, key=lambda e: (-valid[e], e))[:params["k"]])
    if mode == "window":
        return seen[-params["window"]:]
    if mode == "peak":
        half = params["window"] // 2
        return [e for e in seen if abs(e - best) <= half]
    if mode == "ema":
        return seen
    raise ValueError(mode)


def ema_of(states: Sequence[dict[str, Any]], decay: float) -> dict[str, Any]:
    out = {k: v.double().clone() for k, v in states[0].items()}
    for s in states[1:]:
        for k, v in s.items():
            if v.is_floating_point():
                out[k].mul_(decay).add_(v.double(), alpha=1 - decay)
            else:
                out[k] = v.clone()
    return {k: out[k].to(states[0][k].dtype) for k in out}


class Evaluator:
    """Evaluates weights of one recorded run on its validation (per user) and test splits."""

    def __init__(self, run_dir: Path) -> None:
        from recbole.trainer import Trainer

        from rec_es.training.capture import PerUserCapture

        self.setup = load([str(run_dir / "config.yaml")], [])
        self.model = self.setup.fresh_model()
        self.trainer = Trainer(self.setup.config, self.model)
        self.capture = PerUserCapture(self.trainer, [METRIC])

    def __call__(self, state: dict[str, Any]) -> tuple[np.ndarray, float]:
        """(per-user validation NDCG@10, test NDCG@10) of ``state``."""
        self.model.load_state_dict(state)
        for name in getattr(self.model, "other_parameter_name", []):
            setattr(self.model, name, None)  # caches computed from the weights (none in the recorded models)
        self.trainer.evaluate(self.setup.valid_data, load_best_model=False, show_progress=False)
        scores = self.capture.take()
        assert scores is not None
        test = dict(self.trainer.evaluate(self.setup.test_data, load_best_model=False, show_progress=False))
        self.capture.take()
        return scores.values[METRIC].astype(np.float64), float(test[METRIC])


def score_run(run_dir: Path, weights_dir: Path) -> list[dict[str, Any]]:
    import torch

    trace = read_trace(run_dir)
    valid = [float(r["valid"][METRIC]) for r in trace.records]
    test = [float(r["test"][METRIC]) for r in trace.records]
    result = replay(build_policy(shipped_policy("recommended")), trace)
    stop, best = result.stop_epoch, result.best_epoch
    oracle = max(range(len(valid)), key=lambda e: (valid[e], -e))
    load_w = lambda e: torch.load(weights_dir / f"epoch{e}.pth", weights_only=True)  # noqa: E731
    evaluate = Evaluator(run_dir)
    with scratch_cwd(evaluate.setup):
        best_pu, best_test = evaluate(load_w(best))
        if abs(best_pu.mean() - valid[best]) > 1e-4 or abs(best_test - test[best]) > 1e-4:
            raise SystemExit(f"{run_dir}: epoch {best}'s saved weights do not reproduce its recorded scores "
                             f"(valid {best_pu.mean():.4f} vs {valid[best]}, test {best_test:.4f} vs {test[best]})")
        rows = []
        for mode, params in MODES.items():
            epochs = epochs_for(mode, params, valid, stop, best)
            states = [load_w(e) for e in epochs]
            state = ema_of(states, params["decay"]) if mode == "ema" else average_state_dicts(states)
            pu, t = (best_pu, best_test) if mode == "best" else evaluate(state)
            gap = pu.mean() - best_pu.mean()
            fallback = mode != "best" and gap < -2 * paired_se(pu.tolist(), best_pu.tolist())
            restored = best_test if fallback else t
            rows.append({"run": f"{run_dir.parent.name}/{run_dir.name}", "regime": run_dir.parent.name,
                         "model": str(trace.header.get("model")).lower(), "mode": mode, "stop": stop, "best": best,
                         "epochs": f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else str(epochs[0]),
                         "n_avg": len(epochs), "valid": pu.mean(), "valid_best": best_pu.mean(), "test": t,
                         "fallback": fallback, "restored_test": restored, "oracle_test": test[oracle],
                         "hindsight_test": max(test), "ratio": restored / test[oracle],
                         "ratio_hindsight": restored / max(test), "ratio_no_fallback": t / test[oracle]})
    return rows


def spread(xs: Sequence[float]) -> str:
    return f"{statistics.fmean(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def choose(rows: list[dict[str, Any]]) -> str:
    by_mode: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_mode[r["mode"]].append(r["ratio"])
    ok = {m: statistics.fmean(v) for m, v in by_mode.items() if min(v) >= 1.0}
    return max(ok, key=ok.get) if ok else "best"


def report(rows: list[dict[str, Any]]) -> list[str]:
    runs = sorted({r["run"] for r in rows})
    lines = ["# Restoring an average of weights at the recommended policy's stop (registered test)", "",
             f"{len(runs)} runs ({', '.join(sorted({r['regime'] for r in rows}))}); ratios of test NDCG@10: mean "
             "(min-max) over runs.", "",
             "| restore | / oracle | / hindsight best | runs >= 1.00 | fell back | / oracle without the fallback |",
             "|---|---|---|---|---|---|"]
    for mode in MODES:
        m = [r for r in rows if r["mode"] == mode]
        lines.append(f"| {mode} {MODES[mode] or ''} | {spread([r['ratio'] for r in m])} | "
                     f"{spread([r['ratio_hindsight'] for r in m])} | {sum(r['ratio'] >= 1.0 for r in m)}/{len(m)} | "
                     f"{sum(r['fallback'] for r in m)} | {spread([r['ratio_no_fallback'] for r in m])} |")
    lines += ["", "## Leave one model out: the restore chosen on the other models, scored on the left-out one", "",
              "| left out | chosen | / oracle on it (mean, min) |", "|---|---|---|"]
    chosen_ratios = []
    for model in sorted({r["model"] for r in rows}):
        mode = choose([r for r in rows if r["model"] != model])
        held = [r["ratio"] for r in rows if r["model"] == model and r["mode"] == mode]
        chosen_ratios += held
        lines.append(f"| {model} | {mode} | {statistics.fmean(held):.3f}, {min(held):.3f} |")
    met = min(chosen_ratios) >= 1.0 and statistics.fmean(chosen_ratios) >= 1.02
    averaging = [m for m in MODES if m != "best" and min(r["ratio"] for r in rows if r["mode"] == m) >= 1.0
                 and statistics.fmean(r["ratio"] for r in rows if r["mode"] == m) >= 1.02]
    lines += ["", f"Pooled over the left-out models: {spread(chosen_ratios)} (>= 1.00 on every run and >= 1.02 on "
              f"average: {'yes' if met else 'no'}). Averaging modes at >= 1.00 on every run and >= 1.02 on average "
              f"over all {len(runs)} runs: {', '.join(averaging) or 'none'}; so "
              f"{'an averaging mode' if averaging else 'no averaging mode'} reaches the goal, and "
              "`best` (ratio above 1 where the stop-time best tested better than the full run's "
              "best-validation epoch) is what the procedure restores" + ("." if not averaging else
                                                                        " where no average qualifies."),
              "", "## Per run", "",
              "| run | stop | best | " + " | ".join(MODES) + " |", "|---|---|---|" + "---|" * len(MODES)]
    for run in runs:
        m = {r["mode"]: r for r in rows if r["run"] == run}
        cells = [f"{m[x]['ratio']:.3f}{'*' if m[x]['fallback'] else ''}" for x in MODES]
        lines.append(f"| {run} | {m['best']['stop']} | {m['best']['best']} | " + " | ".join(cells) + " |")
    lines += ["", "`*`: the average fell back to the best evaluation (validation below it by > 2 paired SE)."]
    return lines


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``--csv`` file, numbers and flags typed back."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if v in ("True", "False"):
                r[k] = v == "True"
            elif k not in ("run", "regime", "model", "mode", "epochs"):
                r[k] = float(v) if "." in v else int(v)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_restore.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, help="root of <regime>/seed<N>/ run directories")
    p.add_argument("--weights", type=Path, help="root of <regime>/seed<N>/epoch<E>.pth")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--csv", type=Path, default=None)
    p.add_argument("--from-csv", type=Path, default=None, metavar="FILE",
                   help="rebuild the report from a --csv written before (evaluates nothing)")
    args = p.parse_args(argv)
    if args.from_csv:
        return emit(report(read_rows(args.from_csv)), args.out)
    if args.runs is None or args.weights is None:
        p.error("--runs and --weights are needed (or --from-csv)")
    import torch

    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    for trace in sorted(args.runs.glob("*/seed*/trace.jsonl")):
        run = trace.parent
        if not (run / "summary.json").is_file():
            continue
        rows += score_run(run.resolve(), (args.weights / run.parent.name / run.name).resolve())
        print(f"{run}: done", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    return emit(report(rows), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
