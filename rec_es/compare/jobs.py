"""The job runner: every recording and live run of a comparison, found in the cache or trained (in parallel)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from rec_es.compare.cache import TraceCache, cache_fields, cache_key
from rec_es.config.properties import RunConfig
from rec_es.tune.workers import train_with_rec_es, with_keys, worker_init, worker_train

#: The row name of the recording runs (stopping disabled, the whole budget, test metrics every epoch).
RECORD_NAME = "full budget"
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
    train(with_keys(cfg, seed=seed, epochs=epochs), scratch, record_test)
    return cache.store(scratch, key, fields), False


def run_jobs(cache: TraceCache, jobs: Sequence[Job], epochs: int, *, train: Callable[[RunConfig, Path, bool], Any] | None,
             n_jobs: int = 1, progress: bool = True, ray_address: str | None = None) -> dict[tuple[str, int], Path]:
    """Run (or find in the cache) every job; returns (name, seed) -> run directory.

    ``ray_address`` (``local``, ``auto``, ``HOST:PORT``, ``ray://HOST:PORT``): train as Ray tasks there
    (``rec_es.tune.cluster``), ``n_jobs`` at a time sharing the cluster's CPUs; None: on this machine.

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
        if ray_address is not None and todo:
            from rec_es.tune.cluster import run_ray

            dirs.update(run_ray(cache, todo, epochs, train, n_jobs, bar))
        elif n_jobs <= 1 or len(todo) <= 1:
            trainer = train or (lambda cfg, d, rt: train_with_rec_es(cfg, d, rt, progress=progress))
            for (name, cfg, seed, live), key, fields, scratch in todo:
                bar.set_description(f"{'live ' + name if live else 'record'} seed {seed}")
                trainer(with_keys(cfg, seed=seed, epochs=epochs), scratch, not live)
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
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=worker_init,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(worker_train, train, with_keys(cfg, seed=seed, epochs=epochs), scratch, not live):
                   (name, seed, key, fields, scratch) for (name, cfg, seed, live), key, fields, scratch in todo}
        bar.set_description(f"{n_jobs} runs at a time, {threads} torch thread{'s' * (threads != 1)} each")
        for fut in as_completed(futures):
            name, seed, key, fields, scratch = futures[fut]
            fut.result()
            out[(name, seed)] = cache.store(scratch, key, fields)
            bar.update(1)
    return out


class _NoBar:
    def set_description(self, _: str) -> None: ...
    def update(self, _: int) -> None: ...
    def close(self) -> None: ...


def _bar(total: int, progress: bool) -> Any:
    if not progress or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="run", dynamic_ncols=True)
