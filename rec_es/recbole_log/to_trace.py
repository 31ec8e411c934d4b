"""A stock RecBole log as a rec_es ``Trace``, with RecBole's own rule (``rec_es.policy.presets``) as its policy.

``rec-es explain`` replays that policy on the trace, so a stock run is explained like a rec_es one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rec_es.policy.presets import legacy_mapping
from rec_es.recbole_log.model import RecBoleLog
from rec_es.rundir.trace import Trace


def stock_policy_mapping(log: RecBoleLog) -> dict[str, Any]:
    """RecBole's own rule for this log (``legacy_mapping``) with its valid_metric, direction and stopping_step."""
    return legacy_mapping(log.stopping_step, monitor=log.valid_metric, mode="max" if log.bigger else "min")


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
