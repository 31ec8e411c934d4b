"""The comparison table: one row per policy (and the oracle), mean and std over seeds; Markdown and CSV."""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rec_es.compare.comparison import Comparison
from rec_es.compare.specs import QUALITY
from rec_es.replay import ReplayResult


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> "Stat":
        xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not xs:
            return cls(None, None)
        return cls(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)

    def fmt(self, digits: int) -> str:
        if self.mean is None:
            return "n/a"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass(frozen=True)
class Row:
    """One line of the table: a policy (or the oracle) summarised over seeds."""

    policy: str
    how: str
    epochs: Stat
    saved: Stat
    best_epoch: Stat
    ndcg: Stat
    recall: Stat
    ratio: Stat
    wall: Stat
    premature: int
    n: int
    note: str


def rows(c: Comparison) -> list[Row]:
    """Table rows: oracle first, then policies in the order given."""
    oracle_ndcg = [o.metric(QUALITY[0]) for o in c.oracle]
    out = [_row("oracle", "oracle", c.oracle, c, oracle_ndcg, f"best {c.monitor} epoch of the full {c.budget}-epoch run")]
    for spec in c.policies:
        out.append(_row(spec.name, "live" if spec.live else "replay", c.results[spec.name], c, oracle_ndcg, spec.note))
    return out


def _row(name: str, how: str, results: Sequence[ReplayResult], c: Comparison, oracle_ndcg: Sequence[float | None],
         note: str) -> Row:
    ratios = [None if (r.metric(QUALITY[0]) is None or not o) else r.metric(QUALITY[0]) / o
              for r, o in zip(results, oracle_ndcg)]
    premature = sum(1 for r, o in zip(results, c.oracle)
                    if o.best_epoch is not None and r.stop_epoch < o.best_epoch)
    return Row(policy=name, how=how, epochs=Stat.of([r.epochs_trained for r in results]),
               saved=Stat.of([c.budget - r.epochs_trained for r in results]),
               best_epoch=Stat.of([r.best_epoch for r in results]),
               ndcg=Stat.of([r.metric(QUALITY[0]) for r in results]),
               recall=Stat.of([r.metric(QUALITY[1]) for r in results]), ratio=Stat.of(ratios),
               wall=Stat.of([r.wall_seconds for r in results]), premature=premature, n=len(results), note=note)


HEADERS = ("policy", "how", "epochs trained", "epochs saved", "best epoch", "test NDCG@10", "test Recall@10",
           "NDCG@10 / oracle", "wall s", "premature", "note")


def markdown(table: Sequence[Row]) -> str:
    """The table as GitHub Markdown (mean ± std over seeds)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for r in table:
        cells = [r.policy, r.how, r.epochs.fmt(1), r.saved.fmt(1), r.best_epoch.fmt(1), r.ndcg.fmt(4),
                 r.recall.fmt(4), r.ratio.fmt(3), r.wall.fmt(0), f"{r.premature}/{r.n}", r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table_csv(table: Sequence[Row], path: Path) -> None:
    """``table.csv``: one row per policy, mean and std columns."""
    stats = ("epochs", "saved", "best_epoch", "ndcg", "recall", "ratio", "wall")
    names = {"epochs": "epochs_trained", "saved": "epochs_saved", "best_epoch": "best_epoch",
             "ndcg": "test_ndcg@10", "recall": "test_recall@10", "ratio": "ndcg@10_over_oracle", "wall": "wall_seconds"}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["policy", "how"] + [f"{names[s]}_{m}" for s in stats for m in ("mean", "std")]
                   + ["premature", "seeds", "note"])
        for r in table:
            vals: list[Any] = [r.policy, r.how]
            for s in stats:
                st: Stat = getattr(r, s)
                vals += [_num(st.mean), _num(st.std)]
            w.writerow(vals + [r.premature, r.n, r.note])


def write_runs_csv(c: Comparison, path: Path) -> None:
    """``runs.csv``: one row per policy and seed (the oracle included)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        key = _plot_metric(c)
        w.writerow(["policy", "how", "seed", "stop_epoch", "best_epoch", "epochs_trained", "reason",
                    f"valid_{key}", "test_ndcg@10", "test_recall@10", "wall_seconds", "message"])
        live = {s.name for s in c.policies if s.live}
        groups = [("oracle", c.oracle)] + [(s.name, c.results[s.name]) for s in c.policies]
        for name, results in groups:
            for seed, r in zip(c.seeds, results):
                how = "oracle" if name == "oracle" else ("live" if name in live else "replay")
                w.writerow([name, how, seed, r.stop_epoch, r.best_epoch, r.epochs_trained, r.reason,
                            _num(r.metric(key, "valid")), _num(r.metric(QUALITY[0])), _num(r.metric(QUALITY[1])),
                            _num(r.wall_seconds), r.message])


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _plot_metric(c: Comparison) -> str:
    """The validation metric to draw: the oracle's monitor when it is one metric, else NDCG@10."""
    recorded = {k.lower() for k in c.traces[0].records[0]["valid"]}
    return c.monitor.lower() if c.monitor.lower() in recorded else QUALITY[0]
