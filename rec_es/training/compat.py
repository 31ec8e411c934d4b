"""What RecBole 1.2.1 needs to run cleanly on torch >= 2.6, numpy 1 or 2, pandas 2.x and Python 3.10-3.13.

* RecBole's ``Config.__init__`` calls ``compatibility_settings`` (recbole/config/configurator.py:625-635), which
  assigns ``np.float = np.float_``, ``np.complex = np.complex_`` and ``np.unicode = np.unicode_``; numpy 2
  removed those three names, so every ``Config`` raises ``AttributeError: `np.float_` was removed in the NumPy
  2.0 release``. On numpy 2 ``use_numpy2_aliases`` (part of ``apply_recbole_fixes``) replaces the method with
  the same eight aliases spelled with names numpy 2 kept (``np.float64``, ``np.complex128``, ``np.str_``: the
  very objects the old names were), so RecBole's later uses (``np.float`` in evaluator/metrics.py:90 and
  data/interaction.py:31, ``np.long`` in model/layers.py:932, ``np.bool`` in evaluator/metrics.py:287) see what
  they saw on numpy 1. On numpy 1 RecBole's own method is left in place. Stock ``run_recbole`` in a numpy-2
  environment needs ``use_numpy2_aliases()`` called first (``import rec_es.recbole_fix`` does it).
* Python >= 3.12 has no ``distutils``; RecBole's ``get_flops`` (recbole/utils/utils.py:298) imports thop 0.1.1,
  which imports ``distutils.version``. No shim: pyproject.toml requires setuptools there, whose copy is found.
* RecBole's ``Trainer.evaluate(load_best_model=True)`` and ``resume_checkpoint`` call ``torch.load``
  on a file that pickles RecBole's ``Config``; torch >= 2.6 loads with ``weights_only=True`` by default
  and refuses it. ``EarlyStoppingTrainer`` overrides ``evaluate`` and keeps its own checkpoints
  (``rec_es.rundir.checkpoint``), so neither path is ever used. For stock RecBole, ``import rec_es.recbole_fix``
  applies ``apply_recbole_fixes`` and routes both calls through the restricted unpickler of
  ``rec_es.rundir.recbole_checkpoint``.
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
    """Make RecBole 1.2.1 run here: numpy-2 aliases, ``dok_matrix._update``, anomaly mode undone (idempotent)."""
    import scipy.sparse as sp

    use_numpy2_aliases()
    for cls in (sp.dok_matrix, getattr(sp, "dok_array", None)):
        if cls is not None and not hasattr(cls, "_update"):
            cls._update = _dok_update
    _undo_sine_anomaly_mode()


# RecBole's Config.compatibility_settings: alias -> the numpy name it assigns, spelled as numpy 2 still has it
NUMPY_ALIASES = {"bool": "bool_", "int": "int_", "float": "float64", "complex": "complex128", "object": "object_",
                 "str": "str_", "long": "int_", "unicode": "str_"}


def use_numpy2_aliases() -> None:
    """On numpy 2, swap RecBole's ``Config.compatibility_settings`` for ``_numpy_aliases`` (numpy 1: RecBole's own).

    The one fix stock RecBole needs to run at all on numpy 2: call it before ``run_recbole`` to run RecBole as
    shipped otherwise (``apply_recbole_fixes`` also undoes SINE's anomaly mode).
    """
    import numpy as np
    from recbole.config.configurator import Config

    if not hasattr(np, "float_"):
        Config.compatibility_settings = _numpy_aliases


def _numpy_aliases(self: Any) -> None:
    """What RecBole's ``compatibility_settings`` sets (``np.float = np.float_``, ...), in names numpy 2 has."""
    import numpy as np

    for alias, name in NUMPY_ALIASES.items():
        setattr(np, alias, getattr(np, name))


SINE_MODULE = "recbole.model.sequential_recommender.sine"
_anomaly_flag_restored = False  # after the first call, the flag is the user's


def _undo_sine_anomaly_mode() -> None:
    """Import RecBole's SINE module now and restore autograd's anomaly flags to what they were before it.

    If SINE was imported before rec_es, the flag was set by that import (it sets it unconditionally), so
    anomaly detection is switched off. To debug with it, turn it on after importing ``rec_es.training.trainer``, or use
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

    apply_recbole_fixes()
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        return Config(model=model, dataset=dataset, config_dict=dict(keys))
    finally:
        sys.argv = argv
