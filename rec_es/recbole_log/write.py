"""Write the log stock RecBole 1.2.1 would have written for a run, from a rec_es trace recorded without stopping.

``stock_log_text(trace, valid_metric, stopping_step)`` replays RecBole's rule (``policy.presets``) on the trace and
writes, in RecBole's own format (``recbole.trainer.Trainer.fit`` and ``recbole.quick_start.run_recbole``), the
config dump, a dataset and a model record, then per epoch the "training" line (loss with ``loss_decimal_place``
decimals), the "evaluating" line (``valid_score`` with ``%f``), the "valid result" block and "Saving current" on
every improvement or tie, and, where the rule stops, "Finished training, best eval result in epoch N", "best
valid" and "test result" (the restored epoch's recorded metrics, when the trace has them). A rule that does not
stop inside the trace gives a log that ends like a run still going (or its budget, if the trace reached it).

This is how ``scripts/bench_explain.py`` builds stock logs whose future is known; it checks them against logs
written by stock RecBole itself. Pure Python.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from rec_es.policy.presets import recbole_legacy
from rec_es.replay import ReplayResult, replay
from rec_es.rundir.trace import Trace

_START = datetime(2026, 1, 1, 12, 0, 0)
# RecBole's config categories (recbole.config.Configurator) for the keys a trace header usually holds.
_CATEGORIES = {
    "General": ("gpu_id", "use_gpu", "seed", "state", "reproducibility", "data_path", "checkpoint_dir",
                "show_progress"),
    "Training": ("epochs", "train_batch_size", "learner", "learning_rate", "train_neg_sample_args", "eval_step",
                 "stopping_step", "clip_grad_norm", "weight_decay", "loss_decimal_place"),
    "Evaluation": ("eval_args", "repeatable", "metrics", "topk", "valid_metric", "valid_metric_bigger",
                   "eval_batch_size", "metric_decimal_place"),
    "Dataset": ("field_separator", "USER_ID_FIELD", "ITEM_ID_FIELD", "TIME_FIELD", "load_col",
                "MAX_ITEM_LIST_LENGTH"),
}
_SKIP = {"early_stopping", "lr_schedule"}  # rec_es keys: stock RecBole has no such settings


def _stamp(seconds: float) -> str:
    return (_START + timedelta(seconds=seconds)).strftime("%a %d %b %Y %H:%M:%S") + " INFO  "


def _config_dump(config: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    placed: set[str] = set()
    for category, keys in _CATEGORIES.items():
        lines.append(f"{category} Hyper Parameters:")
        for key in keys:
            if key in config:
                lines.append(f"{key} = {config[key]}")
                placed.add(key)
        lines.append("")
    lines.append("Other Hyper Parameters: ")
    lines += [f"{k} = {v}" for k, v in config.items() if k not in placed and k not in _SKIP]
    return lines + ["", ""]


def _metrics(values: Mapping[str, Any]) -> str:
    return "    ".join(f"{k} : {v}" for k, v in values.items())


def _ordered(values: Mapping[str, Any]) -> str:
    return "OrderedDict([" + ", ".join(f"({k!r}, {v!r})" for k, v in values.items()) + "])"


def stock_config(trace: Trace, valid_metric: str, stopping_step: int) -> dict[str, Any]:
    """The RecBole settings of the stock run: the trace's config with ``valid_metric`` and ``stopping_step``."""
    config = {k: v for k, v in (trace.header.get("config") or {}).items() if k not in _SKIP}
    config.update({"epochs": trace.header.get("epochs", config.get("epochs")), "stopping_step": stopping_step,
                   "valid_metric": valid_metric, "valid_metric_bigger": True,
                   "eval_step": trace.header.get("eval_step", config.get("eval_step", 1))})
    config.setdefault("metric_decimal_place", 4)
    config.setdefault("loss_decimal_place", 4)
    return config


def stock_replay(trace: Trace, valid_metric: str, stopping_step: int) -> ReplayResult:
    """RecBole's rule (``stopping_step``, ties count, stop on the ``stopping_step + 1``-th miss) on the trace."""
    policy = recbole_legacy(valid_metric, stopping_step)
    return replay(policy, trace, name=f"stopping_step {stopping_step}", keep_decisions=True)


def stock_log_text(trace: Trace, valid_metric: str, stopping_step: int, *, checkpoint: str = "saved/run.pth") -> str:
    """The log stock RecBole 1.2.1 writes for this run under ``stopping_step`` (``valid_metric`` bigger is better)."""
    config = stock_config(trace, valid_metric, stopping_step)
    result = stock_replay(trace, valid_metric, stopping_step)
    model = trace.header.get("model") or config.get("model") or "Model"
    dataset = trace.header.get("dataset") or config.get("dataset") or "dataset"
    loss_places = int(config["loss_decimal_place"])
    out = [_stamp(0) + "\n" + "\n".join(_config_dump(config)),
           _stamp(0) + f"{dataset}\nThe number of users: (not recorded)",
           _stamp(0) + f"{model}(\n)\nTrainable parameters: (not recorded)"]
    elapsed = 0.0
    by_epoch = {r["epoch"]: r for r in trace.records}
    for decision in result.decisions:
        record = by_epoch[decision.epoch]
        train_seconds = float(record.get("train_seconds") or 0.0)
        eval_seconds = float(record.get("eval_seconds") or 0.0)
        elapsed += train_seconds
        loss = record.get("train_loss")
        if loss is not None:
            out.append(_stamp(elapsed) + f"epoch {decision.epoch} training [time: {train_seconds:.2f}s, "
                       f"train loss: {loss:.{loss_places}f}]")
        elapsed += eval_seconds
        valid = {k.lower(): v for k, v in record["valid"].items()}
        score = valid[valid_metric.lower()]
        out.append(_stamp(elapsed) + f"epoch {decision.epoch} evaluating [time: {eval_seconds:.2f}s, "
                   f"valid_score: {score:f}]")
        out.append(_stamp(elapsed) + "valid result: \n" + _metrics(valid))
        if decision.improved:
            out.append(_stamp(elapsed) + f"Saving current: {checkpoint}")
        if decision.stop:
            out.append(_stamp(elapsed) + f"Finished training, best eval result in epoch {result.best_epoch}")
    if result.stopped or not result.truncated:
        best = by_epoch.get(result.best_epoch) if result.best_epoch is not None else None
        if best is not None:
            out.append(_stamp(elapsed) + f"best valid : {_ordered(best['valid'])}")
            if best.get("test"):
                out.append(_stamp(elapsed) + f"test result: {_ordered(best['test'])}")
    return "\n".join(out) + "\n"


def stock_log_name(trace: Trace) -> str:
    """A file name of RecBole's form ``<Model>-<dataset>-<Mon>-<DD>-<YYYY>_<HH>-<MM>-<SS>.log``."""
    model = trace.header.get("model") or "Model"
    dataset = trace.header.get("dataset") or "dataset"
    return f"{model}-{dataset}-{_START.strftime('%b-%d-%Y_%H-%M-%S')}.log"
