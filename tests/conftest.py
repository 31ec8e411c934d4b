"""Shared fixtures: the tiny real ml-100k slice and a fast GRU4Rec config for integration tests.

Integration tests run inside a temporary working directory (RecBole writes log/ and log_tensorboard/
relative to it) with a checkpoint_dir under it, and with one torch thread (the CPU is shared).

Tests import the scripts in scripts/ and their shared module ``benchlib`` by name: this is the one place that
puts scripts/ on sys.path (a script run as ``python scripts/NAME.py`` has it there already).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

# The tests' local Ray instances listen on loopback only (Ray reads this when it is imported; workers inherit it)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
sys.path.insert(0, str(REPO / "scripts"))

from benchlib import tiny_recbole_config  # noqa: E402  (bench_ray.py trains it too)


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` afresh as module ``name`` (registered in sys.modules: dataclasses look it up
    there)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def trace_header(**fields: Any) -> dict[str, Any]:
    """A hand-built trace header line: the keys ``parse_trace`` requires (BPR on ml-100k), then ``fields``."""
    return {"type": "header", "format": "rec_es.trace", "version": 1, "config": {}, "policy": {}, "versions": {},
            "model": "BPR", "dataset": "ml-100k", **fields}


def write_trace_lines(run: Path, lines: list[dict[str, Any]], tail: str = "") -> Path:
    """RUN/trace.jsonl holding ``lines`` as compact JSON lines, then ``tail`` (a torn line, say)."""
    run.mkdir(exist_ok=True)
    path = run / "trace.jsonl"
    path.write_text("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines) + tail)
    return path


def small_trace(path: Path, scores: tuple[float, ...] = (0.2, 0.1, 0.05), patience: int = 1) -> Path:
    """A finished trace.jsonl at ``path`` with a patience policy's real decisions on ``scores`` (ndcg@10)."""
    from rec_es import build_policy
    from rec_es.rundir.trace import TraceWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    policy = build_policy({"monitor": "ndcg@10", "patience": patience})
    w = TraceWriter(path)
    w.header(config={"metric_decimal_place": 4}, policy=policy.settings_mapping(), lr_schedule=None, versions={},
             model="GRU4Rec", dataset="tiny", seed=1, epochs=len(scores), eval_step=1, record_test=False)
    d = None
    for epoch, score in enumerate(scores):
        d = policy.update(epoch, {"ndcg@10": score})
        w.record(epoch=epoch, train_loss=1.0, lr=0.001, valid={"ndcg@10": score}, decision=d.to_dict())
        if d.stop:
            break
    assert d is not None
    w.footer(stop_epoch=d.epoch, stop_reason=d.reason.value if d.stop else "max_epochs", message=d.message,
             best_epoch=policy.best_epoch, epochs_trained=d.epoch + 1, wall_seconds=1.0)
    return path


@pytest.fixture
def tiny_config() -> dict[str, Any]:
    """A fresh copy of the tiny GRU4Rec RecBole config (mutable per test)."""
    return tiny_recbole_config()


@contextlib.contextmanager
def one_thread_in(directory: Path) -> Iterator[pytest.MonkeyPatch]:
    """Inside ``directory`` (RecBole writes log/ relative to it) with ``OMP_NUM_THREADS=1`` and one torch thread;
    the working directory, the variable and torch's thread count are restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(directory)
        mp.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        try:
            yield mp
        finally:
            torch.set_num_threads(threads)


def trained_once(name: str, root: Path, train: Callable[[], None]) -> None:
    """Fill ``root`` with ``train()`` (run inside ``root``, one thread), or copy what it made from
    ``$REC_ES_TEST_RUN_CACHE/name`` when that exists. scripts/mutate.py sets the variable, so a module fixture that
    trains runs to take apart or resume trains them once per mutation run instead of once per forked mutant (what
    is mutated is how a run resumes, not how it is first trained)."""
    cache = os.environ.get("REC_ES_TEST_RUN_CACHE")
    cached = Path(cache) / name if cache else None
    if cached is not None and cached.is_dir():
        shutil.copytree(cached, root, symlinks=True, dirs_exist_ok=True)
        return
    with one_thread_in(root):
        train()
    if cached is not None:
        shutil.copytree(root, cached, symlinks=True)


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run the test inside tmp_path with one torch thread; returns tmp_path."""
    with one_thread_in(tmp_path):
        yield tmp_path


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Path]]:
    """Every matplotlib ``Figure`` saved during the test, with its path, so a test can read what was drawn."""
    from matplotlib.figure import Figure

    saved: list[tuple[Any, Path]] = []
    save = Figure.savefig

    def capture(self: Figure, fname: Any, *args: Any, **kwargs: Any) -> Any:
        saved.append((self, Path(fname)))
        return save(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    return saved
