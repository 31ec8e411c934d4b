"""scripts/bench_probe.py: the committed output is what the script computes from the committed recordings, and its
summary counts are its cases'."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import REPO, load_script

OUT = REPO / "docs" / "results" / "bench_probe"
RUN = REPO / "docs" / "results" / "long_runs" / "stamp-lr0.005" / "seed2020"


def _committed() -> list[dict[str, str]]:
    with open(OUT / "cases.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_one_run_reproduces_its_committed_cases() -> None:
    """Replaying one committed run's recorded future through the cuts of bench_explain gives the committed rows
    (calls, p-values, best epochs, both truths, the log-only verdict's call) for that run."""
    bench = load_script("bench_probe")
    runs = [r for r in bench.benchlib.find_runs([RUN], include_partial=False)]
    cases, _ = bench.probe_cases(runs, bench.PROBE_EPOCHS, bench.read_log_calls())
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)  # noqa: E731
    got = [{k: fmt(v) for k, v in vars(c).items()} for c in cases]
    want = [r for r in _committed() if (r["regime"], r["seed"]) == ("stamp-lr0.005", "2020")]
    assert got and [{k: r[k] for k in r if k != "seed"} for r in got] == [{k: r[k] for k in r if k != "seed"}
                                                                         for r in want]


def test_summary_counts_are_the_cases() -> None:
    """summary.json's row for each N counts the committed cases.csv: agreement with the full run's validation
    outcome, cannot tell, agreement with the test truth over its scored cases."""
    bench = load_script("bench_probe")
    rows = _committed()
    summary = json.loads((OUT / "summary.json").read_text())
    for row in (r for r in summary["rows"] if r["n"] is not None):
        group = [r for r in rows if int(r["n"]) == row["n"]]
        assert row["cases"] == len(group)
        assert row["valid"] == list(bench.score([r["call"] for r in group], [r["valid_truth"] for r in group]))
        assert row["test"] == list(bench.score([r["call"] for r in group], [r["test_truth"] for r in group]))
        assert row["cannot_tell"] == sum(r["call"] == "cannot tell" for r in group)


def test_the_documented_table_is_the_summary() -> None:
    """docs/explain_verdict.md's row for the advised N states summary.json's numbers."""
    summary = json.loads((OUT / "summary.json").read_text())
    n = summary["advised"]["advice"]
    row = next(r for r in summary["rows"] if r["n"] == n)
    text = (REPO / "docs" / "explain_verdict.md").read_text()
    cells = (f"**{row['valid'][0]}/{row['cases']} ({100 * row['valid'][0] / row['cases']:.0f} %)**",
             f"**{row['test'][0]}/{row['test_scored']} ({100 * row['test'][0] / row['test_scored']:.0f} %)**")
    assert f"| **probe N = {n}** | {cells[0]} |" in text and cells[1] in text
