"""Patience: stop after ``patience`` evaluations (or epochs) without improvement, Keras/Lightning's rule.

Keys: ``patience`` (default 10; null turns the rule off) and ``patience_unit`` (``evaluations``, the default,
or ``epochs``; with RecBole's ``eval_step`` > 1 an evaluation spans ``eval_step`` epochs). The wait is the
number of evaluations (or the epochs they span) since the last improvement, and the rule fires at the first
evaluation where it reaches ``patience`` (Keras' ``wait >= patience``). An improvement beats the best
(smoothed) value by more than ``min_delta``, or by at least it with ``ties_improve: true``, so a value equal to
the best restarts the wait only then (``rec_es.policy.compare``; ``improvement: significant`` also asks a test).
The wait counters live in the policy core (the LR schedule and every report read them); this rule decides when
the wait is long enough and says so::

    >>> from rec_es import build_policy
    >>> policy = build_policy({"monitor": "ndcg@10", "patience": 3})
    >>> [policy.update(e, {"ndcg@10": v}).stop for e, v in enumerate([0.1, 0.2, 0.2, 0.15, 0.2])]
    [False, False, False, False, True]

RecBole's own rule (``rec_es.policy.presets``) is this rule with ``patience = stopping_step + 1``, ties counted
as improvements and RecBole's wording.
"""
from __future__ import annotations

from typing import Any

from rec_es.policy.base import Context, Fired, Rule, Stage, fmt
from rec_es.policy.validate import KeySpec, integer, one_of, optional

REASON = "patience"


def waited(s: Any, core: Any) -> int:
    """How long since the last improvement, in ``patience_unit`` (evaluations or epochs)."""
    return core.wait_epochs if s.patience_unit == "epochs" else core.wait_count


class Patience(Rule):
    name = "patience"
    keys = (
        KeySpec("patience", optional(integer(1)), 10,
                "stop after this many evaluations (or epochs, see `patience_unit`) without improvement; null "
                "disables the patience rule"),
        KeySpec("patience_unit", one_of("evaluations", "epochs"), "evaluations",
                "what `patience` counts; with RecBole's `eval_step` > 1 an evaluation spans eval_step epochs; "
                "messages always give both"),
    )
    reasons = {"PATIENCE": REASON}
    stage = Stage.PLATEAU
    deferrable = frozenset({REASON})

    def criteria(self, s: Any) -> int:
        return int(s.patience is not None)

    def patience(self, s: Any, state: dict[str, Any], patience: int | None) -> int | None:
        return s.patience

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        s, core, patience = ctx.settings, ctx.core, ctx.patience
        if patience is None or ctx.improved or waited(s, core) < patience:
            return []
        span, mon = ctx.wait_span(), ctx.monitor
        if core.improved_epoch is None:
            return [Fired(REASON, f"{mon} had no finite value for {span}",
                          "check the training, or set early_stopping.check_finite: stop")]
        if s.is_legacy:
            return [Fired(REASON, f"{mon} did not reach its best ({fmt(core.best_score)} at epoch {core.improved_epoch}) "
                                  f"for {span}, one more than stopping_step: {s.stopping_step} allows (RecBole counts "
                                  "ties as reaching the best)",
                          "raise stopping_step, or use an early_stopping policy with a larger patience")]
        if isinstance(s.min_delta, str):  # a measured margin (min_delta: auto): its owner adds the value
            by = f"did not improve by more than the measured noise ({fmt(ctx.margin)})"
        elif s.min_delta == 0:
            by = "did not reach its best" if s.ties_improve else "did not improve"
        elif s.min_delta_mode == "rel":
            by = f"did not improve by {'at least' if s.ties_improve else 'more than'} {s.min_delta:.3g}×|best|"
        else:
            by = f"did not improve by {'≥' if s.ties_improve else 'more than'} {fmt(s.min_delta)}"
        return [Fired(REASON, f"{mon} {by} for {span} since epoch {core.improved_epoch} ({fmt(core.best_score)}); "
                              f"patience {patience} {s.patience_unit}",
                      "raise early_stopping.patience or set early_stopping.enabled: false")]

    def status(self, ctx: Context, state: dict[str, Any]) -> str:
        if ctx.patience is None:
            return ""
        return f", wait {waited(ctx.settings, ctx.core)}/{ctx.patience} {ctx.settings.patience_unit}"

    def describe_wait(self, s: Any, eval_step: int) -> tuple[str, str] | None:
        if s.patience is None:
            return None
        if s.patience_unit == "evaluations":
            return "early_stopping.patience", (f"early_stopping.patience {s.patience} evaluations with eval_step "
                                               f"{eval_step} waits {s.patience * eval_step} epochs without improvement")
        evals = -(-s.patience // eval_step)
        return "early_stopping.patience", (f"early_stopping.patience {s.patience} epochs waits {evals * eval_step} "
                                           f"epochs ({evals} evaluations every {eval_step} epochs) without improvement")


RULE = Patience()
