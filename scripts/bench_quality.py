#!/usr/bin/env python
"""Epochs and time to quality: each policy against RecBole's default rule and the oracle, over seeds.

    python scripts/bench_quality.py --from docs/results/compare      # a finished comparison's table.csv
    python scripts/bench_quality.py --config properties/gru4rec_ml100k.yaml \
        --policies properties/policies/*.yaml --seeds 3 --max-epochs N [--cache-dir DIR]

Either reads the ``table.csv`` that ``scripts/compare_policies.py`` wrote, or runs that comparison (with
its trace cache filled this takes seconds; without it, it records first). Prints, per policy: epochs and
wall time used (mean over seeds), both as a ratio to RecBole's default (``recbole_legacy``: stopping_step
10 on MRR@10) and to training the whole budget, test NDCG@10 as a ratio to the oracle (best validation
epoch of the full run), and how many seeds stopped before the oracle's epoch.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from rec_es.compare import DEFAULT_CACHE


def from_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["policy"]: row for row in csv.DictReader(fh)}


def from_compare(args: argparse.Namespace, out: Path) -> dict[str, dict[str, str]]:
    from rec_es.compare import compare, rows, write_table_csv

    c = compare(args.config, args.policies, seeds=args.seeds, max_epochs=args.max_epochs, cache_dir=args.cache_dir,
                progress=True, log=lambda m: print(m, file=sys.stderr))
    write_table_csv(rows(c), out)
    return from_csv(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", type=Path, default=None, metavar="DIR",
                   help="output directory of a finished comparison (reads its table.csv)")
    p.add_argument("--config", nargs="+", default=None, metavar="FILE")
    p.add_argument("--policies", nargs="+", default=None, metavar="FILE")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--baseline", default="recbole_legacy", help="policy (file stem) to compare against")
    args = p.parse_args(argv)
    if args.source is not None:
        table = from_csv(args.source / "table.csv")
    elif args.config and args.policies:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            table = from_compare(args, Path(tmp) / "table.csv")
    else:
        p.error("give --from DIR, or --config and --policies")
    if args.baseline not in table or "oracle" not in table:
        print(f"bench_quality: baseline {args.baseline!r} (and the oracle row) must be in the table; it has "
              f"{', '.join(table)}", file=sys.stderr)
        return 2

    def num(row: dict[str, str], key: str) -> float:
        return float(row[key]) if row.get(key) not in (None, "") else float("nan")

    base, full = table[args.baseline], table["oracle"]
    print(f"epochs and time to quality, mean over {full['seeds']} seeds; baseline {args.baseline}, "
          f"'full' = training the whole budget ({num(full, 'epochs_trained_mean'):.0f} epochs)")
    print(f"{'policy':<22}{'how':<8}{'epochs':>8}{'/base':>7}{'/full':>7}{'wall s':>9}{'/base':>7}{'/full':>7}"
          f"{'NDCG@10':>9}{'/oracle':>9}{'premature':>11}")
    for name, r in table.items():
        ep, wall = num(r, "epochs_trained_mean"), num(r, "wall_seconds_mean")
        print(f"{name:<22}{r['how']:<8}{ep:>8.1f}{ep / num(base, 'epochs_trained_mean'):>7.2f}"
              f"{ep / num(full, 'epochs_trained_mean'):>7.2f}{wall:>9.0f}{wall / num(base, 'wall_seconds_mean'):>7.2f}"
              f"{wall / num(full, 'wall_seconds_mean'):>7.2f}{num(r, 'test_ndcg@10_mean'):>9.4f}"
              f"{num(r, 'ndcg@10_over_oracle_mean'):>9.3f}{r['premature']:>9}/{r['seeds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
