"""What RecBole 1.2.1 needs to run cleanly on torch >= 2.6, numpy < 2 and pandas 2.x.

* RecBole's ``Trainer.evaluate(load_best_model=True)`` and ``resume_checkpoint`` call ``torch.load``
  on a file that pickles RecBole's ``Config``; torch >= 2.6 loads with ``weights_only=True`` by default
  and refuses it. ``EarlyStoppingTrainer`` overrides ``evaluate`` and keeps its own checkpoints
  (``rec_es.checkpoint``), so neither path is ever used.
* RecBole's ``Config`` reads every ``--key=value`` word of ``sys.argv`` as a config key (and warns about the
  rest), so ``rec-es run --output-dir=x`` or ``pytest --durations=5`` would leak into RecBole's config;
  ``recbole_config`` builds a ``Config`` from the given keys only.
* RecBole 1.2.1's graph models (LightGCN, NGCF, SGL's base, SpectralCF, GCMC, NCL, KGIN, MCCLK) build their
  adjacency with ``scipy.sparse.dok_matrix._update``, which SciPy >= 1.12 removed (``AttributeError:
  'dok_matrix' object has no attribute '_update'``). ``apply_recbole_fixes`` restores it as the plain dict
  update it was (no per-key checks: RecBole passes valid indices).
* RecBole 1.2.1's SINE module calls ``torch.autograd.set_detect_anomaly(True)`` when it is imported, and
  ``recbole.utils.get_model`` imports every sequential model, SINE included. From then on autograd records a Python
  stack trace (``traceback.extract_stack``, one ``os.stat`` per frame) for every node it builds, in every model:
  GRU4Rec's epochs take twice as long (ml-100k-tiny: 0.95 s instead of 0.48 s here), and longer the deeper the
  calling stack is. ``apply_recbole_fixes`` imports SINE itself and puts the flag back as it was before.
* RecBole 1.2.1 emits known, harmless FutureWarnings on every run (pandas chained ``fillna`` in
  ``dataset.py``, ``torch.cuda.amp.GradScaler`` in ``trainer.py`` every epoch, ``torch.sparse.FloatTensor`` in
  the graph models); ``quiet_recbole_warnings``
  hides exactly those, not warnings from anything else.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any, Mapping

import recbole
import torch

_KNOWN_FUTURE_WARNINGS = (
    r"A value is trying to be set on a copy of a DataFrame or Series through chained assignment",
    r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated",
    r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated",
)


def quiet_recbole_warnings() -> None:
    """Hide RecBole 1.2.1's known warnings about pandas 3, torch.cuda.amp and torch.sparse (nothing else)."""
    for pattern in _KNOWN_FUTURE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"torch\.sparse\.SparseTensor\(indices, values, shape", category=UserWarning)


def apply_recbole_fixes() -> None:
    """Make RecBole 1.2.1 run on this stack: the ``dok_matrix._update`` shim and anomaly detection undone (idempotent)."""
    import scipy.sparse as sp

    for cls in (sp.dok_matrix, getattr(sp, "dok_array", None)):
        if cls is not None and not hasattr(cls, "_update"):
            cls._update = _dok_update
    _undo_sine_anomaly_mode()


SINE_MODULE = "recbole.model.sequential_recommender.sine"
_anomaly_flag_restored = False  # after the first call, the flag is the user's


def _undo_sine_anomaly_mode() -> None:
    """Import RecBole's SINE module now and restore autograd's anomaly flags to what they were before it.

    If SINE was imported before rec_es, the flag was set by that import (it sets it unconditionally), so
    anomaly detection is switched off. To debug with it, turn it on after importing ``rec_es.trainer``, or use
    ``torch.autograd.detect_anomaly()`` around the code in question.
    """
    global _anomaly_flag_restored
    if _anomaly_flag_restored:
        return
    if SINE_MODULE in sys.modules:
        enabled, check_nan = False, True
    else:
        enabled, check_nan = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
        importlib.import_module(SINE_MODULE)
    torch.autograd.set_detect_anomaly(enabled, check_nan=check_nan)
    _anomaly_flag_restored = True


def _dok_update(self: Any, data: Mapping[Any, Any]) -> None:
    """What ``dok_matrix._update`` did before SciPy 1.12: a dict update without index checks."""
    self._dict.update(data)


def versions() -> dict[str, str]:
    """Versions written into trace headers: rec_es, recbole, torch, python."""
    import platform

    from importlib.metadata import PackageNotFoundError, version

    try:
        rec_es_version = version("rec_es")
    except PackageNotFoundError:
        rec_es_version = "unknown"
    return {"rec_es": rec_es_version, "recbole": recbole.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def recbole_config(model: Any, dataset: str, keys: Mapping[str, Any]) -> Any:
    """``recbole.config.Config(model, dataset, config_dict=keys)`` that ignores ``sys.argv``."""
    from recbole.config import Config

    argv = sys.argv
    sys.argv = argv[:1]
    try:
        return Config(model=model, dataset=dataset, config_dict=dict(keys))
    finally:
        sys.argv = argv
