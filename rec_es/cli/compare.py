"""``rec-es compare`` / ``scripts/compare_policies.py``: stopping policies over several seeds, replayed and live.

The command line of ``rec_es.compare``: arguments, exit status, and the files written into ``--output``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from rec_es.cli import refuse_nproc
from rec_es.compare.cache import DEFAULT_CACHE
from rec_es.compare.comparison import Comparison, compare
from rec_es.compare.figure import plot
from rec_es.compare.table import markdown, rows, write_runs_csv, write_table_csv
from rec_es.config.properties import parse_set_args
from rec_es.policy.errors import ConfigError, RecEsError, report
from rec_es.rundir.paths import check_output_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rec-es compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="+", required=True, metavar="FILE", help="RecBole property files, merged in order")
    p.add_argument("--policies", nargs="+", required=True, metavar="FILE",
                   help="policy files (early_stopping:/lr_schedule:); each row is named after its file stem")
    p.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="number of seeds, starting at the config's seed (RecBole default 2020) (default 3)")
    p.add_argument("--max-epochs", type=int, default=None, metavar="N",
                   help="epoch budget of every run (default: the config's epochs)")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="where table.csv, runs.csv, table.md, compare.png go (default runs/compare-<time>)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                   help=f"trace cache (default {DEFAULT_CACHE})")
    p.add_argument("--replay-only", action="store_true",
                   help="never train a policy live; a policy that changes training is then an error")
    p.add_argument("--refresh-cache", action="store_true",
                   help="re-record a corrupted cache entry instead of stopping with an error")
    p.add_argument("--oracle-monitor", default=None, metavar="METRIC",
                   help="metric that picks the oracle's best epoch (default: the config's valid_metric)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a RecBole key for every run (value read as YAML)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="train N runs at once in worker processes, CPU threads split between them (default 1)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="train runs as Ray tasks: local (the default value: a local instance with --jobs CPUs), "
                        "auto, HOST:PORT or ray://HOST:PORT of a running cluster; --jobs N runs share its CPUs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, default=None, help=argparse.SUPPRESS)  # refused with a sentence below
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rec-es compare``; returns 0, 2 on bad input, 1 on another rec_es error."""
    args = build_parser().parse_args(argv)
    started = time.time()
    out = args.output or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        if args.nproc is not None:
            refuse_nproc("compare", "runs every job in one process (locally or as Ray tasks with --ray)")
        if args.max_epochs is not None and args.max_epochs < 1:
            raise ConfigError(f"--max-epochs must be >= 1 (got {args.max_epochs})", source="--max-epochs")
        check_output_dir(out, "--output")  # before anything trains: a comparison never ends in a traceback here
        check_output_dir(args.cache_dir, "--cache-dir")
        c = compare(args.config, args.policies, seeds=args.seeds, max_epochs=args.max_epochs,
                    cache_dir=args.cache_dir, replay_only=args.replay_only, refresh_cache=args.refresh_cache,
                    oracle_monitor=args.oracle_monitor, overrides=parse_set_args(args.overrides),
                    progress=not args.no_progress, n_jobs=args.jobs, ray_address=args.ray,
                    log=lambda m: print(m, file=sys.stderr))
    except RecEsError as exc:  # ConfigError: bad input, exit 2
        return report("rec-es compare", exc)
    try:
        write_outputs(c, out, argv if argv is not None else sys.argv[1:])
    except OSError as exc:  # e.g. the disk filled up; the recorded traces are cached, a rerun replays them
        print(f"rec-es compare: error: cannot write the results to {out} ({exc.strerror or exc}); the traces are "
              f"cached, so running the same command again does not retrain", file=sys.stderr)
        return 1
    print(markdown(rows(c)))
    print(f"\nbudget {c.budget} epochs, seeds {', '.join(map(str, c.seeds))}; oracle = best valid {c.monitor} epoch. "
          f"Wrote {out}/table.csv, runs.csv, table.md, compare.png in {time.time() - started:.1f} s.")
    return 0


def write_outputs(c: Comparison, out: Path, argv: Sequence[str]) -> None:
    """table.csv, runs.csv, table.md (with the command) and compare.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = rows(c)
    write_table_csv(table, out / "table.csv")
    write_runs_csv(c, out / "runs.csv")
    (out / "table.md").write_text(f"`rec-es compare {' '.join(argv)}`\n\n{markdown(table)}\n", encoding="utf-8")
    plot(c, out / "compare.png")


if __name__ == "__main__":
    raise SystemExit(main())
