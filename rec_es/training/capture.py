"""Capture RecBole's per-user top-k values at every evaluation, without changing RecBole.

RecBole's top-k metrics (``recbole.evaluator.base_metric.TopkMetric``: hit, mrr, map, recall, ndcg, precision)
compute a ``[n_rows, max(topk)]`` array of per-row values and hand it to ``topk_result``, which averages it.
``PerUserCapture`` wraps one trainer's ``evaluator`` (and that evaluator's metric objects' ``topk_result``) to keep
those arrays, and the trainer's ``eval_collector.eval_batch_collect`` to note each row's user id. Value metrics
(AUC, GAUC, LogLoss, MAE, RMSE) and the aggregate ones (ItemCoverage, GiniIndex, ...) are computed over all
users at once: they have no per-user values. rec_es's own ``target_ce`` (``rec_es.training.target_ce``, full-sort
evaluation only) has one per row too, and is recorded like a top-k key.

``PerUserRecorder`` is what ``EarlyStoppingTrainer`` calls: it picks the metrics, writes the sidecars
(``rec_es.rundir.per_user``) and passes the values to a policy whose ``update`` accepts ``per_user``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rec_es.policy.errors import ConfigError, StateError
from rec_es.rundir.per_user import PerUserWriter, for_policy
from rec_es.rundir.ranked import RankedWriter
from rec_es.policy.monitor import PER_USER_METRICS, TARGET_CE, TOPK_METRICS, VALUE_METRICS
from rec_es.policy.monitor import per_user_keys as monitor_keys_of
from rec_es.config.protocol import unavailable
from rec_es.training.target_ce import TargetCE


@dataclass(frozen=True)
class UserScores:
    """One evaluation's per-user values: ``values[metric]`` is a float32 array aligned with ``user_ids``;
    ``items``: each user's top-k item ids (``[n_users, k]``, best first) when ranked lists are kept, else None;
    ``n_items``: the catalogue size the lists rank (0 without lists)."""

    user_ids: np.ndarray
    values: dict[str, np.ndarray]
    items: np.ndarray | None = None
    n_items: int = 0


def per_user_keys(config: Any) -> tuple[str, ...]:
    """Every key with per-user values under ``config`` (RecBole's Config or a plain mapping):
    ``rec_es.policy.monitor.per_user_keys`` of its metrics, topk and evaluation mode."""
    return monitor_keys_of(config["metrics"], config["topk"], unavailable(_eval_args(config)) is None)


def _eval_args(config: Any) -> Any:
    return config["eval_args"] if "eval_args" in config else None  # RecBole's Config or a plain mapping


def _no_target_ce(config: Any) -> tuple[str, str]:
    """Why ``target_ce`` has no per-user values under ``config``, and the key to change."""
    why = unavailable(_eval_args(config))
    if why:
        return why, "eval_args"
    return (f"target_ce needs full-ranking scores, and the metrics {list(config['metrics'])} include a value "
            "metric, which RecBole scores on sampled pairs"), "metrics"


def choose_metrics(config: Any, requested: Sequence[str] | None, monitor_keys: Sequence[str]) -> tuple[str, ...]:
    """The metrics to capture: ``requested`` (each must be a computed top-k key, else ``ConfigError``), or by
    default the monitor's keys that have per-user values (the others are named in a log line)."""
    available = per_user_keys(config)
    if requested is None:
        keys = [k.lower() for k in monitor_keys]
        dropped = [k for k in keys if k not in available and k != TARGET_CE]  # TargetCE refuses that one
        if dropped:
            one = len(dropped) == 1
            getLogger().info(f"per-user scores: {', '.join(dropped)} {'has' if one else 'have'} none "
                             "(only RecBole's top-k metrics average one value per user; value metrics such as AUC "
                             f"use all scores at once), so nothing is recorded for {'it' if one else 'them'}")
        return tuple(dict.fromkeys(k for k in keys if k in available))
    chosen = []
    for key in requested:
        k = str(key).lower()
        if k == TARGET_CE and k not in available:
            why, bad_key = _no_target_ce(config)
            raise ConfigError(f"per_user_metrics: {key!r}: {why}", key=bad_key)
        if k not in available:
            name = k.partition("@")[0]
            why = ("it is not a top-k metric, so it has no per-user values (only RecBole's top-k metrics average "
                   "one value per user; value metrics such as AUC use all scores at once)"
                   if name in TOPK_METRICS | VALUE_METRICS and name not in PER_USER_METRICS
                   else "RecBole does not compute it with these "
                   f"metrics/topk ({list(config['metrics'])} at {config['topk']})")
            raise ConfigError(f"per_user_metrics: {key!r}: {why}; allowed: {', '.join(available) or 'none'}",
                              key="per_user_metrics")
        chosen.append(k)
    return tuple(dict.fromkeys(chosen))


class PerUserCapture:
    """Keeps the per-user values of ``metrics`` from every ``trainer.evaluate`` call; ``take()`` hands them out.

    ``target_ce``: the ``TargetCE`` whose rows are the values of the key ``target_ce`` (needed if it is recorded).
    ``ranked_k``: also keep each user's top ``ranked_k`` item ids (full-sort evaluation only; default 0: none).
    """

    def __init__(self, trainer: Any, metrics: Sequence[str], target_ce: TargetCE | None = None,
                 ranked_k: int = 0) -> None:
        self.uid_field = trainer.config["USER_ID_FIELD"]
        self.metrics: tuple[str, ...] = ()
        self._evaluator = trainer.evaluator
        self._wrapped: set[str] = set()
        self._uids: list[torch.Tensor] = []
        self.ranked_k = int(ranked_k)
        self._items: list[torch.Tensor] = []
        self._n_items = 0
        self._rows: dict[str, np.ndarray] = {}
        self._last: UserScores | None = None
        self.target_ce = target_ce
        self._gather: Callable[[torch.Tensor], torch.Tensor] | None = getattr(trainer, "gather_users", None)
        self.want(metrics)
        collector = trainer.eval_collector
        collector.eval_batch_collect = self._keep_users(collector.eval_batch_collect)
        trainer.evaluator = _CapturingEvaluator(self._evaluator, self)

    def want(self, metrics: Sequence[str]) -> None:
        """Capture ``metrics`` (top-k keys RecBole computes) from the next evaluation on."""
        for name in {m.partition("@")[0] for m in metrics} - self._wrapped - {TARGET_CE}:
            metric = self._evaluator.metric_class[name]
            metric.topk_result = self._keep_rows(metric.topk_result)
            self._wrapped.add(name)
        self.metrics = tuple(metrics)

    def _keep_rows(self, topk_result: Callable[[str, np.ndarray], dict[str, float]]) -> Callable[..., dict[str, float]]:
        def wrapped(metric: str, value: np.ndarray) -> dict[str, float]:
            self._rows[metric] = value
            return topk_result(metric, value)

        return wrapped

    def _keep_users(self, collect: Callable[..., None]) -> Callable[..., None]:
        def wrapped(scores_tensor: torch.Tensor, interaction: Any, positive_u: torch.Tensor,
                    positive_i: torch.Tensor) -> None:
            uids = interaction[self.uid_field]
            if len(uids) != scores_tensor.shape[0]:  # negative-sampled ranking: a user's rows are consecutive
                uids = torch.unique_consecutive(uids)
            self._uids.append(uids)
            if self.ranked_k:
                self._items.append(torch.topk(scores_tensor, self.ranked_k, dim=-1).indices.cpu())
                self._n_items = int(scores_tensor.shape[1])
            collect(scores_tensor, interaction, positive_u, positive_i)

        return wrapped

    def evaluated(self, struct: Any) -> None:
        """Called by the wrapped evaluator after RecBole averaged ``struct``: pair the rows with their users."""
        local = torch.cat(self._uids) if self._uids else torch.zeros(0, dtype=torch.int64)
        uids = (self._gather(local) if self._gather is not None else local).cpu().numpy().astype(np.int64)
        rows, self._rows, self._uids = self._rows, {}, []
        items = torch.cat(self._items).numpy().astype(np.int32) if self._items else None
        self._items = []
        n = struct.get("rec.topk").shape[0] if "rec.topk" in struct else -1
        if len(uids) != n:
            raise StateError(f"per-user scores: RecBole scored {n} rows but its batches named {len(uids)} users; "
                             "per-user capture cannot pair them (pass per_user_metrics=() to switch it off)")
        values = {}
        for key in self.metrics:
            if key == TARGET_CE:
                values[key] = self._target_rows(n)
                continue
            name, _, k = key.partition("@")
            if name not in rows:
                raise StateError(f"per-user scores: metric {name} did not pass its per-user values through "
                                 "TopkMetric.topk_result (pass per_user_metrics without it)")
            values[key] = np.asarray(rows[name][:, int(k) - 1], dtype=np.float32)
        self._last = UserScores(uids, values, items, self._n_items if items is not None else 0)

    def _target_rows(self, n: int) -> np.ndarray:
        if self.target_ce is None:
            raise StateError("per-user scores: target_ce is recorded but no TargetCE computes it")
        rows = self.target_ce.rows()
        if len(rows) != n:
            raise StateError(f"per-user scores: RecBole scored {n} rows but target_ce has {len(rows)}")
        return rows

    def take(self) -> UserScores | None:
        """The values of the latest evaluation (None if none since the last ``take``)."""
        last, self._last = self._last, None
        return last


class _CapturingEvaluator:
    """RecBole's ``Evaluator`` with the capture's bookkeeping after each ``evaluate``; everything else delegated."""

    def __init__(self, inner: Any, capture: PerUserCapture) -> None:
        self._inner = inner
        self._capture = capture

    def evaluate(self, dataobject: Any) -> Any:
        result = self._inner.evaluate(dataobject)
        self._capture.evaluated(dataobject)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class PerUserRecorder:
    """The trainer's side: capture per-user values, append them to the run's sidecars, hand them to the policy.

    ``metrics``: keys to record (default None: the policy's monitor keys that are top-k metrics or ``target_ce``;
    ``()``: off). ``target_ce`` is computed (and averaged into every result) when recorded or monitored.
    A resumed run keeps recording the metrics its sidecar holds, whatever is asked now.
    """

    def __init__(self, trainer: Any, metrics: Sequence[str] | None, monitor_keys: Sequence[str],
                 ranked_k: int = 0) -> None:
        self._trainer = trainer
        self.metrics = choose_metrics(trainer.config, metrics, monitor_keys)
        asked = [f"early_stopping.monitor ({k})" for k in monitor_keys if k.lower() == TARGET_CE]
        self.target_ce = (TargetCE(trainer, asked[0] if asked else "per_user_metrics")
                          if asked or TARGET_CE in self.metrics else None)
        self.ranked_k = check_ranked_k(trainer.config, ranked_k)
        self.capture = (PerUserCapture(trainer, self.metrics, self.target_ce, self.ranked_k)
                        if self.metrics or self.ranked_k else None)
        self.writers: dict[str, PerUserWriter] = {}
        self.ranked: RankedWriter | None = None
        self.signals: dict[str, float | None] | None = None

    def begin(self, run_dir: str | os.PathLike[str] | None, *, resumed: bool, record_test: bool) -> None:
        """Open the sidecars of a fit (none without a run directory); on resume cut them back to the trace."""
        self.writers, self.ranked = {}, None
        if self.capture is not None:
            self.capture.take()  # nothing from an evaluation before this fit
        if run_dir is None:
            return
        splits = ("valid", "test") if record_test else ("valid",)
        if resumed:
            from rec_es.rundir.trace import read_trace

            kept = [r["epoch"] for r in read_trace(run_dir).records]  # the evaluations the resumed trace keeps
            self._resume(run_dir, splits, kept)
            self._resume_ranked(run_dir, kept)
        elif self.capture is not None:
            self.writers = {s: PerUserWriter.create(run_dir, s, self.metrics) for s in splits if self.metrics}
            if self.ranked_k:
                self.ranked = RankedWriter.create(run_dir, "valid", self.ranked_k, 0)

    def _resume_ranked(self, run_dir: str | os.PathLike[str], kept: Sequence[int]) -> None:
        self.ranked = RankedWriter.resume(run_dir, "valid", kept)
        if self.ranked is not None and self.ranked.k != self.ranked_k:
            getLogger().info(f"ranked lists: keeping the top {self.ranked.k} as this run did so far")
            self.ranked_k = self.ranked.k
            if self.capture is None:
                self.capture = PerUserCapture(self._trainer, self.metrics, self.target_ce, self.ranked_k)
            self.capture.ranked_k = self.ranked_k

    def _resume(self, run_dir: str | os.PathLike[str], splits: Sequence[str], kept: Sequence[int]) -> None:
        resumed = {s: PerUserWriter.resume(run_dir, s, kept) for s in splits}
        recorded = next((w.metrics for w in resumed.values() if w is not None), None)
        if recorded is not None and recorded != self.metrics:
            missing = [m for m in recorded if m not in per_user_keys(self._trainer.config)]
            if missing:
                raise StateError(f"{Path(run_dir) / 'per_user'}: records per-user {', '.join(missing)}, which this "
                                 "config no longer computes; add them back to RecBole's metrics/topk to resume")
            getLogger().info(f"per-user scores: recording {', '.join(recorded)} as this run did so far")
            self.metrics = recorded
            if TARGET_CE in recorded and self.target_ce is None:
                self.target_ce = TargetCE(self._trainer, f"{Path(run_dir) / 'per_user'} (records target_ce)")
            if self.capture is None:
                self.capture = PerUserCapture(self._trainer, recorded, self.target_ce)
            else:
                self.capture.target_ce = self.target_ce
                self.capture.want(recorded)
        for split, writer in resumed.items():
            if writer is None and kept:
                if self.capture is not None:
                    getLogger().warning(f"per-user scores: {Path(run_dir) / 'per_user'} has no {split} scores of "
                                        f"the {len(kept)} recorded evaluations, so none are recorded from here on")
                continue
            if writer is None:
                if self.capture is None:
                    continue
                writer = PerUserWriter.create(run_dir, split, self.metrics)
            self.writers[split] = writer

    def record(self, split: str, epoch: int) -> UserScores | None:
        """Take the latest evaluation's values and append them to ``split``'s sidecar (before the trace record)."""
        if self.capture is None:
            return None
        scores = self.capture.take()
        writer = self.writers.get(split)
        if scores is not None and writer is not None and scores.values:
            writer.append(epoch, scores.user_ids, scores.values)
        if split != "valid":
            return scores
        self.signals = None
        if scores is not None and scores.items is not None and self.ranked is not None:
            self.ranked.n_items = self.ranked.n_items or scores.n_items
            self.signals = self.ranked.append(epoch, scores.user_ids, scores.items)
        return scores

    def policy_values(self, scores: UserScores | None) -> dict[str, list[float]] | None:
        """``{metric: [float, ...]}`` for ``policy.update(per_user=...)`` (every ``Policy`` takes it), or None."""
        return None if scores is None or not scores.values else for_policy(scores.values)


def check_ranked_k(config: Any, k: Any) -> int:
    """``k`` as the number of ranked items to keep (0: none); ``ConfigError`` unless an integer >= 0 under a
    full-ranking evaluation."""
    if k is None or k is False:
        return 0
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"ranked: {k!r}: the number of top items kept per user must be an integer >= 1 "
                          "(10 matches RecBole's topk), or 0 to keep none", key="ranked")
    if k and unavailable(_eval_args(config)):
        raise ConfigError("ranked: the top-k lists need full-ranking evaluation (eval_args.mode: full): a "
                          "negative-sampled evaluation ranks only each user's sampled items; set eval_args.mode: "
                          "full, or keep no lists", key="eval_args")
    return k
