"""The registry: every part of the ``early_stopping:`` mapping, and the questions asked of all of them.

``PARTS`` lists the policy core's settings groups, the smoothers and every stopping rule, in the order their keys
appear in the docs table. ``StoppingPolicy`` asks the rules in Lightning's fixed order (``Stage``: non-finite ->
stopping threshold -> divergence -> plateau rules combined any_of / all_of -> budgets), registry order within a
stage. Adding a rule: its module here, one line in ``PARTS`` (docs/adding_a_rule.md).

The comparisons every rule is built from stay importable from here (``rules.is_improvement`` ...).
"""
from __future__ import annotations

import enum
from dataclasses import replace
from typing import Any

import rec_es.policy.core as core
import rec_es.policy.restore as restore
import rec_es.policy.smoothing as smoothing
from rec_es.policy.base import Rule, Stage
from rec_es.policy.compare import better_than, is_improvement, worse_than
from rec_es.policy.rules import (baseline, budgets, divergence_threshold, dynamic_patience, noise, non_finite,
                                 patience, prechelt, still_learning, stopping_threshold)
from rec_es.policy.rules.prechelt import generalization_loss, prechelt_error, progress_quotient, training_progress

PARTS: tuple[Rule, ...] = (
    core.SWITCH,
    core.MONITOR,
    noise.RULE,
    core.IMPROVEMENT,
    patience.RULE,
    dynamic_patience.RULE,
    core.TIMING,
    smoothing.SETTINGS,
    restore.SETTINGS,
    stopping_threshold.RULE,
    divergence_threshold.RULE,
    baseline.RULE,
    non_finite.RULE,
    budgets.MAX_EPOCHS,
    budgets.MAX_MINUTES,
    prechelt.RULE,
    still_learning.RULE,
    core.COMBINE,
)
#: the parts that can stop a run, in the order they are asked
STOPPING = tuple(sorted((p for p in PARTS if p.stage is not None), key=lambda p: p.stage))  # type: ignore[arg-type, return-value]
#: every key of the mapping, in docs order
KEYS = tuple(key for part in PARTS for key in part.keys)

StopReason = enum.Enum(  # type: ignore[misc]
    "StopReason", [("NOT_STOPPED", "not_stopped"), *((n, v) for p in PARTS for n, v in p.reasons.items())],
    type=str, module=__name__, qualname="StopReason")
StopReason.__doc__ = ("Why a run stopped, or ``NOT_STOPPED``. The value is the short string written to traces; "
                      "the members are the rules' declared reasons.")


def _owner(reason: str | None) -> Rule | None:
    return next((p for p in PARTS if reason in p.reasons.values()), None)


def setting_for(reason: str | None, settings: Any) -> dict[str, Any] | None:
    """``{"key": "early_stopping.patience", "value": 10}``: the setting behind a stop reason, None if none is."""
    part = _owner(reason)
    found = part.setting(reason, settings) if part is not None and reason is not None else None
    return None if found is None else {"key": found[0], "value": found[1]}


def deferrable(reason: str | None) -> bool:
    """May an LR schedule defer a stop for ``reason`` (cut the LR and grant patience instead)?"""
    return any(reason in p.deferrable for p in PARTS)


def describe_wait(settings: Any, eval_step: int) -> tuple[str, str]:
    """(key, sentence): how long the plateau rules let a run wait, in evaluations and epochs (``rec-es check``)."""
    for part in STOPPING:
        found = part.stage is Stage.PLATEAU and part.describe_wait(settings, eval_step)
        if found:
            return found
    return "early_stopping.patience", ("the patience rule is off (patience: null): only thresholds and budgets "
                                       "can stop the run")


def worst_case(settings: Any) -> Any:
    """``settings`` without the rules that depend on the values a run reaches (thresholds, baseline, time)."""
    return replace(settings, **{k.name: k.fallback() for p in PARTS if not p.in_worst_case for k in p.keys})


__all__ = ["KEYS", "PARTS", "STOPPING", "Rule", "Stage", "StopReason", "better_than", "deferrable", "describe_wait",
           "generalization_loss", "is_improvement", "prechelt_error", "progress_quotient", "setting_for",
           "training_progress", "worse_than", "worst_case"]
