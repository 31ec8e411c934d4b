#!/usr/bin/env python
"""Print, write or check the `early_stopping:` key reference table generated from the rule registry.

    python scripts/keys_table.py                             # print the table
    python scripts/keys_table.py --write docs/properties.md  # replace it between the keys-table markers
    python scripts/keys_table.py --check docs/properties.md  # exit 1 if it is stale
"""
import sys

from rec_es.policy.schema import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
