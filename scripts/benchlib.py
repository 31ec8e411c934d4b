"""What the scripts in ``scripts/`` share: the one module a script imports besides rec_es and third-party packages.

How scripts find it. A script runs as ``python scripts/NAME.py``, and Python puts the script's own directory first
on ``sys.path``, so ``import benchlib`` finds this file with no path edit; ``rec_es`` is the installed package
(``make install`` installs this checkout, editable; ``PYTHONPATH=CHECKOUT`` runs another checkout's code). A script
imports no other script and nothing from ``tests/``: what two scripts, or a script and the tests, use is here.
Tests import scripts and this module by name; ``tests/conftest.py`` puts ``scripts/`` on ``sys.path``, in one place.

This module is not part of the installed rec_es package on purpose: it is benchmark code (RecBole set up for
timing, the explain benchmark's threshold grid) that the library has no use for.

What is here, by the scripts that use it:

* ``tiny_recbole_config``: RecBole keys for GRU4Rec on ``datasets/ml-100k-tiny`` (about 0.7 s per epoch on one
  core), for ``bench_ray.py`` and the tests' fixtures;
* RecBole set up the way ``rec-es run`` sets it up (``load``, ``Setup``, ``scratch_cwd``) and the two rec_es modes
  the timing benchmarks compare (``rec_es_modes``): ``bench_overhead.py``, ``bench_instructions.py``,
  ``bench_snapshot.py``;
* reports over recorded runs (``find_runs``, ``shipped_policy``, ``test_at``, ``emit``): the replay benchmarks;
* the explain benchmark's scoring of the verdict's thresholds on its cases (``rule_with``, ``tally``, ``choose``,
  ``loro_calls``, ``untuned``) and the record ``rec-es explain`` states beside a verdict (``verdict_record``,
  ``record_text``, shipped as ``rec_es/explain/verdict_record.json``): ``bench_explain.py``,
  ``bench_explain_bound.py`` and ``tests/test_bench_explain.py``, which checks the shipped record is what the
  committed cases give.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Iterator, Mapping, Sequence

import yaml

from rec_es.config.properties import RunConfig, load_config, parse_set_args
from rec_es.explain.verdict import loss_rule
from rec_es.recbole_log.write import stock_log_name, stock_log_text, stock_replay
from rec_es.rundir.trace import Trace, read_trace

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
POLICIES_DIR = REPO / "properties" / "policies"
#: the verdict's record as the library ships and reads it (``rec_es.explain.verdict``)
VERDICT_RECORD = REPO / "rec_es" / "explain" / "verdict_record.json"


# --- the tiny config ----------------------------------------------------------------------------------------------

def tiny_recbole_config(**overrides: Any) -> dict[str, Any]:
    """RecBole keys for GRU4Rec on datasets/ml-100k-tiny (about 0.7 s per epoch on one core)."""
    cfg: dict[str, Any] = {
        "data_path": str(DATASETS), "dataset": "ml-100k-tiny", "model": "GRU4Rec",
        "embedding_size": 16, "hidden_size": 16, "MAX_ITEM_LIST_LENGTH": 20, "loss_type": "CE",
        "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "metrics": ["Recall", "NDCG", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
        "use_gpu": False, "show_progress": False, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "epochs": 6, "seed": 2020,
    }
    cfg.update(overrides)
    return cfg


# --- RecBole set up as `rec-es run` sets it up (the timing benchmarks) --------------------------------------------

DEFAULT_CONFIG = "properties/gru4rec_ml100k.yaml"

#: the richest rec_es mode the timing benchmarks compare: composite monitor + EMA + Prechelt GL + dynamic patience
RICHEST_POLICY = {
    "monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "smoothing": "ema", "ema_alpha": 0.5, "patience": 15,
    "warmup": 5, "prechelt": {"criterion": "GL", "alpha": 50.0},
    "dynamic_patience": {"factor": 0.3, "max_patience": 40, "min_gain": 0.005},
}
#: ...with a warmup/cosine/reduce-on-plateau LR schedule
RICHEST_SCHEDULE = {"warmup_epochs": 2, "decay": "cosine", "t_max": 100,
                    "reduce_on_plateau": {"factor": 0.3, "max_reductions": 2}}


@dataclass
class Setup:
    """A RecBole config with its data loaders, ready to build fresh models."""

    run_config: RunConfig
    config: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model_class: type

    def fresh_model(self) -> Any:
        """A new model initialised from the config's seed (same weights every call)."""
        from recbole.utils import init_seed

        init_seed(self.config["seed"], self.config["reproducibility"])
        return self.model_class(self.config, self.train_data._dataset).to(self.config["device"])


def load(files: Sequence[str], sets: Sequence[str], **extra: Any) -> Setup:
    """Merge property files and ``--set`` values, then build RecBole's config, dataset and loaders (quietly).

    Call it in the directory relative paths in the files refer to; then ``use_dir`` a scratch directory.
    """
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    import rec_es.training.trainer  # noqa: F401  (its compat fixes, anomaly detection off among them, before RecBole's models load)
    from rec_es.config import datasets
    from rec_es.training.compat import quiet_recbole_warnings

    quiet_recbole_warnings()
    overrides = parse_set_args(sets)
    overrides.update(extra)
    cfg = load_config(files, overrides)
    location = datasets.resolve(cfg.recbole, cfg.sources)
    keys = dict(cfg.recbole)
    keys["state"] = "WARNING"
    model_class = get_model(keys["model"])
    argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config reads `--key=value` words of sys.argv
    try:
        config = Config(model=model_class, dataset=keys["dataset"], config_dict=keys)
    finally:
        sys.argv = argv
    datasets.apply_data_path(config, location)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return Setup(cfg, config, train_data, valid_data, test_data, model_class)


@contextlib.contextmanager
def scratch_cwd(setup: Setup) -> Iterator[Path]:
    """Run inside a temporary directory that also holds RecBole's checkpoint_dir (RecBole writes
    log_tensorboard/ relative to the working directory); removed afterwards."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="rec_es_bench_") as tmp:
        os.chdir(tmp)
        setup.config.final_config_dict["checkpoint_dir"] = str(Path(tmp) / "saved")
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def rec_es_modes(setup: Setup) -> dict[str, tuple[dict[str, Any], Any]]:
    """``{mode: (early_stopping settings, lr_schedule)}`` of the two rec_es modes the benchmarks compare:
    ``rec_es default`` is the config's own policy without its time budget (a benchmarked fit's clock also runs
    while other fits or valgrind hold the CPU, so a budget would stop it early), ``rec_es richest`` the richest."""
    return {"rec_es default": ({**setup.run_config.early_stopping, "max_minutes": None}, setup.run_config.lr_schedule),
            "rec_es richest": (RICHEST_POLICY, RICHEST_SCHEDULE)}


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def threads_line() -> str:
    import torch

    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"


# --- reports over recorded runs (the replay benchmarks) -----------------------------------------------------------

def find_runs(roots: Sequence[Path], include_partial: bool) -> list[tuple[str, Trace, Path]]:
    """(regime/seed name, trace, run directory) of every recorded run with test metrics under ``roots``, sorted by
    name."""
    runs = []
    for root in roots:
        for path in sorted(Path(root).rglob("trace.jsonl")):
            trace = read_trace(path)
            if not trace.header.get("record_test") or not trace.records or "test" not in trace.records[-1]:
                continue
            if trace.footer is None and not include_partial:
                print(f"skipped (still running, no footer): {path}", file=sys.stderr)
                continue
            runs.append((f"{path.parent.parent.name}/{path.parent.name}", trace, path.parent))
    return sorted(runs, key=lambda r: r[0])


def shipped_policy(name: str) -> dict[str, Any]:
    """The ``early_stopping:`` mapping of ``properties/policies/<name>.yaml`` (a fresh dict)."""
    path = POLICIES_DIR / f"{name}.yaml"
    return dict(yaml.safe_load(path.read_text(encoding="utf-8"))["early_stopping"])


def test_at(trace: Any, epoch: int | None, metric: str) -> float | None:
    """The recorded test ``metric`` of the evaluation at ``epoch``, None if the trace has none there."""
    for r in trace.records:
        if r["epoch"] == epoch:
            return (r.get("test") or {}).get(metric)
    return None


def emit(lines: Sequence[str], out: Path | None) -> int:
    """Print ``lines`` as one text and write it (newline-terminated) to ``out`` when given; the exit status 0."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    return 0


# --- the explain benchmark: the verdict's thresholds scored on its cases -------------------------------------------

PREMATURE, NOT_PREMATURE, CANNOT_TELL = "premature", "not premature", "cannot tell"
CALLS = (PREMATURE, NOT_PREMATURE, CANNOT_TELL)

Point = tuple[float, float, float]  # (LOSS_HEADROOM, LEANING_Z, SLOW_LOSS)

TUNE_HEADROOM = (0.02, 0.04, 0.06, 0.08, 0.1, 0.15)
TUNE_Z = (-9.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # -9: the loss alone decides
TUNE_SLOW = (-1.0, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04)  # -1: off


def rule_with(c: Any, headroom: float, trend_z: float, slow: float) -> tuple[str, str]:
    """(call, rule) the verdict's loss-headroom rules (``rec_es.explain.verdict.loss_rule``) give ``c`` with
    thresholds ``headroom``, ``trend_z`` (``LEANING_Z``) and ``slow`` (``SLOW_LOSS``); cases another rule decided
    keep their call and rule."""
    if c.headroom is None or c.rule == "monitor falling":
        return c.call, c.rule
    call, rule = loss_rule(c.headroom, c.trend_z, c.window_loss_fall, headroom_at=headroom, leaning_z=trend_z,
                           slow_at=slow)
    return call.replace("_", " "), rule


#: ``tune``'s objective counts a wrong verdict as this many right ones lost: Chow's reject rule with a "cannot
#: tell" costing c = 1 / (1 + WRONG_WEIGHT) = 1/3 of a wrong verdict, so a call is worth giving when it is right at
#: least 1 - c = 2 times in 3, and a coin flip is left undecided
WRONG_WEIGHT = 2


def tally(cases: Sequence[Any], headroom: float, trend_z: float, slow: float) -> tuple[int, int, int]:
    """(right, wrong, cannot tell) of the verdicts with thresholds ``headroom``, ``trend_z`` and ``slow`` on
    ``cases``."""
    calls = [rule_with(c, headroom, trend_z, slow)[0] for c in cases]
    right = sum(call == c.truth for call, c in zip(calls, cases))
    undecided = sum(call == CANNOT_TELL for call in calls)
    return right, len(cases) - right - undecided, undecided


def utility(counts: tuple[int, int, int]) -> float:
    """``tune``'s objective: right verdicts minus ``WRONG_WEIGHT`` x wrong ones; maximising it minimises
    wrong + c x cannot tell, so "cannot tell" is neither free nor as bad as a wrong call."""
    right, wrong, _ = counts
    return right - WRONG_WEIGHT * wrong


def choose(cases: Sequence[Any]) -> Point:
    """The grid point (``LOSS_HEADROOM``, ``LEANING_Z``, ``SLOW_LOSS``) with the best ``utility`` on ``cases``; on a
    tie the one with fewer wrong verdicts (the trade is at its break-even there, and a wrong call costs the user
    more than a "cannot tell"), then the first in grid order."""
    def key(p: Point) -> tuple[float, int]:
        counts = tally(cases, *p)
        return utility(counts), -counts[1]

    return max(((h, z, w) for w in TUNE_SLOW for h in TUNE_HEADROOM for z in TUNE_Z), key=key)


def rule_inputs(rows: Iterable[Mapping[str, str]]) -> list[Any]:
    """``cases.csv`` rows as what ``rule_with`` / ``loro_calls`` / ``untuned`` read of a case (regime, truth, call,
    rule and the three thresholded quantities), for scoring a committed benchmark without re-running it."""
    number = lambda x: float(x) if x else None  # noqa: E731
    return [SimpleNamespace(regime=r["regime"], truth=r["truth"], call=r["call"], rule=r["rule"],
                            headroom=number(r["headroom"]), trend_z=number(r["trend_z"]),
                            window_loss_fall=number(r["window_loss_fall"])) for r in rows]


def leave_one_regime_out(scored: Sequence[Any]) -> dict[str, Point]:
    """Per regime, the thresholds ``choose`` picks on the other regimes' cases."""
    regimes = sorted({c.regime for c in scored})
    return {reg: choose([c for c in scored if c.regime != reg]) for reg in regimes}


def loro_calls(scored: Sequence[Any]) -> list[tuple[Any, str, str]]:
    """(case, call, rule) of every scored case decided with the thresholds chosen without its regime."""
    chosen = leave_one_regime_out(scored)
    return [(c, *rule_with(c, *chosen[c.regime])) for c in scored]


def untuned(scored: Sequence[Any], decided: list[tuple[Any, str, str]] | None = None) -> dict[str, tuple[int, int]]:
    """Per rule, (right, cases) when every case is decided with the thresholds chosen without its regime: what
    the verdict states as the rule's record on regimes left out of its tuning (``verdict.UNTUNED``)."""
    out: dict[str, list[int]] = {}
    for c, call, rule in decided if decided is not None else loro_calls(scored):
        got = out.setdefault(rule, [0, 0])
        got[0] += call == c.truth
        got[1] += 1
    return {rule: (r, n) for rule, (r, n) in out.items()}


# --- the record `rec-es explain` states beside a verdict -----------------------------------------------------------

#: (call, right, cases) of the rules that decide a trace recorded without training losses. The cut logs the
#: benchmark writes all hold training losses, so it no longer reaches these rules: these are the counts it measured
#: on its first six runs' tuning seed, before the loss-headroom rules existed, when these rules decided every log
#: that was no early stop (``git show 6a0918a:docs/results/bench_explain/cases.csv``, rows not held out)
WITHOUT_LOSS = {"still rising, with room": (PREMATURE, 10, 11), "trend within noise": (NOT_PREMATURE, 11, 13),
                "little budget left": (NOT_PREMATURE, 2, 2)}

RECORD_ABOUT = ("What rec-es explain states beside a verdict, per rule: the benchmark's cases it decided (call; "
                "cases; right; for a call that cannot tell, how many of them were premature), the confidence "
                "(right + 1) / (cases + 2), and untuned: [right, cases] when every regime is decided by the "
                "thresholds chosen without it. Written by scripts/bench_explain.py --record from its cases.csv "
                "(rules) and from counts measured on logs without training losses (rules_without_loss); read by "
                "rec_es.explain.verdict. tests/test_bench_explain.py checks this file is what the committed "
                "docs/results/bench_explain/cases.csv gives.")


def confidence(right: int, cases: int) -> float:
    """The confidence a verdict states for a rule right ``right`` times in ``cases``: (right + 1) / (cases + 2),
    so a rule right on all of few cases does not claim 100 %, rounded to two decimals."""
    return round((right + 1) / (cases + 2), 2)


def verdict_record(rows: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """The record explain states, from ``cases.csv`` rows: per rule that decided a scored case, or that decides
    one when its regime is left out of the tuning, the entry ``RECORD_ABOUT`` describes; rules in name order."""
    scored = [r for r in rows if r["truth"] in (PREMATURE, NOT_PREMATURE)]
    cases = rule_inputs(scored)
    decided = loro_calls(cases)
    calls = {rule: call for _, call, rule in decided} | {r["rule"]: r["call"] for r in scored}
    loro = untuned(cases, decided)
    rules: dict[str, dict[str, Any]] = {}
    for rule in sorted(calls):
        group = [r for r in scored if r["rule"] == rule]
        entry: dict[str, Any] = {"call": calls[rule], "cases": len(group)}
        if calls[rule] == CANNOT_TELL:
            entry["premature"] = sum(r["truth"] == PREMATURE for r in group)
        else:
            right = sum(r["call"] == r["truth"] for r in group)
            entry["right"] = right
            if group:
                entry["confidence"] = confidence(right, len(group))
            if rule in loro:
                entry["untuned"] = list(loro[rule])
        rules[rule] = entry
    without = {rule: {"call": call, "cases": n, "right": right, "confidence": confidence(right, n)}
               for rule, (call, right, n) in sorted(WITHOUT_LOSS.items())}
    return {"about": RECORD_ABOUT, "rules": rules, "rules_without_loss": without}


def record_text(record: Mapping[str, Any]) -> str:
    """``record`` as the JSON file holds it: one line per rule, so a change reads as a one-line diff."""
    def block(entries: Mapping[str, Any]) -> str:
        return "{\n" + ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items()) + "\n  }"

    parts = [f'  "about": {json.dumps(record["about"])}']
    parts += [f"  {json.dumps(key)}: {block(record[key])}" for key in ("rules", "rules_without_loss")]
    return "{\n" + ",\n".join(parts) + "\n}\n"


# --- the verdict benchmark's cut logs (bench_explain.py, bench_probe.py) ---------------------------------------
STOPPING_STEPS = (1, 3, 5, 10, 20, 50)
METRICS = ("mrr@10", "ndcg@10")
TEST_METRIC = "ndcg@10"
PREMATURE_AT, FINE_AT = 1.05, 1.01


@dataclass
class Case:
    """One cut log: where the rule stopped, what the full run knew, what explain said."""

    regime: str
    seed: int | None
    valid_metric: str
    stopping_step: int
    budget: int
    stop_epoch: int
    restored_epoch: int
    oracle_epoch: int
    restored_test: float
    oracle_test: float
    ratio: float
    truth: str  # premature | not premature | between
    call: str = ""
    confidence: float | None = None
    verdict: str = ""
    log: str = ""
    held_out: bool = False
    partial: bool = False
    trend_z: float | None = None  # the verdict's evidence: the estimator's trend z-score
    room: float | None = None  # epochs left in the budget / the trend window's span
    headroom: float | None = None  # the verdict's loss headroom (rec_es.explain.verdict.Evidence.loss_headroom)
    window_loss_fall: float | None = None  # the training loss's relative fall over the trend window
    rule: str = ""
    end_level: float | None = None  # full run: mean valid_metric of its last 5 evaluations
    actual_gain: float | None = None  # end_level minus explain's curve level at the restored epoch
    expected_gain: float | None = None  # explain's projected gain to the budget's end (None without a projection)
    gain_lo: float | None = None
    gain_hi: float | None = None
    reproduces: float | None = None  # share of bootstrap resamples of the test users that give the same truth

    @property
    def right(self) -> bool:
        return self.call == self.truth

    @property
    def scored(self) -> bool:
        """The truth is premature or not premature (a case between 1 % and 5 % is left out of every score)."""
        return self.truth in (PREMATURE, NOT_PREMATURE)


def truth(ratio: float) -> str:
    if ratio >= PREMATURE_AT:
        return PREMATURE
    if ratio <= FINE_AT:
        return NOT_PREMATURE
    return "between"


def cases_of(name: str, trace: Trace, metrics: Iterable[str], steps: Iterable[int]) -> list[tuple[Case, str]]:
    """Every (case, stock log text) of one full run: one per (valid_metric, stopping_step) whose rule stops."""
    out = []
    regime = name.split("/")[0]
    test = {r["epoch"]: {k.lower(): v for k, v in r["test"].items()}[TEST_METRIC] for r in trace.records}
    for metric in metrics:
        valid = [(r["epoch"], {k.lower(): v for k, v in r["valid"].items()}[metric]) for r in trace.records]
        oracle = max(valid, key=lambda ev: (ev[1], -ev[0]))[0]
        end_level = sum(v for _, v in valid[-5:]) / len(valid[-5:])
        for step in steps:
            result = stock_replay(trace, metric, step)
            if not result.stopped or result.best_epoch is None:
                continue
            restored = result.best_epoch
            ratio = test[oracle] / test[restored] if test[restored] > 0 else float("inf")
            case = Case(regime=regime, seed=trace.header.get("seed"), valid_metric=metric, stopping_step=step,
                        budget=int(trace.header["epochs"]), stop_epoch=result.stop_epoch, restored_epoch=restored,
                        oracle_epoch=oracle, restored_test=test[restored], oracle_test=test[oracle], ratio=ratio,
                        truth=truth(ratio), partial=trace.footer is None, log=stock_log_name(trace),
                        end_level=end_level)
            out.append((case, stock_log_text(trace, metric.upper(), step)))
    return out
