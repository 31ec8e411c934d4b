"""``rec-es explain RUN [--json] [--plot PATH] [--policies FILE...]``: the command line of ``rec_es.explain``."""
from __future__ import annotations

import argparse
import json
import sys

from rec_es.policy.errors import ConfigError, RecEsError
from rec_es.explain.counterfactual import read_policy_file
from rec_es.explain.figure import plot
from rec_es.explain.render import render_text
from rec_es.explain.report import explain
from rec_es.rundir.paths import check_output_file
from rec_es.rundir.trace import jsonable


def main(argv: list[str] | None = None) -> int:
    """``rec-es explain RUN [--json] [--plot PATH] [--policies FILE...]``; 0 ok, 1 RUN unreadable (not a trace or log),
    2 bad input: a bad policy file or --plot path, or a RUN that is not UTF-8 text."""
    parser = argparse.ArgumentParser(prog="rec-es explain", description="Explain why a run stopped: a rec_es run "
                                     "directory or a stock RecBole log file.")
    parser.add_argument("run", metavar="RUN", help="rec_es run directory, trace.jsonl, or RecBole log file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the monitor curve to PATH")
    parser.add_argument("--policies", nargs="+", default=[], metavar="FILE",
                        help="extra policy files to replay (property files with early_stopping:)")
    args = parser.parse_args(argv)
    try:
        plot_path = check_output_file(args.plot, "--plot") if args.plot else None
        extra = [read_policy_file(f) for f in args.policies]
    except ConfigError as exc:
        print(f"rec-es explain: error: {exc}", file=sys.stderr)
        return 2
    try:
        report = explain(args.run, extra)
    except ConfigError as exc:  # RUN's bytes are not UTF-8 text, or the like: bad input
        print(f"rec-es explain: error: {exc}", file=sys.stderr)
        return 2
    except RecEsError as exc:
        print(f"rec-es explain: error: {exc}", file=sys.stderr)
        return 1
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


if __name__ == "__main__":
    sys.exit(main())
