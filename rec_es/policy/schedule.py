"""Learning-rate schedule from an ``lr_schedule:`` mapping, coordinated with the stopping policy.

Pure Python math on 0-based epoch numbers (no torch, no recbole); the trainer applies the value
to ``optimizer.param_groups`` before each training epoch. The LR of epoch ``e`` is::

    lr(e) = learning_rate * warmup(e) * decay(e) * plateau_scale

* ``warmup(e)``: linear from ``warmup_start_factor`` (default 0.1) at epoch 0 up to 1 at epoch
  ``warmup_epochs`` (default 0 = no warmup); 1 afterwards.
* ``decay(e)`` with ``t = max(0, e - warmup_epochs)`` (decay starts after warmup):
  ``none`` (default) 1; ``step`` ``gamma ** (t // step_size)``; ``exponential`` ``gamma ** t``;
  ``cosine`` ``(eta_min + (lr - eta_min) * (1 + cos(pi * min(t, t_max) / t_max)) / 2) / lr``.
* ``plateau_scale``: product of the ``reduce_on_plateau`` reductions so far (1 at the start).

``reduce_on_plateau`` (optional mapping) multiplies the LR by ``factor`` (default 0.1) at most
``max_reductions`` times (default 3), never below ``min_lr`` (default 0.0):

* when the policy wants to stop for lack of improvement (reason ``patience``) and a reduction is
  still possible, the stop is deferred: the LR is reduced and the policy gets a fresh patience
  window (``policy.grant_patience()``). Once no reduction remains, the policy's stop stands;
* with ``patience: N`` (default None) the LR is also reduced after N evaluations in a row without
  improvement (counted from the last improvement or the last reduction), before the policy's own
  patience runs out, as Keras' ``ReduceLROnPlateau`` does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from rec_es.policy.errors import StateError
from rec_es.policy.rules import deferrable
from rec_es.policy.validate import (MISSING, KeySpec, Scope, Validator, integer, number, one_of, optional,
                             parse_keys)

DECAYS = ("none", "step", "exponential", "cosine")
STATE_VERSION = 1
_EPS = 1e-12
_DECAY = one_of(*DECAYS, ignore_case=False)

SPECS = (
    KeySpec("warmup_epochs", integer(0), 0, "linear warmup length in epochs"),
    KeySpec("warmup_start_factor", number(0, 1, low_open=True), 0.1, "LR factor of epoch 0 during warmup"),
    KeySpec("decay", Validator(_DECAY.allowed, _DECAY.doc, lambda v: _DECAY("none" if v is None else v)), "none",
            "decay after warmup, counted in epochs since warmup ended"),
    KeySpec("step_size", integer(1), MISSING, "step: factor gamma ** (t // step_size)", only_with=("decay", ("step",))),
    KeySpec("gamma", number(0, 1, low_open=True), MISSING, "step and exponential: the decay factor",
            only_with=("decay", ("step", "exponential"))),
    KeySpec("t_max", integer(1), MISSING, "cosine: epochs to reach eta_min", only_with=("decay", ("cosine",))),
    KeySpec("eta_min", number(0), 0.0, "cosine: lowest LR", only_with=("decay", ("cosine",))),
)
PLATEAU_SPECS = (
    KeySpec("factor", number(0, 1, low_open=True, high_open=True), 0.1, "LR multiplier per reduction"),
    KeySpec("patience", optional(integer(1)), None, "also cut after this many evaluations without improvement"),
    KeySpec("min_lr", number(0), 0.0, "never reduce below this"),
    KeySpec("max_reductions", integer(0), 3, "reductions before the policy may stop"),
)
TOP_KEYS = (*(k.name for k in SPECS), "reduce_on_plateau")
PLATEAU_KEYS = tuple(k.name for k in PLATEAU_SPECS)


def validate_lr_schedule(mapping: Any, source: str | None = None) -> dict[str, Any] | None:
    """Check an ``lr_schedule:`` mapping and return it normalised with every default filled in.

    ``None`` (no schedule) returns None. Raises ``ConfigError`` naming ``source`` (the file), the key,
    the allowed values and what was given.
    """
    if mapping is None:
        return None
    scope = Scope(source, "lr_schedule.")
    scope.mapping(mapping, ", ".join(TOP_KEYS))
    scope.unknown_keys(mapping, TOP_KEYS)
    out = parse_keys(scope, mapping, SPECS)
    out["reduce_on_plateau"] = _validate_plateau(mapping.get("reduce_on_plateau"), scope)
    return out


def _validate_plateau(mapping: Any, scope: Scope) -> dict[str, Any] | None:
    if mapping is None or mapping is False:
        return None
    if mapping is True:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise scope.error("reduce_on_plateau", f"a mapping of {', '.join(PLATEAU_KEYS)}, true or null", mapping)
    inner = Scope(scope.source, f"{scope.prefix}reduce_on_plateau.")
    inner.unknown_keys(mapping, PLATEAU_KEYS)
    return parse_keys(inner, mapping, PLATEAU_SPECS)


@dataclass(frozen=True)
class PlateauAction:
    """What the schedule did after one evaluation.

    ``reduced``: the LR of the following epochs was multiplied down. ``defer_stop``: the policy's
    patience stop is overruled (the trainer calls ``policy.grant_patience()`` and goes on).
    """

    reduced: bool
    defer_stop: bool
    lr_before: float
    lr_after: float
    reductions: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict for the trace."""
        return {"reduced": self.reduced, "defer_stop": self.defer_stop, "lr_before": self.lr_before,
                "lr_after": self.lr_after, "reductions": self.reductions, "message": self.message}


class LRSchedule:
    """Learning rate per epoch from a validated ``lr_schedule`` mapping and the base ``learning_rate``."""

    def __init__(self, mapping: Mapping[str, Any], base_lr: float, source: str | None = None) -> None:
        settings = validate_lr_schedule(mapping, source)
        assert settings is not None
        Scope(source, "").check("learning_rate", number(0, low_open=True), base_lr)
        if settings["decay"] == "cosine" and settings["eta_min"] > base_lr:
            raise Scope(source, "lr_schedule.").error("eta_min", f"a number <= learning_rate {base_lr}",
                                                      settings["eta_min"])
        self.settings = settings
        self.base_lr = float(base_lr)
        self.plateau: dict[str, Any] | None = settings["reduce_on_plateau"]
        self.reset()

    def reset(self) -> None:
        """Forget every reduction (state of a fresh run)."""
        self.scale_ = 1.0
        self.reductions_ = 0
        self.wait_ = 0

    # --- the LR curve ---------------------------------------------------------------------------
    def warmup_factor(self, epoch: int) -> float:
        """Linear warmup multiplier of ``epoch`` (1 once warmup is over)."""
        w = self.settings["warmup_epochs"]
        if epoch >= w:
            return 1.0
        start = self.settings["warmup_start_factor"]
        return start + (1.0 - start) * epoch / w

    def decay_factor(self, epoch: int) -> float:
        """Decay multiplier of ``epoch``; decay counts epochs after warmup."""
        s = self.settings
        t = max(0, epoch - s["warmup_epochs"])
        if s["decay"] == "step":
            return s["gamma"] ** (t // s["step_size"])
        if s["decay"] == "exponential":
            return s["gamma"] ** t
        if s["decay"] == "cosine":
            frac = min(t, s["t_max"]) / s["t_max"]
            lr = s["eta_min"] + (self.base_lr - s["eta_min"]) * (1.0 + math.cos(math.pi * frac)) / 2.0
            return lr / self.base_lr
        return 1.0

    def lr_for_epoch(self, epoch: int) -> float:
        """The learning rate to train ``epoch`` (0-based) with."""
        return self.base_lr * self.warmup_factor(epoch) * self.decay_factor(epoch) * self.scale_

    # --- reduce on plateau ------------------------------------------------------------------------
    def can_reduce(self, next_epoch: int) -> bool:
        """True when a plateau reduction is configured, not used up, and the LR is above ``min_lr``."""
        p = self.plateau
        if p is None or self.reductions_ >= p["max_reductions"]:
            return False
        return self.lr_for_epoch(next_epoch) > p["min_lr"] * (1.0 + 1e-9) + _EPS

    def _reduce(self, next_epoch: int) -> tuple[float, float]:
        p = self.plateau
        assert p is not None
        before = self.lr_for_epoch(next_epoch)
        after = max(before * p["factor"], p["min_lr"])
        self.scale_ *= after / before
        self.reductions_ += 1
        self.wait_ = 0
        return before, after

    def on_evaluation(self, epoch: int, improved: bool, stop_reason: str | None) -> PlateauAction | None:
        """React to the policy's decision at ``epoch``; None when nothing changes.

        ``stop_reason`` is the policy's stop reason value when it wants to stop, else None. Only a stop
        its rule declares deferrable (a ``patience`` stop) is deferred; other reasons (thresholds, budgets,
        non-finite) always stand.
        """
        if self.plateau is None:
            return None
        self.wait_ = 0 if improved else self.wait_ + 1
        nxt = epoch + 1
        if deferrable(stop_reason) and self.can_reduce(nxt):
            before, after = self._reduce(nxt)
            msg = (f"epoch {epoch}: patience ran out; reduced the learning rate {before:.3g} -> {after:.3g} "
                   f"(reduction {self.reductions_} of {self.plateau['max_reductions']}) and gave the policy a "
                   f"fresh patience window instead of stopping")
            return PlateauAction(True, True, before, after, self.reductions_, msg)
        own = self.plateau["patience"]
        if stop_reason is None and own is not None and self.wait_ >= own and self.can_reduce(nxt):
            before, after = self._reduce(nxt)
            msg = (f"epoch {epoch}: no improvement for {own} evaluations; reduced the learning rate "
                   f"{before:.3g} -> {after:.3g} (reduction {self.reductions_} of "
                   f"{self.plateau['max_reductions']}, lr_schedule.reduce_on_plateau.patience: {own})")
            return PlateauAction(True, False, before, after, self.reductions_, msg)
        return None

    # --- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """State only (no settings): plateau scale, reductions done, evaluations waited."""
        return {"version": STATE_VERSION, "scale": self.scale_, "reductions": self.reductions_, "wait": self.wait_}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` output; refuses a state with missing keys or another version."""
        missing = [k for k in ("version", "scale", "reductions", "wait") if k not in state]
        if missing:
            raise StateError(f"lr schedule state lacks {', '.join(missing)} (got keys {sorted(state)})")
        if state["version"] != STATE_VERSION:
            raise StateError(f"lr schedule state version {state['version']!r} is not {STATE_VERSION}")
        self.scale_ = float(state["scale"])
        self.reductions_ = int(state["reductions"])
        self.wait_ = int(state["wait"])
