#!/usr/bin/env python
"""Per-epoch overhead of EarlyStoppingTrainer vs RecBole's stock Trainer, interleaved batch by batch in one process.

    OMP_NUM_THREADS=1 python scripts/bench_overhead.py [--config FILE ...] [--set key=value ...]
                        [--epochs 6] [--rounds 4] [--no-control] [--separate-models] [--cpu N] [--ranked K]

Each round starts one fit per mode, each in its own thread, and lets them take turns one slice at a time, a
slice being everything a fit does up to its next training or scoring batch (or evaluation callback), in a
fresh random order every cycle. Only one fit computes at any moment, so the wall and CPU seconds of a fit's
slices are its own work (train + validation + everything its trainer does between epochs), and every mode's
epoch k is spread over the same seconds as the others': drift in machine speed hits all modes alike.

All modes train one shared model with one shared optimizer (built from the config's seed): the tensors every
batch works on are the same memory in every mode, so the comparison measures the trainers' code, not where
the allocator happened to put each mode's weights (with ``--separate-models`` each mode trains its own model,
and two identical stock trainers differed by up to 2 % per epoch here). The whole process is pinned to one
CPU and glibc serves all threads from one malloc arena, for the same reason.

Modes: ``stock`` (recbole.trainer.Trainer.fit, saved=True as run_recbole does), ``stock (control)`` (a second
stock trainer: its ratio to ``stock`` shows the resolution of the method), ``stock subclass`` (a Trainer
subclass whose ``fit`` only calls ``Trainer.fit``: what the harness charges a trainer for being another class,
with no work added), ``rec_es default`` (the config's
own policy, without its time budget, recording per-user scores of its monitor as ``rec-es run`` does),
``rec_es default, no per-user`` (the same with ``per_user_metrics: []``: its ratio to ``rec_es default`` is
the cost of the per-user capture and sidecars) and, with ``--ranked K``, ``rec_es default, ranked K`` (the same
keeping the top-K lists and their signals: its ratio to ``rec_es default`` is their cost), and ``rec_es richest`` (composite monitor + EMA + Prechelt GL + dynamic
patience + warmup/cosine/reduce-on-plateau LR schedule). Both rec_es modes write the full run directory as
``rec-es run`` does (trace.jsonl, best.pth on each improvement, last.pth every epoch) and keep the best
weights in memory. Each run's first epoch (set-up) is left out.

Prints per mode the median epoch, each round's ratio of total epoch time to stock's in the same round, their
mean with a 95 % t-interval over rounds (epochs of one fit are not independent samples: they share its
thread, which carried differences of up to 1.7 % between identical fits here), and where in the epoch the time
goes. Target: <= 1.01.

Several processes (``rec-es run --nproc N`` against RecBole's own distributed trainer):

    OMP_NUM_THREADS=1 python scripts/bench_overhead.py --nproc 2 [--config FILE ...] [--set key=value ...]
                        [--epochs 6] [--rounds 4] [--no-control] [--port 29533]

``--nproc N`` starts N processes (gloo on the CPU when no GPU is asked for, RecBole's NCCL path otherwise; rank r
pinned to the r-th allowed CPU when there are enough) that each build the data once and then, round after round,
fit ``stock`` (RecBole's ``Trainer`` under its distributed data parallel: its ``_map_reduce`` evaluation, rank 0
writing its checkpoint), ``stock (control)`` and ``rec_es default`` (``EarlyStoppingTrainer`` with the config's
policy: rows gathered, loss reduced, one decision, every rank's random state gathered into rank 0's run directory)
one after the other on a freshly seeded model, in an order rotated every round. Processes cannot share a batch
loop, so the modes are not interleaved batch by batch: they are side by side in one run, round by round. Rank 0
prints, per mode, every round's wall seconds per epoch (rank 0's clock; the ranks wait for each other in every
collective) and the ratio of its total epoch time to stock's in the same round, with the mean and 95 %
t-interval over rounds, and the CPU seconds summed over ranks. Each fit's first epoch (set-up) is left out.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from benchlib import (DEFAULT_CONFIG, RICHEST_POLICY, Setup, load, median, rec_es_modes, scratch_cwd,
                      threads_line)

Fit = Callable[[Callable[[int, Any], None]], Any]  # fit(callback_fn)
PARTS = ("start", "train", "to eval", "end")


@dataclass
class Turns:
    """One fit running in its own thread, a slice at a time: the fit pauses before every batch its model
    trains on or scores (see ``pause_before_batches``) and at every evaluation callback, hands control back to
    the driver and waits for its next turn. The wall and CPU seconds of its slices add up to its epochs; the
    waits between slices are not counted.

    ``parts`` splits each epoch's wall seconds by where its slices end: ``start`` (epoch start to the first
    training batch), ``train`` (the other training batches), ``to eval`` (the last training batch, the end of
    the training epoch and every scoring batch but the last) and ``end`` (the last scoring batch to the
    evaluation callback: metrics, the stopping decision, trace and checkpoint writes). ``start`` and ``end``
    hold the trainers' own code; ``train`` and ``to eval`` are RecBole's loops, the same code in every mode."""

    name: str
    fit: Fit
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)
    finished: bool = False
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._go, self._done = threading.Semaphore(0), threading.Semaphore(0)
        self._new_epoch()
        self._thread = threading.Thread(target=self._body, name=self.name, daemon=True)
        self._thread.start()

    def _new_epoch(self) -> None:
        self._epoch_wall = self._epoch_cpu = 0.0
        self._parts = dict.fromkeys(PARTS, 0.0)
        self._next = "start"  # the part the running slice belongs to, by what ends it

    def _resume(self) -> None:
        self._go.acquire()
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def _end_slice(self, part: str) -> None:
        wall = time.perf_counter() - self._wall0
        self._epoch_wall += wall
        self._epoch_cpu += time.process_time() - self._cpu0
        self._parts[part] += wall

    def _hand_back(self) -> None:
        """End this turn and wait, in the fit's own thread, for the driver to give the next one."""
        self._done.release()
        self._resume()

    def pause(self, before: str) -> None:
        """Called by the fit's own thread before each batch: ``before`` is "train" or "score"."""
        self._end_slice("to eval" if before == "score" else self._next)
        self._next = "train"
        self._hand_back()

    def _callback(self, epoch: int, score: Any) -> None:
        self._end_slice("end")
        self.wall.append(self._epoch_wall)
        self.cpu.append(self._epoch_cpu)
        self.parts.append(self._parts)
        self._new_epoch()
        self._hand_back()

    def _body(self) -> None:
        _running.turns = self
        self._resume()
        try:
            self.fit(self._callback)
        except BaseException as exc:  # re-raised by the driver
            self.error = exc
        finally:
            self.finished = True
            self._done.release()

    def turn(self) -> None:
        """Run this fit up to its next pause (the calling thread waits meanwhile)."""
        self._go.release()
        self._done.acquire()
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed") from self.error


_running = threading.local()  # .turns: the Turns whose thread this is


def pause_before_batches(model: Any) -> None:
    """Make every batch the model trains on or scores start with a pause of the fit whose thread calls it."""
    for method, kind in (("calculate_loss", "train"), ("full_sort_predict", "score"), ("predict", "score")):
        original = getattr(model, method)

        def sliced(*args: Any, _original: Any = original, _kind: str = kind, **kwargs: Any) -> Any:
            _running.turns.pause(_kind)
            return _original(*args, **kwargs)

        setattr(model, method, sliced)  # an instance attribute: the class and other models are untouched


def run_sliced(fits: Sequence[Turns], rng: random.Random) -> None:
    """Give every unfinished fit one turn per cycle, in a fresh random order each cycle, until all have finished."""
    while True:
        cycle = [f for f in fits if not f.finished]
        if not cycle:
            return
        rng.shuffle(cycle)
        for f in cycle:
            f.turn()


def one_malloc_arena() -> bool:
    """Make glibc serve every thread from one malloc arena (as MALLOC_ARENA_MAX=1 does): each fit runs in its own
    thread, and per-thread arenas would give each mode its own memory layout and page-fault pattern."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").mallopt(-8, 1) == 1  # M_ARENA_MAX
    except OSError:
        return False


def trainer_factory(setup: Setup, separate: bool) -> Callable[..., Any]:
    """``attach(trainer_class, *args)`` builds a trainer on one freshly seeded model and optimizer shared by
    every trainer of the round, or (``separate``) on a new model and optimizer of its own."""
    shared = None if separate else setup.fresh_model()
    if shared is not None:
        pause_before_batches(shared)
    optimizer = None

    def attach(trainer_class: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal optimizer
        model = shared
        if model is None:
            model = setup.fresh_model()
            pause_before_batches(model)
        trainer = trainer_class(setup.config, model, *args, **kwargs)
        if shared is not None:
            optimizer = optimizer or trainer.optimizer
            trainer.optimizer = optimizer
        return trainer

    return attach


def make_fit(setup: Setup, epochs: int, attach: Callable[..., Any], trainer_class: Any, *args: Any,
             **kwargs: Any) -> Fit:
    """A fit of ``epochs`` epochs (stock RecBole's stopping_step is set out of reach) that reports each
    evaluation to its callback, as run_recbole would run it (saved=True, quiet)."""
    setup.config.final_config_dict.update(epochs=epochs, stopping_step=10_000)
    trainer = attach(trainer_class, *args, **kwargs)
    return lambda cb: trainer.fit(setup.train_data, setup.valid_data, verbose=False, saved=True, callback_fn=cb)


def mean_interval(xs: Sequence[float]) -> tuple[float, float, float]:
    """Mean of ``xs`` with its 95 % Student-t interval (the interval is nan for a single value)."""
    from scipy.stats import t

    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, float("nan"), float("nan")
    half = t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / len(xs) ** 0.5
    return mean, mean - half, mean + half


def _interval_text(xs: Sequence[float]) -> str:
    mean, lo, hi = mean_interval(xs)
    return f"{mean:.4f} ({lo:.4f}-{hi:.4f})"


def added_work_ms(setup: Setup, tmp: Path, repeat: int = 20) -> dict[str, float]:
    """Milliseconds (median of ``repeat``) of each piece of work EarlyStoppingTrainer adds to an epoch, on this
    model: the richest policy's update, one trace record (written and fsync'ed), the in-memory best snapshot,
    best.pth and last.pth (atomic, fsync'ed). Measured in isolation, so machine noise cannot hide them."""
    from rec_es import build_policy
    from rec_es.rundir import checkpoint
    from rec_es.rundir.trace import TraceWriter

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


# --- several processes: rec_es against RecBole's own distributed trainer -----------------------------------------
DISTRIBUTED_MODES = ("stock", "stock (control)", "rec_es default")


def distributed_rank(local_rank: int, spec: Any, files: list[str], sets: list[str], epochs: int, rounds: int,
                     control: bool) -> None:
    """One process of ``--nproc``: build RecBole's data once (the process group starts with RecBole's config), then
    fit every mode once per round; rank 0 prints the table."""
    import torch.distributed as dist

    from rec_es import build_policy
    from rec_es.training.distributed import rank_keys

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= spec.nproc:
        os.sched_setaffinity(0, {allowed[local_rank]})
    keys = rank_keys(spec, local_rank)
    setup = load(files, sets, **keys)
    rank = dist.get_rank()
    from recbole.trainer import Trainer

    from rec_es.training.trainer import EarlyStoppingTrainer

    policy, schedule = rec_es_modes(setup)["rec_es default"]
    names = [m for m in DISTRIBUTED_MODES if control or m != "stock (control)"]
    if rank == 0:
        print(f"distributed overhead benchmark: {setup.config['model']} on {setup.config['dataset']}, "
              f"{spec.total} processes ({dist.get_backend()}), {rounds} rounds x {epochs} epochs ({epochs - 1} "
              f"timed) x {len(names)} modes, one mode after another in a rotated order; {threads_line()}",
              flush=True)
    wall: dict[str, list[list[float]]] = {m: [] for m in names}  # per round: rank 0's wall s per timed epoch
    cpu: dict[str, list[float]] = {m: [] for m in names}  # per round: CPU s of the timed epochs, summed over ranks
    with scratch_cwd(setup) as tmp:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                attach = lambda cls, *a, **kw: cls(setup.config, setup.fresh_model(), *a, **kw)  # noqa: E731
                if name.startswith("rec_es"):
                    run_dir = tmp / f"run-{r}" if rank == 0 else None
                    fit = make_fit(setup, epochs, attach, EarlyStoppingTrainer, build_policy(policy),
                                   lr_schedule=schedule, run_dir=run_dir)
                else:
                    fit = make_fit(setup, epochs, attach, Trainer)
                marks: list[tuple[float, float]] = []
                dist.barrier()
                marks.append((time.perf_counter(), time.process_time()))
                fit(lambda epoch, score: marks.append((time.perf_counter(), time.process_time())))
                if len(marks) != epochs + 1:
                    raise SystemExit(f"{name} stopped after {len(marks) - 1} of {epochs} epochs; use fewer --epochs")
                epoch_wall = [b[0] - a[0] for a, b in zip(marks, marks[1:])][1:]
                epoch_cpu = sum(b[1] - a[1] for a, b in zip(marks[1:], marks[2:]))
                cpus = [None] * spec.total if rank == 0 else None
                dist.gather_object(epoch_cpu, cpus, dst=0)
                wall[name].append(epoch_wall)
                cpu[name].append(sum(cpus) if cpus is not None else 0.0)
            if rank == 0:
                for name in names:
                    print(f"  round {r + 1} {name:<28} wall s/epoch: " + " ".join(f"{t:.3f}" for t in wall[name][r]),
                          flush=True)
    alone = collectives_ms(setup)
    if rank != 0:
        return
    print(f"\nratio of each round's total epoch time to stock's in the same round (rank 0's wall clock; cpu: "
          f"summed over the {spec.total} processes); mean over the {rounds} rounds with its 95 % t-interval")
    print(f"{'mode':<29}{'median s/epoch':>15}" + "".join(f"{f'round {r + 1}':>9}" for r in range(rounds))
          + f"{'mean':>9}{'95 % interval':>17}{'cpu mean':>10}")
    for name in names:
        ratios = [sum(w) / sum(s) for w, s in zip(wall[name], wall["stock"])]
        cpu_ratio = statistics.fmean(c / s for c, s in zip(cpu[name], cpu["stock"]))
        mean, lo, hi = mean_interval(ratios)
        print(f"{name:<29}{median([t for w in wall[name] for t in w]):>15.3f}" + "".join(f"{x:>9.4f}" for x in ratios)
              + f"{mean:>9.4f}{f'{lo:.4f}-{hi:.4f}':>17}{cpu_ratio:>10.4f}")
    stock_epoch = median([t for w in wall["stock"] for t in w])
    print(f"the collectives timed alone: {sum(alone.values()):.2f} ms = "
          f"{100 * sum(alone.values()) / 1000 / stock_epoch:.3f} % of a {stock_epoch:.2f} s stock epoch")


def collectives_ms(setup: Setup, repeat: int = 30) -> dict[str, float]:
    """The collective steps rec_es adds to an evaluation epoch, each timed alone on this process group (median
    ms over ``repeat``, after a barrier): the per-user rows' gather (three metrics and the user ids of the
    validation users), the loss reduction, the decision's agreement, the learning rate's broadcast and the
    per-rank random states' gather for ``last.pth``; rank 0 prints them."""
    import torch
    import torch.distributed as dist
    from torch.utils.data.distributed import DistributedSampler

    from rec_es.rundir.checkpoint import rank_state
    from rec_es.training.distributed import Ranks

    ranks = Ranks()
    users = len(setup.valid_data._dataset.inter_feat)
    sampler = DistributedSampler(range(users), num_replicas=ranks.world_size, rank=ranks.rank, shuffle=False)
    local = torch.zeros(sampler.num_samples, dtype=torch.float32)
    steps = {"per-user rows: 3 metrics + user ids": lambda: [ranks.gather_rows(local, sampler) for _ in range(4)],
             "training loss reduced": lambda: ranks.reduce_loss(1.0, None),
             "decision agreed (stop, new best)": lambda: ranks.agree(0, False, False),
             "learning rate broadcast": lambda: ranks.broadcast_float(0.001),
             "random states gathered for last.pth": lambda: ranks.gather_states(rank_state(setup.train_data))}
    out = {}
    for name, step in steps.items():
        times = []
        for _ in range(repeat):
            dist.barrier()
            t0 = time.perf_counter()
            step()
            times.append(1000 * (time.perf_counter() - t0))
        out[name] = median(times)
    if ranks.rank == 0:
        print(f"\ncollectives rec_es adds per evaluation epoch, each timed alone ({users} validation users, median "
              f"of {repeat}):")
        for name, ms in out.items():
            print(f"  {name:<40}{ms:>8.2f} ms")
        print(f"  {'all of them':<40}{sum(out.values()):>8.2f} ms")
    return out


def main_distributed(args: argparse.Namespace) -> int:
    """``--nproc N``: the processes of ``distributed_rank``, started as ``rec-es run --nproc`` starts them."""
    from rec_es.training.distributed import LaunchSpec, check_launch, launch

    spec = LaunchSpec(nproc=args.nproc, ip="127.0.0.1", port=args.port)
    check_launch(spec, {})
    launch(spec, distributed_rank, (list(args.config), list(args.sets), args.epochs, args.rounds, args.control))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", nargs="+", default=[DEFAULT_CONFIG], metavar="FILE")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--epochs", type=int, default=6, help="epochs per run; epochs-1 are timed (default 6)")
    p.add_argument("--rounds", type=int, default=4, help="runs per mode, each round on a freshly seeded model (default 4)")
    p.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)),
                   help="CPU to pin the whole benchmark to (default: the highest-numbered one available)")
    p.add_argument("--ranked", type=int, default=0, metavar="K",
                   help="also time 'rec_es default' keeping each user's top K items (rec-es run --ranked K)")
    p.add_argument("--no-control", dest="control", action="store_false",
                   help="leave out the second stock trainer and the stock subclass (faster, but the method's "
                        "resolution is not shown)")
    p.add_argument("--separate-models", action="store_true",
                   help="give each mode its own model and optimizer instead of one shared pair")
    p.add_argument("--nproc", type=int, default=1,
                   help="N > 1: compare rec_es against RecBole's own distributed trainer in N processes, one mode "
                        "after another (see the module docstring; --cpu and --separate-models do not apply)")
    p.add_argument("--port", type=int, default=29533, help="rendezvous port on 127.0.0.1 with --nproc (default 29533)")
    args = p.parse_args(argv)
    if args.epochs < 2 or args.rounds < 1:
        p.error("--epochs must be >= 2 (the first epoch is not timed) and --rounds >= 1")
    if args.nproc > 1:
        return main_distributed(args)
    if args.cpu not in os.sched_getaffinity(0):
        p.error(f"--cpu {args.cpu}: allowed CPUs are {sorted(os.sched_getaffinity(0))}")
    os.sched_setaffinity(0, {args.cpu})  # before any thread starts, so all of them inherit it
    arena = one_malloc_arena()
    setup = load(args.config, args.sets)
    from rec_es import build_policy

    rec_es_settings = rec_es_modes(setup)
    from recbole.trainer import Trainer

    from rec_es.training.trainer import EarlyStoppingTrainer

    def stock(attach: Callable[..., Any], run_dir: Path) -> Fit:
        return make_fit(setup, args.epochs, attach, Trainer)

    class StockSubclass(Trainer):
        """Adds nothing to RecBole's Trainer: the same code, run by an object of another class."""

        def fit(self, *a: Any, **kw: Any) -> Any:
            return super().fit(*a, **kw)

    builders: dict[str, Callable[[Callable[..., Any], Path], Fit]] = {"stock": stock}
    if args.control:
        builders["stock (control)"] = stock
        builders["stock subclass"] = lambda attach, d: make_fit(setup, args.epochs, attach, StockSubclass)
    for mode, (settings, schedule) in rec_es_settings.items():
        builders[mode] = lambda attach, d, settings=settings, schedule=schedule: make_fit(
            setup, args.epochs, attach, EarlyStoppingTrainer, build_policy(settings), lr_schedule=schedule, run_dir=d)
    default_policy, default_schedule = rec_es_settings["rec_es default"]
    builders["rec_es default, no per-user"] = lambda attach, d: make_fit(  # the per-user sidecars' share
        setup, args.epochs, attach, EarlyStoppingTrainer, build_policy(default_policy), lr_schedule=default_schedule,
        run_dir=d, per_user_metrics=())
    if args.ranked:
        builders[f"rec_es default, ranked {args.ranked}"] = lambda attach, d: make_fit(  # the ranked lists' share
            setup, args.epochs, attach, EarlyStoppingTrainer, build_policy(default_policy),
            lr_schedule=default_schedule, run_dir=d, ranked_k=args.ranked)
    names = list(builders)
    wall: dict[str, list[float]] = {m: [] for m in names}
    round_wall: dict[str, list[float]] = {m: [] for m in names}  # per round: the mode's total / stock's
    round_cpu: dict[str, list[float]] = {m: [] for m in names}
    parts: dict[str, list[dict[str, float]]] = {m: [] for m in names}
    print(f"overhead benchmark: {setup.config['model']} on {setup.config['dataset']}, {args.rounds} rounds x "
          f"{args.epochs} epochs ({args.epochs - 1} timed) x {len(names)} modes, interleaved batch by batch, "
          f"{'a model per mode' if args.separate_models else 'one shared model'}; pinned to CPU {args.cpu}, "
          f"{'one malloc arena' if arena else 'default malloc arenas'}; {threads_line()}")
    default_settings = rec_es_settings["rec_es default"][0]
    print(f"default policy (time budget removed): {build_policy(default_settings).describe_monitor()} "
          f"{default_settings}")
    rng = random.Random(0)
    with scratch_cwd(setup) as tmp:
        for r in range(args.rounds):
            attach = trainer_factory(setup, args.separate_models)
            k = r % len(names)
            fits = [Turns(name, builders[name](attach, tmp / f"run-{r}-{name}")) for name in names[k:] + names[:k]]
            run_sliced(fits, rng)
            for turns in fits:
                if len(turns.wall) != args.epochs:
                    raise SystemExit(f"{turns.name} stopped after {len(turns.wall)} of {args.epochs} epochs; "
                                     "use fewer --epochs")
            by_name = {t.name: t for t in fits}
            for turns in fits:
                wall[turns.name] += turns.wall[1:]
                parts[turns.name] += turns.parts[1:]
                for clock, ratios in (("wall", round_wall), ("cpu", round_cpu)):
                    ratios[turns.name].append(sum(getattr(turns, clock)[1:]) / sum(getattr(by_name["stock"], clock)[1:]))
            for turns in sorted(fits, key=lambda t: names.index(t.name)):
                print(f"  round {r + 1} {turns.name:<28} wall s/epoch: " + " ".join(f"{t:.3f}" for t in turns.wall[1:]),
                      flush=True)
        added = added_work_ms(setup, tmp)
    print(f"\nratio of each round's total epoch time to stock's in the same round; mean over the {args.rounds} "
          "rounds with its 95 % t-interval (a round is the unit: a fit's epochs share its thread and run together)")
    print(f"{'mode':<29}{'median s/epoch':>15}" + "".join(f"{f'round {r + 1}':>9}" for r in range(args.rounds))
          + f"{'mean':>9}{'95 % interval':>17}{'cpu mean':>10}")
    worst = 0.0
    for mode in names:
        mean, lo, hi = mean_interval(round_wall[mode])
        if mode.startswith("rec_es"):
            worst = max(worst, hi if args.rounds > 1 else mean)
        print(f"{mode:<29}{median(wall[mode]):>15.3f}" + "".join(f"{x:>9.4f}" for x in round_wall[mode])
              + f"{mean:>9.4f}{f'{lo:.4f}-{hi:.4f}':>17}{statistics.fmean(round_cpu[mode]):>10.4f}")
    print(f"target <= 1.01: {'met' if worst <= 1.01 else 'NOT met'} "
          f"(highest {'upper bound' if args.rounds > 1 else 'mean'} of a rec_es mode: {worst:.4f})")
    if "stock subclass" in names:
        print("ratio to the stock subclass instead (both are Trainer subclasses, so only rec_es's own work differs): "
              + "; ".join(f"{m} {_interval_text([a / b for a, b in zip(round_wall[m], round_wall['stock subclass'])])}"
                          for m in names if m.startswith("rec_es")))
    with_users, without = round_wall["rec_es default"], round_wall["rec_es default, no per-user"]
    print("per-user scores' share (rec_es default against the same without per-user capture and sidecars, issue "
          f"12's target <= 1.01): {_interval_text([a / b for a, b in zip(with_users, without)])}")
    base = median(wall["stock"])
    print("\nwhere the time goes, median ms per epoch (start: epoch start to first batch; train: RecBole's training "
          "loop; to eval: end of the training epoch and scoring; end: last scoring batch to the callback, where the "
          "stopping decision, trace and checkpoints are)")
    print(f"{'mode':<29}" + "".join(f"{p:>12}" for p in PARTS) + f"{'start+end minus stock':>24}{'% of an epoch':>15}")
    own = {m: median([e["start"] + e["end"] for e in parts[m]]) for m in names}
    for mode in names:
        cells = "".join(f"{median([e[p] for e in parts[mode]]) * 1000:>12.1f}" for p in PARTS)
        extra = own[mode] - own["stock"]
        print(f"{mode:<29}{cells}{extra * 1000:>+24.1f}{extra / base * 100:>+15.3f}")
    print("\nwork rec_es adds per epoch, timed alone (median ms):")
    for name, ms in added.items():
        print(f"  {name:<40}{ms:>9.2f} ms")
    per_epoch = added["trace record + fsync (incl. update)"] + added["in-memory best snapshot"] + added["last.pth atomic save"]
    print(f"  every epoch (record + snapshot + last.pth; best.pth only on improvements): {per_epoch:.1f} ms = "
          f"{per_epoch / 1000 / base * 100:.2f} % of a {base:.2f} s stock epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
