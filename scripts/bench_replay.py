#!/usr/bin/env python
"""Comparison cost: replaying P policies x S seeds on recorded traces vs training them live.

    python scripts/bench_replay.py [--traces RUN_DIR_OR_TRACE ...] [--policies 20] [--seeds 5]
                                   [--epochs 300] [--epoch-seconds 8.0] [--repeat 5]

Without ``--traces`` it writes S synthetic traces of ``--epochs`` evaluations each (a noisy rise-and-decay
NDCG@10/Recall@10/MRR@10 curve per seed, ``--epoch-seconds`` per epoch as the recorded time) into a temp
dir; with ``--traces`` it uses real ones (e.g. the directories under .rec_es_cache/traces). Prints trace
reading time, replay throughput (policy evaluations per second, best of ``--repeat``), peak Python memory
(tracemalloc, measured in a separate pass so it does not slow the timed one), and the wall time the same
table would cost trained live (from the traces' recorded per-epoch times). Target: 20 x 5 in under 1 s.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from rec_es import build_policy
from rec_es.policy import StoppingPolicy
from rec_es.replay import ReplayResult, replay
from rec_es.rundir.trace import Trace, TraceWriter, read_trace


def policy_grid(n: int) -> dict[str, StoppingPolicy]:
    """``n`` policies: the shipped replayable kinds and patience / min_delta / smoothing / warmup variants."""
    base: list[tuple[str, dict[str, Any]]] = [
        ("recbole_legacy", {"preset": "recbole_legacy", "monitor": "mrr@10", "stopping_step": 10}),
        ("patience_min_delta", {"monitor": "ndcg@10", "min_delta": 0.0005, "patience": 20}),
        ("composite_ema_warmup", {"monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "smoothing": "ema",
                                  "ema_alpha": 0.5, "patience": 15, "warmup": 20}),
        ("prechelt_gl", {"monitor": "ndcg@10", "smoothing": "ema", "patience": None,
                         "prechelt": {"criterion": "GL", "alpha": 0.5}, "warmup": 10}),
        ("dynamic_patience", {"monitor": "ndcg@10", "patience": 10,
                              "dynamic_patience": {"factor": 0.3, "max_patience": 40, "min_gain": 0.005}}),
        ("prechelt_up_pq", {"monitor": "ndcg@10", "patience": None, "combine": "any_of",
                            "prechelt": [{"criterion": "UP", "s": 3, "strip": 5},
                                         {"criterion": "PQ", "alpha": 2.0, "strip": 5}]}),
    ]
    variants = [(f"patience{p}_{kind}", {"monitor": "ndcg@10", "patience": p, **extra})
                for p in (3, 5, 10, 20, 40)
                for kind, extra in (("raw", {}), ("ema", {"smoothing": "ema", "ema_alpha": 0.3}),
                                    ("window", {"smoothing": "window", "window": 5}))]
    specs = (base + variants)[:n]
    if len(specs) < n:
        raise SystemExit(f"--policies: at most {len(base) + len(variants)} (got {n})")
    return {name: build_policy(m) for name, m in specs}


def synthetic_traces(directory: Path, seeds: int, epochs: int, epoch_seconds: float) -> list[Path]:
    """One trace per seed: NDCG@10 rises to a peak near epoch epochs/3, then slowly decays, plus noise."""
    paths = []
    for seed in range(seeds):
        rng = random.Random(seed)
        peak = epochs / 3 * (0.8 + 0.4 * rng.random())
        path = directory / f"seed{seed}.jsonl"
        w = TraceWriter(path)
        w.header(config={}, policy={"enabled": False}, versions={}, model="GRU4Rec", dataset="synthetic",
                 seed=seed, epochs=epochs, eval_step=1, record_test=True)
        for e in range(epochs):
            clean = 0.1 * (1 - math.exp(-e / (peak / 3))) - 0.00005 * max(0.0, e - peak)
            v = max(1e-4, clean + rng.gauss(0, 0.002))
            metrics = {"recall@10": round(2 * v, 4), "ndcg@10": round(v, 4), "mrr@10": round(0.7 * v, 4)}
            w.record(epoch=e, train_loss=5.0 * math.exp(-e / 50) + 3.0, lr=0.001, valid=metrics,
                     test={k: round(x * 0.95, 4) for k, x in metrics.items()}, elapsed_seconds=(e + 1) * epoch_seconds,
                     train_seconds=epoch_seconds * 0.9, eval_seconds=epoch_seconds * 0.1, decision={"epoch": e})
        w.footer(stop_epoch=epochs - 1, stop_reason="max_epochs", message="budget", best_epoch=None,
                 epochs_trained=epochs, wall_seconds=epochs * epoch_seconds)
        paths.append(path)
    return paths


def replay_all(policies: dict[str, StoppingPolicy], traces: list[Trace]) -> list[ReplayResult]:
    return [replay(p, t, name=n, need_test=True) for t in traces for n, p in policies.items()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", nargs="*", default=None, metavar="PATH", help="real traces or run directories")
    p.add_argument("--policies", type=int, default=20, help="number of policies (default 20)")
    p.add_argument("--seeds", type=int, default=5, help="synthetic traces to write (default 5)")
    p.add_argument("--epochs", type=int, default=300, help="evaluations per synthetic trace (default 300)")
    p.add_argument("--epoch-seconds", type=float, default=8.0, help="recorded seconds per synthetic epoch (default 8)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions; the best is reported (default 5)")
    args = p.parse_args(argv)
    policies = policy_grid(args.policies)
    with tempfile.TemporaryDirectory() as tmp:
        if args.traces:
            paths = [Path(t) for t in args.traces]
            what = "recorded"
        else:
            paths = synthetic_traces(Path(tmp), args.seeds, args.epochs, args.epoch_seconds)
            what = f"synthetic, {args.epoch_seconds:g} s/epoch recorded"
        t0 = time.perf_counter()
        traces = [read_trace(x) for x in paths]
        read_s = time.perf_counter() - t0
        evaluations = sum(len(t.records) for t in traces)
        print(f"replay benchmark: {len(policies)} policies x {len(traces)} traces ({what}; "
              f"{evaluations} evaluations in all, {evaluations // len(traces)} per trace on average)")
        print(f"read {len(traces)} traces: {read_s * 1000:.1f} ms")
        best = math.inf
        results: list[ReplayResult] = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            results = replay_all(policies, traces)
            best = min(best, time.perf_counter() - t0)
        updates = sum(r.evaluations for r in results)
        print(f"replay: {len(results)} policy-trace runs, {updates} policy evaluations in {best * 1000:.1f} ms "
              f"(best of {args.repeat}) -> {updates / best:,.0f} evaluations/s, {best / len(results) * 1000:.2f} ms per run")
        verdict = "meets" if best < 1.0 else "MISSES"
        print(f"target 20 policies x 5 seeds under 1 s: {verdict} it here ({best:.3f} s for "
              f"{len(policies)} x {len(traces)})")
        tracemalloc.start()
        replay_all(policies, traces)
        _, peak_replay = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        [read_trace(x) for x in paths]
        _, peak_read = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak Python memory (tracemalloc): replaying {peak_replay / 2**20:.2f} MiB, "
              f"reading the traces {peak_read / 2**20:.2f} MiB")
        live_epochs = sum(r.epochs_trained for r in results)
        live_s = sum(r.wall_seconds or 0.0 for r in results)
        record_s = sum(sum((x.get("train_seconds") or 0) + (x.get("eval_seconds") or 0) for x in t.records)
                       for t in traces)
        print(f"the same table trained live: {len(results)} runs, {live_epochs} epochs, {live_s / 3600:.2f} h "
              f"(recorded per-epoch times); recording the {len(traces)} full traces once: {record_s / 3600:.2f} h; "
              f"replay: {best:.3f} s")
        if record_s > 0:
            print(f"ratio live / (record + replay) = {live_s / (record_s + best):.1f}x; "
                  f"live / replay alone = {live_s / best:,.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
