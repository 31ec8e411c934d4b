#!/usr/bin/env python
"""Per-epoch overhead of EarlyStoppingTrainer vs RecBole's stock Trainer, measured side by side in one process.

    python scripts/bench_overhead.py [--config properties/gru4rec_ml100k.yaml ...] [--set key=value ...]
                                     [--epochs 4] [--rounds 3]

Each round trains one short run per mode on the same data and freshly seeded model, in a rotating order
(so drift in machine load hits every mode alike): ``stock`` (recbole.trainer.Trainer.fit, saved=True as
run_recbole does), ``rec_es default`` (the config's own early_stopping policy) and ``rec_es richest``
(composite monitor + EMA + Prechelt GL + dynamic patience + warmup/cosine/reduce-on-plateau LR schedule);
both rec_es modes write the full run directory as ``rec-es run`` does (trace.jsonl, best.pth on each
improvement, last.pth every epoch) and keep the best weights in memory. An epoch is timed from one
evaluation's callback to the next (train + validation + everything the trainer does after), so the first
epoch of each run (set-up) is left out. Prints the median epoch time per mode and its ratio to stock.
Target: <= 1.01.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import DEFAULT_CONFIG, Setup, load, median, scratch_cwd, threads_line  # noqa: E402

RICHEST_POLICY = {
    "monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "smoothing": "ema", "ema_alpha": 0.5, "patience": 15,
    "warmup": 5, "prechelt": {"criterion": "GL", "alpha": 50.0},
    "dynamic_patience": {"factor": 0.3, "max_patience": 40, "min_gain": 0.005},
}
RICHEST_SCHEDULE = {"warmup_epochs": 2, "decay": "cosine", "t_max": 100,
                    "reduce_on_plateau": {"factor": 0.3, "max_reductions": 2}}


def timed_fit(fit: Callable[[Callable[[int, Any], None]], Any]) -> list[float]:
    """Seconds between consecutive evaluation callbacks of one fit (epoch 0 excluded)."""
    stamps: list[float] = []
    fit(lambda epoch, score: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps, stamps[1:])]


def run_stock(setup: Setup, epochs: int) -> list[float]:
    from recbole.trainer import Trainer

    setup.config.final_config_dict.update(epochs=epochs, stopping_step=10_000)
    trainer = Trainer(setup.config, setup.fresh_model())
    return timed_fit(lambda cb: trainer.fit(setup.train_data, setup.valid_data, verbose=False, saved=True,
                                            callback_fn=cb))


def run_rec_es(setup: Setup, epochs: int, policy: Any, schedule: Any, run_dir: Path) -> list[float]:
    from rec_es.trainer import EarlyStoppingTrainer

    setup.config.final_config_dict.update(epochs=epochs)
    trainer = EarlyStoppingTrainer(setup.config, setup.fresh_model(), policy, lr_schedule=schedule, run_dir=run_dir)
    return timed_fit(lambda cb: trainer.fit(setup.train_data, setup.valid_data, verbose=False, saved=True,
                                            callback_fn=cb))


def added_work_ms(setup: Setup, tmp: Path, repeat: int = 20) -> dict[str, float]:
    """Milliseconds (median of ``repeat``) of each piece of work EarlyStoppingTrainer adds to an epoch, on this
    model: the richest policy's update, one trace record (written and fsync'ed), the in-memory best snapshot,
    best.pth and last.pth (atomic, fsync'ed). Measured in isolation, so machine noise cannot hide them."""
    from rec_es import build_policy, checkpoint
    from rec_es.trace import TraceWriter

    model = setup.fresh_model()
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    metrics = {"recall@10": 0.13, "mrr@10": 0.04, "ndcg@10": 0.066, "hit@10": 0.13, "precision@10": 0.013}
    policy = build_policy(RICHEST_POLICY)
    writer = TraceWriter(tmp / "added-trace.jsonl")
    writer.header(config={}, policy={}, versions={}, model="m", dataset="d")
    epoch = iter(range(10**6))

    def update() -> None:
        policy.update(next(epoch), metrics, train_loss=1.0, elapsed_seconds=1.0)

    def record() -> None:
        d = policy.update(next(epoch), metrics, train_loss=1.0, elapsed_seconds=1.0)
        writer.record(epoch=d.epoch, train_loss=1.0, lr=0.001, valid=metrics, elapsed_seconds=1.0,
                      train_seconds=1.0, eval_seconds=0.1, decision=d.to_dict())

    def last() -> None:
        checkpoint.atomic_save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "kind": "last",
                                "model": checkpoint.cpu_state_dict(model), "optimizer": optimizer.state_dict(),
                                "policy": policy.state_dict(), "rng": checkpoint.capture_rng_state()}, tmp / "last.pth")

    pieces = {"policy.update (richest)": update, "trace record + fsync (incl. update)": record,
              "in-memory best snapshot": lambda: checkpoint.cpu_state_dict(model),
              "best.pth atomic save": lambda: checkpoint.atomic_save(checkpoint.best_payload(model, 1), tmp / "best.pth"),
              "last.pth atomic save": last}
    out = {}
    for name, fn in pieces.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = median(times) * 1000
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", nargs="+", default=[DEFAULT_CONFIG], metavar="FILE")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run; epochs-1 are timed (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="runs per mode, interleaved (default 3)")
    args = p.parse_args(argv)
    setup = load(args.config, args.sets)
    default_policy = setup.run_config.build_policy()
    from rec_es import build_policy

    modes: dict[str, Callable[[Path], list[float]]] = {
        "stock": lambda d: run_stock(setup, args.epochs),
        "rec_es default": lambda d: run_rec_es(setup, args.epochs, default_policy, setup.run_config.lr_schedule, d),
        "rec_es richest": lambda d: run_rec_es(setup, args.epochs, build_policy(RICHEST_POLICY), RICHEST_SCHEDULE, d),
    }
    times: dict[str, list[float]] = {m: [] for m in modes}
    names = list(modes)
    print(f"overhead benchmark: {setup.config['model']} on {setup.config['dataset']}, {args.rounds} rounds x "
          f"{len(names)} modes x {args.epochs} epochs ({args.epochs - 1} timed per run); {threads_line()}")
    print(f"default policy: {default_policy.describe_monitor()} {setup.run_config.early_stopping}")
    with scratch_cwd(setup) as tmp:
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for i, mode in enumerate(order):
                run_dir = tmp / f"run-{r}-{i}"
                epoch_times = modes[mode](run_dir)
                times[mode].extend(epoch_times)
                print(f"  round {r + 1} {mode:<15} epochs: " + " ".join(f"{t:.2f}" for t in epoch_times), flush=True)
        added = added_work_ms(setup, tmp)
    base = median(times["stock"])
    print(f"{'mode':<16}{'median s/epoch':>16}{'mean':>9}{'stdev':>9}{'ratio to stock (median)':>26}")
    for mode in names:
        xs = times[mode]
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        print(f"{mode:<16}{median(xs):>16.3f}{statistics.fmean(xs):>9.3f}{sd:>9.3f}{median(xs) / base:>26.4f}")
    worst = max(median(times[m]) / base for m in names[1:])
    print(f"target <= 1.01: {'met' if worst <= 1.01 else 'NOT met'} (worst ratio {worst:.4f})")
    print("work rec_es adds per epoch, timed alone (median ms):")
    for name, ms in added.items():
        print(f"  {name:<40}{ms:>9.2f} ms")
    per_epoch = added["trace record + fsync (incl. update)"] + added["in-memory best snapshot"] + added["last.pth atomic save"]
    print(f"  every epoch (record + snapshot + last.pth; best.pth only on improvements): {per_epoch:.1f} ms = "
          f"{per_epoch / 1000 / base * 100:.2f} % of a {base:.2f} s stock epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
