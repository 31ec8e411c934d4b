"""Prechelt (1998) criteria on the validation error E: ``GL`` (alpha), ``PQ`` (alpha, strip), ``UP`` (s, strip).

E = error_offset - score for max-mode monitors, E = score for min-mode. ``GL(t) = 100 (E(t)/E_opt(t) - 1)``
fires above alpha at every evaluation; PQ and UP are judged at the end of each strip of ``strip`` evaluations:
``PQ = GL / P_k`` with training progress ``P_k = 1000 (sum of the strip's train losses / (k min of them) - 1)``,
and ``UP_s`` fires once E rose at the end of ``s`` successive strips.

``GL`` with ``alpha: auto`` takes its threshold from the measured noise instead of a fixed percentage: the
monitor may fall ``noise_multiple`` times the curve noise below its best, ``alpha(t) = 100 * noise_multiple *
noise(t) / E_opt(t)``, where ``noise(t)`` is ``rules.noise.curve_noise`` of the raw monitor (1.4826·MAD of the
first differences of the last 20 evaluations: the SD of the difference of two evaluations), so the threshold
follows the validation set's noise where a fixed alpha is a fixed drop whatever the noise. It does not fire
before 5 raw values are there to measure the noise from.

Caveat: on a flat curve of white noise smoothed by an EMA of 0.5, GL with the default ``noise_multiple`` 3
fires within 90 evaluations with probability 0.002 (``scripts/bench_val_size.py --null``); a smaller multiple
fires on noise far more often. How the multiple was chosen: docs/choosing_a_policy.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from rec_es.policy.errors import RecEsError, StateError
from rec_es.policy.base import Context, Fired, Rule, Stage, fmt
from rec_es.policy.rules.noise import AUTO, NOISE_WINDOW, curve_noise, number_or_auto
from rec_es.policy.stats import training_progress
from rec_es.policy.validate import Invalid, KeySpec, Validator, integer, number, within

#: the keys each criterion takes
CRITERIA = {"GL": {"criterion", "alpha", "noise_multiple"}, "PQ": {"criterion", "alpha", "strip"},
            "UP": {"criterion", "s", "strip"}}
_ALLOWED = "{criterion: GL|PQ|UP, ...} or a list of them"
#: GL alpha auto: how many curve-noise SDs the monitor may fall below its best (module docstring)
NOISE_MULTIPLE = 3.0
_ALPHA = number(0, low_open=True)


def prechelt_error(score: float, mode: str, offset: float) -> float:
    """Prechelt's error E for a monitor value: ``offset - score`` if bigger is better, else ``score``."""
    return offset - score if mode == "max" else score


def generalization_loss(error: float, best_error: float) -> float:
    """GL(t) = 100 * (E_va(t) / E_opt(t) - 1), in percent. Needs E_opt > 0 (else inf, or 0 if equal)."""
    if best_error <= 0:
        return 0.0 if error <= best_error else math.inf
    return 100.0 * (error / best_error - 1.0)


def progress_quotient(gl: float, progress: float) -> float:
    """PQ = GL / P_k; a stalled training (P_k = 0) with any loss of generalization gives inf."""
    if progress == 0:
        return math.inf if gl > 0 else 0.0
    return gl / progress


@dataclass(frozen=True)
class PrecheltSpec:
    """One Prechelt criterion: ``GL`` (alpha), ``PQ`` (alpha, strip), ``UP`` (s, strip)."""

    criterion: str
    alpha: float | str | None = None   # a number, or "auto" (GL only: from the measured noise)
    strip: int = 5
    s: int | None = None
    noise_multiple: float | None = None  # with GL alpha auto


_gl_alpha = number_or_auto(_ALPHA, "a number > 0 or auto", key="prechelt.alpha")


def _spec(item: Any) -> PrecheltSpec:
    crit = item.get("criterion") if isinstance(item, Mapping) else None
    crit = crit.upper() if isinstance(crit, str) else crit
    if crit not in CRITERIA:
        raise Invalid("GL | PQ | UP", crit, key="prechelt.criterion")
    extra = set(item) - CRITERIA[crit]
    if extra:
        raise Invalid(", ".join(sorted(CRITERIA[crit])), sorted(extra), "unknown key", key=f"prechelt ({crit})")
    alpha = strip = s = multiple = None
    if crit == "GL":
        alpha = _gl_alpha(item.get("alpha"))
        if alpha == AUTO:
            multiple = within("prechelt.noise_multiple", _ALPHA, item.get("noise_multiple", NOISE_MULTIPLE))
        elif "noise_multiple" in item:
            raise Invalid("alpha: auto with noise_multiple", alpha, "noise_multiple sets GL's threshold only when it "
                          "is measured (alpha: auto)", key="prechelt.alpha")
    if crit == "PQ":
        alpha = within("prechelt.alpha", _ALPHA, item.get("alpha"))
    if crit in ("PQ", "UP"):
        strip = within("prechelt.strip", integer(1), item.get("strip", 5))
    if crit == "UP":
        s = within("prechelt.s", integer(1), item.get("s"))
    return PrecheltSpec(crit, alpha, strip if strip is not None else 5, s, multiple)


def _specs(raw: Any) -> tuple[PrecheltSpec, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        raise Invalid(_ALLOWED, raw)
    return tuple(_spec(item) for item in items)


def _plain(specs: tuple[PrecheltSpec, ...]) -> list[dict[str, Any]] | None:
    return [{k: getattr(p, k) for k in sorted(CRITERIA[p.criterion]) if getattr(p, k) is not None}
            for p in specs] or None


def _memory(spec: PrecheltSpec, saved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One criterion's state (a copy of ``saved``); GL alpha auto also keeps the last raw values, which a state
    saved with a fixed alpha lacks: it starts empty and the noise is measured again after 5 evaluations."""
    saved = saved or {"losses": [], "prev_error": None, "rises": 0}
    mem = {"losses": list(saved["losses"]), "prev_error": saved["prev_error"], "rises": saved["rises"]}
    if spec.alpha == AUTO:
        mem["values"] = [float(v) for v in saved.get("values", [])]
    return mem


def _gl_threshold(spec: PrecheltSpec, mem: dict[str, Any], best: float) -> tuple[float | None, float | None]:
    """(alpha in percent, the measured noise): the fixed alpha, or alpha auto's from the noise (None before it
    can be measured)."""
    if spec.alpha != AUTO:
        return float(spec.alpha), None
    noise = curve_noise(mem["values"])
    if noise is None or best <= 0:
        return None, noise
    return 100.0 * spec.noise_multiple * noise / best, noise


class Prechelt(Rule):
    name = "prechelt"
    keys = (
        KeySpec("prechelt", Validator(_ALLOWED, "null | {criterion, alpha, strip, s, noise_multiple} | list",
                                      _specs), None,
                "Prechelt (1998) criteria: `GL` (alpha), `PQ` (alpha, strip), `UP` (s, strip); error E = "
                "error_offset - score for max-mode monitors, E = score for min-mode; GL `alpha: auto` measures "
                "its threshold: a fall of `noise_multiple` (3) times the curve noise below the best", dump=_plain),
        KeySpec("error_offset", number(), 1.0,
                "for Prechelt criteria on a max-mode monitor: E = error_offset - score (1.0 suits metrics bounded "
                "by 1 such as NDCG/Recall)"),
    )
    reasons = {"PRECHELT_GL": "prechelt_gl", "PRECHELT_PQ": "prechelt_pq", "PRECHELT_UP": "prechelt_up"}
    stage = Stage.PLATEAU

    def fresh_state(self, s: Any) -> dict[str, Any]:
        return {"error_opt": None, "prechelt": [_memory(spec) for spec in s.prechelt]}

    def load_state(self, s: Any, saved: dict[str, Any]) -> dict[str, Any]:
        if len(saved["prechelt"]) != len(s.prechelt):
            raise StateError("policy state was saved with a different number of prechelt criteria")
        return {"error_opt": saved["error_opt"],
                "prechelt": [_memory(spec, p) for spec, p in zip(s.prechelt, saved["prechelt"])]}

    def grant_patience(self, state: dict[str, Any]) -> None:
        for p in state["prechelt"]:
            p["rises"] = 0

    def criteria(self, s: Any) -> int:
        return len(s.prechelt)

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        s = ctx.settings
        if not s.prechelt or not ctx.finite:
            return []
        error = prechelt_error(ctx.smoothed, ctx.mode, s.error_offset)
        if state["error_opt"] is None or error < state["error_opt"]:
            state["error_opt"] = error
        best = state["error_opt"]
        gl = generalization_loss(error, best)
        err = f"error {fmt(s.error_offset)} − {ctx.monitor}" if ctx.mode == "max" else f"error {ctx.monitor}"
        fired = []
        for spec, mem in zip(s.prechelt, state["prechelt"]):
            if spec.criterion == "GL":
                if spec.alpha == AUTO:
                    mem["values"] = (mem["values"] + [float(ctx.raw)])[-NOISE_WINDOW:]
                alpha, noise = _gl_threshold(spec, mem, best)
                if alpha is not None and gl > alpha:
                    fired.append(Fired("prechelt_gl", f"generalization loss GL = {gl:.3g}% ({err} = {fmt(error)} is "
                                                      f"{gl:.3g}% above its lowest, {fmt(best)}) exceeds alpha "
                                                      f"{_alpha_text(spec, alpha, noise)}",
                                       "raise the GL alpha in early_stopping.prechelt" if noise is None else
                                       "raise noise_multiple of the GL criterion in early_stopping.prechelt"))
                continue
            if spec.criterion == "PQ":
                if ctx.train_loss is None:
                    raise RecEsError("Prechelt PQ needs the training loss: pass train_loss= to update() at every "
                                     "evaluation")
                mem["losses"].append(float(ctx.train_loss))
            if ctx.core.evaluations % spec.strip:
                continue
            if spec.criterion == "PQ":
                progress = training_progress(mem["losses"])
                mem["losses"] = []
                pq = progress_quotient(gl, progress)
                if pq > spec.alpha:
                    fired.append(Fired("prechelt_pq", f"PQ = GL/P_{spec.strip} = {pq:.3g} exceeds alpha {spec.alpha:g} "
                                                      f"(GL {gl:.3g}%, training progress P_{spec.strip} {progress:.3g}‰ "
                                                      f"over the last {spec.strip} evaluations; Prechelt PQ_{spec.alpha:g})",
                                       "raise the PQ alpha in early_stopping.prechelt"))
            else:  # UP
                prev = mem["prev_error"]
                mem["rises"] = mem["rises"] + 1 if prev is not None and error > prev else 0
                mem["prev_error"] = error
                if mem["rises"] >= spec.s:
                    fired.append(Fired("prechelt_up", f"{err} rose at the end of {mem['rises']} successive strips of "
                                                      f"{spec.strip} evaluations (now {fmt(error)}; Prechelt UP_{spec.s})",
                                       "raise s of the UP criterion in early_stopping.prechelt"))
        return fired

    def measured(self, ctx: Context, state: dict[str, Any]) -> dict[str, Any]:
        best = state["error_opt"]
        out = [{"alpha": a, "noise": n} for spec, mem in zip(ctx.settings.prechelt, state["prechelt"])
               if spec.alpha == AUTO and best is not None for a, n in [_gl_threshold(spec, mem, best)]]
        return {"prechelt_gl_auto": out} if out else {}

    def setting(self, reason: str, s: Any) -> tuple[str, Any] | None:
        if reason not in self.reasons.values():
            return None
        return "early_stopping.prechelt", reason.rsplit("_", 1)[1].upper()

    def describe_wait(self, s: Any, eval_step: int) -> tuple[str, str] | None:
        if not s.prechelt:
            return None
        names = ", ".join(f"{p.criterion} (alpha: auto, {p.noise_multiple:g} x the measured curve noise)"
                          if p.alpha == AUTO else p.criterion for p in s.prechelt)
        return "early_stopping.prechelt", (f"the patience rule is off (patience: null); Prechelt {names} "
                                           f"decide{'s' * (len(s.prechelt) == 1)}")


def _alpha_text(spec: PrecheltSpec, alpha: float, noise: float | None) -> str:
    if noise is None:
        return f"{alpha:g} (Prechelt GL_{alpha:g})"
    return (f"{alpha:.3g} (Prechelt GL, alpha: auto = {spec.noise_multiple:g} x the curve noise {noise:.2g}, "
            f"1.4826·MAD of the last {NOISE_WINDOW} evaluations' first differences, in % of the lowest error)")


RULE = Prechelt()
