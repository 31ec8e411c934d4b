"""``rec-es compare`` / ``scripts/compare_policies.py``: stopping policies over several seeds, replayed and live.

    rec-es compare --config properties/gru4rec_ml100k.yaml --policies properties/policies/*.yaml \\
                   --seeds 3 [--max-epochs N] [--output DIR] [--replay-only] [--cache-dir DIR]

1. **Record**: per seed, one run with stopping disabled for the whole epoch budget, evaluating the test
   set at every epoch too (``record_test``). Runs are cached (``--cache-dir``, default ``.rec_es_cache/traces``)
   under a key hashed from everything that affects training: the merged RecBole config (without
   ``early_stopping``), the seed, the budget, the rec_es/RecBole/torch versions and a hash of the source of
   rec_es's training modules. Each entry carries its key and a SHA-256 of its files; an edited or corrupted
   entry is an error (or re-recorded with ``--refresh-cache``), never used.
2. **Replay**: each policy that does not change training decides on each recorded trace (``rec_es.replay``).
3. **Live**: a policy file whose ``lr_schedule`` differs from the recording's (e.g. ``reduce_on_plateau``) or that
   sets other training keys is trained seed by seed (also cached); its rows say ``live``.
4. **Oracle**: the best validation epoch of each full trace (by ``--oracle-monitor``, default ``valid_metric``).

Writes ``table.csv`` (mean and std over seeds per policy), ``runs.csv`` (one row per policy and seed),
``table.md`` and ``compare.png`` into ``--output`` and prints the Markdown table.
"""
from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from rec_es.config import RunConfig, load_config, parse_set_args, read_yaml
from rec_es.errors import ConfigError, RecEsError, StateError
from rec_es.policy.monitor import computed_metric_keys
from rec_es.replay import ReplayResult, check_same_run, oracle, record_seconds, replay, why_not_replayable
from rec_es.trace import Trace, read_trace

#: Test metrics of the table (RecBole result keys).
QUALITY = ("ndcg@10", "recall@10")
#: rec_es modules whose source decides how a recording run trains (hashed into every cache key).
TRAINING_MODULES = ("trainer.py", "run.py", "schedule.py", "checkpoint.py", "compat.py", "datasets.py",
                    "trace.py", "config.py")
#: RecBole keys that change logging or paths only, left out of cache keys.
NON_TRAINING_KEYS = frozenset({"state", "show_progress", "checkpoint_dir", "log_wandb", "wandb_project",
                               "use_gpu", "gpu_id", "save_dataset", "save_dataloaders", "dataset_save_path",
                               "dataloaders_save_path"})
DEFAULT_CACHE = Path(".rec_es_cache") / "traces"
CACHE_META = "cache.json"
CACHE_FILES = ("trace.jsonl", "summary.json")
CACHE_FORMAT = "rec_es.trace_cache"
CACHE_VERSION = 1
RECORD_NAME = "full budget"


class CacheError(StateError):
    """A cache entry exists but cannot be trusted (edited, truncated, or recorded for another key)."""


# --- policies --------------------------------------------------------------------------------------
@dataclass
class PolicySpec:
    """One policy file: its name (the file stem), merged config and why it must train live (None: replayable)."""

    name: str
    file: str
    config: RunConfig
    live_reason: str | None

    @property
    def live(self) -> bool:
        return self.live_reason is not None

    @property
    def note(self) -> str:
        if self.live_reason:
            return f"live: {self.live_reason}"
        if self.config.early_stopping.get("preset") == "recbole_legacy":
            return "RecBole's own rule"
        return ""


def load_policies(config_files: Sequence[str], policy_files: Sequence[str], overrides: Mapping[str, Any],
                  recording: RunConfig) -> list[PolicySpec]:
    """Validate every policy file against the base config; decide replay or live. Raises ConfigError."""
    if not policy_files:
        raise ConfigError("no policy file given; pass --policies FILE [FILE ...] (e.g. properties/policies/*.yaml)",
                          source="--policies")
    specs: list[PolicySpec] = []
    seen: dict[str, str] = {}
    for f in policy_files:
        name = Path(f).stem
        if not Path(f).is_file():
            raise ConfigError(f"policy file not found (looked at {Path(f).resolve()})", source=str(f))
        if name in seen or name == "oracle":
            other = seen.get(name, "the oracle row")
            raise ConfigError(f"policy name {name!r} (the file stem) is already taken by {other}; rename the file",
                              source=str(f))
        seen[name] = str(f)
        cfg = load_config([*config_files, f], overrides)
        extra = {k: v for k, v in read_yaml(f).items() if k not in ("early_stopping", "lr_schedule")}
        why = why_not_replayable(cfg.lr_schedule, recording.lr_schedule, extra)
        specs.append(PolicySpec(name=name, file=str(f), config=cfg, live_reason=why))
    return specs


def recording_config(config_files: Sequence[str], overrides: Mapping[str, Any], max_epochs: int | None,
                     monitor: str | None) -> RunConfig:
    """The recording run's config: the base files, stopping disabled, ``epochs`` = the budget."""
    base = load_config(config_files, overrides)
    mon = monitor or str(base.get("valid_metric"))
    ov = dict(overrides)
    ov["early_stopping"] = {"enabled": False, "monitor": mon}
    if max_epochs is not None:
        ov["epochs"] = max_epochs
    return load_config(config_files, ov)


def check_quality_metrics(cfg: RunConfig) -> None:
    """The table reports test NDCG@10 and Recall@10: RecBole must compute them."""
    computed = computed_metric_keys(cfg.get("metrics"), cfg.get("topk"))
    missing = [k for k in QUALITY if k not in computed]
    if missing:
        raise ConfigError(f"metrics/topk: the comparison table reports {', '.join(QUALITY)} but RecBole will compute "
                          f"only {', '.join(computed)} (metrics {cfg.get('metrics')}, topk {cfg.get('topk')}); add "
                          "NDCG and Recall to metrics and 10 to topk", source=cfg.source_of("metrics"), key="metrics")


# --- cache -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _cached_hash(root: str, modules: tuple[str, ...]) -> str:
    """Hashed once per process: the key describes the code this process runs, even if files change meanwhile."""
    return source_hash(Path(root), modules)


def source_hash(package_dir: Path | None = None, modules: Iterable[str] = TRAINING_MODULES) -> str:
    """SHA-256 over the source of rec_es's training modules (missing modules count as empty)."""
    root = package_dir or Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in modules:
        p = root / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"") + b"\0")
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("rec_es", "recbole", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def cache_fields(cfg: RunConfig, seed: int, epochs: int, *, live: bool, record_test: bool) -> dict[str, Any]:
    """Everything that decides what a run records: the cache key is the SHA-256 of this mapping."""
    recbole = {k: v for k, v in sorted(cfg.recbole.items()) if k not in NON_TRAINING_KEYS}
    recbole["seed"] = seed
    recbole["epochs"] = epochs
    out = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "kind": "live" if live else "record",
           "recbole": recbole, "lr_schedule": cfg.lr_schedule, "record_test": record_test,
           "versions": _versions(), "source": _cached_hash(str(Path(__file__).resolve().parent), TRAINING_MODULES)}
    if live:
        out["early_stopping"] = cfg.early_stopping
        root = Path(__file__).resolve().parent / "policy"
        out["policy_source"] = _cached_hash(str(root), tuple(sorted(p.name for p in root.glob("*.py"))))
    return out


def cache_key(fields: Mapping[str, Any]) -> str:
    """The cache key (hex SHA-256, 24 chars) of ``cache_fields`` output."""
    blob = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TraceCache:
    """Run directories (trace.jsonl + summary.json + cache.json) stored under ``root/<key>/``."""

    def __init__(self, root: str | os.PathLike[str], refresh: bool = False, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.refresh = refresh
        self.log = log

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str, fields: Mapping[str, Any]) -> Path | None:
        """The verified entry for ``key``, or None when absent (or corrupt and ``refresh`` is on).

        Raises ``CacheError`` naming the file and what does not match when an entry is corrupt.
        """
        d = self.entry(key)
        if not d.exists():
            return None
        try:
            self.verify(d, key, fields)
        except CacheError as exc:
            if not self.refresh:
                raise
            aside = d.with_name(f"{d.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            d.rename(aside)
            self.log(f"re-recording: {exc} (moved to {aside})")
            return None
        return d

    def verify(self, d: Path, key: str, fields: Mapping[str, Any]) -> None:
        """Check the sidecar's key and fields, each file's SHA-256, and that the trace reads as a finished run."""
        hint = f"delete {d} or rerun with --refresh-cache to record it again"
        meta_path = d / CACHE_META
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CacheError(f"cache entry {d} has no {CACHE_META} (an interrupted or foreign directory); {hint}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CacheError(f"{meta_path}: unreadable ({exc}); {hint}") from None
        if not isinstance(meta, dict) or meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
            got = meta.get("key") if isinstance(meta, dict) else None
            raise CacheError(f"{meta_path}: records key {got!r}, expected {key!r}; {hint}")
        if json.loads(json.dumps(meta.get("fields"), default=str)) != json.loads(json.dumps(fields, default=str)):
            raise CacheError(f"{meta_path}: its fields do not hash to key {key}; {hint}")
        sums = meta.get("sha256") or {}
        for name in CACHE_FILES:
            p = d / name
            if not p.is_file():
                raise CacheError(f"{p}: missing from the cache entry; {hint}")
            actual = file_sha256(p)
            if sums.get(name) != actual:
                raise CacheError(f"{p}: content changed since it was recorded (sha256 {actual[:12]}…, "
                                 f"cache.json says {str(sums.get(name))[:12]}…); {hint}")
        try:
            trace = read_trace(d / "trace.jsonl")
        except StateError as exc:
            raise CacheError(f"{exc}; {hint}") from None
        if not trace.complete:
            raise CacheError(f"{d / 'trace.jsonl'}: has no footer (the run did not finish); {hint}")

    def store(self, run_dir: Path, key: str, fields: Mapping[str, Any]) -> Path:
        """Move a finished run directory into the cache under ``key`` (checkpoints dropped, sidecar added)."""
        for name in ("best.pth", "last.pth"):
            (run_dir / name).unlink(missing_ok=True)
        meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key, "fields": fields,
                "sha256": {name: file_sha256(run_dir / name) for name in CACHE_FILES},
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (run_dir / CACHE_META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        target = self.entry(key)
        if target.exists():
            shutil.rmtree(target)
        os.replace(run_dir, target)
        return target

    def scratch(self, key: str) -> Path:
        """A fresh, empty directory to train into before ``store``."""
        d = self.root / f".tmp-{key}-{os.getpid()}"
        if d.exists():
            shutil.rmtree(d)
        self.root.mkdir(parents=True, exist_ok=True)
        return d


Job = tuple[str, RunConfig, int, bool]  # (row name or RECORD_NAME, config, seed, live)


def run_cached(cache: TraceCache, cfg: RunConfig, seed: int, epochs: int, *, live: bool, record_test: bool,
               train: Callable[[RunConfig, Path, bool], Any]) -> tuple[Path, bool]:
    """The cached run directory for (cfg, seed, epochs), training it first if needed; returns (dir, was_cached)."""
    fields = cache_fields(cfg, seed, epochs, live=live, record_test=record_test)
    key = cache_key(fields)
    found = cache.lookup(key, fields)
    if found is not None:
        return found, True
    scratch = cache.scratch(key)
    train(_with(cfg, seed=seed, epochs=epochs), scratch, record_test)
    return cache.store(scratch, key, fields), False


def run_jobs(cache: TraceCache, jobs: Sequence[Job], epochs: int, *, train: Callable[[RunConfig, Path, bool], Any] | None,
             n_jobs: int = 1, progress: bool = True) -> dict[tuple[str, int], Path]:
    """Run (or find in the cache) every job; returns (name, seed) -> run directory.

    Recordings (``live`` False) evaluate the test set every epoch; live runs do not. Cache keys are computed
    here, in this process, so every job of one comparison is keyed against the same code.
    """
    dirs: dict[tuple[str, int], Path] = {}
    todo: list[tuple[Job, str, dict[str, Any], Path]] = []
    for job in jobs:
        name, cfg, seed, live = job
        fields = cache_fields(cfg, seed, epochs, live=live, record_test=not live)
        key = cache_key(fields)
        found = cache.lookup(key, fields)
        if found is not None:
            dirs[(name, seed)] = found
        else:
            todo.append((job, key, fields, cache.scratch(key)))
    bar = _bar(len(jobs), progress)
    bar.update(len(jobs) - len(todo))
    try:
        if n_jobs <= 1 or len(todo) <= 1:
            trainer = train or (lambda cfg, d, rt: train_with_rec_es(cfg, d, rt, progress=progress))
            for (name, cfg, seed, live), key, fields, scratch in todo:
                bar.set_description(f"{'live ' + name if live else 'record'} seed {seed}")
                trainer(_with(cfg, seed=seed, epochs=epochs), scratch, not live)
                dirs[(name, seed)] = cache.store(scratch, key, fields)
                bar.update(1)
        else:
            dirs.update(_run_parallel(cache, todo, epochs, train, n_jobs, bar))
    finally:
        bar.close()
    return dirs


def _run_parallel(cache: TraceCache, todo: list[tuple[Job, str, dict[str, Any], Path]], epochs: int,
                  train: Callable[[RunConfig, Path, bool], Any] | None, n_jobs: int, bar: Any) -> dict[tuple[str, int], Path]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    out: dict[tuple[str, int], Path] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_worker_train, train, _with(cfg, seed=seed, epochs=epochs), scratch, not live):
                   (name, seed, key, fields, scratch) for (name, cfg, seed, live), key, fields, scratch in todo}
        bar.set_description(f"{n_jobs} runs at a time, {threads} torch thread{'s' * (threads != 1)} each")
        for fut in as_completed(futures):
            name, seed, key, fields, scratch = futures[fut]
            fut.result()
            out[(name, seed)] = cache.store(scratch, key, fields)
            bar.update(1)
    return out


def _worker_init(threads: int) -> None:
    """Worker process set-up: its share of the CPU's threads (two workers with all threads each run 4-8x slower)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _worker_train(train: Callable[[RunConfig, Path, bool], Any] | None, cfg: RunConfig, run_dir: Path,
                  record_test: bool) -> None:
    if train is None:
        train_with_rec_es(cfg, run_dir, record_test, progress=False)
    else:
        train(cfg, run_dir, record_test)


def _with(cfg: RunConfig, **keys: Any) -> RunConfig:
    recbole = dict(cfg.recbole)
    recbole.update(keys)
    return RunConfig(files=cfg.files, recbole=recbole, early_stopping=cfg.early_stopping, lr_schedule=cfg.lr_schedule,
                     settings=cfg.settings, sources=cfg.sources)


def train_with_rec_es(cfg: RunConfig, run_dir: Path, record_test: bool, progress: bool = False) -> Any:
    """Train one run with ``rec_es.run.train``; RecBole logs warnings only (``state`` is not in the cache key)."""
    from rec_es.run import train

    argv = sys.argv
    sys.argv = argv[:1]  # RecBole's Config reads `--key=value` words of sys.argv as config keys
    try:
        return train(_with(cfg, state="WARNING"), run_dir, record_test=record_test, progress=progress, verbose=False)
    finally:
        sys.argv = argv


# --- results of live runs --------------------------------------------------------------------------
def live_result(run_dir: Path, name: str) -> ReplayResult:
    """A live run's outcome in replay terms, from its trace footer and summary.json."""
    trace = read_trace(run_dir / "trace.jsonl")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
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


# --- the comparison --------------------------------------------------------------------------------
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
            train: Callable[[RunConfig, Path, bool], Any] | None = None, n_jobs: int = 1) -> Comparison:
    """Record (or reuse) one full-budget trace per seed, replay every replayable policy, train the rest live.

    Everything is validated before the first epoch (policy files, monitors, live policies with
    ``replay_only``, metrics, dataset, model). ``train`` (default: ``rec_es.run.train``, quiet) trains one
    run into a directory. ``n_jobs`` > 1 trains that many runs at once in worker processes, splitting the
    CPU's threads between them (default 1: one after another in this process).
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
    jobs = [(RECORD_NAME, recording, s, False) for s in seed_list] + [(spec.name, spec.config, s, True)
                                                                      for spec in live for s in seed_list]
    dirs = run_jobs(cache, jobs, budget, train=train, n_jobs=n_jobs, progress=progress)
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
        from rec_es import datasets
    except ImportError:  # pragma: no cover - rec_es always ships it
        return
    datasets.resolve(cfg.recbole, cfg.sources)


class _NoBar:
    def set_description(self, _: str) -> None: ...
    def update(self, _: int) -> None: ...
    def close(self) -> None: ...


def _bar(total: int, progress: bool) -> Any:
    if not progress or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="run", dynamic_ncols=True)


# --- the table -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> "Stat":
        xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not xs:
            return cls(None, None)
        return cls(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)

    def fmt(self, digits: int) -> str:
        if self.mean is None:
            return "n/a"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass(frozen=True)
class Row:
    """One line of the table: a policy (or the oracle) summarised over seeds."""

    policy: str
    how: str
    epochs: Stat
    saved: Stat
    best_epoch: Stat
    ndcg: Stat
    recall: Stat
    ratio: Stat
    wall: Stat
    premature: int
    n: int
    note: str


def rows(c: Comparison) -> list[Row]:
    """Table rows: oracle first, then policies in the order given."""
    oracle_ndcg = [o.metric(QUALITY[0]) for o in c.oracle]
    out = [_row("oracle", "oracle", c.oracle, c, oracle_ndcg, f"best {c.monitor} epoch of the full {c.budget}-epoch run")]
    for spec in c.policies:
        out.append(_row(spec.name, "live" if spec.live else "replay", c.results[spec.name], c, oracle_ndcg, spec.note))
    return out


def _row(name: str, how: str, results: Sequence[ReplayResult], c: Comparison, oracle_ndcg: Sequence[float | None],
         note: str) -> Row:
    ratios = [None if (r.metric(QUALITY[0]) is None or not o) else r.metric(QUALITY[0]) / o
              for r, o in zip(results, oracle_ndcg)]
    premature = sum(1 for r, o in zip(results, c.oracle)
                    if o.best_epoch is not None and r.stop_epoch < o.best_epoch)
    return Row(policy=name, how=how, epochs=Stat.of([r.epochs_trained for r in results]),
               saved=Stat.of([c.budget - r.epochs_trained for r in results]),
               best_epoch=Stat.of([r.best_epoch for r in results]),
               ndcg=Stat.of([r.metric(QUALITY[0]) for r in results]),
               recall=Stat.of([r.metric(QUALITY[1]) for r in results]), ratio=Stat.of(ratios),
               wall=Stat.of([r.wall_seconds for r in results]), premature=premature, n=len(results), note=note)


HEADERS = ("policy", "how", "epochs trained", "epochs saved", "best epoch", "test NDCG@10", "test Recall@10",
           "NDCG@10 / oracle", "wall s", "premature", "note")


def markdown(table: Sequence[Row]) -> str:
    """The table as GitHub Markdown (mean ± std over seeds)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for r in table:
        cells = [r.policy, r.how, r.epochs.fmt(1), r.saved.fmt(1), r.best_epoch.fmt(1), r.ndcg.fmt(4),
                 r.recall.fmt(4), r.ratio.fmt(3), r.wall.fmt(0), f"{r.premature}/{r.n}", r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table_csv(table: Sequence[Row], path: Path) -> None:
    """``table.csv``: one row per policy, mean and std columns."""
    stats = ("epochs", "saved", "best_epoch", "ndcg", "recall", "ratio", "wall")
    names = {"epochs": "epochs_trained", "saved": "epochs_saved", "best_epoch": "best_epoch",
             "ndcg": "test_ndcg@10", "recall": "test_recall@10", "ratio": "ndcg@10_over_oracle", "wall": "wall_seconds"}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["policy", "how"] + [f"{names[s]}_{m}" for s in stats for m in ("mean", "std")]
                   + ["premature", "seeds", "note"])
        for r in table:
            vals: list[Any] = [r.policy, r.how]
            for s in stats:
                st: Stat = getattr(r, s)
                vals += [_num(st.mean), _num(st.std)]
            w.writerow(vals + [r.premature, r.n, r.note])


def write_runs_csv(c: Comparison, path: Path) -> None:
    """``runs.csv``: one row per policy and seed (the oracle included)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        key = _plot_metric(c)
        w.writerow(["policy", "how", "seed", "stop_epoch", "best_epoch", "epochs_trained", "reason",
                    f"valid_{key}", "test_ndcg@10", "test_recall@10", "wall_seconds", "message"])
        live = {s.name for s in c.policies if s.live}
        groups = [("oracle", c.oracle)] + [(s.name, c.results[s.name]) for s in c.policies]
        for name, results in groups:
            for seed, r in zip(c.seeds, results):
                how = "oracle" if name == "oracle" else ("live" if name in live else "replay")
                w.writerow([name, how, seed, r.stop_epoch, r.best_epoch, r.epochs_trained, r.reason,
                            _num(r.metric(key, "valid")), _num(r.metric(QUALITY[0])), _num(r.metric(QUALITY[1])),
                            _num(r.wall_seconds), r.message])


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


# --- the plot --------------------------------------------------------------------------------------
def plot(c: Comparison, path: Path) -> Path:
    """PNG. Left, per seed: the recorded validation curve, and under it one lane per policy from epoch 0 to
    its stop (x) with its restored epoch (o); a dashed line marks the oracle's epoch; live policies also draw
    their own curve (dashed). Right: epochs trained vs test NDCG@10 per policy (mean, bars = std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in c.policies]
    cmap = plt.get_cmap("tab10")
    colour = {n: cmap(i % 10) for i, n in enumerate(["oracle"] + names)}
    n = len(c.seeds)
    lane_h = 0.22 * len(names) + 0.3
    fig = plt.figure(figsize=(16, n * (2.4 + lane_h) + 0.6))
    outer = fig.add_gridspec(n, 2, width_ratios=(1.5, 1.0), wspace=0.2)
    key = _plot_metric(c)
    for i, (seed, trace) in enumerate(zip(c.seeds, c.traces)):
        inner = outer[i, 0].subgridspec(2, 1, height_ratios=(2.4, lane_h), hspace=0.05)
        ax = fig.add_subplot(inner[0])
        lanes = fig.add_subplot(inner[1], sharex=ax)
        ax.plot([r["epoch"] for r in trace.records], _series(trace, key), color="0.3", lw=1.3,
                label=f"valid {key}, full {c.budget}-epoch run")
        for name, traces in c.live_traces.items():
            live = traces[i]
            ax.plot([r["epoch"] for r in live.records], _series(live, key), color=colour[name], lw=1.0, ls="--",
                    label=f"valid {key}, {name} (live)")
        best = c.oracle[i].best_epoch
        if best is not None:
            for a in (ax, lanes):
                a.axvline(best, color=colour["oracle"], ls=":", lw=1.2)
            ax.scatter([best], [_value_at(trace, key, best)], marker="o", s=50, facecolors="none",
                       edgecolors=colour["oracle"], linewidths=1.6, zorder=3, label="oracle epoch")
        for lane, name in enumerate(names):
            r = c.results[name][i]
            y = len(names) - 1 - lane
            lanes.plot([0, r.stop_epoch], [y, y], color=colour[name], lw=1.5, alpha=0.6)
            lanes.scatter([r.stop_epoch], [y], marker="x", s=40, color=colour[name], zorder=3)
            if r.best_epoch is not None:
                lanes.scatter([r.best_epoch], [y], marker="o", s=36, facecolors="none", edgecolors=colour[name],
                              linewidths=1.5, zorder=3)
        lanes.set_yticks(range(len(names)))
        lanes.set_yticklabels(list(reversed(names)), fontsize=7)
        lanes.set_ylim(-0.7, len(names) - 0.3)
        lanes.grid(axis="x", alpha=0.3)
        ax.set_title(f"seed {seed}: lanes show each policy's run (x = stop, o = restored epoch); "
                     f"dotted = oracle epoch", fontsize=9)
        ax.set_ylabel(f"valid {key}")
        ax.tick_params(labelbottom=False)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
        if i == n - 1:
            lanes.set_xlabel("epoch")
    ax2 = fig.add_subplot(outer[:, 1])
    table = rows(c)
    groups: dict[tuple[float, float], list[str]] = {}
    for row in table:
        if row.epochs.mean is None or row.ndcg.mean is None:
            continue
        ax2.errorbar(row.epochs.mean, row.ndcg.mean, xerr=row.epochs.std, yerr=row.ndcg.std, fmt="o",
                     color=colour[row.policy], capsize=3, label=f"{row.policy} ({row.how})")
        groups.setdefault((round(row.epochs.mean, 6), round(row.ndcg.mean, 6)), []).append(row.policy)
    for (x, y), members in groups.items():
        ax2.annotate(", ".join(members), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax2.set_xlabel(f"epochs trained (budget {c.budget}; the oracle needs the whole budget)")
    ax2.set_ylabel("test NDCG@10 of the restored weights")
    ax2.set_title(f"epochs vs test quality, mean ± std over {n} seed{'s' * (n != 1)}", fontsize=9)
    ax2.legend(fontsize=7, loc="lower right")
    ax2.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot_metric(c: Comparison) -> str:
    """The validation metric to draw: the oracle's monitor when it is one metric, else NDCG@10."""
    recorded = {k.lower() for k in c.traces[0].records[0]["valid"]}
    return c.monitor.lower() if c.monitor.lower() in recorded else QUALITY[0]


def _series(trace: Trace, key: str) -> list[float]:
    return [math.nan if v is None else float(v) for v in trace.metric(key)]


def _value_at(trace: Trace, key: str, epoch: int) -> float:
    for r, v in zip(trace.records, trace.metric(key)):
        if r["epoch"] == epoch:
            return math.nan if v is None else float(v)
    return math.nan


# --- command line ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rec-es compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="+", required=True, metavar="FILE", help="RecBole property files, merged in order")
    p.add_argument("--policies", nargs="+", required=True, metavar="FILE",
                   help="policy files (early_stopping:/lr_schedule:); each row is named after its file stem")
    p.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="number of seeds, starting at the config's seed (RecBole default 2020) (default 3)")
    p.add_argument("--max-epochs", type=int, default=None, metavar="N",
                   help="epoch budget of every run (default: the config's epochs)")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="where table.csv, runs.csv, table.md, compare.png go (default runs/compare-<time>)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                   help=f"trace cache (default {DEFAULT_CACHE})")
    p.add_argument("--replay-only", action="store_true",
                   help="never train a policy live; a policy that changes training is then an error")
    p.add_argument("--refresh-cache", action="store_true",
                   help="re-record a corrupted cache entry instead of stopping with an error")
    p.add_argument("--oracle-monitor", default=None, metavar="METRIC",
                   help="metric that picks the oracle's best epoch (default: the config's valid_metric)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a RecBole key for every run (value read as YAML)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="train N runs at once in worker processes, CPU threads split between them (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rec-es compare``; returns 0, 2 on bad input, 1 on another rec_es error."""
    args = build_parser().parse_args(argv)
    started = time.time()
    try:
        if args.max_epochs is not None and args.max_epochs < 1:
            raise ConfigError(f"--max-epochs must be >= 1 (got {args.max_epochs})", source="--max-epochs")
        c = compare(args.config, args.policies, seeds=args.seeds, max_epochs=args.max_epochs,
                    cache_dir=args.cache_dir, replay_only=args.replay_only, refresh_cache=args.refresh_cache,
                    oracle_monitor=args.oracle_monitor, overrides=parse_set_args(args.overrides),
                    progress=not args.no_progress, n_jobs=args.jobs,
                    log=lambda m: print(m, file=sys.stderr))
    except ConfigError as exc:
        print(f"rec-es compare: error: {exc}", file=sys.stderr)
        return 2
    except RecEsError as exc:
        print(f"rec-es compare: error: {exc}", file=sys.stderr)
        return 1
    out = args.output or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    write_outputs(c, out, argv if argv is not None else sys.argv[1:])
    print(markdown(rows(c)))
    print(f"\nbudget {c.budget} epochs, seeds {', '.join(map(str, c.seeds))}; oracle = best valid {c.monitor} epoch. "
          f"Wrote {out}/table.csv, runs.csv, table.md, compare.png in {time.time() - started:.1f} s.")
    return 0


def write_outputs(c: Comparison, out: Path, argv: Sequence[str]) -> None:
    """table.csv, runs.csv, table.md (with the command) and compare.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = rows(c)
    write_table_csv(table, out / "table.csv")
    write_runs_csv(c, out / "runs.csv")
    (out / "table.md").write_text(f"`rec-es compare {' '.join(argv)}`\n\n{markdown(table)}\n", encoding="utf-8")
    plot(c, out / "compare.png")


if __name__ == "__main__":
    raise SystemExit(main())
