"""``rec-es tune``: a hyper-parameter search on Ray Tune with a rec_es stopping policy in every trial.

    rec-es tune --config properties/gru4rec_ml100k.yaml --space properties/hyper.test --trials 8
                [--scheduler asha|none] [--grace-period EPOCHS] [--reduction-factor F] [--ray [ADDRESS]]
                [--jobs N] [--output DIR] [--set KEY=VALUE ...]

What a search does and writes: ``rec_es.tune.search``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from rec_es.cli import refuse_nproc
from rec_es.config.properties import parse_set_args
from rec_es.policy.errors import ConfigError, RecEsError, report
from rec_es.tune.search import GRACE_PERIOD, REDUCTION_FACTOR, Asha, TrialRow, search


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rec-es tune``."""
    p = argparse.ArgumentParser(prog="rec-es tune", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="+", required=True, metavar="FILE", help="RecBole property files, merged in order")
    p.add_argument("--space", required=True, metavar="SPACE", help="RecBole hyper-parameter file (name type value)")
    p.add_argument("--trials", type=int, default=None, metavar="N",
                   help="trials to sample (default for an all-choice space: every combination once)")
    p.add_argument("--scheduler", default="asha", choices=("asha", "none"),
                   help="asha: stop trials whose validation lags (default); none: run every trial to its own stop")
    p.add_argument("--grace-period", type=int, default=GRACE_PERIOD, metavar="EPOCHS",
                   help=f"ASHA: epochs before a trial is first compared (default {GRACE_PERIOD}; see docs/ray.md)")
    p.add_argument("--reduction-factor", type=float, default=REDUCTION_FACTOR, metavar="F",
                   help=f"ASHA: rungs at grace x F^k epochs, top 1/F go on (default {REDUCTION_FACTOR})")
    p.add_argument("--ray", nargs="?", const="local", default="local", metavar="ADDRESS",
                   help="Ray to run on: local (default: a local instance), auto, HOST:PORT or ray://HOST:PORT")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="trials at a time, the cluster's CPUs shared between them (default: one CPU per trial)")
    p.add_argument("--output", type=Path, default=None, metavar="DIR", help="default runs/tune-<time>")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a RecBole key for every trial (value read as YAML)")
    p.add_argument("--nproc", type=int, default=None, help=argparse.SUPPRESS)  # refused with a sentence below
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rec-es tune``; 0, 2 on bad input, 1 on another rec_es error, 130 on Ctrl-C."""
    args = build_parser().parse_args(argv)
    try:
        if args.nproc is not None:
            refuse_nproc("tune", "runs every trial in one process (Ray places the trials on its workers)")
        if args.jobs is not None and args.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1 (got {args.jobs})", source="--jobs")
        asha = Asha(args.grace_period, args.reduction_factor)
        table, best, out = search(args.config, args.space, trials=args.trials, scheduler=args.scheduler,
                                  ray_address=args.ray, output=args.output, overrides=parse_set_args(args.overrides),
                                  jobs=args.jobs, asha=asha, log=lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt as exc:
        where = exc.args[0] if exc.args else "the --output directory"
        print(f"rec-es tune: interrupted; finished trials are kept in {where}/trials.csv and {where}/trials/. "
              "Re-run the command with a new --output to search again", file=sys.stderr)
        return 130
    except RecEsError as exc:  # ConfigError: bad input, exit 2
        return report("rec-es tune", exc)
    for r in table:
        print(f"{r.trial}  {json.dumps(r.params, default=str)}  best {r.best_valid_score}  "
              f"epoch {r.best_epoch}  {_stopped(r)}")
    if best is None:
        print(f"no trial finished; see {out}/trials.csv", file=sys.stderr)
        return 1
    print(f"best: {best.trial} {json.dumps(best.params, default=str)} valid {best.best_valid_score} "
          f"test {json.dumps(best.test_result)}; wrote {out}/trials.csv, {out}/best.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def _stopped(row: TrialRow) -> str:
    """``policy: patience``, ``budget: max_epochs``, ``scheduler cut it at epoch 3``, ``failed``."""
    if row.stopped_by == "scheduler":
        return f"scheduler cut it at epoch {row.stop_epoch}"
    return row.stopped_by if row.stopped_by == row.stop_reason else f"{row.stopped_by}: {row.stop_reason}"
