#!/usr/bin/env python
"""Instructions per epoch of EarlyStoppingTrainer vs RecBole's stock Trainer, counted by valgrind's callgrind.

    python scripts/bench_instructions.py [--config FILE ...] [--set key=value ...] [--epochs 2]

Wall-clock time resolves about 1 % here (bench_overhead.py: even a Trainer subclass that adds nothing measures
up to 1.5 % off stock in a round). Callgrind counts the instructions the process executes in user space, which
repeat from one fit to the next to within a few in 100,000, so it shows exactly how much work rec_es adds to an
epoch. The script runs itself under ``valgrind --tool=callgrind --instr-atstart=no`` (one torch thread, fixed
hash seed). The fits run one after the other, each on a freshly seeded model: ``stock`` (RecBole's
``Trainer.fit``, saved=True as run_recbole does), ``rec_es default`` (the config's policy without its time
budget), ``rec_es richest`` (bench_overhead.py's composite + EMA + GL + dynamic patience + LR schedule) and
``stock (control)`` (stock again: the counts' resolution). Both rec_es modes write the full run directory
(trace.jsonl, best.pth, last.pth with fsync). A small C helper, compiled here from valgrind's ``callgrind.h``,
switches counting on at the end of each fit's first epoch and reads the count at the end of every later epoch.

Default data: ``datasets/ml-100k-tiny`` with make run's GRU4Rec config. Its epochs do about 8 times less
training work than ml-100k's while rec_es's per-epoch work (a policy update, a trace line, the best snapshot
and last.pth) stays the same, so the ratio printed is an upper bound for ml-100k. Kernel time (file writes,
fsync) is not counted; bench_overhead.py times that work alone. Needs valgrind and a C compiler
(Debian: apt-get install valgrind gcc). About 45 minutes here with the defaults: the tiny epochs run
about 600 times slower under valgrind.

``--workload trivial`` replaces the fits by a pure-Python loop per epoch (no torch, no RecBole): the rec_es modes
loop ``TRIVIAL_EXTRA`` more times than stock, so the printed ratios are known in advance. It runs the whole
counting pipeline (helper, valgrind, client requests, dumps, report) in seconds; the test suite runs it, the full
count runs only from this script.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from benchlib import DEFAULT_CONFIG, load, rec_es_modes, scratch_cwd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETS = [f"data_path={REPO / 'datasets'}", "dataset=ml-100k-tiny"]
MODES = ("stock", "rec_es default", "rec_es richest", "stock (control)")
HELPER_C = """#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void cg_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""
LABEL = re.compile(r"^desc: Trigger: Client Request: (?P<mode>.+)\|(?P<epoch>\d+)$")
#: --workload trivial: loop iterations per epoch for stock, and each mode's extra work as a fraction of it
TRIVIAL_LOOPS = 100_000
TRIVIAL_EXTRA = {"stock": 0.0, "rec_es default": 0.005, "rec_es richest": 0.02, "stock (control)": 0.0}


class BenchError(Exception):
    """A tool the benchmark needs is missing or failed; the message says what to install or read."""


def build_helper(directory: Path) -> Path:
    """Compile the callgrind client-request helper into ``directory``; returns the shared library."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise BenchError("no C compiler found (looked for $CC, cc and gcc): install one, e.g. apt-get install gcc")
    source, lib = directory / "cg_helper.c", directory / "libcg_helper.so"
    source.write_text(HELPER_C)
    done = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(source)], capture_output=True, text=True)
    if done.returncode != 0:
        hint = " (valgrind/callgrind.h missing: apt-get install valgrind)" if "callgrind.h" in done.stderr else ""
        raise BenchError(f"compiling the callgrind helper with {cc} failed{hint}:\n{done.stderr.strip()}")
    return lib


def read_counts(directory: Path) -> dict[str, dict[int, int]]:
    """Instruction counts per mode and epoch from the callgrind dumps in ``directory`` (``callgrind.out.N``)."""
    counts: dict[str, dict[int, int]] = {}
    for path in sorted(directory.glob("callgrind.out.*")):
        label = total = None
        for line in path.read_text(errors="replace").splitlines():
            if m := LABEL.match(line):
                label = (m["mode"], int(m["epoch"]))
            elif line.startswith("totals:"):
                total = int(line.split()[1])
        if label is not None and total is not None:
            counts.setdefault(label[0], {})[label[1]] = total
    return counts


def report(counts: dict[str, dict[int, int]]) -> list[str]:
    """The table: instructions per epoch (mean over counted epochs), ratio and extra work vs ``stock``."""
    missing = [m for m in MODES if not counts.get(m)]
    if missing:
        raise BenchError(f"no instruction counts for {', '.join(missing)}: the fits did not reach a second epoch")
    per_epoch = {m: statistics.fmean(counts[m].values()) for m in MODES}
    base = per_epoch["stock"]
    lines = [f"{'mode':<17}{'epochs':>7}{'instructions/epoch':>20}{'ratio to stock':>16}{'extra/epoch':>14}"]
    for mode in MODES:
        extra = per_epoch[mode] - base
        lines.append(f"{mode:<17}{len(counts[mode]):>7}{per_epoch[mode] / 1e9:>18.4f} G{per_epoch[mode] / base:>16.5f}"
                     f"{extra / 1e6:>+12.2f} M")
    control = per_epoch["stock (control)"] / base
    lines.append(f"resolution: the two stock fits differ by {abs(control - 1) * 100:.4f} % "
                 f"({'within' if abs(control - 1) < 0.001 else 'NOT within'} the 0.1 % the method needs)")
    worst = max(per_epoch[m] / base for m in MODES if m.startswith("rec_es"))
    lines.append(f"target <= 1.01: {'met' if worst <= 1.01 else 'NOT met'} (highest rec_es ratio: {worst:.5f})")
    return lines


def counter(helper: Any, mode: str, epochs: int) -> Callable[[int, Any], None]:
    """The evaluation callback of one fit: counting starts at the end of epoch 0; every later epoch is dumped."""

    def count(epoch: int, score: Any) -> None:
        if epoch == 0:
            helper.cg_start()
            return
        helper.cg_dump(f"{mode}|{epoch}".encode())
        if epoch == epochs - 1:
            helper.cg_stop()

    return count


def trivial_fit(mode: str, epochs: int, count: Callable[[int, Any], None]) -> None:
    """A pure-Python "fit" whose epochs loop TRIVIAL_LOOPS x (1 + TRIVIAL_EXTRA[mode]) times."""
    loops = round(TRIVIAL_LOOPS * (1 + TRIVIAL_EXTRA[mode]))
    for epoch in range(epochs):
        total = 0
        for i in range(loops):
            total += i * i
        count(epoch, total)


def inner(args: argparse.Namespace) -> None:
    """Under valgrind: run the fits one after the other, counting from the end of each fit's first epoch."""
    helper = ctypes.CDLL(args.helper)
    if args.workload == "trivial":
        for mode in MODES:
            trivial_fit(mode, args.epochs, counter(helper, mode, args.epochs))
            print(f"  {mode}: counted {args.epochs - 1} epoch(s)", flush=True)
        return
    setup = load(args.config, args.sets)
    setup.config.final_config_dict.update(epochs=args.epochs, stopping_step=10_000)
    from recbole.trainer import Trainer

    from rec_es import build_policy
    from rec_es.training.trainer import EarlyStoppingTrainer

    build: dict[str, Callable[[Any, Path], Any]] = {"stock": lambda model, d: Trainer(setup.config, model)}
    for mode, (settings, schedule) in rec_es_modes(setup).items():
        build[mode] = lambda model, d, settings=settings, schedule=schedule: EarlyStoppingTrainer(
            setup.config, model, build_policy(settings), lr_schedule=schedule, run_dir=d)
    build["stock (control)"] = build["stock"]
    with scratch_cwd(setup) as tmp:
        for mode in MODES:
            trainer = build[mode](setup.fresh_model(), tmp / f"run-{mode.replace(' ', '-')}")
            trainer.fit(setup.train_data, setup.valid_data, verbose=False, saved=True,
                        callback_fn=counter(helper, mode, args.epochs))
            print(f"  {mode}: counted {args.epochs - 1} epoch(s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", nargs="+", default=[DEFAULT_CONFIG], metavar="FILE")
    p.add_argument("--set", dest="sets", action="append", default=None, metavar="KEY=VALUE",
                   help="config overrides (default: " + " ".join(f"--set {s}" for s in DEFAULT_SETS) + ")")
    p.add_argument("--epochs", type=int, default=2, help="epochs per fit; all but the first are counted (default 2)")
    p.add_argument("--workload", choices=("recbole", "trivial"), default="recbole",
                   help="recbole: the fits (default); trivial: a pure-Python loop per epoch whose ratios are known, "
                        "to check the counting pipeline in seconds")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--helper", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sets is None:
        args.sets = list(DEFAULT_SETS)
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is not counted)")
    if args.inner:
        inner(args)
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise BenchError("valgrind not found on PATH: install it (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="rec_es_instr_") as tmp:
        out = Path(tmp)
        helper = build_helper(out)
        cmd = [valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out / 'callgrind.out'}",
               sys.executable, str(Path(__file__).resolve()), "--inner", "--helper", str(helper),
               "--epochs", str(args.epochs), "--workload", args.workload, "--config", *args.config]
        for s in args.sets:
            cmd += ["--set", s]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        what = (f"config {' '.join(args.config)} {' '.join(args.sets)}" if args.workload == "recbole" else
                f"trivial workload (a Python loop of {TRIVIAL_LOOPS} iterations per epoch, rec_es modes "
                + ", ".join(f"+{TRIVIAL_EXTRA[m] * 100:g} %" for m in MODES if m.startswith("rec_es")) + ")")
        print(f"instruction counts: {', '.join(MODES)}, {args.epochs} epochs each ({args.epochs - 1} counted), "
              f"{what}; under callgrind{', one torch thread' if args.workload == 'recbole' else ''}", flush=True)
        done = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise BenchError(f"the fits under valgrind failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        counts = read_counts(out)
    print("\ninstructions executed in user space per epoch (everything after the first epoch, to each evaluation's "
          "callback), mean over the counted epochs")
    for line in report(counts):
        print(line)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench_instructions: {exc}")
