"""scripts/bench_overhead.py: the interleaving driver gives each fit its own slices and time, and the script
runs end to end on real RecBole (no timing asserted: speed is the benchmark's job, not the suite's)."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import REPO, load_script



bench = load_script("bench_overhead")


def fake_fit(log: list[str], name: str, epochs: int, batches: int, busy_seconds: float = 0.0) -> Callable[..., None]:
    """A fit shaped like Trainer.fit: per epoch, `batches` batches (each pausing first) then the callback."""

    def spin() -> None:
        end = time.process_time() + busy_seconds
        while time.process_time() < end:
            pass

    def fit(callback: Callable[[int, Any], None]) -> None:
        for epoch in range(epochs):
            for _ in range(batches):
                bench._running.turns.pause("train")
                log.append(name)
                spin()
            callback(epoch, 0.0)

    return fit


def test_fits_take_turns_batch_by_batch() -> None:
    log: list[str] = []
    fits = [bench.Turns(n, fake_fit(log, n, epochs=3, batches=4)) for n in ("a", "b", "c")]
    bench.run_sliced(fits, random.Random(0))
    assert all(f.finished and len(f.wall) == 3 and len(f.parts) == 3 for f in fits)
    assert sorted(log) == sorted(["a", "b", "c"] * 12)
    counts = {"a": 0, "b": 0, "c": 0}
    for name in log:  # run one fit after another and a fit gets 12 batches ahead; interleaved, at most 1
        counts[name] += 1
        assert max(counts.values()) - min(counts.values()) <= 1, log


def test_each_fit_is_charged_only_its_own_slices() -> None:
    log: list[str] = []
    busy = bench.Turns("busy", fake_fit(log, "busy", epochs=2, batches=5, busy_seconds=0.01))
    idle = bench.Turns("idle", fake_fit(log, "idle", epochs=2, batches=5))
    bench.run_sliced([busy, idle], random.Random(1))
    assert all(t >= 0.05 for t in busy.cpu)  # 5 slices of 10 ms CPU each per epoch
    assert sum(idle.cpu) < sum(busy.cpu) / 5  # the busy fit's slices were not charged to the idle one


def test_a_failing_fit_is_reported_by_the_driver() -> None:
    def broken(callback: Callable[[int, Any], None]) -> None:
        raise ValueError("boom")

    with pytest.raises(RuntimeError, match="broken failed") as info:
        bench.run_sliced([bench.Turns("broken", broken)], random.Random(0))
    assert isinstance(info.value.__cause__, ValueError)


def test_bench_overhead_runs_on_real_recbole(tmp_path: Path) -> None:
    """Smallest real run, in a subprocess (the script pins its process to one CPU)."""
    cmd = [sys.executable, "scripts/bench_overhead.py", "--set", f"data_path={REPO / 'datasets'}",
           "--set", "dataset=ml-100k-tiny", "--set", "embedding_size=16", "--set", "hidden_size=16",
           "--epochs", "2", "--rounds", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "one shared model" in text and "pinned to CPU" in text
    for mode in ("stock", "stock (control)", "stock subclass", "rec_es default", "rec_es default, no per-user",
                 "rec_es richest"):
        assert f"round 1 {mode:<28} wall s/epoch: " in text
    assert "per-user scores' share (rec_es default against the same without per-user capture" in text
    assert "ratio to the stock subclass instead" in text and "rec_es richest " in text.split("subclass instead")[1]
    assert "target <= 1.01:" in text and "where the time goes" in text and "last.pth atomic save" in text


def test_trainers_share_one_model_and_optimizer_unless_asked_not_to() -> None:
    """The comparison's premise: every mode's batches run on the same tensors (or, opted out, each its own)."""

    class Model:
        def calculate_loss(self) -> None: ...
        def full_sort_predict(self) -> None: ...
        def predict(self) -> None: ...

    class Setup:
        config: dict[str, Any] = {}

        def fresh_model(self) -> Model:
            return Model()

    class FakeTrainer:
        def __init__(self, config: Any, model: Model) -> None:
            self.model, self.optimizer = model, object()

    shared = bench.trainer_factory(Setup(), separate=False)
    a, b = shared(FakeTrainer), shared(FakeTrainer)
    assert a.model is b.model and a.optimizer is b.optimizer
    assert "calculate_loss" in vars(a.model)  # batches pause for the interleaving
    own = bench.trainer_factory(Setup(), separate=True)
    c, d = own(FakeTrainer), own(FakeTrainer)
    assert c.model is not d.model and c.optimizer is not d.optimizer and "predict" in vars(d.model)


def test_bench_overhead_runs_in_two_processes() -> None:
    """`--nproc 2`: stock RecBole's distributed trainer and rec_es side by side in two gloo processes, the smallest
    run (no timing asserted)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "scripts/bench_overhead.py", "--nproc", "2", "--port", str(port), "--set",
           f"data_path={REPO / 'datasets'}", "--set", "dataset=ml-100k-tiny", "--set", "embedding_size=16", "--set",
           "hidden_size=16", "--epochs", "2", "--rounds", "1", "--no-control"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 processes (gloo), 1 rounds x 2 epochs (1 timed) x 2 modes" in out.stdout
    for mode in ("stock", "rec_es default"):
        assert f"round 1 {mode:<28} wall s/epoch: " in out.stdout
    assert "rec_es default" in out.stdout.split("95 % interval")[1]
