"""``target_ce``: the cross-entropy at the target item, read from RecBole's full-ranking scores at every evaluation.

For an evaluated user u with target item t and full-sort scores s_u (RecBole has already set the padding item
and, for non-sequential models, the user's training items to -inf)::

    target_ce(u) = logsumexp(s_u) - s_u[t] = -log softmax(s_u)[t]

the loss a CE-trained sequential model minimises, on the validation (or test) target. A user with several
positives (non-sequential models) gets the mean over them; a target RecBole masked to -inf (an item also in the
user's training history) gives +inf (the trace writes it as null). The result key ``target_ce`` is the mean over
users, rounded to ``metric_decimal_place`` as RecBole rounds its own metrics; smaller is better.

``TargetCE`` wraps the trainer's ``eval_collector.eval_batch_collect`` (per-row values, batch by batch) and its
evaluator's ``evaluate`` (adds ``target_ce`` to the result); RecBole itself is not changed. Cost: one
``logsumexp`` over the score matrix RecBole already built for its top-k. Negative-sampled evaluation
(``eval_args.mode: uni100`` ...) scores only sampled items, so there is no full softmax: ConfigError.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from rec_es.config.protocol import require
from rec_es.policy.monitor import TARGET_CE

KEY = TARGET_CE


def per_row(scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor) -> torch.Tensor:
    """float32 ``[n_rows]``: each row's mean of ``-log_softmax(scores[row])[item]`` over its positives (NaN if none)."""
    scores = scores.float()
    ce = torch.logsumexp(scores, dim=1)[positive_u] - scores[positive_u, positive_i]
    n = scores.shape[0]
    sums = torch.zeros(n, dtype=torch.float64, device=scores.device).index_add_(0, positive_u, ce.double())
    counts = torch.bincount(positive_u, minlength=n)
    return (sums / counts).float()


class TargetCE:
    """Computes ``target_ce`` at every ``trainer.evaluate``: per row (``rows()``) and averaged into the result."""

    def __init__(self, trainer: Any, asked_by: str = "target_ce") -> None:
        require(trainer.config["eval_args"], asked_by)
        decimals = trainer.config["metric_decimal_place"]
        self.decimals = 4 if decimals is None else int(decimals)
        self._batches: list[torch.Tensor] = []
        self._rows: np.ndarray | None = None
        collector = trainer.eval_collector
        collector.eval_batch_collect = self._collect(collector.eval_batch_collect)
        evaluator = trainer.evaluator  # wrapped on the instance: works under or over PerUserCapture's evaluator
        evaluator.evaluate = self._add_mean(evaluator.evaluate)

    def _collect(self, collect: Callable[..., None]) -> Callable[..., None]:
        def wrapped(scores_tensor: torch.Tensor, interaction: Any, positive_u: torch.Tensor,
                    positive_i: torch.Tensor) -> None:
            if self._rows is not None:  # the first batch of a new evaluation
                self._rows, self._batches = None, []
            self._batches.append(per_row(scores_tensor, positive_u, positive_i).cpu())
            collect(scores_tensor, interaction, positive_u, positive_i)

        return wrapped

    def _add_mean(self, evaluate: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def wrapped(dataobject: Any) -> Any:
            result = evaluate(dataobject)
            rows = self.rows()
            result[KEY] = round(float(rows.astype(np.float64).mean()), self.decimals) if len(rows) else float("nan")
            return result

        return wrapped

    def rows(self) -> np.ndarray:
        """float32 per-row values of the latest evaluation, in RecBole's row order (the rows of ``rec.topk``)."""
        if self._rows is None:
            self._rows = (torch.cat(self._batches).numpy() if self._batches else np.zeros(0, np.float32))
            self._batches = []
        return self._rows
