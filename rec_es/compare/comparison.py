"""The comparison itself: record (or reuse) one full-budget trace per seed, replay or train every policy."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rec_es.compare.cache import DEFAULT_CACHE, TraceCache
from rec_es.compare.jobs import RECORD_NAME, run_jobs
from rec_es.compare.specs import PolicySpec, check_quality_metrics, load_policies, recording_config
from rec_es.config.properties import RunConfig
from rec_es.policy.errors import ConfigError
from rec_es.replay import ReplayResult, check_same_run, oracle, record_seconds, replay
from rec_es.rundir.textio import read_text
from rec_es.rundir.trace import Trace, read_trace


def live_result(run_dir: Path, name: str) -> ReplayResult:
    """A live run's outcome in replay terms, from its trace footer and summary.json."""
    trace = read_trace(run_dir / "trace.jsonl")
    summary = json.loads(read_text(run_dir / "summary.json", "a run's summary.json (JSON, UTF-8)"))
    foot = trace.footer or {}
    stop = int(foot.get("stop_epoch", trace.records[-1]["epoch"]))
    seconds: float | None = 0.0
    for r in trace.records:
        s = record_seconds(r)
        seconds = None if seconds is None or s is None else seconds + s
    best = summary.get("best_epoch")
    best_valid = summary.get("best_valid_result")
    return ReplayResult(policy=name, trace=str(trace.path), seed=trace.header.get("seed"), stop_epoch=stop,
                        stopped=foot.get("stop_reason") != "max_epochs", reason=str(foot.get("stop_reason")),
                        message=str(foot.get("message", "")), best_epoch=best,
                        best_valid=dict(best_valid) if best_valid else None,
                        best_test=dict(summary.get("test_result") or {}) or None,
                        epochs_trained=int(foot.get("epochs_trained", stop + 1)), evaluations=len(trace.records),
                        wall_seconds=seconds)


@dataclass
class Comparison:
    """Everything the table and plot are made of."""

    budget: int
    seeds: list[int]
    monitor: str
    policies: list[PolicySpec]
    traces: list[Trace]                          # recorded full-budget traces, one per seed
    results: dict[str, list[ReplayResult]]       # policy name -> per-seed results (seed order)
    oracle: list[ReplayResult]
    live_traces: dict[str, list[Trace]] = field(default_factory=dict)


def seeds_from(count: int, base: int) -> list[int]:
    """``count`` seeds starting at ``base`` (the config's ``seed``, RecBole's default 2020)."""
    if count < 1:
        raise ConfigError(f"--seeds must be >= 1 (got {count})", source="--seeds")
    return [base + i for i in range(count)]


def compare(config_files: Sequence[str], policy_files: Sequence[str], *, seeds: int = 3,
            max_epochs: int | None = None, cache_dir: str | os.PathLike[str] = DEFAULT_CACHE,
            replay_only: bool = False, refresh_cache: bool = False, oracle_monitor: str | None = None,
            overrides: Mapping[str, Any] | None = None, progress: bool = True,
            log: Callable[[str], None] = print,
            train: Callable[[RunConfig, Path, bool], Any] | None = None, n_jobs: int = 1,
            ray_address: str | None = None) -> Comparison:
    """Record (or reuse) one full-budget trace per seed, replay every replayable policy, train the rest live.

    Everything is validated before the first epoch (policy files, monitors, live policies with
    ``replay_only``, metrics, dataset, model). ``train`` (default: ``rec_es.training.run.train``, quiet) trains one
    run into a directory. ``n_jobs`` > 1 trains that many runs at once in worker processes, splitting the
    CPU's threads between them (default 1: one after another in this process). ``ray_address``: train as
    Ray tasks instead (``rec_es.tune.cluster``; connected before anything trains).
    """
    overrides = dict(overrides or {})
    recording = recording_config(config_files, overrides, max_epochs, oracle_monitor)
    check_quality_metrics(recording)
    budget = int(recording.get("epochs"))
    specs = load_policies(config_files, policy_files, overrides, recording)
    live = [s for s in specs if s.live]
    if replay_only and live:
        raise ConfigError("--replay-only: these policies change training and cannot be replayed: "
                          + "; ".join(f"{s.file} ({s.live_reason})" for s in live)
                          + ". Drop them from --policies or run without --replay-only", source="--replay-only")
    _check_data(recording)
    seed_list = seeds_from(seeds, int(recording.get("seed") or 2020))
    cache = TraceCache(cache_dir, refresh=refresh_cache, log=log)
    started = False
    if ray_address is not None:
        from rec_es.tune.cluster import connect

        started = connect(ray_address)
    jobs = [(RECORD_NAME, recording, s, False) for s in seed_list] + [(spec.name, spec.config, s, True)
                                                                      for spec in live for s in seed_list]
    try:
        dirs = run_jobs(cache, jobs, budget, train=train, n_jobs=n_jobs, progress=progress, ray_address=ray_address)
    finally:
        if started:  # an instance this call started ends with it; one already running is left alone
            import ray

            ray.shutdown()
    traces = [read_trace(dirs[(RECORD_NAME, s)]) for s in seed_list]
    check_same_run(traces)
    monitor_policy = recording.build_policy()
    oracles = [oracle(t, monitor_policy) for t in traces]
    results: dict[str, list[ReplayResult]] = {}
    live_traces: dict[str, list[Trace]] = {}
    for spec in specs:
        if spec.live:
            results[spec.name] = [live_result(dirs[(spec.name, s)], spec.name) for s in seed_list]
            live_traces[spec.name] = [read_trace(dirs[(spec.name, s)]) for s in seed_list]
        else:
            policy = spec.config.build_policy()
            results[spec.name] = [replay(policy, t, name=spec.name, need_test=True) for t in traces]
    return Comparison(budget=budget, seeds=seed_list, monitor=monitor_policy.monitor_name, policies=specs,
                      traces=traces, results=results, oracle=oracles, live_traces=live_traces)


def _check_data(cfg: RunConfig) -> None:
    try:
        from rec_es.config import datasets
    except ImportError:  # pragma: no cover - rec_es always ships it
        return
    datasets.resolve(cfg.recbole, cfg.sources)
