"""RUN as an ``Observed``: a rec_es run directory or ``trace.jsonl``, or a log file written by stock RecBole.

A stock log is turned into the same in-memory ``Trace`` a rec_es run writes (``rec_es.recbole_log``), with
RecBole's own rule (``rec_es.policy.presets``) replayed on it as the observed policy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rec_es.policy.errors import ConfigError, StateError
from rec_es.explain.fmt import _label
from rec_es.explain.observed import EXPECTED, ExplainError, Observed
from rec_es.policy import StoppingPolicy, build_policy
from rec_es.recbole_log import (LogFormatError, RecBoleLog, parse_recbole_log, stock_policy_mapping,
                                trace_from_recbole_log)
from rec_es.replay import ReplayResult, replay
from rec_es.rundir.trace import DECISION_TYPES, Trace, read_trace


def load_run(path: str | Path) -> Observed:
    """Read RUN (rec_es run directory / trace.jsonl / stock RecBole log); raise ExplainError naming it."""
    p = Path(path)
    if not p.exists():
        raise ExplainError(f"{p}: not found; expected {EXPECTED}")
    if p.is_dir():
        if not (p / "trace.jsonl").is_file():
            logs = sorted(str(x) for x in p.rglob("*.log"))[:3]
            hint = f"; log files inside: {', '.join(logs)}" if logs else ""
            raise ExplainError(f"{p}: a directory without trace.jsonl; expected {EXPECTED}{hint}")
        return _from_trace(p)
    with open(p, "rb") as handle:
        head = handle.read(1).lstrip()
    if p.suffix == ".jsonl" or head == b"{":
        return _from_trace(p)
    try:
        log = parse_recbole_log(p)
    except LogFormatError as exc:
        raise ExplainError(f"{exc}; nor is it a rec_es trace (a run directory holds trace.jsonl)") from None
    return _from_stock_log(log)


def _from_trace(path: Path) -> Observed:
    try:
        trace = read_trace(path)
    except StateError as exc:
        raise ExplainError(f"{exc}; expected {EXPECTED}") from None
    if not trace.records:
        raise ExplainError(f"{trace.path}: the trace holds no evaluation yet; nothing to explain")
    mapping = dict(trace.header.get("policy") or {})
    try:
        policy = build_policy(mapping)
    except ConfigError as exc:
        raise ExplainError(f"{trace.path}: the trace header's policy cannot be rebuilt: {exc}") from None
    decisions = [dict(r["decision"]) for r in trace.records]
    for r, d in zip(trace.records, decisions):
        missing = [k for k in DECISION_TYPES if k not in d]
        if missing:
            raise ExplainError(f"{trace.path}: the record of epoch {r['epoch']} has no decision {', '.join(missing)} "
                               "(a trace written by rec-es run has every field); nothing to explain")
    warnings: list[str] = []
    original = _original_policy(trace, policy, warnings)
    ending = _trace_ending(trace, decisions)
    if ending == "incomplete":
        warnings.append(f"{trace.path}: no footer: the run crashed, was interrupted or is still running; "
                        f"the trace ends at epoch {trace.records[-1]['epoch']}")
    lr = trace.header.get("lr_schedule") or {}
    if lr.get("reduce_on_plateau"):
        warnings.append(f"{trace.path}: the run's lr_schedule.reduce_on_plateau changed training when the monitor "
                        "stalled; the counterfactual replays assume the same curve, which is only approximate")
    config = trace.header.get("config") or {}
    places = config.get("metric_decimal_place", 4)
    return Observed(source=str(trace.path), kind="rec_es", trace=trace, policy_mapping=mapping, policy=policy,
                    decisions=decisions, ending=ending, epochs=_int(trace.header.get("epochs")),
                    eval_step=_int(trace.header.get("eval_step")) or 1,
                    decimal_places=places if isinstance(places, int) else None,
                    model=trace.header.get("model"), dataset=trace.header.get("dataset"), warnings=warnings,
                    original_policy=original)


def _original_policy(trace: Trace, final: StoppingPolicy, warnings: list[str]) -> tuple[str, dict[str, Any]] | None:
    """(row label, mapping) of the policy the run started with, when a resume changed it; else None.

    ``rec-es run --resume RUN`` with other settings rewrites the trace header's ``policy`` to the new one and
    appends ``{"from_epoch", "previous_policy", ...}`` to its ``resumed_with_changes`` (docs/CONTRACT.md); the
    first entry holds the original policy. A resume that changed only the budget or RecBole keys gives None.
    """
    changes = trace.header.get("resumed_with_changes") or []
    if not changes or not isinstance(changes[0], dict) or not isinstance(changes[0].get("previous_policy"), dict):
        return None
    first = changes[0]
    mapping = dict(first["previous_policy"])
    try:
        before = build_policy(mapping)
    except ConfigError as exc:
        warnings.append(f"{trace.path}: the policy the run started with cannot be rebuilt ({exc}); the table does "
                        "not replay it")
        return None
    if before.settings == final.settings:
        return None
    start = first.get("from_epoch")
    span = f"epochs 0-{start - 1}" if isinstance(start, int) and start > 0 else "before the resume"
    warnings.append(f"{trace.path}: the run was resumed at epoch {start} under another policy ({_label(final)}; it "
                    f"started with {_label(before)}); the report explains the final policy, and the table also "
                    "replays the original one")
    return f"original ({span}): {_label(before)}", mapping


def _trace_ending(trace: Trace, decisions: list[dict[str, Any]]) -> str:
    if trace.footer is None:
        return "incomplete"
    if decisions[-1].get("stop"):
        return "early_stopped"
    if trace.footer.get("stop_reason") not in (None, "max_epochs", "not_stopped"):
        return "stopped_in_training"
    return "budget"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _from_stock_log(log: RecBoleLog) -> Observed:
    if not log.evaluations:
        raise ExplainError(f"{log.path}: the log holds no 'epoch N evaluating' line; RecBole never evaluated, "
                           "so no early stopping happened (eval_step <= 0, no valid data, or it crashed before "
                           "the first evaluation)")
    trace = trace_from_recbole_log(log)
    mapping = stock_policy_mapping(log)
    policy = build_policy(mapping)
    result = replay(policy, trace, name="observed", keep_decisions=True)
    decisions = [d.to_dict() for d in result.decisions]
    for record, decision in zip(trace.records, decisions):
        record["decision"] = decision
    warnings = list(log.warnings)
    _check_replay_matches_log(log, result, warnings)
    places = log.setting("metric_decimal_place")
    return Observed(source=log.path, kind="recbole_log", trace=trace, policy_mapping=mapping, policy=policy,
                    decisions=decisions, ending=log.ending, epochs=log.epochs, eval_step=log.eval_step,
                    decimal_places=places if isinstance(places, int) else None, model=log.model,
                    dataset=log.dataset, warnings=warnings, stock=log)


def _check_replay_matches_log(log: RecBoleLog, result: ReplayResult, warnings: list[str]) -> None:
    """RecBole's rule replayed on the logged scores must give the logged outcome; say so when it does not."""
    if log.ending == "early_stopped":
        if not result.stopped or result.stop_epoch != log.evaluations[-1].epoch:
            warnings.append(f"{log.path}: replaying stopping_step {log.stopping_step} on the logged valid_scores "
                            f"does not stop at epoch {log.evaluations[-1].epoch} as the log does; evaluations may "
                            "be missing from the log")
        elif result.best_epoch != log.finished_best_epoch:
            warnings.append(f"{log.path}: the log says best epoch {log.finished_best_epoch}, the replay of RecBole's "
                            f"rule gives {result.best_epoch}; evaluations may be missing from the log")
    elif result.stopped:
        warnings.append(f"{log.path}: RecBole's rule replayed on the logged scores stops at epoch "
                        f"{result.stop_epoch}, but the log continues to epoch {log.evaluations[-1].epoch}")
