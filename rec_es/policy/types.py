"""Value types shared by the policy core: what comes out of an evaluation (a decision), why a run stopped
(``StopReason``, assembled from the rules' declarations) and what a policy must offer (``Policy``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from rec_es.policy.rules import StopReason

#: per-user scores of one evaluation: metric key -> one score per evaluated user (optional input of update())
PerUser = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Decision:
    """The outcome of one ``StoppingPolicy.update`` call.

    ``improved``: the (smoothed) monitor improved, so the patience counter was reset.
    ``new_best``: this evaluation's weights are now the ones to restore (snapshot them).
    ``message``: a status line while running; one plain sentence naming rule, values and setting when stopping.
    ``wait_count`` counts evaluations since the last improvement, ``wait_epochs`` the epochs they span.
    ``measured``: what the statistical rules measured at this evaluation (a noise margin, a p-value, a held-back
    stop), written into the trace's decision only when not empty.
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
    measured: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``reason`` becomes its string value, non-finite floats become None."""
        out = asdict(self)
        out["reason"] = self.reason.value
        if not out["measured"]:
            del out["measured"]
        for key in ("value", "smoothed", "best_score"):
            v = out[key]
            if v is not None and (v != v or v in (float("inf"), float("-inf"))):
                out[key] = None
        return out


@runtime_checkable
class Policy(Protocol):
    """What the trainer, ``StopController`` and replay need from a stopping policy; ``StoppingPolicy`` is one.

    ``per_user_keys``: metric keys whose per-user scores ``update`` wants (``per_user=``); empty when none,
    so a caller captures them only when a rule reads them.
    """

    @property
    def monitor_name(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def best_epoch(self) -> int | None: ...

    @property
    def per_user_keys(self) -> tuple[str, ...]: ...

    def update(self, epoch: int, metrics: Mapping[str, float], train_loss: float | None = None,
               elapsed_seconds: float | None = None, per_user: PerUser | None = None) -> Decision: ...

    def reset(self) -> None: ...

    def grant_patience(self) -> None: ...

    def restore_instead(self, decision: Decision) -> None: ...

    def settings_mapping(self) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


__all__ = ["Decision", "PerUser", "Policy", "StopReason"]
