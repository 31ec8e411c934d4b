#!/usr/bin/env python
"""What the pre-flight of `rec-es run` costs: RecBole's config, data and model built once (a run needs them anyway),
then the two pre-flight batches (one training batch through calculate_loss, one validation batch through
prediction and the metrics) timed REPEATS times each; medians printed.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_preflight.py [--repeats 5]

Configurations: properties/gru4rec_ml100k.yaml (ml-100k, `make run`'s) and the same file on datasets/ml-100k-tiny.
The numbers are quoted in docs/run.md ("The pre-flight"). About a minute, most of it importing RecBole and
building ml-100k.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchlib import DATASETS, REPO


def measure(files: list[str], overrides: dict, repeats: int) -> tuple[float, tuple[float, float], float, float]:
    """(seconds to build config, data and model; the first pre-flight's (training, evaluation) seconds, which is what
    a run pays; the median seconds of the training batch and of the evaluation batch over ``repeats``)."""
    from rec_es.config import datasets
    from rec_es.config.properties import load_config
    from rec_es.training import preflight
    from rec_es.training.compat import quiet_recbole_warnings
    from rec_es.training.run import model_and_trainer_class

    quiet_recbole_warnings()
    cfg = load_config(files, overrides)
    keys = {**cfg.recbole, "state": "WARNING"}
    model_class, _ = model_and_trainer_class(keys, cfg.sources)
    start = time.perf_counter()
    built = preflight.build(model_class, keys, datasets.resolve(keys, cfg.sources), verbose=False, check=False)
    build_s = time.perf_counter() - start
    runs = [preflight.check_batches(built, keys) for _ in range(repeats)]
    return build_s, runs[0], statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shipped = str(REPO / "properties" / "gru4rec_ml100k.yaml")
    tiny = {"data_path": str(DATASETS), "dataset": "ml-100k-tiny"}
    print(f"seconds; build: config, data and model, once (as before the pre-flight); pre-flight: the first, what a "
          f"run pays (median of {args.repeats})")
    print("config                      build   pre-flight training batch   evaluation batch")
    for name, overrides in (("gru4rec_ml100k.yaml", {}), ("the same on ml-100k-tiny", tiny)):
        build_s, first, train_s, eval_s = measure([shipped], overrides, args.repeats)
        print(f"{name:27s} {build_s:5.2f}   {first[0]:6.3f} ({train_s:.3f})            {first[1]:6.3f} ({eval_s:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
