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

import difflib
import math
from dataclasses import dataclass
from typing import Any, Mapping

from rec_es.errors import ConfigError, StateError

DECAYS = ("none", "step", "exponential", "cosine")
TOP_KEYS = ("warmup_epochs", "warmup_start_factor", "decay", "step_size", "gamma", "t_max", "eta_min",
            "reduce_on_plateau")
PLATEAU_KEYS = ("factor", "patience", "min_lr", "max_reductions")
STATE_VERSION = 1
_EPS = 1e-12


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"lr_schedule.{key}: {message}", source=source, key=f"lr_schedule.{key}")


def _check_keys(given: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, source: str) -> None:
    for key in given:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" — did you mean '{near[0]}'?" if near else ""
            raise _fail(source, f"{prefix}{key}",
                        f"unknown key '{key}'{hint} (allowed: {', '.join(allowed)})")


def _number(value: Any, key: str, source: str, *, integer: bool = False, low: float | None = None,
            low_open: bool = False, high: float | None = None, high_open: bool = False) -> float | int:
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise _fail(source, key, f"must be {kind} (got {value!r})")
    if low is not None and (value <= low if low_open else value < low):
        raise _fail(source, key, f"must be {'>' if low_open else '>='} {low} (got {value!r})")
    if high is not None and (value >= high if high_open else value > high):
        raise _fail(source, key, f"must be {'<' if high_open else '<='} {high} (got {value!r})")
    return int(value) if integer else float(value)


def validate_lr_schedule(mapping: Any, source: str = "lr_schedule") -> dict[str, Any] | None:
    """Check an ``lr_schedule:`` mapping and return it normalised with every default filled in.

    ``None`` (no schedule) returns None. Raises ``ConfigError`` naming ``source`` (the file), the key,
    the allowed values and what was given.
    """
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"lr_schedule: must be a mapping of {', '.join(TOP_KEYS)} (got {mapping!r})",
                          source=source, key="lr_schedule")
    _check_keys(mapping, TOP_KEYS, "", source)
    out: dict[str, Any] = {
        "warmup_epochs": _number(mapping.get("warmup_epochs", 0), "warmup_epochs", source, integer=True, low=0),
        "warmup_start_factor": _number(mapping.get("warmup_start_factor", 0.1), "warmup_start_factor", source,
                                       low=0.0, low_open=True, high=1.0),
    }
    decay = mapping.get("decay", "none")
    decay = "none" if decay is None else decay
    if decay not in DECAYS:
        raise _fail(source, "decay", f"must be one of {', '.join(DECAYS)} (got {decay!r})")
    out["decay"] = decay
    needs = {"step": ("step_size", "gamma"), "exponential": ("gamma",), "cosine": ("t_max",)}.get(decay, ())
    for key in ("step_size", "gamma", "t_max", "eta_min"):
        if key in mapping and key not in needs and not (key == "eta_min" and decay == "cosine"):
            raise _fail(source, key, f"is not used by decay: {decay} (keys per decay: step: step_size, gamma; "
                                     f"exponential: gamma; cosine: t_max, eta_min)")
    for key in needs:
        if key not in mapping:
            raise _fail(source, key, f"is required by decay: {decay}")
    if decay == "step":
        out["step_size"] = _number(mapping["step_size"], "step_size", source, integer=True, low=1)
    if decay in ("step", "exponential"):
        out["gamma"] = _number(mapping["gamma"], "gamma", source, low=0.0, low_open=True, high=1.0)
    if decay == "cosine":
        out["t_max"] = _number(mapping["t_max"], "t_max", source, integer=True, low=1)
        out["eta_min"] = _number(mapping.get("eta_min", 0.0), "eta_min", source, low=0.0)
    out["reduce_on_plateau"] = _validate_plateau(mapping.get("reduce_on_plateau"), source)
    return out


def _validate_plateau(mapping: Any, source: str) -> dict[str, Any] | None:
    if mapping is None or mapping is False:
        return None
    if mapping is True:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise _fail(source, "reduce_on_plateau",
                    f"must be a mapping of {', '.join(PLATEAU_KEYS)} or null (got {mapping!r})")
    _check_keys(mapping, PLATEAU_KEYS, "reduce_on_plateau.", source)
    patience = mapping.get("patience")
    return {
        "factor": _number(mapping.get("factor", 0.1), "reduce_on_plateau.factor", source,
                          low=0.0, low_open=True, high=1.0, high_open=True),
        "patience": None if patience is None else _number(patience, "reduce_on_plateau.patience", source,
                                                          integer=True, low=1),
        "min_lr": _number(mapping.get("min_lr", 0.0), "reduce_on_plateau.min_lr", source, low=0.0),
        "max_reductions": _number(mapping.get("max_reductions", 3), "reduce_on_plateau.max_reductions", source,
                                  integer=True, low=0),
    }


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

    def __init__(self, mapping: Mapping[str, Any], base_lr: float, source: str = "lr_schedule") -> None:
        settings = validate_lr_schedule(mapping, source)
        assert settings is not None
        if not (isinstance(base_lr, (int, float)) and base_lr > 0):
            raise ConfigError(f"learning_rate: must be a number > 0 (got {base_lr!r})", source=source,
                              key="learning_rate")
        if settings["decay"] == "cosine" and settings["eta_min"] > base_lr:
            raise _fail(source, "eta_min", f"must be <= learning_rate {base_lr} (got {settings['eta_min']})")
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

        ``stop_reason`` is the policy's stop reason value when it wants to stop, else None. Only a
        ``patience`` stop is deferred; other reasons (thresholds, budgets, non-finite) always stand.
        """
        if self.plateau is None:
            return None
        self.wait_ = 0 if improved else self.wait_ + 1
        nxt = epoch + 1
        if stop_reason == "patience" and self.can_reduce(nxt):
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
