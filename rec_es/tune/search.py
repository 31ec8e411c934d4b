"""``rec-es tune``: a hyper-parameter search on Ray Tune with a rec_es stopping policy in every trial.

    rec-es tune --config properties/gru4rec_ml100k.yaml --space properties/hyper.test --trials 8
                [--scheduler asha|none] [--grace-period EPOCHS] [--reduction-factor F] [--ray [ADDRESS]]
                [--jobs N] [--output DIR] [--set KEY=VALUE ...]

Every trial trains with ``EarlyStoppingTrainer`` and the configured ``early_stopping:`` policy (which may stop
it) and reports its **validation** metrics to Ray Tune after **every** evaluation, once the trace record is
written, so ASHA (``Asha``: its time is epochs trained) can stop a bad trial early (RecBole's ``run_hyper.py`` reports test metrics once, after
training: its schedulers never see an epoch, and trials are ranked on the test set). ``--space`` is RecBole's
hyper-parameter file (``rec_es.tune.space``); an all-``choice`` space is searched as a grid (``--trials``
then defaults to its size), any other is sampled ``--trials`` times.

``--output`` (default ``runs/tune-<time>``, never overwritten) holds ``trials/<trial>/`` (a rec_es run
directory each: ``rec-es explain`` works on any trial), ``trials.csv`` (one row per trial), ``best.json`` (the
best trial on validation, with its test result) and ``ray/`` (Ray Tune's own experiment state). A trial
that crashes (a bad value, a NaN loss) is recorded as failed with its reason and the search goes on.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rec_es.config.properties import RunConfig, load_config
from rec_es.policy.errors import ConfigError, RecEsError, StateError
from rec_es.rundir.paths import atomic_write
from rec_es.rundir.trace import TraceWriter, read_trace
from rec_es.tune.space import Param, grid_size, param_space, read_space

#: The metric every trial reports (the policy's monitor value) and ASHA ranks on.
SCORE = "valid_score"
#: ASHA's time: epochs trained, reported with every evaluation (so the grace period counts epochs whatever eval_step).
TIME_ATTR = "epochs"
#: ASHA's defaults (``Asha``): first rung at epoch 25, then 75 (and 225); the top third of a rung goes on. The
#: measured best of scripts/bench_search.py (docs/ray.md, "What ASHA saves"), which a test holds them to.
GRACE_PERIOD = 25
REDUCTION_FACTOR = 3
#: ``stopped_by`` values of trials.csv.
STOPPED_BY = ("policy", "budget", "scheduler", "failed", "interrupted")


@dataclass
class TrialRow:
    """One line of trials.csv."""

    trial: str
    params: dict[str, Any]
    best_valid_score: float | None
    best_epoch: int | None
    stop_epoch: int | None
    stop_reason: str
    stopped_by: str
    run_dir: str
    message: str
    test_result: dict[str, float] | None = None


def run_trial(params: dict[str, Any], *, files: Sequence[str], overrides: Mapping[str, Any], trials_dir: str,
              threads: int, cwd: str) -> None:
    """One Ray Tune trial: train ``files`` + ``params`` into ``trials_dir/<trial id>``, reporting every evaluation.

    Runs in the driver's working directory ``cwd`` when it exists on this worker (Ray starts trials in their
    own directory), so relative ``data_path`` values mean what they mean to ``rec-es run``.
    """
    from ray import tune

    from rec_es.tune.workers import train_with_rec_es, worker_init

    worker_init(threads)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    trial = tune.get_context().get_trial_id()
    run_dir = Path(trials_dir) / trial
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "trial.json").write_text(json.dumps({"trial": trial, "params": params}, default=str) + "\n")
    try:
        cfg = load_config(files, {**overrides, **params})

        def report(epoch: int, value: float | None) -> None:  # the trace record of `epoch` is on disk already
            valid = read_trace(run_dir / "trace.jsonl").records[-1]["valid"]
            tune.report({SCORE: float("nan") if value is None else float(value), "epoch": epoch, TIME_ATTR: epoch + 1,
                         **{f"valid/{k}": v for k, v in valid.items() if isinstance(v, (int, float))}})

        summary = train_with_rec_es(cfg, run_dir, False, callback_fn=report)
        if summary.get("stop_reason") == "non_finite":
            raise RecEsError(str(summary.get("message")))
    except Exception as exc:
        (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        raise


def check_inputs(config_files: Sequence[str], space_file: str, trials: int | None,
                 overrides: Mapping[str, Any], output: Path) -> tuple[RunConfig, list[Param], bool, int]:
    """Everything checked before Ray starts: config, dataset, model, space, --trials, --output."""
    from rec_es.config import datasets
    from rec_es.training.run import model_and_trainer_class

    params = read_space(space_file)
    base = load_config(config_files, overrides)
    datasets.resolve(base.recbole, base.sources)
    model_and_trainer_class(base.recbole, base.sources)
    size = grid_size(params)
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be >= 1 (got {trials})", source="--trials")
    if trials is None and size is None:
        raise ConfigError(f"{space_file}: has a continuous parameter, so --trials N (how many samples) is needed",
                          source="--trials")
    grid = size is not None and trials in (None, size)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(f"{output} already exists and is not empty; rec_es never overwrites a search. Pick "
                          "another --output", source="--output")
    return base, params, grid, size if grid and size is not None else int(trials or 1)


@dataclass(frozen=True)
class Asha:
    """ASHA's settings: ``grace_period`` (epochs before a trial is first compared; default ``GRACE_PERIOD``) and
    ``reduction_factor`` (the rungs are grace x factor^k epochs, and a trial must be in the top 1/factor of the
    trials that reached its rung; default ``REDUCTION_FACTOR``). Raises ConfigError on a grace period < 1 or a
    factor <= 1."""

    grace_period: int = GRACE_PERIOD
    reduction_factor: float = REDUCTION_FACTOR

    def __post_init__(self) -> None:
        if not isinstance(self.grace_period, int) or self.grace_period < 1:
            raise ConfigError(f"--grace-period must be an integer >= 1 epoch (got {self.grace_period!r})",
                              source="--grace-period")
        if not self.reduction_factor > 1:
            raise ConfigError(f"--reduction-factor must be > 1 (got {self.reduction_factor!r})",
                              source="--reduction-factor")

    def scheduler(self, epochs: int) -> Any | None:
        """Ray Tune's ``ASHAScheduler`` for a budget of ``epochs``, or None when its grace period is not shorter
        than the budget (ASHA would then cut nothing). ``max_t`` is one past the budget: ASHA stops a trial that
        reaches ``max_t``, which would kill a good trial at its last report, before rec_es restores and tests it."""
        if self.grace_period >= epochs:
            return None
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr=TIME_ATTR, max_t=epochs + 1, grace_period=self.grace_period,
                             reduction_factor=self.reduction_factor)


def search(config_files: Sequence[str], space_file: str, *, trials: int | None = None, scheduler: str = "asha",
           ray_address: str | None = "local", output: Path | None = None, overrides: Mapping[str, Any] | None = None,
           jobs: int | None = None, asha: Asha | None = None,
           log: Any = print) -> tuple[list[TrialRow], TrialRow | None, Path]:
    """Run the search; returns (trial rows, the best finished trial on validation, output dir).

    ``asha``: ASHA's settings when ``scheduler`` is ``asha`` (default ``Asha()``: grace period ``GRACE_PERIOD``
    epochs, reduction factor ``REDUCTION_FACTOR``). Raises ConfigError before Ray starts on bad input;
    KeyboardInterrupt after writing what finished.
    """
    overrides = dict(overrides or {})
    output = output or Path("runs") / f"tune-{time.strftime('%Y%m%d-%H%M%S')}"
    if scheduler not in ("asha", "none"):
        raise ConfigError(f"--scheduler {scheduler!r}: choose asha or none", source="--scheduler")
    asha = asha or Asha()
    base, params, grid, samples = check_inputs(config_files, space_file, trials, overrides, output)
    epochs = max(1, int(base.get("epochs") or 1))
    if scheduler == "asha" and asha.scheduler(epochs) is None:
        log(f"ASHA's grace period ({asha.grace_period} epochs) is not shorter than the budget ({epochs} epochs), so "
            "it would cut no trial: every trial runs to its own stop (set --grace-period below the budget)")
        scheduler = "none"
    policy = base.build_policy()
    from rec_es.tune.cluster import connect

    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C reaches us as KeyboardInterrupt
    started = connect(ray_address)
    output.mkdir(parents=True, exist_ok=True)
    trials_dir = (output / "trials").resolve()
    interrupted = False
    try:
        results = _fit(base, params, grid, samples, asha if scheduler == "asha" else None, policy.mode,
                       config_files, overrides, trials_dir, output, jobs)
        log(f"{len(results)} trials, {results.num_errors} failed")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if started:
            import ray

            ray.shutdown()
    table = collect(trials_dir, [q.name for q in params], interrupted)
    best = write_results(table, output, [q.name for q in params], policy.mode)
    if interrupted:
        raise KeyboardInterrupt(output)
    return table, best, output


def _fit(base: RunConfig, params: list[Param], grid: bool, samples: int, asha: Asha | None, mode: str,
         config_files: Sequence[str], overrides: Mapping[str, Any], trials_dir: Path, output: Path,
         jobs: int | None) -> Any:
    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    total = int(ray.cluster_resources().get("CPU", 1))
    threads = max(1, total // jobs) if jobs else 1
    sched = (asha.scheduler(max(1, int(base.get("epochs") or 1))) if asha is not None else None) or FIFOScheduler()
    trainable = functools.partial(run_trial, files=[str(Path(f).resolve()) for f in config_files],
                                  overrides=dict(overrides), trials_dir=str(trials_dir), threads=threads,
                                  cwd=os.getcwd())
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": threads}), param_space=param_space(params, grid),
        tune_config=tune.TuneConfig(metric=SCORE, mode=mode, num_samples=1 if grid else samples, scheduler=sched,
                                    max_concurrent_trials=jobs),
        run_config=tune.RunConfig(name="tune", storage_path=str((output / "ray").resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)))
    return tuner.fit()


def collect(trials_dir: Path, names: Sequence[str], interrupted: bool) -> list[TrialRow]:
    """One row per trial directory, read from disk (``trial.json``, ``summary.json``, trace, ``error.txt``)."""
    rows = []
    for d in sorted(trials_dir.iterdir()) if trials_dir.is_dir() else []:
        try:
            meta = json.loads((d / "trial.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        rows.append(_row(d, meta["trial"], dict(meta.get("params") or {}), interrupted))
    return rows


def _row(d: Path, trial: str, params: dict[str, Any], interrupted: bool) -> TrialRow:
    error = (d / "error.txt").read_text(encoding="utf-8").strip() if (d / "error.txt").is_file() else None
    summary = json.loads((d / "summary.json").read_text(encoding="utf-8")) if (d / "summary.json").is_file() else None
    try:
        trace = read_trace(d / "trace.jsonl")
    except (StateError, OSError):
        trace = None
    last = trace.records[-1]["decision"] if trace is not None and trace.records else {}
    if summary is not None and error is None:
        by = summary.get("stopped_by") or ("budget" if summary["stop_reason"] == "max_epochs" else "policy")
        return TrialRow(trial, params, summary.get("best_valid_score"), summary.get("best_epoch"),
                        summary.get("stop_epoch"), str(summary["stop_reason"]), by, str(d),
                        str(summary.get("message", "")), summary.get("test_result"))
    if error is not None:
        by, reason, message = "failed", "failed", error
    elif interrupted:
        by, reason, message = "interrupted", "interrupted", "the search was interrupted while this trial trained"
    else:
        by, reason = "scheduler", "scheduler"
        message = (f"stopped by Ray Tune's ASHA scheduler after epoch {last.get('epoch')}: its validation score "
                   "was below its rung's cutoff among the other trials")
        if trace is not None and trace.records and trace.footer is None:
            writer = TraceWriter(trace.path, keep_lines=1 + len(trace.records))
            writer.footer(stop_epoch=last.get("epoch"), stop_reason="scheduler", message=message,
                          best_epoch=last.get("best_epoch"), epochs_trained=int(last.get("epoch", 0)) + 1)
            _write_cut_summary(d, trace.records, last, message)
    return TrialRow(trial, params, last.get("best_score"), last.get("best_epoch"), last.get("epoch"), reason, by,
                    str(d), message)


def _write_cut_summary(d: Path, records: Sequence[Mapping[str, Any]], last: Mapping[str, Any], message: str) -> None:
    """``summary.json`` of a trial the scheduler cut: what the trainer's summary says of a finished run, with
    ``stopped_by: scheduler`` and no test result (the trial never reached its test)."""
    best_epoch = last.get("best_epoch")
    best = next((r for r in records if r.get("epoch") == best_epoch), None)
    summary = {"stop_epoch": last.get("epoch"), "best_epoch": best_epoch, "stop_reason": "scheduler",
               "stopped_by": "scheduler", "message": message,
               "best_valid_result": best.get("valid") if best is not None else None,
               "best_valid_score": last.get("best_score"), "test_result": None,
               "epochs_trained": int(last.get("epoch", 0)) + 1, "run_dir": str(d),
               "best_checkpoint": str(d / "best.pth") if (d / "best.pth").is_file() else None}
    atomic_write(d / "summary.json", (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode())


def write_results(table: Sequence[TrialRow], output: Path, names: Sequence[str], mode: str) -> TrialRow | None:
    """trials.csv (every trial) and best.json (the best finished trial by validation); returns that trial."""
    with open(output / "trials.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", *names, "best_valid_score", "best_epoch", "stop_epoch", "stop_reason", "stopped_by",
                    "run_dir", "message"])
        for r in table:
            w.writerow([r.trial, *(json.dumps(r.params.get(n)) if isinstance(r.params.get(n), (list, dict))
                                   else r.params.get(n) for n in names),
                        "" if r.best_valid_score is None else f"{r.best_valid_score:.6g}",
                        "" if r.best_epoch is None else r.best_epoch, "" if r.stop_epoch is None else r.stop_epoch,
                        r.stop_reason, r.stopped_by, r.run_dir, r.message])
    finished = [r for r in table if r.stopped_by in ("policy", "budget") and r.best_valid_score is not None]
    if not finished:
        return None
    sign = 1.0 if mode == "max" else -1.0
    best = max(finished, key=lambda r: sign * float(r.best_valid_score or 0.0))
    (output / "best.json").write_text(json.dumps(
        {"trial": best.trial, "params": best.params, "best_valid_score": best.best_valid_score,
         "best_epoch": best.best_epoch, "test_result": best.test_result, "run_dir": best.run_dir},
        indent=2, default=str) + "\n", encoding="utf-8")
    return best
