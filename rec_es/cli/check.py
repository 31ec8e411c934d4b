"""``rec-es check CONFIG... [--set KEY=VALUE ...] [--json]``: lint RecBole + rec_es property files before training (``rec_es.config.lint``)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from rec_es.config.lint import format_report, lint_files
from rec_es.config.properties import parse_set_args
from rec_es.policy.errors import ConfigError, report


def main(argv: list[str] | None = None) -> int:
    """``rec-es check CONFIG... [--set KEY=VALUE ...] [--json]``: 1 if any error, else 0."""
    parser = argparse.ArgumentParser(prog="rec-es check", description="Lint RecBole + rec_es property files "
                                     "(merged in order, like RecBole) before training.")
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="property files, later ones override earlier")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key as rec-es run --set does (value read as YAML; dotted keys edit one "
                             "key of a mapping)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    try:
        overrides = parse_set_args(args.overrides)
    except ConfigError as exc:
        return report("rec-es check", exc)
    findings = lint_files(args.configs, overrides)
    if args.json:
        print(json.dumps({"files": args.configs, "findings": [asdict(f) for f in findings],
                          "errors": sum(f.level == "error" for f in findings)}, indent=2))
    else:
        print(format_report(findings, args.configs))
    return 1 if any(f.level == "error" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
