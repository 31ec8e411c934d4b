"""The observed run of ``rec-es explain``, whatever wrote it: its trace, the policy in effect, its decisions."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rec_es.policy.errors import RecEsError
from rec_es.policy import StoppingPolicy
from rec_es.recbole_log import RecBoleLog
from rec_es.rundir.trace import Trace

EXPECTED = ("a rec_es run directory (holding trace.jsonl), a trace.jsonl file, or a stock RecBole log file "
            "(log/<Model>/<Model>-<dataset>-<time>.log)")


class ExplainError(RecEsError, ValueError):
    """RUN cannot be explained (not found, not a run, no evaluations)."""


@dataclass
class Observed:
    """One run, whatever wrote it: its trace, the policy in effect and the decisions it took.

    ``ending``: ``early_stopped`` (a stopping rule fired), ``budget`` (RecBole's ``epochs`` ran out),
    ``stopped_in_training`` (the trainer stopped between evaluations, e.g. a NaN training loss; the footer says
    why) or ``incomplete`` (crashed, interrupted or still running). ``decisions`` are plain dicts
    (``Decision.to_dict()``), one per evaluation, as the observed policy took them.
    """

    source: str
    kind: str  # "rec_es" | "recbole_log"
    trace: Trace
    policy_mapping: dict[str, Any]
    policy: StoppingPolicy
    decisions: list[dict[str, Any]]
    ending: str
    epochs: int | None
    eval_step: int
    decimal_places: int | None
    model: str | None
    dataset: str | None
    warnings: list[str] = field(default_factory=list)
    stock: RecBoleLog | None = None
    original_policy: tuple[str, dict[str, Any]] | None = None  # (label, mapping) before a resume changed it

    @property
    def monitor(self) -> str:
        return self.policy.monitor_name

    @property
    def mode(self) -> str:
        return self.policy.mode

    @property
    def last_epoch(self) -> int:
        return self.trace.records[-1]["epoch"]

    def values(self) -> list[tuple[int, float]]:
        """(epoch, raw monitor value) of every evaluation with a finite value."""
        return [(d["epoch"], d["value"]) for d in self.decisions
                if isinstance(d.get("value"), (int, float)) and math.isfinite(d["value"])]
