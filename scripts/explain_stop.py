#!/usr/bin/env python
"""Explain why a training run stopped: a rec_es run directory or a stock RecBole log file.

    python scripts/explain_stop.py RUN [--json] [--plot PATH] [--policies FILE ...]

Same as `rec-es explain`; see `--help`.
"""
import sys

from rec_es.cli import main

if __name__ == "__main__":
    sys.exit(main(["explain", *sys.argv[1:]]))  # through rec-es: same exit codes and pipe handling
