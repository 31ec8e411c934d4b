"""What is read from one stock RecBole log: its evaluations, its settings (or RecBole's defaults), its ending."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rec_es.policy.errors import RecEsError

# RecBole 1.2.1 defaults (recbole/properties/overall.yaml) used when a log has no config dump.
RECBOLE_DEFAULTS: dict[str, Any] = {
    "epochs": 300,
    "eval_step": 1,
    "stopping_step": 10,
    "valid_metric": "MRR@10",
    "metric_decimal_place": 4,
}


class LogFormatError(RecEsError, ValueError):
    """A file is not a stock RecBole log (or holds nothing that can be explained)."""


@dataclass(frozen=True)
class LogEvaluation:
    """One "epoch N evaluating" block of a stock log.

    ``valid`` holds the "valid result" metrics with lower-case keys (empty if the block was
    missing); ``valid_score`` is RecBole's ``valid_score`` (the ``valid_metric`` value, already
    rounded to ``metric_decimal_place``); ``saved`` is True when a "Saving current" line followed,
    i.e. RecBole counted this evaluation as an improvement or a tie.
    """

    epoch: int
    valid_score: float
    valid: dict[str, float]
    train_loss: float | None
    train_seconds: float | None
    eval_seconds: float | None
    saved: bool
    line: int


@dataclass
class RecBoleLog:
    """Everything read from one stock RecBole log; ``warnings`` lists what could not be read."""

    path: str
    config: dict[str, Any]
    evaluations: list[LogEvaluation]
    train_losses: dict[int, float]
    finished_best_epoch: int | None = None
    best_valid: dict[str, float] | None = None
    test_result: dict[str, float] | None = None
    model: str | None = None
    dataset: str | None = None
    has_config: bool = False
    inferred: dict[str, Any] = field(default_factory=dict)
    coloured: bool = False
    warnings: list[str] = field(default_factory=list)
    checkpoint: str | None = None  # the path of the last "Saving current" line: where RecBole saved the best epoch

    def setting(self, key: str) -> Any:
        """The config value of ``key``, or RecBole's default when the log has no config dump."""
        if key in self.config:
            return self.config[key]
        if key in self.inferred:
            return self.inferred[key]
        return RECBOLE_DEFAULTS.get(key)

    @property
    def epochs(self) -> int:
        """The ``epochs`` budget (RecBole default 300 without a config dump)."""
        return int(self.setting("epochs"))

    @property
    def eval_step(self) -> int:
        """Effective ``eval_step``: RecBole uses ``min(eval_step, epochs)``."""
        return min(int(self.setting("eval_step")), self.epochs)

    @property
    def stopping_step(self) -> int:
        """``stopping_step`` (RecBole default 10)."""
        return int(self.setting("stopping_step"))

    @property
    def valid_metric(self) -> str:
        """``valid_metric`` as RecBole emits it (lower case, e.g. ``ndcg@10``)."""
        return str(self.setting("valid_metric")).lower()

    @property
    def bigger(self) -> bool:
        """``valid_metric_bigger`` as RecBole set it (from the metric; True if unknown)."""
        value = self.config.get("valid_metric_bigger")
        return True if value is None else bool(value)

    @property
    def last_trained_epoch(self) -> int | None:
        """The last epoch with a "training" line (None if none)."""
        return max(self.train_losses) if self.train_losses else None

    @property
    def ending(self) -> str:
        """How the run ended: ``early_stopped``, ``budget`` or ``incomplete``.

        ``early_stopped``: RecBole wrote "Finished training" (its stopping_step rule fired).
        ``budget``: the last trained epoch is ``epochs - 1``.
        ``incomplete``: neither; the run crashed, was interrupted or is still running.
        """
        if self.finished_best_epoch is not None:
            return "early_stopped"
        last = self.last_trained_epoch
        if last is not None and last >= self.epochs - 1:
            return "budget"
        return "incomplete"

    def scores(self) -> list[tuple[int, float]]:
        """(epoch, valid_score) per evaluation, in log order."""
        return [(e.epoch, e.valid_score) for e in self.evaluations]
