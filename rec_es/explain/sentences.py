"""The report's sentences: why the run stopped, whether that looks premature (the verdict), and the advice."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from rec_es.explain.counterfactual import _tie_sensitivity
from rec_es.explain.fmt import _fmt, _plural
from rec_es.explain.observed import Observed
from rec_es.explain.verdict import verdict
from rec_es.explain.stats import _better, _gaps, _patience_evaluations, _spike, noise_level, trend_change
from rec_es.policy import rules
from rec_es.policy.schema import PolicySettings


def _setting_name(obs: Observed) -> str:
    s = obs.policy.settings
    if s.is_legacy:
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
    if obs.ending == "early_stopped" and s.is_legacy:
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
    return rules.setting_for(reason, s)


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
    if resets and s.is_legacy:
        tie_text = (f"{len(ties)} of the {_plural(len(resets), 'counter reset')} were exact ties "
                    f"(epochs {', '.join(map(str, ties))}), which RecBole counts as improvements"
                    if ties else f"None of the {_plural(len(resets), 'counter reset')} was an exact tie")
        sentences.append(tie_text + (f"; values are rounded to {obs.decimal_places} decimals (metric_decimal_place), "
                                     "which makes ties common." if ties and obs.decimal_places is not None else "."))
    ties_decide = _tie_sensitivity(obs)
    out["ties_decided"] = ties_decide
    if ties_decide is not None:
        sentences.append(ties_decide["sentence"])
    if s.min_delta and not isinstance(s.min_delta, str) and noise is not None and s.min_delta_mode == "abs":
        relation = "below" if s.min_delta < noise else "above"
        sentences.append(f"min_delta {s.min_delta:g} is {relation} the noise {noise:.4g}"
                         + (": a noise uptick counts as an improvement." if relation == "below" else "."))
    if spike and spike["is_spike"]:
        sentences.append(f"The best value (epoch {spike['epoch']}) stands {spike['excess_over_neighbours']:.4g} above "
                         f"the mean of its two neighbours, more than noise alone gives ({spike['threshold']:.4g}, two "
                         "standard deviations): a single lucky evaluation set the bar the following ones had to beat.")
    if obs.ending == "early_stopped":
        out.update(verdict(obs, stop))
        out["verdict"] = out.pop("sentence")
    else:
        out.update({"call": None, "confidence": None, "untuned": None, "facts": [], "extrapolated": False})
        out["verdict"] = _verdict(obs, out)
    out["sentences"] = [out["verdict"], *sentences]
    return out


def _verdict(obs: Observed, p: Mapping[str, Any]) -> str:
    """The verdict line of a run no stopping rule ended (a stop gets ``verdict.verdict``'s)."""
    if obs.ending == "budget":
        return ("Not stopped early: the run used its whole budget"
                + ("; the monitor was still improving at the end, so more epochs may help." if p["trend"] == "improving"
                   else "."))
    if obs.ending == "incomplete":
        return "Not stopped by a rule: the data ends before any stop or budget."
    return "Not a stopping-rule decision: training itself failed, so patience and smoothing are not the question."


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
    stock = obs.kind == "recbole_log" or obs.policy.settings.is_legacy
    called = premature.get("call") == "premature"
    undecided = premature.get("call") == "cannot_tell"
    if obs.ending == "early_stopped" and patience and (premature["trend"] == "improving" or called or undecided
                                                       or premature.get("gap_close_to_patience")):
        target = next(n for n in (10, 20, 30, 50, 100, 200, 10**9) if n >= 2 * patience)
        why = ("the monitor was still improving at the stop" if premature["trend"] == "improving" else
               "the verdict found the stop premature" + (f" ({premature['facts'][0]})" if premature["facts"] else "")
               if called else
               "the verdict could not tell whether the stop was premature, and more epochs are what tells"
               if undecided else
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
