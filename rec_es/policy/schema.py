"""The ``early_stopping:`` mapping: every key, its type, default and meaning, and its validation.

One table (``KEYS``) serves validation, the README reference table and ``rec-es check``. Errors are
``ConfigError`` naming the key, the allowed values and what was given; ``source`` (a file name) is prefixed.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from rec_es.errors import ConfigError
from rec_es.policy.monitor import Monitor, metric_mode


@dataclass(frozen=True)
class KeySpec:
    type: str
    default: Any
    meaning: str


KEYS: dict[str, KeySpec] = {
    "enabled": KeySpec("bool", True, "false turns stopping off: every epoch runs; the best is still tracked and restored"),
    "preset": KeySpec("str | null", None, "`recbole_legacy`: RecBole's own `stopping_step` rule, decision for decision (only `monitor`, `mode`, `stopping_step`, `enabled` may go with it)"),
    "stopping_step": KeySpec("int >= 0", 10, "with `preset: recbole_legacy` only: RecBole's `stopping_step` (stops on the stopping_step+1-th evaluation without reaching the best; ties count as reaching it)"),
    "monitor": KeySpec("str | {metric: weight}", "mrr@10", "a RecBole result key (`ndcg@10`, any case) or a weighted sum `{ndcg@10: 0.5, recall@10: 0.5}`; in a property file the default is RecBole's `valid_metric`"),
    "mode": KeySpec("auto | max | min", "auto", "`auto` takes the direction from RecBole's metric definitions; a composite mixing directions needs an explicit mode and negative weights for the other direction"),
    "min_delta": KeySpec("float >= 0", 0.0, "an improvement must beat the best by more than this (absolute, or a fraction of |best| with `min_delta_mode: rel`)"),
    "min_delta_mode": KeySpec("abs | rel", "abs", "how `min_delta` is measured; `rel` uses |best| so it is safe for negative scores"),
    "ties_improve": KeySpec("bool", False, "count a value equal to best + min_delta as an improvement (RecBole does)"),
    "patience": KeySpec("int >= 1 | null", 10, "stop after this many evaluations (or epochs, see `patience_unit`) without improvement; null disables the patience rule"),
    "patience_unit": KeySpec("evaluations | epochs", "evaluations", "what `patience` counts; with RecBole's `eval_step` > 1 an evaluation spans eval_step epochs; messages always give both"),
    "dynamic_patience": KeySpec("null | {factor, max_patience, min_gain}", None, "patience grows with the time it took to reach the latest significant improvement: effective patience = min(max_patience, max(patience, ceil(factor x n))) where n counts (in `patience_unit`) up to that improvement; improvements smaller than `min_gain` (relative) reset the wait but do not extend patience"),
    "warmup": KeySpec("int >= 0", 0, "no metric rule may stop before epoch `warmup` (0-based, as RecBole logs); counters still run, so a stop fires after warmup only if its condition still holds then; non-finite and budget stops still apply"),
    "start_from_epoch": KeySpec("int >= 0", 0, "Keras' `start_from_epoch`: evaluations before this epoch are ignored entirely (no best, no counting)"),
    "smoothing": KeySpec("none | ema | window", "none", "smoothing applied to the monitor before best-tracking and every rule"),
    "ema_alpha": KeySpec("float in (0, 1]", 0.5, "EMA weight of the newest value (1 = no smoothing); needs `smoothing: ema`"),
    "window": KeySpec("int >= 1", 3, "moving-window length in evaluations; needs `smoothing: window`"),
    "best_by": KeySpec("raw | smoothed", "raw", "which series picks the weights to restore when smoothing is on: the epoch with the best raw value, or with the best smoothed value"),
    "stopping_threshold": KeySpec("float | null", None, "stop as soon as the monitor is better than this (good enough)"),
    "divergence_threshold": KeySpec("float | null", None, "stop as soon as the monitor is worse than this (hopeless)"),
    "baseline": KeySpec("float | null", None, "Keras' `baseline`: the wait counter resets only on improvements that also beat this value"),
    "check_finite": KeySpec("stop | miss", "stop", "a NaN/inf monitor value: `stop` at once, or `miss` (counts as an evaluation without improvement)"),
    "max_epochs": KeySpec("int >= 1 | null", None, "stop after this many epochs (budget; applies in warmup too)"),
    "max_minutes": KeySpec("float > 0 | null", None, "stop at the first evaluation after this many minutes of wall-clock training (budget)"),
    "prechelt": KeySpec("null | {criterion, alpha, strip, s} | list", None, "Prechelt (1998) criteria: `GL` (alpha), `PQ` (alpha, strip), `UP` (s, strip); error E = error_offset - score for max-mode monitors, E = score for min-mode"),
    "error_offset": KeySpec("float", 1.0, "for Prechelt criteria on a max-mode monitor: E = error_offset - score (1.0 suits metrics bounded by 1 such as NDCG/Recall)"),
    "combine": KeySpec("any_of | all_of", "any_of", "how the plateau rules (patience and Prechelt criteria) combine: stop when any fires, or only when all fire at the same evaluation"),
}
LEGACY_KEYS = frozenset({"preset", "monitor", "mode", "stopping_step", "enabled"})
PRECHELT_KEYS = {"GL": {"criterion", "alpha"}, "PQ": {"criterion", "alpha", "strip"}, "UP": {"criterion", "s", "strip"}}
DYNAMIC_KEYS = ("factor", "max_patience", "min_gain")
#: Keys users bring from RecBole or other libraries, with what to write instead.
ALIASES = {
    "early_stop": "enabled",
    "stopping_step": "patience (RecBole's stopping_step N equals patience N+1 with ties_improve: true, or use preset: recbole_legacy)",
    "valid_metric": "monitor",
    "valid_metric_bigger": "mode",
    "start_from": "start_from_epoch",
    "min_epochs": "warmup",
}


@dataclass(frozen=True)
class PrecheltSpec:
    """One Prechelt criterion: ``GL`` (alpha), ``PQ`` (alpha, strip), ``UP`` (s, strip)."""

    criterion: str
    alpha: float | None = None
    strip: int = 5
    s: int | None = None


@dataclass(frozen=True)
class DynamicPatience:
    factor: float
    max_patience: int | None = None
    min_gain: float = 0.0


@dataclass(frozen=True)
class PolicySettings:
    """Validated, normalised settings of a StoppingPolicy (hyper-parameters only, never state)."""

    monitor: Monitor
    enabled: bool = True
    preset: str | None = None
    stopping_step: int | None = None
    min_delta: float = 0.0
    min_delta_mode: str = "abs"
    ties_improve: bool = False
    patience: int | None = 10
    patience_unit: str = "evaluations"
    dynamic_patience: DynamicPatience | None = None
    warmup: int = 0
    start_from_epoch: int = 0
    smoothing: str = "none"
    ema_alpha: float = 0.5
    window: int = 3
    best_by: str = "raw"
    stopping_threshold: float | None = None
    divergence_threshold: float | None = None
    baseline: float | None = None
    check_finite: str = "stop"
    max_epochs: int | None = None
    max_minutes: float | None = None
    prechelt: tuple[PrecheltSpec, ...] = field(default_factory=tuple)
    error_offset: float = 1.0
    combine: str = "any_of"

    @property
    def mode(self) -> str:
        return self.monitor.mode

    @property
    def smoothing_param(self) -> float:
        """The one parameter of the smoother in use: ``ema_alpha`` for EMA, ``window`` otherwise."""
        return self.ema_alpha if self.smoothing == "ema" else self.window

    def to_mapping(self) -> dict[str, Any]:
        """A plain mapping that ``build_policy`` turns back into these settings (for trace headers)."""
        terms = self.monitor.terms
        monitor: Any = terms[0][0] if len(terms) == 1 and terms[0][1] == 1.0 else dict(terms)
        if self.preset == "recbole_legacy":
            return {"preset": self.preset, "monitor": monitor, "mode": self.mode,
                    "stopping_step": self.stopping_step, "enabled": self.enabled}
        out: dict[str, Any] = {}
        for key in KEYS:
            if key in ("preset", "stopping_step") or (key, self.smoothing) in (("ema_alpha", "none"), ("ema_alpha", "window"),
                                                                             ("window", "none"), ("window", "ema")):
                continue
            value = monitor if key == "monitor" else getattr(self, key)
            if key == "dynamic_patience" and value is not None:
                value = {"factor": value.factor, "max_patience": value.max_patience, "min_gain": value.min_gain}
            elif key == "prechelt":
                value = [{k: getattr(p, k) for k in sorted(PRECHELT_KEYS[p.criterion])} for p in value] or None
            out[key] = value
        return out


def _suggest(key: str, known: list[str]) -> str:
    if key in ALIASES:
        return f" — did you mean '{ALIASES[key]}'?"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


_UNSET = object()


class _Checker:
    """Validates one mapping; every error names ``early_stopping.<key>``, what is allowed and what was given."""

    def __init__(self, mapping: Mapping[str, Any], source: str | None, prefix: str) -> None:
        self.m = mapping
        self.source = source
        self.prefix = prefix

    def fail(self, key: str, allowed: str, given: Any, problem: str = "") -> None:
        what = f"{problem}; " if problem else ""
        raise ConfigError(f"{self.prefix}{key}: {what}allowed: {allowed} (got {given!r})",
                          source=self.source, key=f"{self.prefix}{key}")

    def get(self, key: str) -> Any:
        return self.m.get(key, KEYS[key].default)

    def boolean(self, key: str) -> bool:
        v = self.get(key)
        if not isinstance(v, bool):
            self.fail(key, "true or false", v)
        return v

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        v = self.get(key)
        if not isinstance(v, str) or v.lower() not in options:
            self.fail(key, " | ".join(options), v)
        return v.lower()

    def integer(self, key: str, minimum: int, optional: bool = False, value: Any = _UNSET) -> int | None:
        v = self.get(key) if value is _UNSET else value
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self.fail(key, f"an integer >= {minimum}" + (" or null" if optional else ""), v)
        return v

    def number(self, key: str, optional: bool = False, check: Callable[[float], bool] | None = None,
               allowed: str = "a finite number", value: Any = _UNSET) -> float | None:
        v = self.get(key) if value is _UNSET else value
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (check and not check(v)):
            self.fail(key, allowed + (" or null" if optional else ""), v)
        return float(v)


def _monitor(c: _Checker) -> Monitor:
    raw = c.get("monitor")
    if isinstance(raw, str) and raw.strip():
        terms = ((raw.strip().lower(), 1.0),)
    elif isinstance(raw, Mapping) and raw:
        terms_list = []
        for k, w in raw.items():
            if not isinstance(k, str) or isinstance(w, bool) or not isinstance(w, (int, float)) or w == 0 or not math.isfinite(w):
                c.fail("monitor", "{metric: non-zero weight, ...} such as {ndcg@10: 0.5, recall@10: 0.5}", {k: w})
            terms_list.append((k.strip().lower(), float(w)))
        terms = tuple(terms_list)
    else:
        c.fail("monitor", "a RecBole metric key such as ndcg@10, or {metric: weight, ...}", raw)
    mode = c.choice("mode", ("auto", "max", "min"))
    modes = {metric_mode(k) for k, _ in terms}
    if mode == "auto":
        if len(modes) > 1:
            big = [k for k, _ in terms if metric_mode(k) == "max"]
            small = [k for k, _ in terms if metric_mode(k) == "min"]
            c.fail("mode", "max or min, given explicitly when a composite mixes directions", "auto",
                   f"monitor mixes bigger-is-better ({', '.join(big)}) and smaller-is-better ({', '.join(small)}) "
                   "metrics; set mode: max and give the smaller-is-better ones a negative weight, or monitor one direction")
        mode = modes.pop()
    return Monitor(terms, mode)


def _prechelt(c: _Checker) -> tuple[PrecheltSpec, ...]:
    raw = c.get("prechelt")
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        c.fail("prechelt", "{criterion: GL|PQ|UP, ...} or a list of them", raw)
    specs = []
    for item in items:
        crit = item.get("criterion") if isinstance(item, Mapping) else None
        crit = crit.upper() if isinstance(crit, str) else crit
        if crit not in PRECHELT_KEYS:
            c.fail("prechelt.criterion", "GL | PQ | UP", crit)
        extra = set(item) - PRECHELT_KEYS[crit]
        if extra:
            c.fail(f"prechelt ({crit})", ", ".join(sorted(PRECHELT_KEYS[crit])), sorted(extra), "unknown key")
        alpha = strip = s = None
        if crit in ("GL", "PQ"):
            alpha = c.number("prechelt.alpha", check=lambda x: x > 0, allowed="a number > 0", value=item.get("alpha"))
        if crit in ("PQ", "UP"):
            strip = c.integer("prechelt.strip", 1, value=item.get("strip", 5))
        if crit == "UP":
            s = c.integer("prechelt.s", 1, value=item.get("s"))
        specs.append(PrecheltSpec(crit, alpha, strip if strip is not None else 5, s))
    return tuple(specs)


def _dynamic(c: _Checker, patience: int | None) -> DynamicPatience | None:
    raw = c.get("dynamic_patience")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or "factor" not in raw or set(raw) - set(DYNAMIC_KEYS):
        c.fail("dynamic_patience", "null or {factor: > 0, max_patience: int | null, min_gain: >= 0}", raw)
    if patience is None:
        c.fail("dynamic_patience", "null when patience is null", raw, "dynamic patience adapts the patience rule")
    factor = c.number("dynamic_patience.factor", check=lambda x: x > 0, allowed="a number > 0", value=raw["factor"])
    maxp = raw.get("max_patience")
    if maxp is not None:
        maxp = c.integer("dynamic_patience.max_patience", patience, value=maxp)
    gain = c.number("dynamic_patience.min_gain", check=lambda x: x >= 0, allowed="a number >= 0",
                    value=raw.get("min_gain", 0.0))
    return DynamicPatience(factor, maxp, gain)


def parse_settings(mapping: Mapping[str, Any] | None, source: str | None = None,
                   prefix: str = "early_stopping.") -> PolicySettings:
    """Validate an ``early_stopping:`` mapping and return normalised settings; raise ConfigError."""
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{prefix.rstrip('.')}: must be a mapping of settings (got {mapping!r})", source=source)
    c = _Checker(mapping, source, prefix)
    known = list(KEYS)
    for key in mapping:
        if key not in KEYS or (key == "stopping_step" and mapping.get("preset") is None):
            c.fail(str(key), "the keys " + ", ".join(k for k in known if k != "stopping_step"), key,
                   f"unknown key{_suggest(str(key), known)}")
    preset = c.get("preset")
    if preset is not None and preset != "recbole_legacy":
        c.fail("preset", "recbole_legacy or null", preset)
    monitor = _monitor(c)
    enabled = c.boolean("enabled")
    if preset == "recbole_legacy":
        extra = sorted(set(mapping) - LEGACY_KEYS)
        if extra:
            c.fail(extra[0], ", ".join(sorted(LEGACY_KEYS)), mapping[extra[0]],
                   "recbole_legacy reproduces RecBole exactly, so it takes no other setting; drop the key or the preset")
        step = c.integer("stopping_step", 0)
        return PolicySettings(monitor=monitor, enabled=enabled, preset=preset, stopping_step=step,
                              ties_improve=True, patience=step + 1, check_finite="miss")
    check_finite = c.get("check_finite")
    if isinstance(check_finite, bool):  # Lightning's check_finite: true/false
        check_finite = "stop" if check_finite else "miss"
    c.m = {**mapping, "check_finite": check_finite}
    patience = c.integer("patience", 1, optional=True)
    smoothing = c.choice("smoothing", ("none", "ema", "window"))
    for key, needs in (("ema_alpha", "ema"), ("window", "window")):
        if key in mapping and smoothing != needs:
            c.fail(key, f"only with smoothing: {needs}", mapping[key], f"{key} is set but smoothing is '{smoothing}'")
    settings = PolicySettings(
        monitor=monitor,
        enabled=enabled,
        min_delta=c.number("min_delta", check=lambda x: x >= 0, allowed="a number >= 0"),
        min_delta_mode=c.choice("min_delta_mode", ("abs", "rel")),
        ties_improve=c.boolean("ties_improve"),
        patience=patience,
        patience_unit=c.choice("patience_unit", ("evaluations", "epochs")),
        dynamic_patience=_dynamic(c, patience),
        warmup=c.integer("warmup", 0),
        start_from_epoch=c.integer("start_from_epoch", 0),
        smoothing=smoothing,
        ema_alpha=c.number("ema_alpha", check=lambda x: 0 < x <= 1, allowed="a number in (0, 1]"),
        window=c.integer("window", 1),
        best_by=c.choice("best_by", ("raw", "smoothed")),
        stopping_threshold=c.number("stopping_threshold", optional=True),
        divergence_threshold=c.number("divergence_threshold", optional=True),
        baseline=c.number("baseline", optional=True),
        check_finite=c.choice("check_finite", ("stop", "miss")),
        max_epochs=c.integer("max_epochs", 1, optional=True),
        max_minutes=c.number("max_minutes", optional=True, check=lambda x: x > 0, allowed="a number > 0"),
        prechelt=_prechelt(c),
        error_offset=c.number("error_offset"),
        combine=c.choice("combine", ("any_of", "all_of")),
    )
    return settings
