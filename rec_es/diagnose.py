"""``rec-es explain RUN``: why a run stopped, whether that looks premature, what other settings would have done.

RUN is a rec_es run directory (``trace.jsonl``), a ``trace.jsonl`` file, or a log file written by stock
RecBole (``log/<Model>/<Model>-<dataset>-<time>.log``). A stock log is turned into the same in-memory
``Trace`` a rec_es run writes, with RecBole's own rule (``recbole_legacy``: ties reset the counter, stop on the
``stopping_step + 1``-th miss, counted in evaluations of ``eval_step`` epochs) replayed as the observed policy.

Everything is computed from the observed evaluations only: a counterfactual policy that would not have stopped
before the data ends is reported as "still running at epoch N (data ends)"; nothing is guessed beyond.

Definitions used in the report (all on the raw monitor values, in evaluation order):
  * noise: standard deviation of the evaluation-to-evaluation changes over the whole run;
  * trend: least-squares slope over the last ``max(5, patience + 1)`` evaluations, times the epochs they span
    (the change the fitted line makes across that window); "still improving" when it beats the noise;
  * recovered gap: a run of evaluations without improvement that ended with an improvement;
  * tie reset: an evaluation counted as an improvement although it only equalled the best (RecBole does this).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from rec_es.errors import ConfigError, RecEsError, StateError
from rec_es.policy import StoppingPolicy, build_policy
from rec_es.policy.schema import PolicySettings
from rec_es.policy.smoothing import smooth
from rec_es.recbole_log import LogFormatError, RecBoleLog, parse_recbole_log
from rec_es.replay import ReplayError, ReplayResult, replay
from rec_es.trace import Trace, jsonable, read_trace

__all__ = ["DEFAULT_POLICIES", "ExplainError", "Observed", "explain", "load_run", "main", "render_text", "plot"]

#: Counterfactual policies replayed by default (monitor and mode are the run's own).
DEFAULT_POLICIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("stopping_step 10 (RecBole default)", {"preset": "recbole_legacy", "stopping_step": 10}),
    ("stopping_step 30", {"preset": "recbole_legacy", "stopping_step": 30}),
    ("patience 10", {"patience": 10}),
    ("patience 20", {"patience": 20}),
    ("patience 30", {"patience": 30}),
    ("patience 10 + EMA α=0.5", {"patience": 10, "smoothing": "ema", "ema_alpha": 0.5}),
    ("patience 20 + EMA α=0.5", {"patience": 20, "smoothing": "ema", "ema_alpha": 0.5}),
    ("patience 30 + EMA α=0.5", {"patience": 30, "smoothing": "ema", "ema_alpha": 0.5}),
)
EXPECTED = ("a rec_es run directory (holding trace.jsonl), a trace.jsonl file, or a stock RecBole log file "
            "(log/<Model>/<Model>-<dataset>-<time>.log)")


class ExplainError(RecEsError, ValueError):
    """RUN cannot be explained (not found, not a run, no evaluations)."""


# ----- the observed run ----------------------------------------------------------------------------------
@dataclass
class Observed:
    """One run, whatever wrote it: its trace, the policy in effect and the decisions it took.

    ``ending``: ``early_stopped`` (a stopping rule fired), ``budget`` (RecBole's ``epochs`` ran out),
    ``stopped_in_training`` (the trainer stopped between evaluations, e.g. a NaN training loss; the footer says
    why) or ``incomplete`` (crashed, interrupted or still running). ``decisions`` are plain dicts
    (``Decision.to_dict()``), one per evaluation, as the observed policy took them.
    """

    source: str
    kind: str  # "rec_es" | "recbole_log"
    trace: Trace
    policy_mapping: dict[str, Any]
    policy: StoppingPolicy
    decisions: list[dict[str, Any]]
    ending: str
    epochs: int | None
    eval_step: int
    decimal_places: int | None
    model: str | None
    dataset: str | None
    warnings: list[str] = field(default_factory=list)
    stock: RecBoleLog | None = None
    original_policy: tuple[str, dict[str, Any]] | None = None  # (label, mapping) before a resume changed it

    @property
    def monitor(self) -> str:
        return self.policy.monitor_name

    @property
    def mode(self) -> str:
        return self.policy.mode

    @property
    def last_epoch(self) -> int:
        return self.trace.records[-1]["epoch"]

    def values(self) -> list[tuple[int, float]]:
        """(epoch, raw monitor value) of every evaluation with a finite value."""
        return [(d["epoch"], d["value"]) for d in self.decisions
                if isinstance(d.get("value"), (int, float)) and math.isfinite(d["value"])]


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


def stock_policy_mapping(log: RecBoleLog) -> dict[str, Any]:
    """RecBole's own rule for this log: ``recbole_legacy`` with its valid_metric, direction and stopping_step."""
    return {"preset": "recbole_legacy", "monitor": log.valid_metric, "mode": "max" if log.bigger else "min",
            "stopping_step": log.stopping_step}


def trace_from_recbole_log(log: RecBoleLog) -> Trace:
    """The stock log as a rec_es ``Trace`` (header, one record per evaluation, footer if the run ended)."""
    header = {"type": "header", "format": "rec_es.trace", "version": 1, "config": dict(log.config),
              "policy": stock_policy_mapping(log), "lr_schedule": None, "versions": {}, "model": log.model,
              "dataset": log.dataset, "seed": log.config.get("seed"), "epochs": log.epochs,
              "eval_step": log.eval_step, "record_test": False}
    records = []
    elapsed = 0.0
    for e in log.evaluations:
        elapsed += (e.train_seconds or 0.0) + (e.eval_seconds or 0.0)
        # valid_score is what RecBole's early stopping compared; it wins over the printed valid result.
        valid = {**e.valid, log.valid_metric: e.valid_score}
        records.append({"type": "eval", "epoch": e.epoch, "train_loss": e.train_loss, "valid": valid,
                        "elapsed_seconds": elapsed, "train_seconds": e.train_seconds, "eval_seconds": e.eval_seconds})
    trace = Trace(path=Path(log.path), header=header, records=records)
    if log.ending != "incomplete" and records:
        trace.footer = {"type": "footer", "stop_epoch": records[-1]["epoch"],
                        "stop_reason": "patience" if log.ending == "early_stopped" else "max_epochs",
                        "message": "", "best_epoch": log.finished_best_epoch,
                        "epochs_trained": (log.last_trained_epoch or 0) + 1}
    return trace


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


# ----- analysis ------------------------------------------------------------------------------------------
def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def noise_level(values: Sequence[float]) -> float | None:
    """Standard deviation of the evaluation-to-evaluation changes (None with fewer than 3 values)."""
    if len(values) < 3:
        return None
    return statistics.stdev(b - a for a, b in zip(values, values[1:]))


def trend_change(points: Sequence[tuple[int, float]]) -> float | None:
    """Least-squares slope over ``points`` (epoch, value) times the epochs they span; None if < 3 points."""
    if len(points) < 3:
        return None
    xs = [float(x) for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope * (xs[-1] - xs[0])


def _patience_evaluations(obs: Observed) -> int | None:
    """The observed policy's patience in evaluations at the end of the run (None if it has none)."""
    patience = obs.decisions[-1].get("patience")
    if patience is None:
        return None
    if obs.policy.settings.patience_unit == "epochs":
        return max(1, -(-patience // obs.eval_step))
    return patience


def _gaps(obs: Observed) -> tuple[dict[str, Any] | None, list[int], list[int]]:
    """Longest recovered gap, epochs of counter resets after the first, and which of them were exact ties."""
    longest: dict[str, Any] | None = None
    run = 0
    start: int | None = None
    resets: list[int] = []
    ties: list[int] = []
    reference: float | None = None
    for d in obs.decisions:
        level = d.get("smoothed") if d.get("smoothed") is not None else d.get("value")
        if d.get("improved"):
            if reference is not None:
                resets.append(d["epoch"])
                if level == reference:
                    ties.append(d["epoch"])
            if run and (longest is None or run > longest["evaluations"]):
                longest = {"evaluations": run, "from_epoch": start, "improved_at": d["epoch"]}
            reference, run, start = level, 0, None
        else:
            if run == 0:
                start = d["epoch"]
            run += 1
    return longest, resets, ties


def _spike(obs: Observed, best_epoch: int | None, noise: float | None) -> dict[str, Any] | None:
    """The best value compared with the mean of its two neighbours, when both exist."""
    points = obs.values()
    epochs = [e for e, _ in points]
    if best_epoch not in epochs or noise is None:
        return None
    i = epochs.index(best_epoch)
    if i == 0 or i == len(points) - 1:
        return None
    neighbours = (points[i - 1][1] + points[i + 1][1]) / 2
    excess = (points[i][1] - neighbours) * (1 if obs.mode == "max" else -1)
    # With per-value noise sd = noise/sqrt(2), "value minus mean of two neighbours" has sd sqrt(3)/2 * noise;
    # a spike stands out by more than two of those.
    threshold = 2 * math.sqrt(3) / 2 * noise
    return {"epoch": best_epoch, "excess_over_neighbours": excess, "threshold": threshold,
            "is_spike": excess > threshold}


def _setting_name(obs: Observed) -> str:
    s = obs.policy.settings
    if s.preset == "recbole_legacy":
        return "stopping_step" if obs.kind == "recbole_log" else "early_stopping.stopping_step"
    return "early_stopping.patience"


def analyse_stop(obs: Observed) -> dict[str, Any]:
    """Which rule ended the run, when, after how many misses, the best epoch and the deciding setting."""
    last = obs.decisions[-1]
    s = obs.policy.settings
    best_epoch = last.get("best_epoch")
    best_value = last.get("best_score")
    trained = (obs.trace.footer or {}).get("epochs_trained") or obs.last_epoch + 1
    out: dict[str, Any] = {
        "ending": obs.ending, "stop_epoch": obs.last_epoch, "epochs_trained": trained, "epochs_budget": obs.epochs,
        "evaluations": len(obs.decisions), "best_epoch": best_epoch, "best_value": best_value,
        "evaluations_without_improvement": last.get("wait_count"), "epochs_without_improvement": last.get("wait_epochs"),
        "reason": last.get("reason") if obs.ending == "early_stopped" else obs.ending, "eval_step": obs.eval_step,
    }
    budget = f"{trained} of {obs.epochs} epochs trained" if obs.epochs else f"{trained} epochs trained"
    misses = (f"{_plural(last.get('wait_count') or 0, 'evaluation')} "
              f"({_plural(last.get('wait_epochs') or 0, 'epoch')}) without improvement")
    best = f"best {obs.monitor} {_fmt(best_value)} at epoch {best_epoch}"
    if obs.ending == "early_stopped" and s.preset == "recbole_legacy":
        step = s.stopping_step
        name = _setting_name(obs)
        out["setting"] = {"key": name, "value": step}
        window = (step + 1) * obs.eval_step
        out["sentence"] = (
            f"RecBole's stopping_step rule stopped the run at epoch {obs.last_epoch} ({budget}): {obs.monitor} did "
            f"not reach its best ({_fmt(best_value)} at epoch {best_epoch}) for {_plural(step + 1, 'evaluation')} "
            f"({_plural(last.get('wait_epochs') or 0, 'epoch')}), one more than {name}: {step} allows. RecBole "
            f"counts evaluations, not epochs (eval_step {obs.eval_step}, so {_plural(step + 1, 'miss')} "
            f"span{'s' * (step == 0)} {_plural(window, 'epoch')}), "
            "a value equal to the best resets the count, and it stops on the (stopping_step + 1)-th miss.")
    elif obs.ending == "early_stopped":
        message = last.get("message") or ""
        out["setting"] = _setting_for_reason(last.get("reason"), s)
        decided = (f" The setting that decided it: {out['setting']['key']}: {out['setting']['value']}."
                   if out["setting"] else "")
        out["sentence"] = (f"rec_es rule '{last.get('reason')}' stopped the run at epoch {obs.last_epoch} ({budget}) "
                           f"after {misses}; {best}.{decided} The policy said: {message}")
    elif obs.ending == "stopped_in_training":
        footer = obs.trace.footer or {}
        out["reason"] = footer.get("stop_reason")
        out["stop_epoch"] = footer.get("stop_epoch", obs.last_epoch)
        out["setting"] = None
        out["sentence"] = (f"The run stopped during training at epoch {out['stop_epoch']}, not at an evaluation "
                           f"(reason '{footer.get('stop_reason')}'): {footer.get('message')}. The last evaluation was "
                           f"at epoch {obs.last_epoch}; {best}.")
    elif obs.ending == "budget":
        out["setting"] = {"key": "epochs", "value": obs.epochs}
        out["sentence"] = (f"No early stop: the run used its whole budget (epochs: {obs.epochs}; last epoch "
                           f"{obs.last_epoch}); at the end it had {misses}; {best}.")
    else:
        out["setting"] = None
        out["sentence"] = (f"The run did not end by a rule or by its budget: the data ends at epoch {obs.last_epoch}"
                           + (f" of {obs.epochs}" if obs.epochs else "")
                           + f" (crashed, interrupted or still running); at that point it had {misses}; {best}.")
    return out


def _setting_for_reason(reason: str | None, s: PolicySettings) -> dict[str, Any] | None:
    """The early_stopping key (and its value) behind a stop reason; None for reasons no key decides."""
    keys = {"patience": ("early_stopping.patience", s.patience), "baseline": ("early_stopping.baseline", s.baseline),
            "stopping_threshold": ("early_stopping.stopping_threshold", s.stopping_threshold),
            "divergence_threshold": ("early_stopping.divergence_threshold", s.divergence_threshold),
            "non_finite": ("early_stopping.check_finite", s.check_finite),
            "max_epochs": ("early_stopping.max_epochs", s.max_epochs),
            "time_budget": ("early_stopping.max_minutes", s.max_minutes),
            "prechelt_gl": ("early_stopping.prechelt", "GL"), "prechelt_pq": ("early_stopping.prechelt", "PQ"),
            "prechelt_up": ("early_stopping.prechelt", "UP"), "all_of": ("early_stopping.combine", s.combine)}
    if reason not in keys:
        return None
    key, value = keys[reason]
    return {"key": key, "value": value}


def analyse_premature(obs: Observed, stop: Mapping[str, Any]) -> dict[str, Any]:
    """Trend at the end vs the run's noise, patience vs the run's own gaps, ties and rounding, spiky best."""
    points = obs.values()
    values = [v for _, v in points]
    noise = noise_level(values)
    patience = _patience_evaluations(obs)
    window = min(len(points), max(5, (patience or 0) + 1))
    change = trend_change(points[-window:])
    sign = 1 if obs.mode == "max" else -1
    longest, resets, ties = _gaps(obs)
    spike = _spike(obs, stop.get("best_epoch"), noise)
    s = obs.policy.settings
    out: dict[str, Any] = {"noise": noise, "window_evaluations": window, "trend_change": change,
                           "patience_evaluations": patience, "longest_recovered_gap": longest,
                           "counter_resets": len(resets), "tie_resets": ties, "spike": spike,
                           "metric_decimal_place": obs.decimal_places, "min_delta": s.min_delta}
    sentences: list[str] = []
    if noise is None or change is None:
        out["trend"] = "unknown"
        sentences.append(f"Only {_plural(len(points), 'evaluation')} with a finite value: too few to judge a trend.")
    else:
        gain = change * sign
        out["trend"] = "improving" if gain > noise else "worsening" if gain < -noise else "flat"
        span = f"the last {_plural(window, 'evaluation')} (epochs {points[-window][0]}-{points[-1][0]})"
        word = {"improving": "still improving", "worsening": "getting worse", "flat": "flat within noise"}[out["trend"]]
        sentences.append(f"Over {span} {obs.monitor} was {word}: the fitted trend changes it by {change:+.4g}, against "
                         f"an evaluation-to-evaluation noise of {noise:.4g} (std of changes over the run).")
    if longest and patience:
        out["gap_close_to_patience"] = longest["evaluations"] >= patience - 1
        sentences.append(
            f"Earlier in this run {obs.monitor} went {_plural(longest['evaluations'], 'evaluation')} without "
            f"improving (from epoch {longest['from_epoch']}) and then improved at epoch {longest['improved_at']}; the "
            f"patience allows {_plural(patience - 1, 'miss')} in a row without stopping" + (", so that recovery nearly did not happen." if out["gap_close_to_patience"] else "."))
    elif patience:
        out["gap_close_to_patience"] = False
    if resets and s.preset == "recbole_legacy":
        tie_text = (f"{len(ties)} of the {_plural(len(resets), 'counter reset')} were exact ties "
                    f"(epochs {', '.join(map(str, ties))}), which RecBole counts as improvements"
                    if ties else f"None of the {_plural(len(resets), 'counter reset')} was an exact tie")
        sentences.append(tie_text + (f"; values are rounded to {obs.decimal_places} decimals (metric_decimal_place), "
                                     "which makes ties common." if ties and obs.decimal_places is not None else "."))
    ties_decide = _tie_sensitivity(obs)
    out["ties_decided"] = ties_decide
    if ties_decide is not None:
        sentences.append(ties_decide["sentence"])
    if s.min_delta and noise is not None and s.min_delta_mode == "abs":
        relation = "below" if s.min_delta < noise else "above"
        sentences.append(f"min_delta {s.min_delta:g} is {relation} the noise {noise:.4g}"
                         + (": a noise uptick counts as an improvement." if relation == "below" else "."))
    if spike and spike["is_spike"]:
        sentences.append(f"The best value (epoch {spike['epoch']}) stands {spike['excess_over_neighbours']:.4g} above "
                         f"the mean of its two neighbours, more than noise alone gives ({spike['threshold']:.4g}, two "
                         "standard deviations): a single lucky evaluation set the bar the following ones had to beat.")
    out["verdict"] = _verdict(obs, out)
    out["sentences"] = [out["verdict"], *sentences]
    return out


def _tie_sensitivity(obs: Observed) -> dict[str, Any] | None:
    """Replay the observed policy with ties counted the other way; report it when the stop epoch changes.

    RecBole counts a value equal to the best as an improvement; rec_es by default does not. Metrics are rounded
    to ``metric_decimal_place`` decimals, so whether ties count can decide when a run stops.
    """
    s = obs.policy.settings
    mapping = dict(obs.policy_mapping)
    if s.preset == "recbole_legacy":
        mapping = {"monitor": mapping.get("monitor", obs.monitor), "mode": obs.mode, "patience": s.patience,
                   "ties_improve": False, "check_finite": "miss"}
    else:
        mapping["ties_improve"] = not s.ties_improve
    try:
        flipped = replay(build_policy(mapping), obs.trace, name="ties flipped")
    except (ConfigError, ReplayError):
        return None
    observed_stop = obs.last_epoch if obs.ending == "early_stopped" else None
    flipped_stop = flipped.stop_epoch if flipped.stopped else None
    if flipped_stop == observed_stop:
        return None
    counted = "not counted as improvements" if s.ties_improve else "counted as improvements"
    places = f" (values rounded to {obs.decimal_places} decimals)" if obs.decimal_places is not None else ""
    if flipped_stop is None:
        sentence = (f"Ties decided the stop: with ties {counted}{places}, the same run would still have been "
                    f"running at epoch {obs.last_epoch} (data ends).")
    elif observed_stop is None:
        sentence = (f"Ties kept the run going: with ties {counted}{places}, it would have stopped at epoch "
                    f"{flipped_stop}.")
    else:
        sentence = (f"Ties moved the stop: with ties {counted}{places}, the same run would have stopped at epoch "
                    f"{flipped_stop} instead of epoch {observed_stop}.")
    return {"stop_epoch": flipped_stop, "ties_improve": not s.ties_improve, "sentence": sentence}


def _verdict(obs: Observed, p: Mapping[str, Any]) -> str:
    trend = p["trend"]
    if obs.ending == "budget":
        return ("Not stopped early: the run used its whole budget"
                + ("; the monitor was still improving at the end, so more epochs may help." if trend == "improving"
                   else "."))
    if obs.ending == "incomplete":
        return "Not stopped by a rule: the data ends before any stop or budget."
    if obs.ending == "stopped_in_training":
        return "Not a stopping-rule decision: training itself failed, so patience and smoothing are not the question."
    if trend == "improving":
        return "Likely premature: the monitor was still improving when the run stopped."
    doubts = []
    if p.get("gap_close_to_patience"):
        doubts.append("an earlier gap in this run came close to the patience")
    if p.get("spike") and p["spike"]["is_spike"]:
        doubts.append("the best value is a single spike")
    if doubts:
        return f"Possibly premature: the curve was {trend.replace('worsening', 'getting worse')} at the stop, but " \
               + " and ".join(doubts) + "."
    if trend == "worsening":
        return "Not premature: the monitor was getting worse when the run stopped."
    if trend == "flat":
        return "Probably not premature: the monitor was flat within noise at the stop."
    return "Cannot tell: too few evaluations."


def _policy_mapping(obs: Observed, mapping: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(mapping)
    out.setdefault("monitor", obs.policy_mapping.get("monitor", obs.monitor))
    out.setdefault("mode", obs.mode)
    return out


def counterfactuals(obs: Observed, extra: Sequence[tuple[str, dict[str, Any]]] = ()) -> list[dict[str, Any]]:
    """Replay the observed policy, the built-in set and ``extra`` on the observed evaluations."""
    rows: list[dict[str, Any]] = []
    named = [("observed: " + _observed_label(obs), obs.policy_mapping)]
    if obs.original_policy is not None:
        named.append(obs.original_policy)
    for name, mapping in [*DEFAULT_POLICIES, *extra]:
        if _same_as_observed(obs, mapping):
            continue
        named.append((name, mapping))
    values = dict(obs.values())
    for name, mapping in named:
        full = _policy_mapping(obs, mapping)
        try:
            policy = build_policy(full)
            result = replay(policy, obs.trace, name=name)
        except (ConfigError, ReplayError) as exc:
            rows.append({"policy": name, "mapping": full, "error": str(exc)})
            continue
        status = "stopped" if result.stopped else ("budget" if result.reason == "max_epochs" else "data_ends")
        test = result.metric(obs.monitor, "test") if len(policy.monitor_keys) == 1 else None
        rows.append({"policy": name, "mapping": full, "status": status, "stop_epoch": result.stop_epoch,
                     "best_test": test,
                     "reason": result.reason, "best_epoch": result.best_epoch,
                     "best_value": values.get(result.best_epoch) if result.best_epoch is not None else None,
                     "epochs_trained": result.epochs_trained, "setting": _setting_text(obs, mapping)})
    return rows


def _observed_label(obs: Observed) -> str:
    return _label(obs.policy)


def _label(policy: StoppingPolicy) -> str:
    """A short name for a policy: ``stopping_step 3``, ``patience 10 evaluations + EMA α=0.5``."""
    s = policy.settings
    if s.preset == "recbole_legacy":
        return f"stopping_step {s.stopping_step}"
    label = f"patience {s.patience} {s.patience_unit}" if s.patience is not None else "no patience rule"
    if s.smoothing == "ema":
        label += f" + EMA α={s.ema_alpha:g}"
    elif s.smoothing == "window":
        label += f" + window {s.window}"
    return label if s.enabled else "stopping disabled"


def _same_as_observed(obs: Observed, mapping: Mapping[str, Any]) -> bool:
    try:
        return build_policy(_policy_mapping(obs, mapping)).settings == obs.policy.settings
    except ConfigError:
        return False


def _setting_text(obs: Observed, mapping: Mapping[str, Any]) -> str:
    """How to write ``mapping`` in a property file (stock users get ``stopping_step: N`` for the legacy rule)."""
    body = {k: v for k, v in mapping.items() if k not in ("monitor", "mode")}
    if obs.kind == "recbole_log" and body.get("preset") == "recbole_legacy" and set(body) <= {"preset", "stopping_step"}:
        return f"stopping_step: {body.get('stopping_step', 10)}"
    return "early_stopping: " + yaml.safe_dump(body, default_flow_style=True, allow_unicode=True).strip()


def advice(obs: Observed, stop: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Settings whose effect the replay shows on the observed evaluations (may be empty).

    Only two things can be shown: a policy that restores a strictly better epoch (it must have finished inside
    the data), and one that stops earlier and restores an equally good epoch.
    """
    out: list[str] = []
    observed_best = stop.get("best_value")
    valid_rows = [r for r in rows[1:] if "error" not in r and r.get("best_value") is not None]
    if observed_best is None:
        return out
    better = [r for r in valid_rows if r["status"] != "data_ends" and _better(r["best_value"], observed_best, obs.mode)]
    if better:
        # best value first; among equal values the earlier restored epoch, then the shorter run
        r = max(better, key=lambda r: (r["best_value"] * (1 if obs.mode == "max" else -1), -r["best_epoch"],
                                       -r["epochs_trained"]))
        out.append(f"{r['policy']} would have restored epoch {r['best_epoch']} ({obs.monitor} {_fmt(r['best_value'])}) "
                   f"instead of epoch {stop['best_epoch']} ({_fmt(observed_best)}): set {r['setting']}.")
    same = [r for r in valid_rows if r["status"] == "stopped" and r["stop_epoch"] < obs.last_epoch
            and not _better(observed_best, r["best_value"], obs.mode)]
    if same and obs.ending != "incomplete":
        r = min(same, key=lambda r: r["stop_epoch"])
        saved = obs.last_epoch - r["stop_epoch"]
        out.append(f"{r['policy']} would have stopped at epoch {r['stop_epoch']}, {_plural(saved, 'epoch')} earlier, "
                   f"and restored an equally good epoch ({r['best_epoch']}, {_fmt(r['best_value'])}): set {r['setting']} "
                   "to save time.")
    return out


def worth_trying(obs: Observed, premature: Mapping[str, Any], shown: Sequence[str] = ()) -> list[str]:
    """Changes the run's own curve hints at but cannot prove, because the data ends where the run ended.

    ``shown``: the advice already backed by the replay (a hint it already covers is left out)."""
    out: list[str] = []
    patience = premature.get("patience_evaluations")
    stock = obs.kind == "recbole_log" or obs.policy.settings.preset == "recbole_legacy"
    if obs.ending == "early_stopped" and patience and (premature["trend"] == "improving"
                                                       or premature.get("gap_close_to_patience")):
        target = next(n for n in (10, 20, 30, 50, 100, 200, 10**9) if n >= 2 * patience)
        why = ("the monitor was still improving at the stop" if premature["trend"] == "improving" else
               f"this run already went {premature['longest_recovered_gap']['evaluations']} evaluations without "
               "improving once and then recovered")
        key = (f"stopping_step: {target} (stock RecBole) or early_stopping.patience: {target} (rec_es)" if stock
               else f"early_stopping.patience: {target}")
        how = ""
        run_dir = obs.trace.path.parent
        if obs.kind == "rec_es" and (run_dir / "last.pth").is_file():
            how = (f" This run kept its last checkpoint, so it can continue instead of restarting: rec-es run "
                   f"--resume {run_dir} --config new_policy.yaml")
        out.append(f"More patience, since {why}: {key}. The data ends at epoch {obs.last_epoch}, so only a longer run "
                   f"can show whether a better epoch follows.{how}")
    spike = premature.get("spike")
    if (spike and spike.get("is_spike") and obs.policy.settings.smoothing == "none" and obs.ending == "early_stopped"
            and not any("smoothing: ema" in a for a in shown)):
        out.append("Smoothing, so that one lucky evaluation does not set the bar: "
                   "early_stopping: {smoothing: ema, ema_alpha: 0.5} (the best raw epoch is still restored).")
    if obs.ending == "budget" and premature["trend"] == "improving":
        out.append(f"More epochs (now {obs.epochs}): the monitor was still improving when the budget ran out.")
    return out


def explain(path: str | Path, policies: Sequence[tuple[str, dict[str, Any]]] = ()) -> dict[str, Any]:
    """The whole report for RUN as plain JSON-able data (what ``--json`` prints)."""
    obs = load_run(path)
    stop = analyse_stop(obs)
    premature = analyse_premature(obs, stop)
    rows = counterfactuals(obs, policies)
    shown = advice(obs, stop, rows)
    return {
        "source": obs.source, "kind": obs.kind, "model": obs.model, "dataset": obs.dataset,
        "monitor": obs.monitor, "mode": obs.mode, "epochs": obs.epochs, "eval_step": obs.eval_step,
        "observed_policy": obs.policy_mapping, "stop": stop, "premature": premature, "counterfactuals": rows,
        "advice": shown, "worth_trying": worth_trying(obs, premature, shown), "warnings": obs.warnings,
        "evaluations": [{k: d.get(k) for k in ("epoch", "value", "smoothed", "improved", "wait_count", "best_epoch")}
                        for d in obs.decisions],
    }


# ----- output --------------------------------------------------------------------------------------------
def _row_outcome(r: Mapping[str, Any], last_epoch: int) -> str:
    if "error" in r:
        return f"cannot replay: {r['error']}"
    if r["status"] == "stopped":
        return f"stops at epoch {r['stop_epoch']}"
    if r["status"] == "budget":
        return f"runs the whole budget (to epoch {r['stop_epoch']})"
    return f"would still be running at epoch {last_epoch} (data ends)"


def render_text(report: Mapping[str, Any]) -> str:
    """The report as plain sentences and a table."""
    stop, premature = report["stop"], report["premature"]
    kind = "stock RecBole log" if report["kind"] == "recbole_log" else "rec_es run"
    what = f"{report['model']} on {report['dataset']}" if report.get("model") else "model unknown"
    lines = [f"Run: {report['source']} ({kind}, {what})",
             f"Monitor: {report['monitor']} ({report['mode']}), budget epochs {report['epochs']}, "
             f"eval_step {report['eval_step']}, {_plural(stop['evaluations'], 'evaluation')} observed", "",
             "Why it stopped", f"  {stop['sentence']}", "", "Was it premature?"]
    lines += [f"  {s}" for s in premature["sentences"]]
    last = report["evaluations"][-1]["epoch"]
    lines += ["", f"What other settings would have done (replayed on the observed evaluations, data ends at epoch {last})"]
    table: list[tuple[str, ...]] = [(r["policy"], _row_outcome(r, last),
              "-" if r.get("best_epoch") is None else f"epoch {r['best_epoch']} ({_fmt(r.get('best_value'))})"
              + (" so far" if r.get("status") == "data_ends" else ""))
             for r in report["counterfactuals"]]
    header: tuple[str, ...] = ("policy", "outcome", f"restores ({report['monitor']})")
    if any(r.get("best_test") is not None for r in report["counterfactuals"]):  # traces recorded with record_test
        header += (f"test {report['monitor']} there",)
        table = [(*row, _fmt(r.get("best_test")) if r.get("best_test") is not None else "-")
                 for row, r in zip(table, report["counterfactuals"])]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    lines += ["", "Advice (shown by the replay above)"]
    lines += [f"  - {a}" for a in report["advice"]] or ["  - none: no replayed policy did better on the observed data."]
    if report["worth_trying"]:
        lines += ["", "Worth trying (the curve hints at it; the data cannot show the outcome)"]
        lines += [f"  - {a}" for a in report["worth_trying"]]
    if report["warnings"]:
        lines += ["", "Could not be read / caveats"] + [f"  - {w}" for w in report["warnings"]]
    return "\n".join(lines)


def plot(report: Mapping[str, Any], path: str | Path) -> Path:
    """PNG: monitor curve, smoothed curve, best and stop epochs, shaded patience window at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [e for e in report["evaluations"] if isinstance(e.get("value"), (int, float))]
    epochs = [e["epoch"] for e in evals]
    values = [e["value"] for e in evals]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(epochs, values, "o-", ms=3, lw=1, label=f"{report['monitor']} (observed)")
    smoothed, label = _smoothed_series(report, evals)
    ax.plot(epochs, smoothed, "-", lw=2, alpha=0.8, label=label)
    stop = report["stop"]
    premature = report["premature"]
    if stop.get("best_epoch") is not None:
        ax.axvline(stop["best_epoch"], color="tab:green", ls="--", label=f"best epoch {stop['best_epoch']}")
    ax.axvline(stop["stop_epoch"], color="tab:red", ls="-", label=f"{'stop' if stop['ending'] == 'early_stopped' else 'last'} epoch {stop['stop_epoch']}")
    patience = premature.get("patience_evaluations")
    waited = stop.get("epochs_without_improvement") or 0
    if patience:
        start = stop["stop_epoch"] - waited
        ax.axvspan(start, start + patience * report["eval_step"], color="tab:orange", alpha=0.15,
                   label=f"patience window ({patience} evaluations)")
    ax.set_xlabel("epoch (0-based, as RecBole logs it)")
    ax.set_ylabel(report["monitor"])
    title = f"{report.get('model') or ''} {report.get('dataset') or ''}: {premature['verdict']}"
    ax.set_title(textwrap.fill(title, 100), fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _smoothed_series(report: Mapping[str, Any], evals: Sequence[Mapping[str, Any]]) -> tuple[list[float], str]:
    policy = report["observed_policy"]
    if policy.get("smoothing") in ("ema", "window") and all(e.get("smoothed") is not None for e in evals):
        return [e["smoothed"] for e in evals], "smoothed (the run's own policy)"
    state: dict[str, Any] = {}
    out = []
    for e in evals:
        value, state = smooth("ema", 0.5, state, e["value"])
        out.append(value)
    return out, "EMA α=0.5 (for reading only)"


def read_policy_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """A ``--policies`` file: a property file with ``early_stopping:`` or a bare policy mapping."""
    from rec_es.config import read_yaml

    data = read_yaml(path)
    mapping = data.get("early_stopping", data) if isinstance(data, dict) else data
    if not isinstance(mapping, dict):
        raise ConfigError(f"early_stopping: must be a mapping of settings (got {mapping!r})", source=str(path))
    build_policy({"monitor": "ndcg@10", **mapping}, source=str(path))  # validate now, with the file's name
    name = Path(path).stem
    if isinstance(data, dict) and data.get("lr_schedule"):
        name += " (policy only: its lr_schedule changes training and cannot be replayed)"
    return name, dict(mapping)


def main(argv: list[str] | None = None) -> int:
    """``rec-es explain RUN [--json] [--plot PATH] [--policies FILE...]``; 0 ok, 1 RUN unreadable, 2 bad policy file."""
    parser = argparse.ArgumentParser(prog="rec-es explain", description="Explain why a run stopped: a rec_es run "
                                     "directory or a stock RecBole log file.")
    parser.add_argument("run", metavar="RUN", help="rec_es run directory, trace.jsonl, or RecBole log file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the monitor curve to PATH")
    parser.add_argument("--policies", nargs="+", default=[], metavar="FILE",
                        help="extra policy files to replay (property files with early_stopping:)")
    args = parser.parse_args(argv)
    try:
        extra = [read_policy_file(f) for f in args.policies]
    except ConfigError as exc:
        print(f"rec-es explain: error: {exc}", file=sys.stderr)
        return 2
    try:
        report = explain(args.run, extra)
    except RecEsError as exc:
        print(f"rec-es explain: error: {exc}", file=sys.stderr)
        return 1
    if args.plot:
        report["plot"] = str(plot(report, args.plot))
    print(json.dumps(jsonable(report), indent=2, allow_nan=False) if args.json else render_text(report))
    if args.plot and not args.json:
        print(f"\nplot: {report['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
