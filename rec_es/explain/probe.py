"""``rec-es explain RUN --probe N``: what continuing the run N epochs showed, measured on its per-user scores.

``measure_probe`` reads one run directory's per-user sidecar: the run's best evaluation (``base_epoch``) against
every evaluation after ``stop_epoch`` up to ``stop_epoch + n``. The probe's own directory holds the original
evaluations and the continuation's, so the same call measures a live probe and, on a run recorded with stopping
disabled, the replay of its recorded future (``scripts/bench_probe.py``): a deterministic resume makes the two
equal. The statistics and the call are ``rec_es.explain.probe_stats``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rec_es.explain.observed import Observed
from rec_es.explain.probe_stats import (CANNOT_TELL, CORRECTION, NOT_PREMATURE, PREMATURE, TREND_Z, ProbeTest,
                                        best_of_n, curve_best_of_n, probe_call, still_rising)
from rec_es.rundir.per_user import PerUserScores
from rec_es.rundir.trace import Trace


def continuation_epochs(scores: PerUserScores, stop_epoch: int, n: int) -> list[int]:
    """The evaluated epochs ``e`` with ``stop_epoch < e <= stop_epoch + n``."""
    return [e for e in scores.epochs if stop_epoch < e <= stop_epoch + n]


def monitor_matrix(scores: PerUserScores, terms: Sequence[tuple[str, float]], epochs: Sequence[int]) -> np.ndarray:
    """``[len(epochs), n_users]`` per-user monitor values: the weighted sum of the monitor's terms (one metric of
    weight 1 for a plain monitor). KeyError naming the sidecar when a term was not recorded per user."""
    rows = [scores.epochs.index(e) for e in epochs]
    out = np.zeros((len(rows), len(scores.user_ids)), dtype=np.float64)
    for key, weight in terms:
        out += weight * scores.values(key)[rows].astype(np.float64)
    return out


def measure_probe(scores: PerUserScores, terms: Sequence[tuple[str, float]], mode: str, base_epoch: int,
                  stop_epoch: int, n: int, correction: str = CORRECTION) -> ProbeTest | None:
    """The corrected comparison of the evaluations in ``(stop_epoch, stop_epoch + n]`` with ``base_epoch`` (the
    run's best); None when no evaluation follows ``stop_epoch`` within ``n`` epochs."""
    epochs = continuation_epochs(scores, stop_epoch, n)
    if not epochs:
        return None
    base = monitor_matrix(scores, terms, [base_epoch])[0]
    return best_of_n(base, monitor_matrix(scores, terms, epochs), epochs, mode, correction=correction)


# ----- the report ------------------------------------------------------------------------------------------
#: the probe length explain offers and advises: the smallest N of scripts/bench_probe.py's table that meets issue
#: 33's goal, or its best N when none does (docs/results/bench_probe/summary.json; a test checks they agree)
ADVISED_EPOCHS = 30
#: explain offers a probe when the log-read verdict says "cannot tell", or premature with a confidence under this
OFFER_BELOW = 0.9
CALL_WORDS = {PREMATURE: "premature", NOT_PREMATURE: "not premature", CANNOT_TELL: "cannot tell"}


def epoch_seconds(trace: Trace) -> float | None:
    """The run's own wall-clock seconds per epoch (training, evaluation, checkpoints): the footer's
    ``wall_seconds / epochs_trained``, else the last record's ``elapsed_seconds`` over the epochs it covers."""
    footer = trace.footer or {}
    wall, trained = footer.get("wall_seconds"), footer.get("epochs_trained")
    if isinstance(wall, (int, float)) and isinstance(trained, int) and trained > 0 and wall > 0:
        return float(wall) / trained
    last = trace.records[-1] if trace.records else {}
    elapsed = last.get("elapsed_seconds")
    if isinstance(elapsed, (int, float)) and elapsed > 0:
        return float(elapsed) / (int(last["epoch"]) + 1)
    return None


def offer_probe(obs: Observed, premature: Mapping[str, Any]) -> dict[str, Any] | None:
    """The probe explain's last line offers: when the verdict cannot tell or calls the stop premature with a
    confidence under ``OFFER_BELOW``, and the run can be continued (a rec_es run directory with ``last.pth``);
    ``{epochs, seconds, command, sentence}``, the cost from the run's own epoch times. None otherwise."""
    call, confidence = premature.get("call"), premature.get("confidence")
    unsure = call == CANNOT_TELL or (call == PREMATURE and (confidence is None or confidence < OFFER_BELOW))
    if obs.ending != "early_stopped" or not unsure or obs.trace.path is None:
        return None
    target = _continuable(obs)
    if target is None:
        return None
    n = ADVISED_EPOCHS
    per_epoch = epoch_seconds(obs.trace)
    seconds = n * per_epoch if per_epoch is not None else None
    command = f"rec-es explain {target} --probe {n}"
    cost = (f" would take about {_duration(seconds)} here ({per_epoch:.2g} s per epoch so far)"
            if seconds is not None else "")
    why = "cannot tell" if call == CANNOT_TELL else f"{100 * (confidence or 0):.0f} % confidence"
    start = "RecBole's checkpoint of its best epoch" if obs.kind == "recbole_log" else "its last checkpoint"
    sentence = (f"Find out instead of guessing ({why}): {command}{cost}: it continues the run {n} epochs from "
                f"{start} with stopping off, into a new directory, and measures whether {obs.monitor} "
                "beats the best by more than its noise.")
    return {"epochs": n, "seconds": seconds, "seconds_per_epoch": per_epoch, "command": command,
            "sentence": sentence}


def _continuable(obs: Observed) -> str | None:
    """What ``--probe`` can continue: a rec_es run directory with ``last.pth``, or a stock log whose "Saving
    current" checkpoint is found (``rec_es.training.probe.named_checkpoint``); None otherwise."""
    from rec_es.policy.errors import ConfigError

    if obs.kind == "rec_es":
        run_dir = Path(obs.trace.path).parent
        return str(run_dir) if (run_dir / "last.pth").is_file() else None
    if obs.stock is None:
        return None
    from rec_es.training.probe import named_checkpoint

    saved = [e.epoch for e in obs.stock.evaluations if e.saved]
    try:
        named_checkpoint(Path(obs.stock.path), obs.stock.checkpoint, saved[-1] if saved else None)
    except ConfigError:
        return None
    return str(obs.stock.path)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def probe_report(report: Mapping[str, Any], probe_dir: str | Path, n: int, seconds: float | None,
                 policies: Sequence[tuple[str, dict[str, Any]]] = (), stop_epoch: int | None = None,
                 from_checkpoint: bool = False) -> dict[str, Any]:
    """The ``"probe"`` part of explain's report, read from the probe's run directory: the measured call on the
    per-user scores (``measure_probe``; the curve's noise when none were recorded), the original policy and the
    counterfactual set replayed on the extended curve, and the cost (``seconds``: the whole continuation, data
    loading included). ``stop_epoch``: the epoch the probe continued after (``last.pth``'s; default the report's
    stop epoch). ``from_checkpoint``: a stock log's probe, which continued from RecBole's saved best epoch
    (``stop_epoch``), re-evaluated first as the probe's base."""
    from rec_es.explain.counterfactual import counterfactuals
    from rec_es.policy import build_policy
    from rec_es.rundir.trace import read_trace

    probe_dir = Path(probe_dir)
    policy = build_policy(dict(report["observed_policy"]))
    terms, mode = policy.monitor.terms, policy.mode
    stop = int(stop_epoch if stop_epoch is not None else report["stop"]["stop_epoch"])
    base = stop if from_checkpoint else report["stop"]["best_epoch"]
    trace = read_trace(probe_dir)
    raw = {r["epoch"]: policy.monitor.score(r["valid"]) for r in trace.records}
    after = [e for e in raw if e > stop]
    out: dict[str, Any] = {"run_dir": str(probe_dir), "epochs": (trace.records[-1]["epoch"] - stop) if after else 0,
                           "requested_epochs": n, "from_epoch": stop + 1, "seconds": seconds,
                           "base_epoch": base, "base_value": raw.get(base) if base is not None else None,
                           "evaluations": [{"epoch": e, "value": raw[e]} for e in after]}
    out["seconds_per_epoch"] = _probe_epoch_seconds(trace, stop, out["epochs"])
    test, how = None, "no evaluation after the stop"
    if after and base is not None:
        test, how = _measure(probe_dir, trace, terms, mode, base, stop, n, raw)
    if test is None:
        out.update(verdict=CALL_WORDS[CANNOT_TELL], call=CANNOT_TELL, test=None, best_epoch=None, gain=None,
                   p_value=None, interval=None, sentences=[f"Cannot tell, measured: {how}."])
    else:
        call = probe_call(test)
        best_epoch = after[test.best]
        out.update(verdict=CALL_WORDS[call], call=call, test=test.to_dict(), best_epoch=best_epoch,
                   best_value=raw[best_epoch], gain=test.gain, p_value=test.p_value,
                   interval=[test.lower, test.upper], level=1.0 - test.alpha, correction=test.correction)
        out["sentences"] = [_call_sentence(out, test, report["monitor"], report["premature"].get("call"))]
    if from_checkpoint:
        out["sentences"].insert(0, _stock_sentence(report, stop, raw.get(stop)))
    rows = counterfactuals(_extended(report, probe_dir, stop), policies)
    if any(r["policy"].startswith("original (") for r in rows):  # the probe's own row is "stopping disabled"
        rows = [r for r in rows if not r["policy"].startswith("observed: ")]
    out["replay"] = rows
    out["sentences"].append(_replay_sentence(rows, int(report["stop"]["stop_epoch"]), stop,
                                             after[-1] if after else stop))
    if seconds is not None:
        per = (f", {out['seconds_per_epoch']:.2g} s per epoch of training and evaluation"
               if out["seconds_per_epoch"] else "")
        out["sentences"].append(f"Cost: {out['epochs']} epochs in {_duration(seconds)} (loading the data "
                                f"included{per}); the probe is a run directory of its own ({probe_dir}): rec-es "
                                "explain, replay and compare read it.")
    return out


def _stock_sentence(report: Mapping[str, Any], start: int, again: float | None) -> str:
    """What a stock log's probe continued from, and the checkpoint's own evaluation against the log's."""
    logged = next((e["value"] for e in report["evaluations"] if e["epoch"] == start), None)
    check = ""
    if again is not None and logged is not None:
        places = report.get("decimal_places") or 4
        same = round(again, places) == round(logged, places)
        check = (f" Evaluated again, its weights score {report['monitor']} {again:.4g}, "
                 + ("as the log says." if same else f"where the log says {logged:.4g}: the data or the evaluation "
                    "differ from the logged run's, so the probe compares with its own evaluation of epoch "
                    f"{start}."))
    return (f"RecBole saved only its best epoch's weights and optimizer (epoch {start}; the run stopped at epoch "
            f"{report['stop']['stop_epoch']}), so the probe continues from epoch {start}, not from the stop, with a "
            f"fresh RNG and data order: its epochs after {start} are a new trajectory, not the logged ones.{check}")


def _extended(report: Mapping[str, Any], probe_dir: Path, stop: int) -> Observed:
    """The run and the probe as one curve: a rec_es probe's own run directory (the original evaluations and the
    continuation); for a stock log, the log's evaluations up to the probe's start and the probe's after it, with
    RecBole's rule replayed as the observed policy."""
    from rec_es.explain.adapters import load_run
    from rec_es.replay import replay

    probe = load_run(probe_dir)
    if report["kind"] != "recbole_log":
        return probe
    log = load_run(report["source"])
    keep = ("type", "epoch", "train_loss", "valid", "elapsed_seconds")
    records = ([dict(r) for r in log.trace.records if r["epoch"] <= stop]
               + [{k: r[k] for k in keep if k in r} for r in probe.trace.records if r["epoch"] > stop])
    trace = Trace(path=log.trace.path, header=dict(log.trace.header), records=records)
    result = replay(log.policy, trace, name="observed", keep_decisions=True)
    return replace(log, trace=trace, decisions=[d.to_dict() for d in result.decisions], ending="incomplete",
                   warnings=[])


def _probe_epoch_seconds(trace: Trace, stop: int, epochs: int) -> float | None:
    """Seconds per epoch of the continuation, from the probe trace's elapsed time (data loading left out)."""
    at = {r["epoch"]: r.get("elapsed_seconds") for r in trace.records}
    before = [e for e in at if e <= stop and isinstance(at[e], (int, float))]
    after = [e for e in at if e > stop and isinstance(at[e], (int, float))]
    if not epochs or not before or not after:
        return None
    return max(0.0, (at[max(after)] - at[max(before)]) / (max(after) - max(before)))


def _measure(probe_dir: Path, trace: Trace, terms: Sequence[tuple[str, float]], mode: str, base: int, stop: int,
             n: int, raw: Mapping[int, float]) -> tuple[ProbeTest | None, str]:
    """The paired test on the probe's per-user sidecar, or the curve-noise fallback without one."""
    from rec_es.policy.errors import StateError
    from rec_es.rundir.per_user import read_per_user

    try:
        scores = read_per_user(probe_dir, "valid", trace=trace)
        if all(k in scores.metrics for k, _ in terms):
            return measure_probe(scores, terms, mode, base, stop, n), ""
    except StateError:
        pass
    after = [e for e in raw if stop < e <= stop + n]
    test = curve_best_of_n(raw[base], [raw[e] for e in after], after, list(raw.values()), mode)
    return test, "the curve's noise could not be measured (fewer than 3 evaluations)"


def _call_sentence(out: Mapping[str, Any], test: ProbeTest, monitor: str, log_call: str | None) -> str:
    k = test.k
    best = f"{monitor} {out['best_value']:.4g} at epoch {out['best_epoch']}"
    against = f"the run's best (epoch {out['base_epoch']}, {out['base_value']:.4g})"
    correction = {"max_t": "max-T bootstrap", "bonferroni": "Bonferroni"}[test.correction]
    how = (f"paired over {test.n_users} validation users, {correction} corrected for the "
           f"best of {k} evaluation{'s' * (k != 1)}" if test.paired else
           f"against the curve's own noise (no per-user scores recorded), Bonferroni for the best of {k}")
    bound = f"one-sided {100 * (1 - test.alpha):.0f} % bounds {test.lower:+.4g} to {test.upper:+.4g}"
    trend = (f"per-user slope over the probe z = {test.trend_z:+.1f}" if test.trend_z is not None
             else "too few evaluations for a trend")
    if out["call"] == PREMATURE:
        text = (f"Premature, measured: {best}, {test.gain:+.4g} over {against}, more than its noise "
                f"({how}: p = {test.p_value:.3g}; {bound}).")
    elif still_rising(test):
        text = (f"Not premature, measured: the best of the {out['epochs']} epochs, {best}, is {test.gain:+.4g} "
                f"against {against}, within its noise ({how}: p = {test.p_value:.3g}; {bound}); {monitor} was "
                f"still rising when the probe ended ({trend} >= {TREND_Z:g}): a longer probe "
                f"(--probe {2 * int(out['requested_epochs'])}) may find a gain.")
    else:
        text = (f"Not premature, measured: the best of the {out['epochs']} epochs, {best}, is {test.gain:+.4g} "
                f"against {against}, within its noise ({how}: p = {test.p_value:.3g}; {bound}), and {monitor} "
                f"was not rising at the end ({trend}).")
    if log_call == CANNOT_TELL:
        text += " The verdict read from the log could not tell."
    elif log_call:
        same = "agrees with" if log_call == out["call"] else "differs from"
        text += f" This {same} the verdict read from the log ({CALL_WORDS.get(log_call, log_call)})."
    return text


def _replay_sentence(rows: Sequence[Mapping[str, Any]], stop: int, start: int, last: int) -> str:
    parts = []
    for r in rows:
        if "error" in r:
            continue
        if r["status"] == "stopped":
            what = f"stops at epoch {r['stop_epoch']}"
        else:  # the probe's budget is its own: a policy still going at its end "would still be running"
            what = f"would still be running at epoch {last} (data ends)"
        kept = "restoring" if r["status"] == "stopped" else "best so far"
        restores = f", {kept} epoch {r['best_epoch']} ({r['best_value']:.4g})" if r.get("best_value") is not None \
            else ""
        parts.append(f"{_row_label(r['policy'])}: {what}{restores}")
    where = f"the run stopped at {stop}" + (f", the probe continued after {start}" if start != stop else "")
    return f"Replayed on the extended curve (epochs 0-{last}; {where}): " + "; ".join(parts) + "."


def _row_label(name: str) -> str:
    """A counterfactual row's policy as the replay sentence names it: the run's own policy says so."""
    for prefix in ("original (", "observed: "):
        if name.startswith(prefix):
            return f"the run's own policy ({name.partition('): ')[2] or name.removeprefix(prefix)})"
    return name
