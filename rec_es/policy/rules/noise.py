"""What counts as an improvement, from measured noise: ``min_delta`` (a number, default 0, or ``auto``) and
``improvement`` (``threshold``, the default, or ``significant`` with ``alpha``, default 0.05).

``min_delta: auto``: the margin an evaluation must beat the best by is the standard deviation of the difference
of two evaluations, measured at each evaluation:

* with per-user scores (top-k monitors; the trainer captures them): the standard error of the paired
  difference ``SE = sd_u(x_u - best_u) / sqrt(n_users)`` between this evaluation's and the best's per-user
  monitor values (a composite monitor is summed per user with its weights);
* otherwise (a value metric, a replayed stock log): the curve's own noise ``1.4826 * MAD(first differences)``
  of the last ``NOISE_WINDOW`` raw values (the SD of one difference if each value is a level plus independent
  noise; the MAD is taken around the median difference, so a steady trend is not counted as noise);
* 0 until there are 5 values to measure it from.

``improvement: significant``: an evaluation that beats the best (by ``min_delta``) improves only if a one-sided
paired t-test over the validation users says so, ``p < alpha``; else the best does not move and the wait goes
on. It needs a monitor with per-user scores (RecBole's top-k metrics, ``target_ce``); without them (a replayed
trace that has none) the test falls back to a z-test of the difference against the curve's noise above, and
the decision says so. Each decision records what was measured: the margin and its source, the p-value and
the test.

Caveats: the t-test takes the mean of the per-user differences as normal, which needs many users (hundreds, not a
handful). Every evaluation is tested against the best, so over K evaluations of a model that no longer changes the
chance of at least one false improvement grows with K (measured: 0.15-0.28 by K = 10 at alpha 0.05): ``alpha``
bounds the rate per test, not per run. A false improvement only makes the run wait longer, never stop earlier. Why
a paired t-test and not Wilcoxon or a bootstrap: docs/noise.md.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from rec_es.policy.errors import RecEsError
from rec_es.policy.base import Context, Fired, Rule
from rec_es.policy.monitor import TARGET_CE, metric_base
from rec_es.policy.rules.patience import REASON as PATIENCE
from rec_es.policy.stats import MAD_SCALE, median, normal_sf, paired_se, paired_t
from rec_es.policy.validate import Invalid, KeySpec, Validator, number, one_of

AUTO = "auto"
#: RecBole's metrics that average one value per user (recbole.evaluator.base_metric.TopkMetric)
PER_USER_METRICS = frozenset({"hit", "mrr", "map", "recall", "ndcg", "precision"})
#: raw values the curve noise is measured over
NOISE_WINDOW = 20
#: fewest values the curve noise is measured from
MIN_VALUES = 5
_NUMBER = number(0)


def number_or_auto(check: Validator, allowed: str, key: str | None = None) -> Callable[[Any], Any]:
    """A parser of ``auto`` (any case, as ``AUTO``) or a number passing ``check``; else Invalid with ``allowed``."""
    def parse(raw: Any) -> Any:
        if isinstance(raw, str) and raw.strip().lower() == AUTO:
            return AUTO
        try:
            return check(raw)
        except Invalid:
            raise Invalid(allowed, raw, key=key) from None

    return parse


_min_delta = number_or_auto(_NUMBER, "a number >= 0 or auto")


def without_per_user(terms: Sequence[tuple[str, float]]) -> list[str]:
    """The monitor's metric keys that have no per-user values (value metrics, coverage-like aggregates; rec_es's
    own ``target_ce`` has one per user)."""
    return [k for k, _ in terms if k != TARGET_CE and ("@" not in k or metric_base(k) not in PER_USER_METRICS)]


def _improvement(parsed: Mapping[str, Any]) -> Validator:
    choice = one_of("threshold", "significant")
    terms = parsed["monitor"]

    def check(value: Any) -> str:
        mode = choice(value)
        missing = without_per_user(terms) if mode == "significant" else []
        if missing:
            raise Invalid("threshold (a significance test needs per-user scores)", value,
                          f"the monitor's {', '.join(missing)} has no per-user values (only RecBole's top-k metrics "
                          f"{', '.join(sorted(PER_USER_METRICS))} average one value per user)")
        return mode

    return Validator(choice.allowed, choice.doc, check)


def _vector(ctx: Context) -> list[float] | None:
    """This evaluation's per-user monitor values (weighted sum over the monitor's terms), None if not passed."""
    if ctx.per_user is None:
        return None
    terms = ctx.settings.monitor.terms
    lowered = {str(k).lower(): v for k, v in ctx.per_user.items()}
    missing = [k for k, _ in terms if k not in lowered]
    if missing:
        raise RecEsError(f"per-user scores of {', '.join(missing)} are needed (early_stopping.min_delta: auto or "
                         f"improvement: significant) but the evaluation passed only {', '.join(sorted(lowered)) or 'none'}")
    columns = [(lowered[k], w) for k, w in terms]
    n = len(columns[0][0])
    if any(len(c) != n for c, _ in columns):
        raise RecEsError("per-user scores of the monitor's metrics have different numbers of users")
    if len(columns) == 1 and columns[0][1] == 1.0:
        return [float(v) for v in columns[0][0]]
    return [math.fsum(w * float(c[u]) for c, w in columns) for u in range(n)]


def curve_noise(values: Sequence[float]) -> float | None:
    """``1.4826 * MAD`` of the first differences of the last ``NOISE_WINDOW`` values; None below ``MIN_VALUES``."""
    recent = list(values)[-NOISE_WINDOW:]
    if len(recent) < MIN_VALUES:
        return None
    d = [b - a for a, b in zip(recent, recent[1:])]
    centre = median(d)
    return MAD_SCALE * median([abs(x - centre) for x in d])


class Noise(Rule):
    name = "noise"
    keys = (
        KeySpec("min_delta", Validator("a number >= 0 or auto", "float >= 0 | auto", _min_delta), 0.0,
                "an improvement must beat the best by more than this (absolute, or a fraction of |best| with "
                "`min_delta_mode: rel`); `auto`: by the measured noise, the SE of the paired per-user difference "
                "to the best (else the curve's 1.4826·MAD of first differences), written in each decision",
                dump=lambda v: v),
        KeySpec("improvement", one_of("threshold", "significant"), "threshold",
                "`threshold`: beating the best by `min_delta` is an improvement; `significant`: it must also pass a "
                "one-sided paired t-test over the validation users at `alpha` (needs a top-k or target_ce "
                "monitor, whose per-user scores rec_es records)", bind=_improvement),
        KeySpec("alpha", number(0, 0.5, low_open=True), 0.05,
                "with `improvement: significant`: the test's level; an evaluation improves only if p < alpha",
                only_with=("improvement", ("significant",))),
    )
    state_since = 2  # its state keys are new: states saved by version 1 load with a fresh noise state

    def fresh_state(self, s: Any) -> dict[str, Any]:
        return {"noise_values": [], "noise_reference": None, "noise_reference_epoch": None, "noise_margin": None,
                "noise_source": None, "noise_p": None, "noise_test": None}

    def per_user(self, s: Any) -> tuple[str, ...]:
        wants = s.improvement == "significant" or s.min_delta == AUTO
        return s.monitor.keys if wants and not without_per_user(s.monitor.terms) else ()

    def min_delta(self, s: Any, state: dict[str, Any], margin: float) -> float:
        if s.min_delta != AUTO:
            return s.min_delta
        return state["noise_margin"] or 0.0

    def observe(self, ctx: Context, state: dict[str, Any]) -> None:
        s = ctx.settings
        if s.min_delta != AUTO and s.improvement != "significant":
            return
        state["noise_p"] = state["noise_test"] = None
        vec = _vector(ctx) if ctx.finite else None
        ref = state["noise_reference"]
        paired = vec is not None and ref is not None and len(ref) == len(vec) and len(vec) >= 2
        if ref is not None and vec is not None and len(ref) != len(vec):
            raise RecEsError(f"epoch {ctx.epoch}: {len(vec)} per-user scores, the best (epoch "
                             f"{state['noise_reference_epoch']}) had {len(ref)}; the validation users changed")
        curve = curve_noise(state["noise_values"])
        if s.min_delta == AUTO:
            if paired:
                state["noise_margin"] = paired_se(vec, ref)
                state["noise_source"] = f"per-user paired SE vs epoch {state['noise_reference_epoch']}"
            elif curve is not None:
                state["noise_margin"], state["noise_source"] = curve, "curve: 1.4826·MAD(first differences)"
            else:
                state["noise_margin"] = 0.0
                state["noise_source"] = f"not measured yet (fewer than {MIN_VALUES} values)"
        if s.improvement != "significant" or not ctx.finite or ctx.core.best_score is None:
            return
        if paired:
            diff = [a - b for a, b in zip(vec, ref)] if ctx.mode == "max" else [b - a for a, b in zip(vec, ref)]
            test = paired_t(diff)
            state["noise_p"] = test.p_value
            state["noise_test"] = f"paired t over {test.n} users vs epoch {state['noise_reference_epoch']}"
        elif vec is None and curve:
            best = ctx.core.best_score
            z = ((ctx.raw - best) if ctx.mode == "max" else (best - ctx.raw)) / curve
            state["noise_p"] = normal_sf(z)
            state["noise_test"] = "z against the curve noise (no per-user scores)"

    def confirms_improvement(self, ctx: Context, state: dict[str, Any]) -> bool:
        s = ctx.settings
        return s.improvement != "significant" or state["noise_p"] is None or state["noise_p"] < s.alpha

    def update(self, ctx: Context, state: dict[str, Any]) -> list[Fired]:
        s = ctx.settings
        if (s.min_delta != AUTO and s.improvement != "significant") or not ctx.finite:
            return []
        state["noise_values"] = (state["noise_values"] + [ctx.raw])[-NOISE_WINDOW:]
        if ctx.improved:
            state["noise_reference"] = _vector(ctx)
            state["noise_reference_epoch"] = ctx.epoch
        return []

    def measured(self, ctx: Context, state: dict[str, Any]) -> dict[str, Any]:
        s, out = ctx.settings, {}
        if s.min_delta == AUTO:
            out["min_delta"] = {"value": state["noise_margin"], "source": state["noise_source"]}
        if s.improvement == "significant" and state["noise_p"] is not None:
            out["significance"] = {"p_value": state["noise_p"], "alpha": s.alpha, "test": state["noise_test"],
                                   "confirmed": state["noise_p"] < s.alpha}
        return out

    def restate(self, ctx: Context, state: dict[str, Any], fired: Fired) -> Fired | None:
        s = ctx.settings
        if fired.reason != PATIENCE or ctx.core.improved_epoch is None:
            return None
        clause, hint = fired.clause, fired.hint
        if s.min_delta == AUTO:
            clause += f" (min_delta: auto, {state['noise_source']})"
        if s.improvement == "significant":
            last = (f"; last p = {state['noise_p']:.3g} ({state['noise_test']})" if state["noise_p"] is not None
                    else "")
            clause += f"; improvements must pass a one-sided paired t-test at alpha {s.alpha:g}{last}"
            hint = "raise early_stopping.alpha or early_stopping.patience"
        return None if clause == fired.clause else Fired(fired.reason, clause, hint)


RULE = Noise()
