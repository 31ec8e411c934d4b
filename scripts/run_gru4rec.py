#!/usr/bin/env python
"""Train GRU4Rec (or any base-Trainer RecBole model) with a rec_es stopping policy.

    python scripts/run_gru4rec.py --config properties/gru4rec_ml100k.yaml [more.yaml ...]
        [--set key=value ...] [--output-dir DIR] [--resume RUN_DIR]

Same as `rec-es run`; see `--help`.
"""
import sys

from rec_es.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))  # through rec-es: same exit codes and pipe handling
