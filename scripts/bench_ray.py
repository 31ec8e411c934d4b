#!/usr/bin/env python
"""What Ray costs `rec-es compare --ray`: per-task overhead against a tiny recording, and the 2-worker speed-up.

    python scripts/bench_ray.py [--epochs 3] [--seeds 4] [--cpus 2]
    OMP_NUM_THREADS=1 nice python scripts/bench_ray.py --config properties/gru4rec_ml100k.yaml --epochs 10 --no-compare

On the tiny ml-100k slice (benchlib's tiny GRU4Rec config, ``--epochs`` per run) it measures, with a local
``ray.init(num_cpus=--cpus)``:

1. ``ray.init`` itself, and the round trip of an empty task (scheduling + a warm worker);
2. one recording trained in this process vs. the same recording as a Ray task (1 CPU) that returns its
   run files as bytes: the difference is Ray's per-task cost (worker start-up, imports, transfer);
3. a ``--seeds``-seed comparison on Ray with ``--jobs 1`` (one run at a time, all CPUs each) and
   ``--jobs 2`` (two at a time, one CPU each), each into a fresh cache: the speed-up of two workers.

Everything uses fresh temporary caches, so nothing is reused between the timed steps. Prints one table.

``--config FILE`` replaces the tiny slice by a real configuration (``--epochs`` per run, stopping disabled as in a
recording): step 2 then measures Ray's cost against a recording of minutes, and the table ends with the ratio of
the two, both one thread. ``--no-compare`` skips step 3. The ml-100k measurement (``--config
properties/gru4rec_ml100k.yaml --epochs 10 --no-compare``, about 3 minutes on one quiet core) is committed as
``docs/results/benchmarks/bench_ray_ml100k.txt``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchlib import tiny_recbole_config


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements and print them."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--config", nargs="+", default=None, metavar="FILE",
                   help="record this configuration instead of the tiny slice (paths as rec-es run takes them)")
    p.add_argument("--no-compare", action="store_true", help="skip the --jobs 1 / --jobs 2 comparison")
    args = p.parse_args(argv)

    import ray
    import torch

    from rec_es.compare import compare, recording_config
    from rec_es.tune.workers import train_with_rec_es, with_keys
    from rec_es.tune.cluster import run_files, train_task

    config = [str(Path(f).resolve()) for f in args.config] if args.config else None
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray-"))
    os.chdir(tmp)
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(tiny_recbole_config(epochs=args.epochs, learning_rate=0.01)))
    (tmp / "patience1.yaml").write_text("early_stopping:\n  monitor: ndcg@10\n  patience: 1\n")
    rec = with_keys(recording_config(config or [str(tmp / "tiny.yaml")], {}, args.epochs, None), seed=2020)
    what = f"{rec.get('model')} on {rec.get('dataset')}" if config else "tiny"
    rows: list[tuple[str, float]] = []

    init_s, _ = _timed(ray.init, num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    rows.append(("ray.init (local instance)", init_s))
    noop = ray.remote(num_cpus=1)(lambda: None)
    first, _ = _timed(lambda: ray.get(noop.remote()))
    warm, _ = _timed(lambda: ray.get([noop.remote() for _ in range(20)]))
    rows += [("empty task, first (worker start)", first), ("empty task, warm (mean of 20)", warm / 20)]

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    local_s, _ = _timed(train_with_rec_es, rec, tmp / "local-run", True)
    nbytes = sum(len(b) for b in run_files(tmp / "local-run").values())
    task = ray.remote(num_cpus=1)(train_task)
    remote_s, files = _timed(lambda: ray.get(task.remote(None, rec, True, 1)))
    rows += [(f"{what} recording ({args.epochs} epochs) in this process", local_s),
             ("same recording as a Ray task, files returned", remote_s),
             ("  Ray's cost per task (difference)", remote_s - local_s)]
    print(f"run files sent back: {len(files)} files, {nbytes / 1024:.1f} KiB", file=sys.stderr)

    walls = {}
    for jobs in () if args.no_compare else (1, 2):
        walls[jobs], _ = _timed(compare, [str(tmp / "tiny.yaml")], [str(tmp / "patience1.yaml")], seeds=args.seeds,
                                max_epochs=args.epochs, cache_dir=tmp / f"cache-{jobs}", progress=False,
                                n_jobs=jobs, ray_address="local", log=lambda m: None)
        rows.append((f"compare, {args.seeds} recordings on Ray, --jobs {jobs}", walls[jobs]))
    ray.shutdown()

    print(f"| measurement ({args.cpus} CPUs, os.cpu_count() {os.cpu_count()}) | seconds |\n|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.2f} |")
    print(f"\nRay task over the same recording in this process: {remote_s / local_s:.3f}x "
          f"(Ray's cost {remote_s - local_s:.1f} s, {100 * (remote_s - local_s) / local_s:.1f} % of the run; "
          f"{len(files)} run files, {nbytes / 1024:.0f} KiB, sent back)")
    if walls:
        print(f"speed-up of --jobs 2 over --jobs 1: {walls[1] / walls[2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
