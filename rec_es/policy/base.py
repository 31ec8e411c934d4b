"""What a stopping rule is: the ``Rule`` base class, what a rule sees (``Context``) and says (``Fired``).

A rule is one small object in its own module under ``rec_es/policy/rules/``, listed once in the registry
(``rec_es/policy/rules/__init__.py``). It declares its settings keys (``rec_es.policy.validate.KeySpec``: validator,
default, meaning), its stop reasons (members of ``StopReason``), when it is asked (``stage``), its fresh state
(a plain JSON-able dict saved in checkpoints) and overrides only the hooks it needs; every hook has a no-op
default. ``StoppingPolicy`` calls them, in registry order, on every evaluation:

1. ``observe``: see the evaluation before anything is judged (measure the noise of this evaluation);
2. ``confirms_improvement``: the monitor beat the best by the margin; is it a real improvement (a significance
   test)? If a rule says no, nothing moves: not the best, not the wait;
3. ``accepts_improvement`` / ``on_improvement``: the monitor improved; may the wait restart (a rule may ask
   for more, such as beating a fixed value), and what to remember when it does (a patience modifier);
4. ``update``: advance the rule's state and return what fires now (``[]``: nothing). Inputs are in ``Context``:
   the raw and smoothed monitor, the train loss, the elapsed time and optional per-user scores;
5. ``restate``: reword another rule's stop (a modifier explains the patience stop it caused);
6. ``holds``: hold back a plateau stop (the model is still learning); the first rule that holds says why;
7. ``measured``: what the rule measured at this evaluation (noise, p-value), written to the trace's decision.

``patience`` and ``min_delta`` fold the effective patience and improvement margin through every rule (a
modifier changes them, the others pass them on). ``setting`` names the key a user would change for a reason,
``describe_wait`` how long the rule lets a run wait (for ``rec-es check``), ``status`` adds to the status line.
``per_user`` names the metrics whose per-user scores the rule wants, so callers capture them only when needed.
A rule holding back stops, or measuring its own margin, says in its sentence what it measured and assumed.
"""
from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from rec_es.policy.validate import KeySpec


class Stage(enum.IntEnum):
    """When a rule may stop a run, in Lightning's fixed order; within a stage, registry order decides."""

    FINITE = 0      # a NaN/inf monitor: asked first, also during warmup
    THRESHOLD = 1   # good enough / hopeless: after warmup, finite values only
    PLATEAU = 2     # plateau rules, combined any_of / all_of: after warmup
    BUDGET = 3      # epochs and minutes: also during warmup


def fmt(x: float | None) -> str:
    """``'none'`` or six significant digits: how every message prints a score."""
    return "none" if x is None else f"{x:.6g}"


def plural(n: int, word: str) -> str:
    """``'1 evaluation'``, ``'3 evaluations'``."""
    return f"{n} {word}{'s' * (n != 1)}"


@dataclass(frozen=True)
class Fired:
    """A rule that fires: its reason (a ``StopReason`` value), the clause saying why, the setting to change."""

    reason: str
    clause: str
    hint: str


@dataclass
class Context:
    """One evaluation as the rules see it. ``core`` is the policy's own state (best, wait counters), read-only
    for rules; ``per_user`` maps a metric key to per-user scores when the caller passed them (else None)."""

    settings: Any
    core: Any
    epoch: int
    raw: float
    smoothed: float | None
    finite: bool
    improved: bool
    train_loss: float | None
    elapsed_seconds: float | None
    per_user: Mapping[str, Sequence[float]] | None
    monitor: str                      # the monitor as messages name it, e.g. 'ndcg@10 (EMA α=0.6)'
    improves: Callable[[float, float | None], bool]
    patience: int | None = None       # effective patience, set once the improvement bookkeeping is done
    margin: float = 0.0               # effective min_delta of this evaluation (a measured one with min_delta: auto)
    budget: int | None = None         # the run's epoch budget (RecBole's epochs) when the caller set it

    @property
    def mode(self) -> str:
        return self.settings.mode

    def wait_span(self) -> str:
        """``'3 evaluations (6 epochs)'``: the wait since the last improvement, in both units."""
        return f"{plural(self.core.wait_count, 'evaluation')} ({plural(self.core.wait_epochs, 'epoch')})"


class Rule:
    """A part of the ``early_stopping:`` mapping: its keys and, for a stopping rule, its behaviour.

    Settings-only parts (the monitor, smoothing) use just ``keys``; see the module docstring for the hooks.
    """

    #: registry id; owns the state keys ``fresh_state`` returns
    name: str = ""
    keys: tuple[KeySpec, ...] = ()
    #: ``StopReason`` members this rule can give: ``{"PATIENCE": "patience"}``
    reasons: Mapping[str, str] = {}
    #: when its ``update`` results may stop a run; None: never on its own (settings, modifiers)
    stage: Stage | None = None
    #: reasons an LR schedule may defer by cutting the LR and granting patience
    deferrable: frozenset[str] = frozenset()
    #: kept in ``rec-es check``'s earliest-stop estimate (False: it depends on the values a run reaches)
    in_worst_case: bool = True
    #: the policy STATE_VERSION that introduced this rule's state keys: a state saved by an older version
    #: lacks them and loads with this rule's fresh state (set it to the next version when adding state)
    state_since: int = 1

    # ----- state ---------------------------------------------------------------------------------------
    def fresh_state(self, s: Any) -> dict[str, Any]:
        """The state of a fresh fit; its keys go into the policy's saved state (unique across rules)."""
        return {}

    def load_state(self, s: Any, saved: dict[str, Any]) -> dict[str, Any]:
        """A copy of a saved state (the keys are checked already); raise StateError if it cannot serve ``s``."""
        return copy.deepcopy(saved)

    def grant_patience(self, state: dict[str, Any]) -> None:
        """A fresh patience window was granted (an LR cut); reset what counts towards a plateau stop."""

    # ----- deciding ------------------------------------------------------------------------------------
    def per_user(self, s: Any) -> tuple[str, ...]:
        """Metric keys whose per-user scores ``update`` reads from ``ctx.per_user`` (a significance test)."""
        return ()

    def criteria(self, s: Any) -> int:
        """How many plateau criteria this rule adds with these settings (``combine: all_of`` waits for all)."""
        return 0

    def min_delta(self, s: Any, state: dict[str, Any], margin: float) -> float:
        """The improvement margin, folded through every rule (a measured-noise margin would raise it)."""
        return margin

    def patience(self, s: Any, state: dict[str, Any], patience: int | None) -> int | None:
        """The effective patience, folded through every rule in registry order."""
        return patience

    def observe(self, ctx: Context, state: dict[str, Any]) -> None:
        """See this evaluation before improvement is judged (``ctx.improved`` is not known yet)."""

    def confirms_improvement(self, ctx: Context, state: dict[str, Any]) -> bool:
        """Is an improvement by the margin a real one? False: the best does not move and the wait goes on."""
        return True

    def accepts_improvement(self, ctx: Context, state: dict[str, Any]) -> bool:
        """May this improvement restart the wait? (Must not change the state: every rule is asked.)"""
        return True

    def on_improvement(self, ctx: Context, state: dict[str, Any], previous: float | None) -> None:
        """The wait restarted on an improvement from ``previous`` (None: the first) to ``ctx.smoothed``."""

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        """Advance the state by one evaluation and return what fires now (runs even when stopping is off)."""
        return []

    def restate(self, ctx: Context, state: dict[str, Any], fired: Fired) -> Fired | None:
        """Reword another rule's stop, or None to leave it."""
        return None

    def holds(self, ctx: Context, state: dict[str, Any], fired: Fired) -> str | None:
        """Hold back the plateau stop ``fired``: a clause saying why (the run goes on), or None to let it stop."""
        return None

    def measured(self, ctx: Context, state: dict[str, Any]) -> dict[str, Any]:
        """What this rule measured at this evaluation (JSON-able), recorded in the decision; {}: nothing."""
        return {}

    # ----- explaining ----------------------------------------------------------------------------------
    def status(self, ctx: Context, state: dict[str, Any]) -> str:
        """Text added to the running status line (``', wait 2/10 evaluations'``)."""
        return ""

    def setting(self, reason: str, s: Any) -> tuple[str, Any] | None:
        """The key behind ``reason`` and its value; default: this rule's first key, for its own reasons."""
        if reason not in self.reasons.values() or not self.keys:
            return None
        key = self.keys[0].name
        return f"early_stopping.{key}", getattr(s, key)

    def describe_wait(self, s: Any, eval_step: int) -> tuple[str, str] | None:
        """(key, sentence): how long a run waits before this plateau rule stops it, for ``rec-es check``."""
        return None
