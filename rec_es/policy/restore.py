"""Which weights a run restores at its end: ``early_stopping.restore``, and which evaluations go into an average.

``restore: best`` (the default) restores the weights of the single best evaluation, as ``best_by`` picks it. The
averaging modes restore a uniform (``ema``: exponential) average of several evaluations' weights instead:

* ``{average: best_k, k: K}``: the K best evaluations, ranked by the ``best_by`` series (raw or smoothed monitor);
  keeps up to K copies of the weights;
* ``{average: window, window: W}``: the last W evaluations, up to and including the last one of the run (the
  stop); a ring buffer of W copies;
* ``{average: peak, window: W}``: the W evaluations centred on the best one (``best_by``): ``(W - 1) // 2`` before
  it and ``W // 2`` after it, as far as they exist (fewer at the ends of the run, and after the best only those
  trained before the stop); keeps up to ``W + (W - 1) // 2`` copies (the evaluations just before the current
  best, the best and those after it, and a ring of the latest ``(W - 1) // 2`` in case a new best comes);
* ``{average: ema, decay: D}``: ``avg = D * avg + (1 - D) * weights`` at every evaluation (the first one starts
  it); one extra copy.

Only evaluations the policy counts enter an average: those at or after ``start_from_epoch`` with a finite
monitor (a NaN evaluation's weights are left out, so a window may hold fewer). Ranking ties go to the earlier
evaluation, and ``min_delta`` does not enter the ranking, so the best evaluation of a ranking can differ from the
policy's restored best epoch when ``min_delta`` or ``ties_improve`` is set. ``window`` and ``ema`` take every
counted evaluation, so ``best_by`` does not change what they average; it still picks the single best they are
checked against (and whose integer buffers they keep). No ``best_by`` setting contradicts a mode.

This module is the pure part: the setting (``RestoreSpec``), which epochs an average takes (``epochs_to_average``)
and which weights a trainer must keep meanwhile (``epochs_to_keep``), the budget check and the fallback verdict.
The weights themselves are ``rec_es.training.averaging``'s. Example::

    >>> spec = RestoreSpec.parse({"average": "best_k", "k": 2})
    >>> epochs_to_average(spec, [(0, 0.1, 0.1), (1, 0.3, 0.2), (2, 0.2, 0.2)], mode="max")
    [1, 2]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rec_es.policy.base import Rule
from rec_es.policy.errors import ConfigError
from rec_es.policy.validate import MISSING, Invalid, KeySpec, Validator, integer, message, number, within

BEST = "best"
#: averaging mode -> the one parameter it takes
PARAMETERS = {"best_k": "k", "window": "window", "peak": "window", "ema": "decay"}
_CHECKS = {"k": integer(1), "window": integer(1), "decay": number(0, 1, low_open=True, high_open=True)}
ALLOWED = ("best, or {average: best_k, k: K}, {average: window, window: W}, {average: peak, window: W}, "
           "{average: ema, decay: D}")
DOC = "best | {average, k | window | decay}"
#: one evaluation as an average sees it: (epoch, raw monitor value, smoothed value or None when not counted)
Entry = tuple[int, float | None, float | None]


@dataclass(frozen=True)
class RestoreSpec:
    """A validated ``restore`` setting. ``average`` is None for ``restore: best``, else one of ``PARAMETERS``;
    ``k``, ``window`` and ``decay`` hold the one parameter that mode takes (the others are None)."""

    average: str | None = None
    k: int | None = None
    window: int | None = None
    decay: float | None = None

    @classmethod
    def parse(cls, value: Any) -> RestoreSpec:
        """``best`` (any case) or a mapping ``{average: MODE, PARAMETER: value}``; raises ``Invalid`` naming the
        nested key (``restore.k``) for a bad, missing or extra parameter."""
        if isinstance(value, RestoreSpec):
            return value
        if isinstance(value, str) and value.strip().lower() == BEST:
            return cls()
        if not isinstance(value, Mapping) or "average" not in value:
            raise Invalid(ALLOWED, value)
        mode = value["average"]
        mode = mode.strip().lower() if isinstance(mode, str) else mode
        if mode not in PARAMETERS:
            raise Invalid(" | ".join(PARAMETERS), value["average"], "unknown averaging mode", key="restore.average")
        name = PARAMETERS[mode]
        extra = sorted(str(k) for k in value if k not in ("average", name))
        if extra:
            raise Invalid(f"only average and {name} with average: {mode}", value[extra[0]],
                          f"{extra[0]} does not apply to average: {mode}", key=f"restore.{extra[0]}")
        if name not in value:
            raise Invalid(_CHECKS[name].allowed, MISSING, f"required by average: {mode}", key=f"restore.{name}")
        return cls(mode, **{name: within(f"restore.{name}", _CHECKS[name], value[name])})

    @property
    def averages(self) -> bool:
        """Does this setting restore an average (anything but ``best``)?"""
        return self.average is not None

    @property
    def parameter(self) -> tuple[str, Any] | None:
        """``("k", 3)``: the mode's parameter and its value; None for ``best``."""
        if self.average is None:
            return None
        name = PARAMETERS[self.average]
        return name, getattr(self, name)

    def to_mapping(self) -> str | dict[str, Any]:
        """As a property file writes it: ``"best"`` or ``{"average": "best_k", "k": 3}``."""
        if self.parameter is None:
            return BEST
        name, value = self.parameter
        return {"average": self.average, name: value}

    def copies(self) -> int:
        """At most how many copies of the weights the trainer keeps beside the model (0 for ``best``, whose one
        snapshot is kept in any case)."""
        if self.average in ("best_k", "window"):
            return int(self.k or self.window or 0)
        if self.average == "peak":
            assert self.window is not None
            return self.window + (self.window - 1) // 2
        return 1 if self.average == "ema" else 0

    def describe(self) -> str:
        """``'restore: best_k, k 3'``: the setting as messages name it."""
        if self.parameter is None:
            return "restore: best"
        name, value = self.parameter
        return f"restore: {self.average}, {name} {value:g}"


def counted(history: Sequence[Entry]) -> list[tuple[int, float, float]]:
    """The evaluations an average may take, in order: a finite raw value and a smoothed value (None means the
    policy did not count the evaluation: before ``start_from_epoch``, or not finite)."""
    return [(int(e), float(r), float(s)) for e, r, s in history
            if r is not None and math.isfinite(r) and s is not None and math.isfinite(s)]


def ranked(history: Sequence[Entry], mode: str = "max", best_by: str = "raw") -> list[int]:
    """The counted evaluations' epochs, best first by the ``best_by`` series (``raw`` or ``smoothed``) in ``mode``
    (``max`` or ``min``); ties: the earlier epoch first."""
    column = 1 if best_by == "raw" else 2
    sign = -1.0 if mode == "max" else 1.0
    return [row[0] for row in sorted(counted(history), key=lambda row: (sign * row[column], row[0]))]


def epochs_to_average(spec: RestoreSpec, history: Sequence[Entry], mode: str = "max",
                      best_by: str = "raw") -> list[int]:
    """The epochs whose weights ``spec`` averages, ascending, given the run's evaluations so far.

    Args:
        spec: the ``restore`` setting (``RestoreSpec.parse``).
        history: every evaluation in order as ``(epoch, raw, smoothed)``; ``smoothed`` None (or a non-finite
            value) marks one the policy did not count, which no average takes.
        mode: ``max`` (default) or ``min``, the monitor's direction.
        best_by: ``raw`` (default) or ``smoothed``: the series ``best_k`` and ``peak`` rank by.

    Returns ``[]`` for ``restore: best`` and when nothing was counted; ``ema`` returns every counted epoch (its
    weights decay, so the oldest weigh least). For ``window`` and ``peak`` the list may be shorter than the window
    (the run's ends, left-out evaluations).
    """
    rows = counted(history)
    if spec.average is None or not rows:
        return []
    epochs = [row[0] for row in rows]
    if spec.average == "best_k":
        assert spec.k is not None
        return sorted(ranked(history, mode, best_by)[:spec.k])
    if spec.average == "window":
        assert spec.window is not None
        return epochs[-spec.window:]
    if spec.average == "peak":
        assert spec.window is not None
        centre = epochs.index(ranked(history, mode, best_by)[0])
        return epochs[max(0, centre - (spec.window - 1) // 2):centre + spec.window // 2 + 1]
    return epochs


def epochs_to_keep(spec: RestoreSpec, history: Sequence[Entry], mode: str = "max", best_by: str = "raw") -> list[int]:
    """The epochs whose weights a trainer must still hold after the evaluations in ``history`` so that, whatever
    comes next, it has every weight ``epochs_to_average`` can ask for at the end (ascending; ``[]`` for ``best``
    and ``ema``, which keep no per-evaluation copies).

    ``best_k``: the K best so far (one that drops out never comes back); ``window``: the last W; ``peak``: the
    current peak's evaluations plus the latest ``(W - 1) // 2``, which precede any new best.
    """
    if spec.average in ("best_k", "window"):
        return epochs_to_average(spec, history, mode, best_by)
    if spec.average == "peak":
        assert spec.window is not None
        before = (spec.window - 1) // 2
        latest = [row[0] for row in counted(history)][-before:] if before else []
        return sorted(set(epochs_to_average(spec, history, mode, best_by)) | set(latest))
    return []


def evaluations_in_budget(epochs: int, eval_step: int, max_epochs: int | None = None) -> int:
    """How many evaluations a run of ``epochs`` (cut to ``max_epochs`` when set) with RecBole's ``eval_step`` can
    make: one after every ``eval_step``-th epoch (``eval_step`` above ``epochs`` evaluates once; <= 0 never)."""
    budget = min(epochs, max_epochs) if max_epochs else epochs
    if eval_step <= 0 or budget <= 0:
        return 0
    return budget // min(eval_step, epochs)


def check_budget(spec: RestoreSpec, epochs: int, eval_step: int, max_epochs: int | None = None,
                 source: str | None = None) -> None:
    """ConfigError (key ``early_stopping.restore.k`` or ``.window``) when an average asks for more evaluations
    than the budget can make (``evaluations_in_budget``); nothing for ``best`` and ``ema``."""
    found = spec.parameter
    if found is None or found[0] == "decay":
        return
    name, value = found
    n = evaluations_in_budget(epochs, eval_step, max_epochs)
    if value > n:
        budget = f"epochs {epochs}" + (f", max_epochs {max_epochs}" if max_epochs else "") + f", eval_step {eval_step}"
        key = f"early_stopping.restore.{name}"
        raise ConfigError(message(key, f"an integer in [1, {n}]", value,
                                  f"the budget ({budget}) makes {n} evaluation{'s' * (n != 1)}, fewer than "
                                  f"{name} {value}; lower {name} or raise epochs"), source=source, key=key)


@dataclass(frozen=True)
class Verdict:
    """Is the average restored? ``keep`` False: its validation score fell below the single best's by more than
    ``margin`` (the noise, from ``source``), or is not finite; the best evaluation's weights are restored instead."""

    keep: bool
    average_score: float | None
    best_score: float | None
    margin: float
    source: str


def judge(average_score: float | None, best_score: float | None, mode: str, margin: float | None,
          source: str) -> Verdict:
    """Keep the average unless its validation score is worse than the single best's by more than ``margin``
    (None or negative: 0); a non-finite average score never wins; with no best score the average is kept."""
    m = max(0.0, margin or 0.0)
    if average_score is None or not math.isfinite(average_score):
        return Verdict(False, average_score, best_score, m, source)
    if best_score is None or not math.isfinite(best_score):
        return Verdict(True, average_score, best_score, m, source)
    worse = best_score - average_score if mode == "max" else average_score - best_score
    return Verdict(worse <= m, average_score, best_score, m, source)


class _Restore(Rule):
    name = "restore"
    keys = (KeySpec("restore", Validator(ALLOWED, DOC, RestoreSpec.parse), BEST,
                    "the weights restored at the end: `best` (the best evaluation's, as `best_by` picks it), or an "
                    "average: `{average: best_k, k: K}` (the K best evaluations by `best_by`, up to K copies of the "
                    "weights kept), `{average: window, window: W}` (the last W, W copies), `{average: peak, "
                    "window: W}` (the W centred on the best, up to W + (W-1)//2 copies), `{average: ema, decay: "
                    "D}` (an EMA over evaluations, D in (0, 1), one copy); an average is checked on validation at "
                    "the end (one extra evaluation) and the best's weights restored instead when it is worse by "
                    "more than the noise ([choosing a policy](choosing_a_policy.md#restoring-an-average-of-weights))",
                    dump=lambda spec: spec.to_mapping()),)


SETTINGS = _Restore()
