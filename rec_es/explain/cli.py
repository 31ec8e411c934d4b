"""``rec-es explain RUN [--json] [--plot PATH] [--policies FILE...]``: the command line of ``rec_es.explain``."""
from __future__ import annotations

import argparse
import json
import sys

from rec_es.errors import ConfigError, RecEsError
from rec_es.explain.counterfactual import read_policy_file
from rec_es.explain.figure import plot
from rec_es.explain.render import render_text
from rec_es.explain.report import explain
from rec_es.trace import jsonable


def main(argv: list[str] | None = None) -> int:
    """``rec-es explain RUN [--json] [--plot PATH] [--policies FILE...]``; 0 ok, 1 RUN unreadable, 2 bad policy file."""
    parser = argparse.ArgumentParser(prog="rec-es explain", description="Explain why a run stopped: a rec_es run "
                                     "directory or a stock RecBole log file.")
    parser.add_argument("run", metavar="RUN", help="rec_es run directory, trace.jsonl, or RecBole log file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the monitor curve to PATH")
    parser.add_argument("--policies", nargs="+", default=[], metavar="FILE",
                        help="extra policy files to replay (property files with early_stopping:)")
    args = parser.parse_args(argv)
    try:
        extra = [read_policy_file(f) for f in args.policies]
    except ConfigError as exc:
        print(f"rec-es explain: error: {exc}", file=sys.stderr)
        return 2
    try:
        report = explain(args.run, extra)
    except RecEsError as exc:
        print(f"rec-es explain: error: {exc}", file=sys.stderr)
        return 1
    if args.plot:
        report["plot"] = str(plot(report, args.plot))
    print(json.dumps(jsonable(report), indent=2, allow_nan=False) if args.json else render_text(report))
    if args.plot and not args.json:
        print(f"\nplot: {report['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
