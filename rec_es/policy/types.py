"""Value types shared by the policy core: what goes in (an evaluation) and what comes out (a decision)."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class StopReason(str, enum.Enum):
    """Why a run stopped, or ``NOT_STOPPED``. The value is the short string written to traces."""

    NOT_STOPPED = "not_stopped"
    PATIENCE = "patience"
    BASELINE = "baseline"
    STOPPING_THRESHOLD = "stopping_threshold"
    DIVERGENCE_THRESHOLD = "divergence_threshold"
    NON_FINITE = "non_finite"
    MAX_EPOCHS = "max_epochs"
    TIME_BUDGET = "time_budget"
    PRECHELT_GL = "prechelt_gl"
    PRECHELT_PQ = "prechelt_pq"
    PRECHELT_UP = "prechelt_up"
    ALL_OF = "all_of"


@dataclass(frozen=True)
class Decision:
    """The outcome of one ``StoppingPolicy.update`` call.

    ``improved``: the (smoothed) monitor improved, so the patience counter was reset.
    ``new_best``: this evaluation's weights are now the ones to restore (snapshot them).
    ``message``: a status line while running; one plain sentence naming rule, values and setting when stopping.
    ``wait_count`` counts evaluations since the last improvement, ``wait_epochs`` the epochs they span.
    """

    epoch: int
    stop: bool
    improved: bool
    new_best: bool
    reason: StopReason
    message: str
    value: float | None
    smoothed: float | None
    best_epoch: int | None
    best_score: float | None
    wait_count: int
    wait_epochs: int
    patience: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``reason`` becomes its string value, non-finite floats become None."""
        out = asdict(self)
        out["reason"] = self.reason.value
        for key in ("value", "smoothed", "best_score"):
            v = out[key]
            if v is not None and (v != v or v in (float("inf"), float("-inf"))):
                out[key] = None
        return out
