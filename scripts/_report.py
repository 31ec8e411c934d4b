"""What the replay benchmarks share: a shipped policy's mapping, a run's test metric at an epoch, and the tail
that prints the Markdown report and, with ``--out``, writes it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

POLICIES_DIR = Path(__file__).resolve().parents[1] / "properties" / "policies"


def shipped_policy(name: str) -> dict[str, Any]:
    """The ``early_stopping:`` mapping of ``properties/policies/<name>.yaml`` (a fresh dict)."""
    path = POLICIES_DIR / f"{name}.yaml"
    return dict(yaml.safe_load(path.read_text(encoding="utf-8"))["early_stopping"])


def test_at(trace: Any, epoch: int | None, metric: str) -> float | None:
    """The recorded test ``metric`` of the evaluation at ``epoch``, None if the trace has none there."""
    for r in trace.records:
        if r["epoch"] == epoch:
            return (r.get("test") or {}).get(metric)
    return None


def emit(lines: Sequence[str], out: Path | None) -> int:
    """Print ``lines`` as one text and write it (newline-terminated) to ``out`` when given; the exit status 0."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    return 0
