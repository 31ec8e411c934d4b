#!/usr/bin/env python
"""What a search saves: the committed long runs as the trials of one Ray Tune search, under six stopping schemes.

    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/bench_search.py [--orders 10] [--sweep-orders 20]
                                                                     [--out docs/results/bench_search]
    .venv/bin/python scripts/bench_search.py --engine direct --out /tmp/x   # no Ray started: a few minutes

The 51 runs of ``docs/results/long_runs/<regime>/seed<N>/`` (17 configurations x 3 seeds, recorded with stopping
disabled, validation and test metrics and epoch times at every epoch) are the trials of one search. Each trial is
``replay_trainable``: it reads its trace epoch by epoch, decides with the scheme's rec_es policy through
``rec_es.replay.replay_steps`` (the loop ``rec_es.replay.replay`` runs, so every decision is the one a live
run makes), reports the validation NDCG@10 and the epochs trained to Ray Tune after every evaluation, and returns
when the policy stops or the budget ends. Schemes (``SCHEMES``): no stopping, the recommended policy alone,
RecBole's rule alone, ASHA alone, ASHA with the recommended policy, ASHA with ``prechelt_gl``. ASHA is Ray
Tune's own ``ASHAScheduler`` (``time_attr`` epochs, one bracket, ``max_t`` one past the longest budget, 201).

Each search reports the epochs its trials consumed, the seconds they would have taken (the recorded train +
validation seconds of those epochs: one worker's wall time), the trial chosen on validation as ``rec-es tune``
chooses it (the highest restored validation NDCG@10 among the trials ASHA did not cut: a cut trial is never
tested) and that trial's test NDCG@10 at its restored epoch over the no-stopping search's pick's. The test ratio
of one pick is partly luck (the best trials' validation NDCG@10 differ by 0.002, their test by 0.01), so each
search also says whether it kept the no-stopping search's pick.

The sweep runs every grace period x reduction factor (``GRACE_PERIODS`` x ``REDUCTION_FACTORS``) on all 51
trials, and ASHA + the recommended policy also on the model choice at learning rate 0.001 (``SLOW``, 21 trials),
which the slow starter GRU4Rec lr 0.001 wins; ``choose`` turns it into ``rec-es tune``'s default.

Two engines run the same trainable and the same scheduler class:

* ``tune``: ``ray.tune.Tuner``, one search per Tuner, trials one at a time (``max_concurrent_trials=1``) in a
  given order, in a local ``ray.init(num_cpus=2)``. Order decides what ASHA has seen when a trial reaches a rung.
* ``direct``: ``ASHAScheduler`` fed in this process with the trainable's reports in the arrival order Tune
  produces (``on_trial_add``, ``on_trial_result`` per report, ``on_trial_complete``, as Tune's controller
  calls them), optionally with several workers whose reports arrive in recorded time. Every ``tune`` search is
  checked to equal the ``direct`` search of the same order trial by trial, so the wide sweep of grace periods and
  reduction factors (hundreds of searches) runs in seconds without leaving Ray Tune's own code.

Repeats: ``--orders`` trial orders through Tune (seeds 0..N-1 of ``random.Random``), ``--sweep-orders`` in the
sweep. ASHA with one bracket draws no random number that matters (``np.random.choice`` over one bracket), so an
ASHA seed changes nothing; the spread is over orders. The schemes without ASHA do not depend on order.

Writes ``OUT/bench_search.md`` (the tables), ``OUT/summary.json`` (what the docs and tests read),
``OUT/searches.csv`` (one line per search) and ``OUT/subset.json`` (a 9-trial subset through Tune, which the
tests recompute with the direct engine). Time: 18 minutes with the defaults on 2 shared cores (Tune's round trip
is about 8 ms per report; the sweep's 4,320 searches take 3 minutes).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import heapq
import io
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray instance listens on loopback only

REPO = Path(__file__).resolve().parents[1]

from rec_es import build_policy  # noqa: E402
from rec_es.replay import record_seconds, replay_steps  # noqa: E402
from rec_es.rundir.trace import Trace, read_trace  # noqa: E402
from rec_es.tune.search import SCORE, TIME_ATTR, Asha  # noqa: E402
from benchlib import shipped_policy  # noqa: E402

RUNS = REPO / "docs" / "results" / "long_runs"
OUT = REPO / "docs" / "results" / "bench_search"
METRIC = "ndcg@10"
GOAL = {"epochs": 0.40, "ratio": 0.99}
#: rec-es tune's scheduler before this benchmark (grace period 1 evaluation, reduction factor 2)
OLD_DEFAULT = (1, 2)
GRACE_PERIODS = (1, 2, 5, 10, 15, 20, 25, 30, 40)
REDUCTION_FACTORS = (2, 3, 4)
#: the subset the tests recompute: a slow starter, the search's winner and a fast STAMP, three seeds each
SUBSET = ("gru4rec-lr0.001", "gru4rec-lr0.005", "stamp-lr0.003")
SUBSET_ORDERS = 3
#: workers of the sweep's concurrency check (reports arrive in recorded time)
WORKERS = 8
#: the searches of the sweep: every trial, and the model choice at learning rate 0.001, which the slow starter
#: GRU4Rec lr 0.001 (flat for about 40 epochs, then climbing) wins
ALL = "all 51 trials"
SLOW = "learning rate 0.001"
SEARCHES: dict[str, tuple[str, ...] | None] = {
    ALL: None, SLOW: ("caser-lr0.001", "core-lr0.001", "gru4rec-bpr-lr0.001", "gru4rec-lr0.001", "npe-lr0.001",
                      "sasrec-lr0.001", "stamp-lr0.001")}


def _legacy() -> dict[str, Any]:
    # RecBole's rule watches valid_metric, NDCG@10 in every recorded config (the shipped file's mrr@10 is
    # RecBole's default valid_metric): the search ranks on what the rule watches
    return {**shipped_policy("recbole_legacy"), "monitor": METRIC}


@dataclass(frozen=True)
class Scheme:
    """A stopping scheme: the rec_es policy inside every trial (``policy``: a shipped file's name), ASHA or not."""

    name: str
    policy: str
    asha: bool

    def mapping(self) -> dict[str, Any]:
        return _legacy() if self.policy == "recbole_legacy" else shipped_policy(self.policy)


SCHEMES = (Scheme("no stopping", "disabled", False), Scheme("recommended policy", "recommended", False),
           Scheme("RecBole's rule (recbole_legacy)", "recbole_legacy", False), Scheme("ASHA", "disabled", True),
           Scheme("ASHA + recommended policy", "recommended", True), Scheme("ASHA + prechelt_gl", "prechelt_gl", True))
BY_NAME = {s.name: s for s in SCHEMES}
REFERENCE = SCHEMES[0]
TARGET = BY_NAME["ASHA + recommended policy"]


# --- the trainable -----------------------------------------------------------------------------------------------

def trial_reports(trace: str | os.PathLike[str] | Trace, mapping: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """What one trial reports to Tune after each evaluation of ``trace`` under the policy ``mapping``.

    Validation only: ``valid_score`` (the policy's monitor value as recorded, NaN when not finite), ``epochs``
    (epochs trained, ASHA's time), and the trial's own bookkeeping: ``best_epoch`` (the epoch the policy would
    restore), ``final`` (True on the last report: the policy stopped, or the budget ended) and, on that report,
    ``reason`` and ``epochs_trained`` as ``rec_es.replay.replay`` states them.
    """
    policy = build_policy(dict(mapping))
    steps = replay_steps(policy, trace)
    last_record = steps.trace.records[-1]
    for record, decision in steps:
        final = decision.stop or record is last_record
        report: dict[str, Any] = {SCORE: math.nan if decision.value is None else float(decision.value),
                                  TIME_ATTR: int(record["epoch"]) + 1, "best_epoch": policy.best_epoch,
                                  "final": bool(final)}
        if final:
            res = steps.result(decision)
            report.update(reason=res.reason, epochs_trained=res.epochs_trained)
        yield report


def replay_trainable(config: Mapping[str, Any], report: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """The Ray Tune trainable: ``config["trace"]`` replayed under ``config["policy"]``, every report sent to
    ``report`` (default ``ray.tune.report``). Returns when the policy stops or the budget ends; ASHA may end it
    at any report."""
    if report is None:
        from ray import tune

        report = tune.report
    for result in trial_reports(config["trace"], config["policy"]):
        report(result)


# --- one search ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """One trial of one search: ``epochs`` consumed, their recorded ``seconds``, ``finished`` (its policy or its
    budget ended it; False: ASHA cut it), the restored ``best_epoch`` and that epoch's validation and test."""

    trial: str
    epochs: int
    seconds: float
    finished: bool
    reason: str
    best_epoch: int | None
    valid: float | None
    test: float | None


_SECONDS: dict[int, list[tuple[int, float]]] = {}


def epoch_seconds(trace: Trace) -> list[tuple[int, float]]:
    """(epoch, recorded train + validation seconds) of every record of ``trace``, computed once per trace."""
    key = id(trace)
    if key not in _SECONDS:
        _SECONDS[key] = [(int(r["epoch"]), record_seconds(r) or 0.0) for r in trace.records]
    return _SECONDS[key]


def outcome(name: str, trace: Trace, last: Mapping[str, Any]) -> Outcome:
    """A trial's ``Outcome`` from its last report (``trial_reports``'s fields) and its trace."""
    finished = bool(last["final"])
    epochs = int(last["epochs_trained"] if finished else last[TIME_ATTR])
    best = next((r for r in trace.records if r["epoch"] == last["best_epoch"]), None)
    seconds = sum(s for e, s in epoch_seconds(trace) if e < epochs)
    return Outcome(name, epochs, round(seconds, 3), finished, str(last["reason"]) if finished else "asha",
                   last["best_epoch"], None if best is None else best["valid"].get(METRIC),
                   None if best is None else (best.get("test") or {}).get(METRIC))


def make_asha(grace: int, rf: int, max_t: int) -> Any:
    """Ray Tune's ``ASHAScheduler`` as ``rec-es tune`` builds it (``rec_es.tune.search.Asha``: time in epochs, one
    bracket) for a budget of ``max_t - 1`` epochs."""
    return Asha(grace, rf).scheduler(max_t - 1)


def max_t(traces: Mapping[str, Trace]) -> int:
    """One past the longest budget: ASHA stops a trial that reaches ``max_t``, before its policy restores its best."""
    return 1 + max(int(tr.header.get("epochs") or len(tr.records)) for tr in traces.values())


class _Trial:
    """What ``ASHAScheduler`` reads of a Tune ``Trial``: its id."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def run_direct(traces: Mapping[str, Trace], order: Sequence[str], mapping: Mapping[str, Any],
               asha: tuple[int, int] | None, workers: int = 1,
               reports: Mapping[str, list[dict[str, Any]]] | None = None) -> list[Outcome]:
    """One search in this process: ``ASHAScheduler`` (or none) called as Tune's controller calls it.

    Trials start in ``order``, ``workers`` at a time. With one worker, reports arrive trial after trial, as in a
    Tuner with ``max_concurrent_trials=1``; with more, in the order of recorded time (each worker's clock is the
    sum of its trials' recorded train + validation seconds). ``reports``: each trial's full report list, computed
    once (``trial_reports``; ASHA only ever cuts it short). Returns the outcomes in ``order``.
    """
    sched = None
    if asha is not None:
        sched = make_asha(*asha, max_t(traces))
        sched.set_search_properties(SCORE, "max")
    pending = list(order)
    running: list[tuple[float, int, str, int]] = []  # (clock, worker, trial, index of its next report)
    feeds = {n: (reports[n] if reports is not None else list(trial_reports(traces[n], mapping))) for n in order}
    seconds = {n: [x for _, x in epoch_seconds(traces[n])] for n in order}
    last: dict[str, dict[str, Any]] = {}

    def start(worker: int, clock: float) -> None:
        if pending:
            name = pending.pop(0)
            if sched is not None:
                sched.on_trial_add(None, _Trial(name))
            heapq.heappush(running, (clock + seconds[name][0], worker, name, 0))

    for w in range(min(workers, len(pending))):
        start(w, 0.0)
    while running:
        clock, worker, name, i = heapq.heappop(running)
        result = feeds[name][i]
        last[name] = result
        stop = sched is not None and sched.on_trial_result(None, _Trial(name), dict(result)) == "STOP"
        if not stop and not result["final"]:
            heapq.heappush(running, (clock + seconds[name][i + 1], worker, name, i + 1))
            continue
        if sched is not None:
            if not stop:  # a trainable that returns: Tune passes its last result once more, then completes it
                sched.on_trial_result(None, _Trial(name), dict(result))
            sched.on_trial_complete(None, _Trial(name), dict(result))
        start(worker, clock)
    return [outcome(n, traces[n], last[n]) for n in order]


def run_tune(traces: Mapping[str, Trace], order: Sequence[str], mapping: Mapping[str, Any],
             asha: tuple[int, int] | None, storage: Path) -> list[Outcome]:
    """One search through ``ray.tune.Tuner``: ``replay_trainable`` for every trial, one at a time in ``order``
    (checked: the order trials started in is ``order``), ASHA or Tune's FIFO scheduler. Returns the outcomes."""
    from ray import cloudpickle, tune
    from ray.tune import Callback
    from ray.tune.schedulers import FIFOScheduler

    if __name__ != "__main__":  # imported (the tests): Ray's workers cannot import this script, so send it by value
        cloudpickle.register_pickle_by_value(sys.modules[__name__])

    paths = {str(traces[n].path): n for n in order}
    started: list[str] = []

    class Started(Callback):
        def on_trial_start(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            started.append(paths[trial.config["trace"]])

    sched = make_asha(*asha, max_t(traces)) if asha is not None else FIFOScheduler()
    tuner = tune.Tuner(
        tune.with_resources(replay_trainable, {"cpu": 1}),
        param_space={"trace": tune.grid_search([str(traces[n].path) for n in order]), "policy": dict(mapping)},
        tune_config=tune.TuneConfig(metric=SCORE, mode="max", scheduler=sched, max_concurrent_trials=1,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name="search", storage_path=str(storage), verbose=0, callbacks=[Started()],
                                  failure_config=tune.FailureConfig(max_failures=0)))
    with contextlib.redirect_stdout(io.StringIO()):  # Tune's closing box: nothing this benchmark reports
        results = tuner.fit()
    if results.num_errors:
        raise RuntimeError(f"{results.num_errors} trials failed: {[str(r.error) for r in results if r.error]}")
    if started != list(order):
        raise RuntimeError(f"Tune started the trials in another order than asked: {started} != {list(order)}")
    last = {paths[r.config["trace"]]: r.metrics for r in results}
    return [outcome(n, traces[n], last[n]) for n in order]


# --- what a search gives ------------------------------------------------------------------------------------------

def chosen(outcomes: Sequence[Outcome]) -> Outcome:
    """The trial ``rec-es tune`` picks: the highest restored validation among the finished (never cut) trials;
    a tie goes to the first name, so the pick does not depend on order."""
    finished = [o for o in outcomes if o.finished and o.valid is not None]
    return min(finished, key=lambda o: (-float(o.valid or 0.0), o.trial))


def summarize(outcomes: Sequence[Outcome], reference: Sequence[Outcome]) -> dict[str, Any]:
    """A search's totals against the no-stopping search ``reference``: epochs, seconds, the pick, its test ratio,
    ``kept`` (the pick is the no-stopping search's) and the trials ASHA cut."""
    pick, ref = chosen(outcomes), chosen(reference)
    ref_epochs, ref_seconds = sum(o.epochs for o in reference), sum(o.seconds for o in reference)
    epochs, seconds = sum(o.epochs for o in outcomes), sum(o.seconds for o in outcomes)
    return {"epochs": epochs, "epochs_frac": epochs / ref_epochs, "seconds": round(seconds, 1),
            "seconds_frac": seconds / ref_seconds, "chosen": pick.trial, "chosen_epoch": pick.best_epoch,
            "chosen_valid": pick.valid, "chosen_test": pick.test, "ratio": (pick.test or 0.0) / float(ref.test or 1.0),
            "valid_ratio": (pick.valid or 0.0) / float(ref.valid or 1.0), "kept": pick.trial == ref.trial,
            "cut": [o.trial for o in outcomes if not o.finished]}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, min and max (6 significant digits)."""
    return {"mean": float(f"{statistics.fmean(values):.6g}"), "min": float(f"{min(values):.6g}"),
            "max": float(f"{max(values):.6g}")}


def order_of(names: Sequence[str], seed: int) -> list[str]:
    """Trial order number ``seed``: ``names`` shuffled by ``random.Random(seed)``."""
    out = sorted(names)
    random.Random(seed).shuffle(out)
    return out


def load(root: Path, regimes: Sequence[str] | None = None) -> dict[str, Trace]:
    """``regime/seedN`` -> trace of every committed long run (of ``regimes`` only, when given)."""
    out = {}
    for p in sorted(root.glob("*/seed*/trace.jsonl")):
        if regimes is None or p.parent.parent.name in regimes:
            out[f"{p.parent.parent.name}/{p.parent.name}"] = read_trace(p.resolve())
    return out


def row(scheme: Scheme, grace: int | None, rf: int | None, workers: int, sums: Sequence[Mapping[str, Any]],
        engine: str = "direct", search: str = ALL) -> dict[str, Any]:
    """One table row: the spread over orders of a scheme's searches, and which trials they picked."""
    picks: dict[str, int] = {}
    for s in sums:
        picks[s["chosen"]] = picks.get(s["chosen"], 0) + 1
    return {"engine": engine, "search": search, "scheme": scheme.name, "grace": grace, "rf": rf,
            "workers": workers, "orders": len(sums), "epochs": spread([s["epochs"] for s in sums]),
            "epochs_frac": spread([s["epochs_frac"] for s in sums]), "seconds": spread([s["seconds"] for s in sums]),
            "seconds_frac": spread([s["seconds_frac"] for s in sums]), "ratio": spread([s["ratio"] for s in sums]),
            "valid_ratio": spread([s["valid_ratio"] for s in sums]), "kept": sum(s["kept"] for s in sums),
            "epochs_ok": sum(s["epochs_frac"] <= GOAL["epochs"] for s in sums),
            "picks": dict(sorted(picks.items(), key=lambda kv: (-kv[1], kv[0])))}


def meets_goal(row: Mapping[str, Any]) -> bool:
    """The issue's goal, in every order: epochs <= 40 % of no stopping's, test ratio >= 0.99."""
    return row["epochs_frac"]["max"] <= GOAL["epochs"] and row["ratio"]["min"] >= GOAL["ratio"]


def keeps_pick(row: Mapping[str, Any]) -> bool:
    """Every order picks the no-stopping search's trial (so the test ratio is 1 by construction, not by luck)."""
    return row["kept"] == row["orders"]


def choose(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The measured best (grace, rf) of ASHA + the recommended policy from the sweep.

    ``safe``: the no-stopping pick kept in every order, with 1 and with ``WORKERS`` workers, in both searches
    (the slow starter's included). ``goal``: the issue's goal met in every order on all 51 trials, 1 and
    ``WORKERS`` workers. ``default``: the cheapest (mean epochs, all trials, one worker) of safe and goal; if no
    setting is both, the cheapest safe one. ``fastest``: the cheapest setting that meets the goal and keeps the
    pick on all 51 trials (it may cut the slow starter)."""
    mine = [r for r in rows if r["scheme"] == TARGET.name]
    settings = sorted({(r["grace"], r["rf"]) for r in mine})

    def at(setting: tuple[int, int], search: str) -> list[Mapping[str, Any]]:
        return [r for r in mine if (r["grace"], r["rf"]) == setting and r["search"] == search]

    def cost(setting: tuple[int, int]) -> float:
        return next(r["epochs_frac"]["mean"] for r in at(setting, ALL) if r["workers"] == 1)

    safe = [st for st in settings if all(keeps_pick(r) for search in SEARCHES for r in at(st, search))]
    goal = [st for st in settings if all(meets_goal(r) for r in at(st, ALL))]
    fast = [st for st in goal if all(keeps_pick(r) for r in at(st, ALL))]
    both = [st for st in safe if st in goal]
    default = min(both or safe or settings, key=cost)
    return {"default": list(default), "default_meets_goal": default in goal, "safe": [list(x) for x in safe],
            "goal": [list(x) for x in goal], "fastest": list(min(fast, key=cost)) if fast else None}


# --- the benchmark ------------------------------------------------------------------------------------------------

def sweep(searches: Mapping[str, Mapping[str, Trace]], orders: int, settings: Sequence[tuple[int, int]],
          workers: Sequence[int], log: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The direct engine over every setting x worker count x ``orders`` orders: every ASHA scheme on all trials,
    ASHA + the recommended policy on the slow starter's search. Returns (rows, every search)."""
    rows, out = [], []
    for search, traces in searches.items():
        names = sorted(traces)
        reference = run_direct(traces, names, REFERENCE.mapping(), None)
        for scheme in (s for s in SCHEMES if s.asha and (search == ALL or s is TARGET)):
            mapping = scheme.mapping()
            feeds = {n: list(trial_reports(traces[n], mapping)) for n in names}
            t0 = time.perf_counter()
            for (grace, rf) in settings:
                for w in workers:
                    sums = []
                    for seed in range(orders):
                        s = summarize(run_direct(traces, order_of(names, seed), mapping, (grace, rf), w, feeds),
                                      reference)
                        sums.append(s)
                        out.append({"engine": "direct", "search": search, "scheme": scheme.name, "grace": grace,
                                    "rf": rf, "workers": w, "order": seed, **s})
                    rows.append(row(scheme, grace, rf, w, sums, "direct", search))
            log(f"sweep: {search}, {scheme.name}: {time.perf_counter() - t0:.0f} s")
    return rows, out


def tune_searches(traces: Mapping[str, Trace], orders: int, settings: Sequence[tuple[int, int]],
                  storage: Path, log: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Every scheme on all trials through ``ray.tune.Tuner``: the schemes without ASHA once (order 0: they do not
    depend on order), the ASHA schemes at each of ``settings`` over ``orders`` orders. Each search is checked
    against the direct engine on the same order. Returns (rows, searches, how many searches were checked)."""
    names = sorted(traces)
    reference = run_tune(traces, order_of(names, 0), REFERENCE.mapping(), None, storage / "reference")
    rows, searches, checked = [], [], 0
    plan = [(s, None) for s in SCHEMES if not s.asha] + [(s, st) for st in settings for s in SCHEMES if s.asha]
    for scheme, asha in plan:
        mapping = scheme.mapping()
        sums = []
        for seed in range(orders if asha is not None else 1):
            order = order_of(names, seed)
            t0 = time.perf_counter()
            got = (reference if scheme is REFERENCE else
                   run_tune(traces, order, mapping, asha, storage / f"{len(searches)}"))
            if got != run_direct(traces, order, mapping, asha):
                raise RuntimeError(f"{scheme.name} {asha} order {seed}: Tune and the direct engine disagree")
            checked += 1
            s = summarize(got, reference)
            sums.append(s)
            searches.append({"engine": "tune", "search": ALL, "scheme": scheme.name, "grace": asha and asha[0],
                             "rf": asha and asha[1], "workers": 1, "order": seed, **s})
            log(f"tune: {scheme.name} {asha or ''} order {seed}: {s['epochs']} epochs, pick {s['chosen']} "
                f"ratio {s['ratio']:.3f} ({time.perf_counter() - t0:.0f} s)")
        rows.append(row(scheme, asha and asha[0], asha and asha[1], 1, sums, "tune"))
    return rows, searches, checked


def subset(engine: str, setting: Sequence[int], storage: Path | None = None) -> dict[str, Any]:
    """The 9 trials of ``SUBSET``: no stopping, then ASHA + the recommended policy at ``setting`` over
    ``SUBSET_ORDERS`` orders, trial by trial (committed from ``engine='tune'``; the tests recompute it with
    ``engine='direct'``)."""
    traces = load(RUNS, SUBSET)
    names = sorted(traces)
    asha = (int(setting[0]), int(setting[1]))

    def run(order: list[str], mapping: dict[str, Any], with_asha: bool, tag: str) -> list[Outcome]:
        if engine == "tune":
            assert storage is not None
            return run_tune(traces, order, mapping, asha if with_asha else None, storage / tag)
        return run_direct(traces, order, mapping, asha if with_asha else None)

    ref = run(order_of(names, 0), REFERENCE.mapping(), False, "ref")
    out: dict[str, Any] = {"trials": names, "asha": list(asha), "reference": summarize(ref, ref), "searches": []}
    for seed in range(SUBSET_ORDERS):
        got = run(order_of(names, seed), TARGET.mapping(), True, f"s{seed}")
        out["searches"].append({"order": seed, **summarize(got, ref), "outcomes": [asdict(o) for o in got]})
    return out


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def ratio(x: float) -> str:
    return f"{x:.3f}"


def cell(sp: Mapping[str, float], fmt: Callable[[float], str]) -> str:
    """``mean (min-max)``, or the one value when every order gave it."""
    if fmt(sp["min"]) == fmt(sp["max"]):
        return fmt(sp["mean"])
    return f"{fmt(sp['mean'])} ({fmt(sp['min'])}-{fmt(sp['max'])})"


def report(summary: Mapping[str, Any]) -> list[str]:
    """The Markdown page: the main table (Tune), the sweep (direct), the slow starters."""
    ref, choice = summary["reference"], summary["choice"]
    default, old = choice["default"], OLD_DEFAULT
    lines = ["# What a search saves: the 51 long runs as one Ray Tune search", "",
             f"Written by `scripts/bench_search.py` ({summary['seconds'] / 60:.0f} min, Ray {summary['ray']}). "
             f"{len(summary['trials'])} trials (17 configurations x 3 seeds of `docs/results/long_runs/`); the "
             f"no-stopping search trains {ref['epochs']} epochs ({ref['seconds'] / 3600:.1f} h of recorded train + "
             f"validation time on one worker) and picks `{ref['chosen']}` (validation NDCG@10 "
             f"{ref['chosen_valid']}, restored epoch {ref['chosen_epoch']}, test NDCG@10 {ref['chosen_test']}).", "",
             f"## Every scheme through `ray.tune.Tuner` ({summary['tune_orders']} trial orders for the ASHA schemes)",
             "",
             "ASHA: Ray Tune's `ASHAScheduler`, `time_attr` epochs, one bracket, `max_t` "
             f"{summary['max_t']}; trials one at a time in each order. Cells: mean (min-max) over orders, one value "
             "when every order gave it (the schemes without ASHA do not depend on order). Test ratio: the pick's "
             "test NDCG@10 at its restored epoch over the no-stopping pick's. Kept: orders whose pick is the "
             "no-stopping search's. Goal: ASHA + recommended policy <= 40 % of the epochs, test ratio >= 0.99. "
             f"Every Tune search equals the direct engine's on the same order ({summary['checked']} checked, "
             "trial by trial). No ASHA seed is varied: with one bracket `ASHAScheduler` draws its only random "
             "number (`np.random.choice`) over one bracket, so the spread is over orders.", "",
             "| scheme | grace, rf | epochs | % of no stopping | one worker's hours | test ratio | kept | picks |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["tune_rows"]:
        setting = "" if r["grace"] is None else f"{r['grace']}, {r['rf']}"
        picks = ", ".join(f"`{k}` {v}" for k, v in r["picks"].items())
        lines.append(f"| {r['scheme']} | {setting} | {cell(r['epochs'], lambda x: f'{x:.0f}')} | "
                     f"{cell(r['epochs_frac'], pct)} | {cell(r['seconds'], lambda x: f'{x / 3600:.1f}')} | "
                     f"{cell(r['ratio'], ratio)} | {r['kept']}/{r['orders']} | {picks} |")
    fastest = choice["fastest"]
    for setting in (default, fastest):
        r = next((r for r in summary["tune_rows"] if r["scheme"] == TARGET.name and setting
                  and [r["grace"], r["rf"]] == list(setting)), None)
        if r is not None:
            e, q = r["epochs_frac"], r["ratio"]
            lines += ["", f"Goal at grace {setting[0]}, rf {setting[1]}: ASHA + recommended policy used "
                      f"{pct(e['mean'])} of no stopping's epochs (min {pct(e['min'])}, max {pct(e['max'])} over "
                      f"{r['orders']} orders; goal <= 40 %: {'met' if e['max'] <= GOAL['epochs'] else 'not met'}"
                      f"{'' if e['max'] <= GOAL['epochs'] else ' in ' + str(r['orders'] - r['epochs_ok']) + ' orders'}"
                      f"), test ratio {ratio(q['mean'])} (min {ratio(q['min'])}, max {ratio(q['max'])}; goal >= 0.99: "
                      f"{'met' if q['min'] >= GOAL['ratio'] else 'not met'}), the no-stopping pick kept in "
                      f"{r['kept']} of {r['orders']} orders."]
    lines += ["", f"Default of `rec-es tune` (the measured best, rule in `choose`): grace period {default[0]} "
              f"epochs, reduction factor {default[1]} (it was {old[0]}, {old[1]}); it meets the goal in every "
              f"order: {'yes' if choice['default_meets_goal'] else 'no'}. Settings that keep the no-stopping "
              "pick in every order of both searches (the slow starter's too): "
              + ", ".join(f"{g}, {rf}" for g, rf in choice["safe"]) + ". Fastest setting that meets the goal and "
              "keeps the pick on all 51 trials: " + (f"{fastest[0]}, {fastest[1]}" if fastest else "none") + ".",
              "", f"## Sweep: grace period x reduction factor (direct engine, {summary['sweep_orders']} orders)", "",
              f"One worker (trials one after another) and {WORKERS} workers whose reports reach ASHA in recorded "
              "time. Cells: % of no stopping's epochs, test ratio (mean (min-max) over orders) and kept; `*`: "
              "meets the goal in every order with both worker counts.", ""]
    for search in SEARCHES:
        for scheme in (s for s in SCHEMES if s.asha and (search == ALL or s is TARGET)):
            by = {(r["grace"], r["rf"], r["workers"]): r for r in summary["sweep_rows"]
                  if r["scheme"] == scheme.name and r["search"] == search}
            lines += [f"### {scheme.name}, {search} (no stopping picks `{summary['references'][search]}`)", "",
                      f"| grace, rf | 1 worker: epochs | test ratio | kept | {WORKERS} workers: epochs | test ratio "
                      "| kept |", "|---|---|---|---|---|---|---|"]
            for grace in GRACE_PERIODS:
                for rf in REDUCTION_FACTORS:
                    one, many = by[(grace, rf, 1)], by[(grace, rf, WORKERS)]
                    star = " *" if meets_goal(one) and meets_goal(many) else ""
                    lines.append(f"| {grace}, {rf}{star} | {cell(one['epochs_frac'], pct)} | "
                                 f"{cell(one['ratio'], ratio)} | {one['kept']}/{one['orders']} | "
                                 f"{cell(many['epochs_frac'], pct)} | {cell(many['ratio'], ratio)} | "
                                 f"{many['kept']}/{many['orders']} |")
            lines.append("")
    lines += ["## Slow starters", "", summary["slow_starters"], ""]
    return lines


def slow_starters(searches: Sequence[Mapping[str, Any]], top: Mapping[str, Sequence[str]]) -> str:
    """How often each setting of ASHA + the recommended policy (one worker) cuts GRU4Rec lr 0.001 (the slow
    starter) and each search's best trials (``top``: by restored validation without stopping)."""
    lines = []
    for search in SEARCHES:
        lines += [f"{search}: the no-stopping search's best trials by restored validation NDCG@10 are "
                  + ", ".join(f"`{n}`" for n in top[search]) + ".", ""]
    lines += ["| grace, rf | all 51: no-stopping pick cut | all 51: GRU4Rec lr 0.001 trials cut (of 3) | "
              "lr 0.001: no-stopping pick cut | lr 0.001: GRU4Rec lr 0.001 trials cut (of 3) |",
              "|---|---|---|---|---|"]
    for grace in GRACE_PERIODS:
        for rf in REDUCTION_FACTORS:
            cells = []
            for search in SEARCHES:
                mine = [s for s in searches if s["scheme"] == TARGET.name and s["workers"] == 1
                        and s["grace"] == grace and s["rf"] == rf and s["search"] == search]
                winner = sum(top[search][0] in s["cut"] for s in mine)
                slow = statistics.fmean(sum(n.startswith("gru4rec-lr0.001/") for n in s["cut"]) for s in mine)
                cells += [f"{winner}/{len(mine)}", f"{slow:.1f}"]
            lines.append(f"| {grace}, {rf} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dump(summary: Mapping[str, Any]) -> str:
    """``summary`` as JSON, one top-level key a line and one row a line (a diff shows which row changed)."""
    parts = []
    for key, value in summary.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            inner = ",\n".join("  " + json.dumps(v) for v in value)
            parts.append(f" {json.dumps(key)}: [\n{inner}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    """Run the sweep (direct), the Tune searches and the subset; write OUT."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=RUNS)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--orders", type=int, default=10, help="trial orders per ASHA scheme through Tune")
    p.add_argument("--sweep-orders", type=int, default=20, help="trial orders per sweep cell (direct engine)")
    p.add_argument("--engine", choices=("tune", "direct"), default="tune",
                   help="direct: no Ray; the main table is then the direct engine's")
    args = p.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    searches = {name: load(args.runs, regimes) for name, regimes in SEARCHES.items()}
    traces = searches[ALL]
    names = sorted(traces)
    settings = [(g, rf) for g in GRACE_PERIODS for rf in REDUCTION_FACTORS]
    sweep_rows, sweep_list = sweep(searches, args.sweep_orders, settings, (1, WORKERS), log)
    choice = choose(sweep_rows)
    default = (int(choice["default"][0]), int(choice["default"][1]))
    log(f"sweep: {len(sweep_list)} searches in {time.perf_counter() - t0:.0f} s; {choice}")
    tune_settings = list(dict.fromkeys([default, *([tuple(choice["fastest"])] if choice["fastest"] else []),
                                        OLD_DEFAULT]))
    refs = {name: run_direct(tr, sorted(tr), REFERENCE.mapping(), None) for name, tr in searches.items()}
    top = {name: [o.trial for o in sorted(ref, key=lambda o: (-float(o.valid or 0.0), o.trial))[:5]]
           for name, ref in refs.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    ray_version = "not started"
    if args.engine == "tune":
        import ray

        # Ray's workers import rec_es from this checkout, as this process does
        os.environ["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), os.environ.get("PYTHONPATH")) if x)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_version = ray.__version__
        try:
            with tempfile.TemporaryDirectory(prefix="bench_search-") as tmp:
                tune_rows, tune_list, checked = tune_searches(traces, args.orders, tune_settings, Path(tmp), log)
                sub = subset("tune", default, Path(tmp) / "subset")
                if sub != subset("direct", default):
                    raise RuntimeError("the subset through Tune differs from the direct engine's")
                (args.out / "subset.json").write_text(json.dumps(sub, indent=1) + "\n", encoding="utf-8")
        finally:
            ray.shutdown()
    else:
        tune_rows, tune_list, checked = [], [], 0
        for scheme, asha in [(s, None) for s in SCHEMES if not s.asha] + \
                [(s, st) for st in tune_settings for s in SCHEMES if s.asha]:
            sums = [summarize(run_direct(traces, order_of(names, seed), scheme.mapping(), asha), refs[ALL])
                    for seed in range(args.orders if asha else 1)]
            tune_rows.append(row(scheme, asha and asha[0], asha and asha[1], 1, sums, "direct"))
    summary = {"seconds": time.perf_counter() - t0, "ray": ray_version, "engine": args.engine, "trials": names,
               "max_t": max_t(traces), "tune_orders": args.orders, "sweep_orders": args.sweep_orders,
               "workers": WORKERS, "reference": summarize(refs[ALL], refs[ALL]),
               "references": {name: chosen(ref).trial for name, ref in refs.items()}, "top": top,
               "goal": GOAL, "old_default": list(OLD_DEFAULT), "choice": choice, "checked": checked,
               "tune_rows": tune_rows, "sweep_rows": sweep_rows}
    summary["slow_starters"] = slow_starters(sweep_list, top)
    (args.out / "summary.json").write_text(dump(summary), encoding="utf-8")
    with open(args.out / "searches.csv", "w", newline="", encoding="utf-8") as fh:
        fields = ["engine", "search", "scheme", "grace", "rf", "workers", "order", "epochs", "seconds", "chosen",
                  "chosen_epoch", "chosen_valid", "chosen_test", "ratio", "kept", "cut", "pick_cut", "slow_cut"]
        w = csv.writer(fh)
        w.writerow(fields)
        for s in [*tune_list, *sweep_list]:
            cut = set(s["cut"])
            w.writerow([s["engine"], s["search"], s["scheme"], s["grace"], s["rf"], s["workers"], s["order"],
                        s["epochs"], f"{s['seconds']:.0f}", s["chosen"], s["chosen_epoch"], s["chosen_valid"],
                        s["chosen_test"], f"{s['ratio']:.4f}", int(s["kept"]), len(cut),
                        int(summary["references"][s["search"]] in cut),
                        sum(n.startswith("gru4rec-lr0.001/") for n in cut)])
    text = "\n".join(report(summary))
    (args.out / "bench_search.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
