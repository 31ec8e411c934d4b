"""StopController: a stopping policy and an optional LR schedule deciding together, in pure Python.

The exchange between them is written here once: after each evaluation the policy decides; the schedule
reacts (``LRSchedule.on_evaluation``); when it defers the policy's stop (it cut the LR instead), the policy is
granted a fresh patience window and the run goes on. The trainer drives a live run through it, replay and
``rec-es check``'s earliest-stop estimate drive recorded or simulated evaluations through the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from rec_es.policy.types import Decision, PerUser, Policy
from rec_es.policy.schedule import LRSchedule, PlateauAction


@dataclass(frozen=True)
class Step:
    """One evaluation's outcome: the policy's ``decision``, the schedule's ``action`` (None: it did nothing)
    and ``stop``: the run ends here (the policy stopped and the schedule did not defer it)."""

    decision: Decision
    action: PlateauAction | None
    stop: bool

    @property
    def deferred(self) -> bool:
        """The policy wanted to stop and the schedule cut the LR instead."""
        return self.action is not None and self.action.defer_stop


class StopController:
    """``policy`` (a ``Policy``) plus ``schedule`` (an ``LRSchedule`` or None: the policy alone decides)."""

    def __init__(self, policy: Policy, schedule: LRSchedule | None = None) -> None:
        self.policy = policy
        self.schedule = schedule

    def reset(self) -> None:
        """A fresh fit: the policy and the schedule forget everything."""
        self.policy.reset()
        if self.schedule is not None:
            self.schedule.reset()

    def update(self, epoch: int, metrics: Mapping[str, float], train_loss: float | None = None,
               elapsed_seconds: float | None = None, per_user: PerUser | None = None) -> Step:
        """One evaluation: the policy decides, the schedule reacts, a deferred stop grants patience."""
        decision = self.policy.update(epoch, metrics, train_loss=train_loss, elapsed_seconds=elapsed_seconds,
                                      per_user=per_user)
        action = None
        if self.schedule is not None:
            reason = decision.reason.value if decision.stop else None
            action = self.schedule.on_evaluation(epoch, improved=bool(decision.improved), stop_reason=reason)
        step = Step(decision, action, bool(decision.stop) and not (action is not None and action.defer_stop))
        if step.deferred:
            self.policy.grant_patience()
        return step

    def follow(self, records: Iterable[Mapping[str, Any]],
               per_user: Callable[[int], PerUser] | None = None) -> list[Decision]:
        """Bring the policy up to date with recorded trace records, granting patience where the recorded run's
        schedule deferred a stop (the schedule itself is not consulted: its state is restored separately).
        ``per_user``: epoch -> the per-user scores the live run passed (``rec_es.replay.per_user_source``).
        Returns the policy's decision for each record."""
        decisions = []
        for r in records:
            decisions.append(self.policy.update(r["epoch"], r["valid"], train_loss=r.get("train_loss"),
                                                elapsed_seconds=r.get("elapsed_seconds"),
                                                per_user=None if per_user is None else per_user(r["epoch"])))
            if (r.get("lr_action") or {}).get("defer_stop"):
                self.policy.grant_patience()
        return decisions
