"""Imported by every process started with this directory on PYTHONPATH (tests/integration/test_distributed.py):
rank 1's controller is made to decide 'stop' at its first evaluation, and each rank writes what it saw
(its own raw training losses, its own decisions, the epochs it trained, the best epoch it kept) to
``$REC_ES_DDP_RIG/rank<R>.json``. The rank is read when a method runs, so the launching process is untouched."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch.distributed as dist

OUT = os.environ.get("REC_ES_DDP_RIG")


def _rank() -> int | None:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else None


def _install() -> None:
    from rec_es.policy.controller import StopController
    from rec_es.training.trainer import EarlyStoppingTrainer
    from recbole.trainer import Trainer

    seen: dict = {"local_losses": [], "own_stop": []}
    update, train_epoch, fit = StopController.update, Trainer._train_epoch, EarlyStoppingTrainer.fit

    def rigged_update(self, epoch, *args, **kwargs):  # type: ignore[no-untyped-def]
        step = update(self, epoch, *args, **kwargs)
        if _rank() == 1 and epoch == 0:
            step = dataclasses.replace(step, stop=True)
        seen["own_stop"].append(bool(step.stop))
        return step

    def recorded_train_epoch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        loss = train_epoch(self, *args, **kwargs)
        seen["local_losses"].append(loss)
        return loss

    def recorded_fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = fit(self, *args, **kwargs)
        rank = _rank()
        if rank is not None:
            Path(OUT, f"rank{rank}.json").write_text(json.dumps({
                **seen, "rec_es_file": __import__("rec_es").__file__, "epochs_trained": self.epochs_trained_,
                "stop_epoch": self.stop_epoch_, "best_epoch": self.best_epoch_, "disagreements": self.ranks_.disagreements}))
        return result

    StopController.update = rigged_update
    Trainer._train_epoch = recorded_train_epoch
    EarlyStoppingTrainer.fit = recorded_fit


if OUT:
    _install()
