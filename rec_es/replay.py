"""Replay a stopping policy over a recorded trace, deciding exactly as a live run would have.

A live ``EarlyStoppingTrainer`` run calls ``policy.update(epoch, valid, train_loss, elapsed_seconds)``
after every evaluation and stops at the first ``stop``; it then restores the weights of
``policy.best_epoch`` and tests them. A trace recorded with stopping disabled (and ``record_test``)
holds every evaluation's inputs to that call and the test metrics of every epoch's weights, so feeding
its records to a fresh policy gives the live run's stop epoch, restored epoch and test result without
training. This holds only while the policy does not change training: a run whose LR schedule reacts
to the monitor (``reduce_on_plateau``) trains differently once it reacts, so it must be run live
(``why_not_replayable`` says so).

A policy that reads per-user scores (``improvement: significant``, ``min_delta: auto``: its ``per_user_keys``)
gets them from the trace's sidecar (``RUN/per_user/valid.*``, read and checked by ``rec_es.read_per_user``,
so the replay passes the very float32 values the live run passed): a sidecar that is missing while its
index is there, truncated, of another user order or of another run is a ``ReplayError``. A trace recorded
without per-user scores (an older trace, a stock RecBole log) is replayed with the rules' documented fallback
(noise from the curve instead of the users), and the result says so in ``notes``.

A policy that restores an average of weights (``early_stopping.restore``) cannot be replayed as such: a trace holds
metrics, not weights. Its stop is replayed exactly (``restore`` never changes a decision), and the result reports
the single best evaluation, flagged ``average_not_replayed`` with a note.

Pure Python (no torch, numpy or recbole; numpy only to read a per-user sidecar): replaying 20 policies over
5 long traces takes well under a second.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from rec_es.policy.controller import StopController
from rec_es.policy.errors import MetricMissingError, RecEsError, StateError
from rec_es.policy import Decision, StoppingPolicy
from rec_es.rundir.trace import Trace, read_trace
from rec_es.policy.validate import is_int

#: ``reason`` of a replay in which the policy never fired and the epoch budget ended the run.
BUDGET_REASON = "max_epochs"
#: ``reason`` of a replay that ran out of records before the policy stopped or the budget was used up.
TRUNCATED_REASON = "trace_ended"


class ReplayError(RecEsError, ValueError):
    """A trace cannot answer what a policy needs (a missing metric, no test metrics, no records)."""


@dataclass(frozen=True)
class ReplayResult:
    """What a live run with ``policy`` would have done on the run that ``trace`` recorded.

    ``stop_epoch``: last epoch trained (0-based). ``stopped``: the policy fired (False: the epoch budget, or the
    end of an unfinished trace, ended the run). ``best_epoch``: the restored epoch (None if no finite value was
    ever seen). ``best_valid`` / ``best_test``: recorded metrics of that epoch (``best_test`` None when the
    trace has no test metrics). ``epochs_trained``: epochs a live run trains (``stop_epoch + 1``, or the whole
    budget when the policy never stops). ``wall_seconds``: training + validation seconds of those epochs as
    recorded (None when the trace has no timings). ``truncated``: the trace ended before the run would have.
    ``average_not_replayed``: the policy restores an average of weights (``early_stopping.restore``), which a trace
    cannot replay (it holds metrics, not weights): ``best_epoch`` and ``best_*`` are the single best evaluation's,
    as ``restore: best`` would restore, and ``notes`` says so.
    """

    policy: str
    trace: str
    seed: int | None
    stop_epoch: int
    stopped: bool
    reason: str
    message: str
    best_epoch: int | None
    best_valid: dict[str, float] | None
    best_test: dict[str, float] | None
    epochs_trained: int
    evaluations: int
    wall_seconds: float | None
    truncated: bool = False
    decisions: tuple[Decision, ...] = field(default=(), repr=False)
    notes: tuple[str, ...] = ()
    average_not_replayed: bool = False

    def metric(self, key: str, split: str = "test") -> float | None:
        """Metric ``key`` (any case) of the restored epoch in ``split`` ('test' or 'valid'); None if absent."""
        values = self.best_test if split == "test" else self.best_valid
        if not values:
            return None
        return {k.lower(): v for k, v in values.items()}.get(key.lower())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (without the per-evaluation decisions; ``notes`` only when there are some)."""
        out = {"policy": self.policy, "trace": self.trace, "seed": self.seed, "stop_epoch": self.stop_epoch,
               "stopped": self.stopped, "reason": self.reason, "message": self.message,
               "best_epoch": self.best_epoch, "best_valid": self.best_valid, "best_test": self.best_test,
               "epochs_trained": self.epochs_trained, "evaluations": self.evaluations,
               "wall_seconds": self.wall_seconds, "truncated": self.truncated}
        if self.notes:
            out["notes"] = list(self.notes)
        if self.average_not_replayed:
            out["average_not_replayed"] = True
        return out


def load_trace(source: str | os.PathLike[str] | Trace) -> Trace:
    """A ``Trace`` as given, or read from a ``trace.jsonl`` path or a run directory."""
    return source if isinstance(source, Trace) else read_trace(source)


def record_seconds(record: Mapping[str, Any]) -> float | None:
    """Training + validation seconds one record stands for (test evaluation excluded); None if not recorded."""
    parts = [record.get("train_seconds"), record.get("eval_seconds")]
    if any(not isinstance(p, (int, float)) for p in parts):
        return None
    return float(parts[0]) + float(parts[1])


def _metrics(values: Mapping[str, Any] | None) -> dict[str, float]:
    """Recorded metrics as the live policy saw them: the trace writes NaN/inf as null, read back as NaN
    (the policy treats every non-finite value alike)."""
    return {k: math.nan if v is None else v for k, v in (values or {}).items()}


def _budget(trace: Trace) -> int | None:
    epochs = trace.header.get("epochs")
    return int(epochs) if is_int(epochs) else None


def _by_epoch(records: Sequence[Mapping[str, Any]], epoch: int | None) -> Mapping[str, Any] | None:
    if epoch is None:
        return None
    for r in records:
        if r["epoch"] == epoch:
            return r
    return None


def replay(policy: StoppingPolicy, trace: str | os.PathLike[str] | Trace, *, name: str | None = None,
           need_test: bool = False, keep_decisions: bool = False) -> ReplayResult:
    """Replay ``policy`` (reset first, so any policy object can be passed) over ``trace``.

    ``need_test=True`` raises ``ReplayError`` when the trace has no test metrics (recorded without
    ``record_test``). ``keep_decisions=True`` keeps every ``Decision`` in the result (default False saves
    memory on long traces). Raises ``ReplayError`` when the trace has no evaluation records or lacks a metric
    the policy monitors.
    """
    tr = load_trace(trace)
    label = name or policy.monitor_name
    if need_test and tr.records and not tr.header.get("record_test") and "test" not in tr.records[0]:
        raise ReplayError(f"{tr.path}: trace has no test metrics (recorded without record_test); "
                          "record it with record_test=True to compare test quality")
    steps = replay_steps(policy, tr, name=label)
    decisions: list[Decision] = []
    last: Decision | None = None
    seconds: float | None = 0.0
    for record, last in steps:
        spent = record_seconds(record)
        seconds = None if seconds is None or spent is None else seconds + spent
        if keep_decisions:
            decisions.append(last)
    assert last is not None
    return _result(policy, tr, label, last, seconds, decisions, steps.notes)


class ReplaySteps:
    """``policy`` deciding over ``trace`` one evaluation record at a time, as a live run would: iterating yields
    ``(record, Decision)`` for every record up to and including the one the policy stops on.

    The loop ``replay`` runs, for a caller that acts between evaluations (a Ray Tune trainable that reports each
    one). The policy is reset and given the trace's budget on creation; ``notes``: what the replay could not
    reproduce (``per_user_source``). Raises ``ReplayError`` on a trace without records, or while iterating when a
    record lacks a metric the policy monitors.
    """

    def __init__(self, policy: StoppingPolicy, trace: Trace, label: str) -> None:
        if not trace.records:
            raise ReplayError(f"{trace.path}: trace has no evaluation records; nothing to replay")
        self.policy, self.trace, self.label = policy, trace, label
        policy.budget = _budget(trace)
        self._scores, self.notes = per_user_source(policy, trace, label)
        self.notes += average_note(policy, label)
        self.controller = StopController(policy)
        self.controller.reset()

    def __iter__(self) -> Iterator[tuple[Mapping[str, Any], Decision]]:
        scores = self._scores
        for record in self.trace.records:
            try:
                decision = self.controller.update(
                    record["epoch"], _metrics(record["valid"]), train_loss=record.get("train_loss"),
                    elapsed_seconds=record.get("elapsed_seconds"),
                    per_user=None if scores is None else scores(record["epoch"])).decision
            except (MetricMissingError, RecEsError) as exc:
                raise ReplayError(f"{self.trace.path}: epoch {record['epoch']}: policy {self.label!r}: {exc}") from None
            yield record, decision
            if decision.stop:
                return

    def result(self, last: Decision, seconds: float | None = None) -> ReplayResult:
        """The ``ReplayResult`` of a replay whose last decision was ``last`` (the policy's stop, or the last record)."""
        return _result(self.policy, self.trace, self.label, last, seconds, [], self.notes)


def replay_steps(policy: StoppingPolicy, trace: str | os.PathLike[str] | Trace, *,
                 name: str | None = None) -> ReplaySteps:
    """``ReplaySteps`` over ``trace`` (a ``Trace``, a ``trace.jsonl`` path or a run directory); ``name`` labels
    errors (default: the policy's monitor name)."""
    return ReplaySteps(policy, load_trace(trace), name or policy.monitor_name)


def average_note(policy: Any, label: str = "policy") -> tuple[str, ...]:
    """``(a note,)`` when ``policy`` restores an average of weights (``early_stopping.restore``), else ``()``."""
    spec = getattr(getattr(policy, "settings", None), "restore", None)
    if spec is None or not spec.averages:
        return ()
    return (f"policy {label!r} restores an average of weights ({spec.describe()}), which a trace cannot replay (it "
            "holds metrics, not weights): its stop is replayed exactly, but the restored epoch and metrics are the "
            "single best evaluation's, as restore: best would give",)


PerUserSource = Callable[[int], dict[str, list[float]]]


def per_user_source(policy: Any, tr: Trace, label: str = "policy") -> tuple[PerUserSource | None, tuple[str, ...]]:
    """``(epoch -> per_user argument, notes)`` for a policy that reads per-user scores, from the sidecar next to
    ``tr`` (``(None, ())`` when it reads none). No sidecar at all: ``(None, (a note that the rules fell back
    to the curve's noise,))``. A sidecar that cannot serve (missing records file, truncated, other user order,
    another run's, lacking a metric): ``ReplayError`` naming the file."""
    keys = tuple(policy.per_user_keys)
    if not keys:
        return None, ()
    run_dir = Path(tr.path).parent if tr.path is not None and Path(tr.path).name == "trace.jsonl" else None
    if run_dir is None or not (run_dir / "per_user" / "valid.json").is_file():
        return None, (f"{tr.path}: no per-user validation scores recorded, so {', '.join(keys)} per user were not "
                      "available: min_delta: auto and improvement: significant used the curve's noise instead "
                      "(1.4826·MAD of first differences; a z-test for significance), not what a live run decides",)
    from rec_es.rundir.per_user import read_per_user  # numpy: only when a sidecar is read

    try:
        sidecar = read_per_user(run_dir, "valid", trace=tr)
    except StateError as exc:
        raise ReplayError(f"policy {label!r} reads per-user scores: {exc}") from None
    lacking = [k for k in keys if k not in sidecar.metrics]
    if lacking:
        raise ReplayError(f"{sidecar.path}: records per-user {', '.join(sidecar.metrics)}, but policy {label!r} needs "
                          f"{', '.join(lacking)}; record them (per_user_metrics) or monitor a recorded metric")

    def at(epoch: int) -> dict[str, list[float]]:
        values = sidecar.at(epoch)
        return {k: values[k].tolist() for k in keys}

    return at, ()


def _result(policy: StoppingPolicy, tr: Trace, label: str, last: Decision, seconds: float | None,
            decisions: list[Decision], notes: tuple[str, ...] = ()) -> ReplayResult:
    budget = _budget(tr)
    stop_epoch = last.epoch
    evaluations = sum(1 for r in tr.records if r["epoch"] <= stop_epoch)
    if last.stop:
        stopped, reason, message, epochs = True, last.reason.value, last.message, stop_epoch + 1
        truncated = False
    else:
        stopped = False
        ended = tr.complete and (budget is None or tr.records[-1]["epoch"] + 1 >= budget
                                 or tr.footer.get("epochs_trained") == budget)
        truncated = not ended
        epochs = budget if ended and budget is not None else stop_epoch + 1
        reason = BUDGET_REASON if ended else TRUNCATED_REASON
        message = (f"did not stop within the budget of {epochs} epochs" if ended else
                   f"did not stop before the trace ended at epoch {stop_epoch} (the recorded run was cut short)")
    best = _by_epoch(tr.records, policy.best_epoch)
    return ReplayResult(
        policy=label, trace=str(tr.path), seed=tr.header.get("seed"), stop_epoch=stop_epoch, stopped=stopped,
        reason=reason, message=message, best_epoch=policy.best_epoch,
        best_valid=dict(best["valid"]) if best else None,
        best_test=dict(best["test"]) if best and best.get("test") is not None else None,
        epochs_trained=epochs, evaluations=evaluations, wall_seconds=seconds, truncated=truncated,
        decisions=tuple(decisions), notes=notes, average_not_replayed=bool(average_note(policy)))


def replay_many(policies: Mapping[str, StoppingPolicy], traces: Iterable[str | os.PathLike[str] | Trace], *,
                need_test: bool = False) -> list[ReplayResult]:
    """Replay every policy (name -> policy) over every trace; results ordered trace by trace, policy by policy."""
    loaded = [load_trace(t) for t in traces]
    return [replay(policy, tr, name=name, need_test=need_test) for tr in loaded for name, policy in policies.items()]


def oracle(trace: str | os.PathLike[str] | Trace, monitor: StoppingPolicy) -> ReplayResult:
    """The best-validation epoch of the whole trace by ``monitor``'s score (its stop rules are ignored).

    Pass a policy built with ``enabled: false``; its best tracking (ties do not move the best, NaN never
    wins) picks the epoch. The result is the run trained to the full budget with that epoch restored.
    """
    if monitor.settings.enabled:
        raise ValueError("oracle() needs a policy built with enabled: false (it would otherwise stop early)")
    return replay(monitor, trace, name="oracle")


def why_not_replayable(lr_schedule: Mapping[str, Any] | None, recorded_lr_schedule: Mapping[str, Any] | None,
                       training_keys: Mapping[str, Any] | None = None) -> str | None:
    """Why a policy cannot be replayed on traces recorded with ``recorded_lr_schedule``, or None if it can.

    ``lr_schedule``: the policy run's validated schedule; ``training_keys``: RecBole keys its file sets
    besides ``early_stopping`` (any of them changes training).
    """
    if training_keys:
        return f"it sets training keys ({', '.join(sorted(training_keys))}) that the recorded runs did not use"
    if lr_schedule and lr_schedule.get("reduce_on_plateau"):
        return "its lr_schedule.reduce_on_plateau changes the learning rate when the monitor stalls"
    if (lr_schedule or None) != (recorded_lr_schedule or None):
        return "its lr_schedule differs from the one the recorded runs trained with"
    return None


def check_same_run(traces: Sequence[Trace]) -> None:
    """Raise ``StateError`` unless the traces share model, dataset and budget (they are seeds of one setup)."""
    if not traces:
        return
    first = traces[0]
    for tr in traces[1:]:
        for key in ("model", "dataset", "epochs"):
            if tr.header.get(key) != first.header.get(key):
                raise StateError(f"{tr.path}: {key} {tr.header.get(key)!r} differs from {first.path}'s "
                                 f"{first.header.get(key)!r}; compare traces of one setup only")
