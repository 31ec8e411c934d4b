"""Imported by every process started with this directory on PYTHONPATH (tests/integration/test_distributed.py).

With ``REC_ES_DDP_RIG`` set: rank 1's controller is made to decide 'stop' at its first evaluation, and each rank
writes what it saw (its own raw training losses, its own decisions, the epochs it trained, the best epoch it
kept, a digest of its random state at the start of each epoch it trained) to ``$REC_ES_DDP_RIG/rank<R>.json``.
With ``REC_ES_DDP_KILL=R:E``: at the start of epoch E every rank meets in a barrier (so rank 0 has saved
``last.pth`` of epoch E-1), then rank R SIGKILLs itself. The rank is read when a method runs, so the launching
process is untouched."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
from pathlib import Path

import torch.distributed as dist

OUT = os.environ.get("REC_ES_DDP_RIG")
KILL = os.environ.get("REC_ES_DDP_KILL")


def _rank() -> int | None:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else None


def rng_digest() -> str:
    """One digest of this process's python, numpy and torch CPU random states."""
    import numpy as np
    import torch

    h = hashlib.sha256(repr(random.getstate()).encode())
    for part in np.random.get_state()[1:3]:
        h.update(np.asarray(part).tobytes())
    h.update(torch.get_rng_state().numpy().tobytes())
    return h.hexdigest()[:16]


def _install() -> None:
    from rec_es.policy.controller import StopController
    from rec_es.training.trainer import EarlyStoppingTrainer
    from recbole.trainer import Trainer

    seen: dict = {"local_losses": [], "own_stop": [], "rng_at_epoch": {}}
    update, train_epoch, fit = StopController.update, Trainer._train_epoch, EarlyStoppingTrainer.fit
    kill_rank, kill_epoch = (int(x) for x in KILL.split(":")) if KILL else (None, None)

    def rigged_update(self, epoch, *args, **kwargs):  # type: ignore[no-untyped-def]
        step = update(self, epoch, *args, **kwargs)
        if OUT and _rank() == 1 and epoch == 0:
            step = dataclasses.replace(step, stop=True)
        seen["own_stop"].append(bool(step.stop))
        return step

    def recorded_train_epoch(self, train_data, epoch_idx, *args, **kwargs):  # type: ignore[no-untyped-def]
        if epoch_idx == kill_epoch:
            dist.barrier()
            if _rank() == kill_rank:
                os.kill(os.getpid(), signal.SIGKILL)
        seen["rng_at_epoch"][str(epoch_idx)] = rng_digest()
        loss = train_epoch(self, train_data, epoch_idx, *args, **kwargs)
        seen["local_losses"].append(loss)
        return loss

    def recorded_fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = fit(self, *args, **kwargs)
        rank = _rank()
        if OUT and rank is not None:
            Path(OUT, f"rank{rank}.json").write_text(json.dumps({
                **seen, "rec_es_file": __import__("rec_es").__file__, "epochs_trained": self.epochs_trained_,
                "stop_epoch": self.stop_epoch_, "best_epoch": self.best_epoch_, "disagreements": self.ranks_.disagreements}))
        return result

    StopController.update = rigged_update
    Trainer._train_epoch = recorded_train_epoch
    EarlyStoppingTrainer.fit = recorded_fit


if OUT or KILL:
    _install()
