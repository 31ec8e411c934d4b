"""What one evaluation writes besides its decision: the trace record's fields, the log lines, the TensorBoard scalars.

``record_fields`` builds the ``trace.jsonl`` record of an evaluation (docs/CONTRACT.md has every field);
``report`` writes RecBole-style log lines (``epoch N evaluating [time: ...]: <decision>`` and the valid result)
and the ``rec_es/...`` TensorBoard scalars. ``EarlyStoppingTrainer`` calls both after each evaluation.
"""
from __future__ import annotations

from logging import Logger
from typing import Any, Mapping

from recbole.utils import dict2str, set_color

from rec_es.policy.schedule import PlateauAction
from rec_es.training.loss import loss_value


def record_fields(epoch: int, lr: float, loss: Any, valid: dict[str, float], test: dict[str, float] | None,
                  elapsed: float, train_s: float, eval_s: float, test_s: float | None, decision: Any,
                  action: PlateauAction | None, ranked: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trace record of one evaluation. A stop the LR schedule deferred is recorded as ``not_stopped`` with
    the deferred reason kept (``deferred_reason``); ``train_losses`` only for a multi-part loss; ``test`` and
    ``test_seconds`` only with test metrics; ``ranked`` (the lists' signals) and ``lr_action`` only when given."""
    dec = decision.to_dict()
    if action is not None and action.defer_stop:
        dec.update(stop=False, deferred_reason=dec["reason"], reason="not_stopped", message=action.message)
    fields: dict[str, Any] = {"epoch": epoch, "train_loss": loss_value(loss), "lr": lr, "valid": valid}
    if isinstance(loss, tuple):
        fields["train_losses"] = [float(x) for x in loss]
    if test is not None:
        fields["test"] = test
        fields["test_seconds"] = test_s
    fields.update(elapsed_seconds=elapsed, train_seconds=train_s, eval_seconds=eval_s, decision=dec)
    if ranked is not None:
        fields["ranked"] = dict(ranked)
    if action is not None:
        fields["lr_action"] = action.to_dict()
    return fields


def report(logger: Logger | None, tensorboard: Any, monitor: str, epoch: int, eval_s: float, valid: dict[str, float],
           decision: Any, action: PlateauAction | None, lr: float) -> None:
    """TensorBoard scalars under ``rec_es/`` (monitor, smoothed, improved, wait_count, stop, lr); with a
    ``logger`` (None: quiet) the epoch's line, the LR action's message in place of the decision's when there is
    one, and RecBole's valid-result block."""
    if decision.value is not None:
        tensorboard.add_scalar(f"rec_es/monitor/{monitor}", decision.value, epoch)
    if decision.smoothed is not None:
        tensorboard.add_scalar(f"rec_es/smoothed/{monitor}", decision.smoothed, epoch)
    tensorboard.add_scalar("rec_es/improved", int(bool(decision.improved)), epoch)
    tensorboard.add_scalar("rec_es/wait_count", decision.wait_count, epoch)
    tensorboard.add_scalar("rec_es/stop", int(bool(decision.stop)), epoch)
    tensorboard.add_scalar("rec_es/lr", lr, epoch)
    if logger is None:
        return
    status = action.message if action is not None else decision.message
    status = status[len(f"epoch {epoch}: "):] if status.startswith(f"epoch {epoch}: ") else status
    line = (set_color("epoch %d evaluating", "green") + " [" + set_color("time", "blue") + ": %.2fs]: %s") % (
        epoch, eval_s, status)
    logger.info(line)
    logger.info(set_color("valid result", "blue") + ": \n" + dict2str(valid))
