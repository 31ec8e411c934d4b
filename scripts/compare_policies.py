#!/usr/bin/env python
"""Compare stopping policies over seeds: replayed on recorded traces, trained live where they change training.

    python scripts/compare_policies.py --config properties/gru4rec_ml100k.yaml \
        --policies properties/policies/*.yaml --seeds 3 [--max-epochs N] [--output DIR] [--replay-only]

Same as `rec-es compare`; see `--help`.
"""
import sys

from rec_es.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))  # through rec-es: same exit codes and pipe handling
