"""``rec-es explain RUN [--json] [--plot PATH] [--policies FILE...] [--probe N [--probe-dir DIR] [--set K=V...]]``:
the command line of ``rec_es.explain``."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rec_es.policy.errors import ConfigError, RecEsError
from rec_es.explain.counterfactual import read_policy_file
from rec_es.explain.figure import plot
from rec_es.explain.render import render_text
from rec_es.explain.report import explain
from rec_es.rundir.paths import check_output_file
from rec_es.rundir.trace import jsonable


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rec-es explain``."""
    parser = argparse.ArgumentParser(prog="rec-es explain", description="Explain why a run stopped: a rec_es run "
                                     "directory or a stock RecBole log file.")
    parser.add_argument("run", metavar="RUN", help="rec_es run directory, trace.jsonl, or RecBole log file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the monitor curve to PATH")
    parser.add_argument("--policies", nargs="+", default=[], metavar="FILE",
                        help="extra policy files to replay (property files with early_stopping:)")
    parser.add_argument("--probe", metavar="N", default=None,
                        help="continue the run N more epochs from its last checkpoint with stopping off, into a new "
                             "directory, and measure whether the monitor beats its best by more than its noise")
    parser.add_argument("--probe-dir", metavar="DIR", default=None,
                        help="the probe's run directory (default: RUN-probeN beside the run; must be new or empty)")
    parser.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="with --probe on a stock RecBole log: the checkpoint RecBole saved (default: the file the "
                             "log's 'Saving current' lines name)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="with --probe: override a key of the run's config (e.g. --set data_path=DIR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``rec-es explain RUN ...``; 0 ok, 1 RUN unreadable (not a trace or log) or a probe that failed while
    training, 2 bad input (a bad policy file or --plot path, a RUN that is not UTF-8 text, a probe that cannot
    start: bad N, no checkpoint, a damaged last.pth, a probe directory in use, data not found), nothing written."""
    args = build_parser().parse_args(argv)
    try:
        plot_path = check_output_file(args.plot, "--plot") if args.plot else None
        extra = [read_policy_file(f) for f in args.policies]
        n = _probe_epochs(args)
    except ConfigError as exc:
        return _error(exc, 2)
    try:
        report = explain(args.run, extra)
    except ConfigError as exc:  # RUN's bytes are not UTF-8 text, or the like: bad input
        return _error(exc, 2)
    except RecEsError as exc:
        return _error(exc, 1)
    if n is not None:
        status = _probe(args, n, report, extra)
        if status:
            return status
    if plot_path is not None:
        try:
            report["plot"] = str(plot(report, plot_path))
        except OSError as exc:
            print(f"rec-es explain: error: --plot: cannot write {plot_path} ({exc.strerror or exc})", file=sys.stderr)
            return 2
    print(json.dumps(jsonable(report), indent=2, allow_nan=False) if args.json else render_text(report))
    if args.plot and not args.json:
        print(f"\nplot: {report['plot']}")
    return 0


def _error(exc: Exception, status: int) -> int:
    print(f"rec-es explain: error: {exc}", file=sys.stderr)
    return status


def _probe_epochs(args: argparse.Namespace) -> int | None:
    from rec_es.training.probe import check_epochs

    if args.probe is None:
        for given, option in ((args.probe_dir, "--probe-dir"), (args.overrides, "--set"),
                              (args.checkpoint, "--checkpoint")):
            if given:
                raise ConfigError("goes with --probe N (it configures the probe's continuation)", source=option)
        return None
    return check_epochs(args.probe)


def _probe(args: argparse.Namespace, n: int, report: dict[str, Any], extra: list[Any]) -> int:
    """Check, train and measure the probe; report["probe"] on success. 0, or the exit status of a failure."""
    from rec_es.config.properties import parse_set_args
    from rec_es.explain.probe import probe_report
    from rec_es.rundir.paths import atomic_write
    from rec_es.training.probe import check_probe, run_probe

    stock = report["kind"] == "recbole_log"
    try:
        if stock:
            plan = _stock_plan(args, n, report)
        elif args.checkpoint is not None:
            raise ConfigError("goes with a stock RecBole log; a rec_es run continues from its own last.pth",
                              source="--checkpoint")
        else:
            plan = check_probe(args.run, n, args.probe_dir, parse_set_args(args.overrides))
    except ConfigError as exc:
        return _error(exc, 2)
    what = f"RecBole's checkpoint {plan.origin.path} (its best epoch)" if stock else str(plan.run_dir)
    print(f"rec-es explain: probing: continuing {what} from epoch {plan.stop_epoch + 1} for {n} epochs "
          f"with stopping off, into {plan.probe_dir}", file=sys.stderr)
    try:
        summary = run_probe(plan, progress=True)
        report["probe"] = probe_report(report, plan.probe_dir, n, summary["probe_seconds"], extra,
                                       stop_epoch=plan.stop_epoch, from_checkpoint=stock)
    except RecEsError as exc:
        return _error(exc, 2 if isinstance(exc, ConfigError) else 1)
    atomic_write(plan.probe_dir / "probe.json",
                 (json.dumps(jsonable({"probe_of": str(plan.run_dir), **report["probe"]}), indent=2,
                             allow_nan=False) + "\n").encode())
    return 0


def _stock_plan(args: argparse.Namespace, n: int, report: dict[str, Any]) -> Any:
    """The checked probe of a stock RecBole log: the checkpoint it names (or --checkpoint), from its best epoch."""
    from rec_es.config.properties import parse_set_args
    from rec_es.recbole_log import parse_recbole_log
    from rec_es.training.probe import check_stock_probe

    log = parse_recbole_log(args.run)
    saved = [e.epoch for e in log.evaluations if e.saved]
    return check_stock_probe(args.run, n, model=log.model, dataset=log.dataset, saved_epoch=saved[-1] if saved
                             else None, named=log.checkpoint, monitor=report["monitor"], checkpoint=args.checkpoint,
                             probe_dir=args.probe_dir, overrides=parse_set_args(args.overrides))


if __name__ == "__main__":
    sys.exit(main())
