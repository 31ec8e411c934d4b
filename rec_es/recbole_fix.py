"""``import rec_es.recbole_fix``: stock RecBole 1.2.1 runs on numpy 2, SciPy >= 1.12 and torch >= 2.6, and reloads
its own checkpoints without running code from them. One import, no call; importing it again changes nothing.

What the import does, and nothing else:

* ``rec_es.training.compat.apply_recbole_fixes()``: numpy 2's missing aliases for RecBole's ``Config``,
  ``dok_matrix._update`` for the graph models, and autograd's anomaly mode switched back off after RecBole's SINE
  module switched it on (docs/install.md lists each with the RecBole line it fixes).
* RecBole's trainer module (``recbole.trainer.trainer``) gets ``TorchForRecBole`` as its ``torch``: torch itself
  for every name but ``load``, which reads through ``rec_es.rundir.recbole_checkpoint.load_dict``. That module's
  two ``torch.load(file, map_location=...)`` calls, in ``Trainer.evaluate(load_best_model=True)`` (the test phase
  of ``run_recbole``) and ``Trainer.resume_checkpoint``, then read RecBole's pickled checkpoints with the restricted
  unpickler instead of failing under torch >= 2.6's ``weights_only=True`` default (RecBole #2155); a file that asks
  for anything else raises ``UnsafePickleError`` naming the file and the global, and nothing in it runs. ``torch``
  everywhere else, ``torch.load`` included, is untouched.

Not covered: ``recbole.quick_start.load_data_and_model`` and the pretrained-weight loaders of a few models (NeuMF,
ConvNCF, NAIS, RaCT, S3Rec, KD_DAGFM) import torch themselves and still fail closed under ``weights_only=True``;
read such a file with ``rec_es.rundir.recbole_checkpoint.load_dict`` (docs/security.md).
"""
from __future__ import annotations

import os
import types
from typing import Any, BinaryIO

import torch

from rec_es.rundir.recbole_checkpoint import load_dict
from rec_es.training.compat import apply_recbole_fixes

RECBOLE_TRAINER_MODULE = "recbole.trainer.trainer"


class TorchForRecBole(types.ModuleType):
    """``torch`` as RecBole's trainer module sees it: every attribute is torch's, except ``load``."""

    def __init__(self) -> None:
        super().__init__("torch", "torch; load() reads RecBole checkpoints through rec_es's restricted unpickler")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(f: str | os.PathLike[str] | BinaryIO, map_location: Any = None, **kwargs: Any) -> Any:
        """``rec_es.rundir.recbole_checkpoint.load_dict(f, map_location)``; ``weights_only=True`` goes to torch."""
        if kwargs.get("weights_only") is True:
            return torch.load(f, map_location=map_location, **kwargs)
        unknown = sorted(k for k in kwargs if k != "weights_only")
        if unknown:
            raise TypeError(f"rec_es.recbole_fix: torch.load in RecBole's trainer takes no {', '.join(unknown)}")
        return load_dict(f, map_location)


def apply() -> None:
    """What importing this module does (idempotent)."""
    import importlib

    apply_recbole_fixes()
    trainer_module = importlib.import_module(RECBOLE_TRAINER_MODULE)
    if not isinstance(trainer_module.torch, TorchForRecBole):
        trainer_module.torch = TorchForRecBole()


apply()
