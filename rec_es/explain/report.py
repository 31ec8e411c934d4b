"""The whole ``rec-es explain`` report as plain JSON-able data."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rec_es.explain.adapters import load_run
from rec_es.explain.counterfactual import counterfactuals
from rec_es.explain.lost import what_was_lost
from rec_es.explain.probe import offer_probe
from rec_es.explain.sentences import advice, analyse_premature, analyse_stop, worth_trying


def explain(path: str | Path, policies: Sequence[tuple[str, dict[str, Any]]] = ()) -> dict[str, Any]:
    """The whole report for RUN as plain JSON-able data (what ``--json`` prints)."""
    obs = load_run(path)
    stop = analyse_stop(obs)
    premature = analyse_premature(obs, stop)
    rows = counterfactuals(obs, policies)
    lost = what_was_lost(obs, stop, premature, rows)
    shown = advice(obs, stop, rows)
    return {
        "source": obs.source, "kind": obs.kind, "model": obs.model, "dataset": obs.dataset,
        "monitor": obs.monitor, "mode": obs.mode, "epochs": obs.epochs, "eval_step": obs.eval_step,
        "observed_policy": obs.policy_mapping, "stop": stop, "premature": premature, "counterfactuals": rows, "lost": lost,
        "advice": shown, "worth_trying": worth_trying(obs, premature, shown), "warnings": obs.warnings,
        "probe_offer": offer_probe(obs, premature),
        "evaluations": [{k: d.get(k) for k in ("epoch", "value", "smoothed", "improved", "wait_count", "best_epoch")}
                        for d in obs.decisions],
    }
