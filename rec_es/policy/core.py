"""The policy core's own keys: on/off and preset, the monitor, what counts as an improvement, warmup, and how
the plateau rules combine. Each group is a settings-only ``Rule`` listed in the registry where its keys belong
in the docs table; the behaviour behind them is ``StoppingPolicy``'s."""
from __future__ import annotations

import math
from typing import Any, Mapping

from rec_es.policy.base import Rule
from rec_es.policy.monitor import Monitor, metric_mode
from rec_es.policy.validate import (Invalid, KeySpec, Validator, boolean, integer, is_number, one_of,
                             optional)

LEGACY = "recbole_legacy"


class _Switch(Rule):
    name = "switch"
    keys = (
        KeySpec("enabled", boolean(), True,
                "false turns stopping off: every epoch runs; the best is still tracked and restored"),
        KeySpec("preset", optional(one_of(LEGACY, ignore_case=False)), None,
                "`recbole_legacy`: RecBole's own `stopping_step` rule, decision for decision (only `monitor`, "
                "`mode`, `stopping_step`, `enabled` may go with it)", type="str | null"),
        KeySpec("stopping_step", integer(0), 10,
                "with `preset: recbole_legacy` only: RecBole's `stopping_step` (stops on the stopping_step+1-th "
                "evaluation without reaching the best; ties count as reaching it)",
                only_with=("preset", (LEGACY,)), inapplicable=None),
    )


_MONITOR_ALLOWED = "a RecBole metric key such as ndcg@10, or {metric: weight, ...}"


def _terms(raw: Any) -> tuple[tuple[str, float], ...]:
    if isinstance(raw, str) and raw.strip():
        return ((raw.strip().lower(), 1.0),)
    if not isinstance(raw, Mapping) or not raw:
        raise Invalid(_MONITOR_ALLOWED, raw)
    terms = []
    for k, w in raw.items():
        if not isinstance(k, str) or not is_number(w) or w == 0 or not math.isfinite(w):
            raise Invalid("{metric: non-zero weight, ...} such as {ndcg@10: 0.5, recall@10: 0.5}", {k: w})
        terms.append((k.strip().lower(), float(w)))
    return tuple(terms)


def _mode(parsed: Mapping[str, Any]) -> Validator:
    """``auto | max | min``, with ``auto`` resolved from RecBole's metric directions of the monitor's terms."""
    choice = one_of("auto", "max", "min")
    terms = parsed["monitor"]

    def resolve(value: Any) -> str:
        mode = choice(value)
        if mode != "auto":
            return mode
        modes = {metric_mode(k) for k, _ in terms}
        if len(modes) > 1:
            big = ", ".join(k for k, _ in terms if metric_mode(k) == "max")
            small = ", ".join(k for k, _ in terms if metric_mode(k) == "min")
            raise Invalid("max or min, given explicitly when a composite mixes directions", "auto",
                          f"monitor mixes bigger-is-better ({big}) and smaller-is-better ({small}) metrics; set "
                          "mode: max and give the smaller-is-better ones a negative weight, or monitor one direction")
        return modes.pop()

    return Validator(choice.allowed, choice.doc, resolve)


def plain_monitor(monitor: Monitor) -> Any:
    """``'ndcg@10'`` for one metric of weight 1, else ``{metric: weight}``: as a property file writes it."""
    terms = monitor.terms
    return terms[0][0] if len(terms) == 1 and terms[0][1] == 1.0 else dict(terms)


class _Monitor(Rule):
    name = "monitor"
    keys = (
        KeySpec("monitor", Validator(_MONITOR_ALLOWED, "str | {metric: weight}", _terms), "mrr@10",
                "a RecBole result key (`ndcg@10`, any case) or a weighted sum `{ndcg@10: 0.5, recall@10: 0.5}`; "
                "in a property file the default is RecBole's `valid_metric`; `target_ce` (rec_es's cross-entropy at the "
                "target item, full ranking only, smaller is better) is one too", dump=plain_monitor),
        KeySpec("mode", one_of("auto", "max", "min"), "auto",
                "`auto` takes the direction from RecBole's metric definitions; a composite mixing directions "
                "needs an explicit mode and negative weights for the other direction", bind=_mode),
    )


def _delta_mode(parsed: Mapping[str, Any]) -> Validator:
    """``abs | rel``; ``min_delta: auto`` measures an absolute margin, so it takes ``abs`` only."""
    choice = one_of("abs", "rel")

    def check(value: Any) -> str:
        mode = choice(value)
        if mode == "rel" and parsed.get("min_delta") == "auto":
            raise Invalid("abs with min_delta: auto", value, "min_delta: auto measures an absolute margin")
        return mode

    return Validator(choice.allowed, choice.doc, check)


class _Improvement(Rule):
    """``min_delta`` itself belongs to rules/noise.py (a number, or ``auto``: measured noise)."""

    name = "improvement"
    keys = (
        KeySpec("min_delta_mode", one_of("abs", "rel"), "abs",
                "how `min_delta` is measured; `rel` uses |best| so it is safe for negative scores", bind=_delta_mode),
        KeySpec("ties_improve", boolean(), False,
                "count a value equal to best + min_delta as an improvement (RecBole does)"),
    )


class _Timing(Rule):
    name = "timing"
    keys = (
        KeySpec("warmup", integer(0), 0,
                "no metric rule may stop before epoch `warmup` (0-based, as RecBole logs); counters still run, so "
                "a stop fires after warmup only if its condition still holds then; non-finite and budget stops "
                "still apply"),
        KeySpec("start_from_epoch", integer(0), 0,
                "Keras' `start_from_epoch`: evaluations before this epoch are ignored entirely (no best, no "
                "counting)"),
    )


class _Combine(Rule):
    name = "combine"
    keys = (KeySpec("combine", one_of("any_of", "all_of"), "any_of",
                    "how the plateau rules (patience and Prechelt criteria) combine: stop when any fires, or only "
                    "when all fire at the same evaluation"),)
    reasons = {"ALL_OF": "all_of"}


SWITCH, MONITOR, IMPROVEMENT, TIMING, COMBINE = _Switch(), _Monitor(), _Improvement(), _Timing(), _Combine()
