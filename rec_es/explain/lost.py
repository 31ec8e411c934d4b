"""What a premature stop lost, and what the counterfactual policies the data cannot settle would have done.

  * **the expected gain of continuing**: the shared estimator's learning-curve fit (``rec_es.policy.learning``:
    a saturating curve with a profile-likelihood interval) from its level at the stop to the budget's last epoch,
    and the same against the curve's level at the restored epoch (the restored value itself is often a lucky draw);
  * **each counterfactual that "would still be running (data ends)"**: replayed over ``SIMULATIONS`` simulated
    continuations (the fitted curve at every later evaluation epoch plus Gaussian noise of the run's own size,
    rounded like the log, seeded, so the report is the same every time): the median stop epoch, how many reach
    the budget, and the fitted level at the epoch it would restore, on average;
  * **which policies capture it**: those expected to restore at least ``CAPTURED`` of the expected gain over the
    restored best (a policy that stopped inside the data and restored a better epoch captured part of it).

This is what the extrapolation expects, not what the run would have done; the sentences say so.
"""
from __future__ import annotations

import random
import statistics
from typing import Any, Mapping, Sequence

from rec_es.policy.errors import ConfigError
from rec_es.explain.observed import Observed
from rec_es.policy import build_policy
from rec_es.replay import ReplayError, replay
from rec_es.rundir.trace import Trace

SIMULATIONS = 30
SEED = 13
#: a policy "captures" the gain when it is expected to restore at least this share of it
CAPTURED = 0.5


def _curve(continuation: Sequence[Mapping[str, Any]], last_epoch: int, level: float) -> dict[int, float]:
    """The fitted curve at every epoch after ``last_epoch`` (linear between the estimator's points)."""
    points = [(last_epoch, level), *((p["epoch"], p["mean"]) for p in continuation)]
    out: dict[int, float] = {}
    for (e0, v0), (e1, v1) in zip(points, points[1:]):
        for e in range(e0 + 1, e1 + 1):
            out[e] = v0 + (v1 - v0) * (e - e0) / (e1 - e0)
    return out


def simulate(obs: Observed, mapping: Mapping[str, Any], curve: Mapping[int, float], noise: float,
             reference: float, n: int = SIMULATIONS) -> dict[str, Any] | None:
    """Replay ``mapping`` over ``n`` simulated continuations of ``obs``: median stop, budget share, restored level.

    A restored epoch inside the simulated part counts the fitted curve there; one inside the observed part counts
    ``reference`` (the curve's level at the observed restored epoch), so restoring what was restored gains 0.
    """
    try:
        policy = build_policy(dict(mapping))
    except ConfigError:
        return None
    rng = random.Random(SEED)
    epochs = [e for e in sorted(curve) if (e + 1) % obs.eval_step == 0]
    places = obs.decimal_places
    stops: list[int] = []
    levels: list[float] = []
    to_budget = 0
    for _ in range(n):
        records = list(obs.trace.records)
        for e in epochs:
            value = curve[e] + rng.gauss(0.0, noise)
            records.append({"type": "eval", "epoch": e, "train_loss": None, "elapsed_seconds": None,
                            "valid": {obs.monitor: round(value, places) if places is not None else value}})
        trace = Trace(path=obs.trace.path, header={**obs.trace.header, "epochs": obs.epochs}, records=records,
                      footer={"type": "footer", "stop_epoch": records[-1]["epoch"]})
        try:
            result = replay(policy, trace, name="simulated")
        except ReplayError:
            return None
        stops.append(result.stop_epoch)
        to_budget += not result.stopped
        levels.append(curve.get(result.best_epoch, reference) if result.best_epoch is not None else reference)
    return {"median_stop_epoch": int(statistics.median(stops)), "runs_to_budget": to_budget, "simulations": n,
            "restored_level": statistics.fmean(levels)}


def what_was_lost(obs: Observed, stop: Mapping[str, Any], premature: Mapping[str, Any],
                  rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The expected gain of continuing and, on each "data ends" row, what the fitted curve expects (in place)."""
    est = premature.get("estimate") or {}
    best = stop.get("best_value")
    reference = (premature.get("evidence") or {}).get("bar_level")
    cont = est.get("continuation") or []
    if obs.ending != "early_stopped" or est.get("gain") is None or not cont or best is None or reference is None:
        return None
    sign = 1.0 if obs.mode == "max" else -1.0
    end_epoch, end_level = cont[-1]["epoch"], cont[-1]["mean"]
    stop_level = end_level - sign * est["gain"]
    over_best = (end_level - reference) * sign
    curve = _curve(cont, obs.last_epoch, stop_level)
    captured: list[str] = []
    for r in rows:
        if "error" in r or r["policy"].startswith("observed"):
            continue
        if r.get("status") == "stopped" and r.get("best_value") is not None and (r["best_value"] - best) * sign > 0:
            captured.append(f"{r['policy']} (restored epoch {r['best_epoch']}, in the data)")
        if r.get("status") != "data_ends":
            continue
        sim = simulate(obs, r["mapping"], curve, est.get("noise") or 0.0, reference)
        if sim is None:
            continue
        sim["gain_over_restored"] = (sim["restored_level"] - reference) * sign
        r["extrapolated"] = sim
        if over_best > 0 and sim["gain_over_restored"] >= CAPTURED * over_best:
            captured.append(r["policy"])
    level = round(100 * est["level"])
    sentence = (f"Continuing to epoch {end_epoch}: the learning-curve fit expects {obs.monitor} to change by "
                f"{est['gain']:+.2g} from its level at the stop ({stop_level:.4g}; one-sided {level} % bounds "
                f"{est['gain_lo']:+.2g} and {est['gain_hi']:+.2g}), to about {end_level:.4g}, {over_best:+.2g} "
                f"against the curve's level at the restored epoch {stop['best_epoch']} ({reference:.4g}; its observed "
                f"{best:.4g} includes that evaluation's noise)")
    sentence += " (an extrapolation, not an observation)."
    if over_best > 0:
        sentence += (f" Policies expected to capture at least {100 * CAPTURED:.0f} % of the expected gain: "
                     + (", ".join(captured) if captured else "none of the replayed ones") + ".")
    return {"gain": est["gain"], "gain_lo": est["gain_lo"], "gain_hi": est["gain_hi"], "stop_level": stop_level,
            "end_epoch": end_epoch, "end_level": end_level, "restored_best": best, "restored_level": reference, "gain_over_restored": over_best,
            "captured_by": captured,
            "sentence": sentence}


def row_extrapolation_text(r: Mapping[str, Any], monitor: str) -> str | None:
    """One line for a "data ends" row: what the fitted curve expects it to do."""
    sim = r.get("extrapolated")
    if not sim:
        return None
    budget = (f"runs to the budget in {sim['runs_to_budget']} of {sim['simulations']}"
              if sim["runs_to_budget"] else f"stops in all {sim['simulations']}")
    return (f"{r['policy']}: stops at epoch {sim['median_stop_epoch']} (median; {budget}) and restores a fitted "
            f"{monitor} of about {sim['restored_level']:.4g} ({sim['gain_over_restored']:+.2g} against the level at "
            "the restored epoch)")
