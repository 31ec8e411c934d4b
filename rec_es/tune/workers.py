"""What one training worker does, shared by ``rec-es compare`` (local processes, Ray tasks) and ``rec-es tune``.

``worker_init`` gives a worker its share of the CPU's threads; ``train_with_rec_es`` trains one run with
``rec_es.training.run.train`` into a run directory; ``with_keys`` is a ``RunConfig`` with RecBole keys replaced.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from rec_es.config.properties import RunConfig


def worker_init(threads: int) -> None:
    """Worker process set-up: its share of the CPU's threads (two workers with all threads each run 4-8x slower)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def worker_train(train: Callable[[RunConfig, Path, bool], Any] | None, cfg: RunConfig, run_dir: Path,
                  record_test: bool) -> None:
    if train is None:
        train_with_rec_es(cfg, run_dir, record_test, progress=False)
    else:
        train(cfg, run_dir, record_test)


def with_keys(cfg: RunConfig, **keys: Any) -> RunConfig:
    recbole = dict(cfg.recbole)
    recbole.update(keys)
    return RunConfig(files=cfg.files, recbole=recbole, early_stopping=cfg.early_stopping, lr_schedule=cfg.lr_schedule,
                     settings=cfg.settings, sources=cfg.sources)


def train_with_rec_es(cfg: RunConfig, run_dir: Path, record_test: bool, progress: bool = False,
                      callback_fn: Callable[[int, float | None], Any] | None = None) -> Any:
    """Train one run with ``rec_es.training.run.train``; RecBole logs warnings only (``state`` is not in the cache key)."""
    from rec_es.training.run import train

    argv = sys.argv
    sys.argv = argv[:1]  # RecBole's Config reads `--key=value` words of sys.argv as config keys
    try:
        return train(with_keys(cfg, state="WARNING"), run_dir, record_test=record_test, progress=progress, verbose=False,
                     callback_fn=callback_fn)
    finally:
        sys.argv = argv
