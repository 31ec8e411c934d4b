"""Continue a stock RecBole run from its checkpoint under a rec_es policy (``rec-es run --from-recbole``, and
``rec-es explain LOG --probe N`` on a stock log).

RecBole 1.2.1 saves, at each improvement, the model's weights, ``other_parameter`` and optimizer state with its
pickled ``Config`` and the epoch: the best epoch's state, not the stop's, and no RNG or data-loader state. The file
is read only through the restricted unpickler (``rec_es.rundir.recbole_checkpoint``: a refused global is a
ConfigError naming the file and the global). Its config is turned back into the RecBole keys a user would write
(``recovered_keys``: RecBole's derived keys dropped, ``data_path`` un-joined, only keys that differ from RecBole's
defaults for the model and dataset), and checked by building RecBole's ``Config`` from them again: it must give
the checkpoint's config back (``check_round_trip``), or nothing is trained.

The rec_es run starts at the checkpoint's epoch ``E``: the loaded weights are evaluated first and recorded as
epoch ``E`` (the policy's first evaluation and best, the per-user scores' base), then training continues at
``E + 1`` with a fresh RNG and data order (RecBole's seed), so the epochs after ``E`` are not the stock run's.
The trace header names the checkpoint (``from_recbole``: path, sha256, epoch, best_valid_score).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from rec_es.policy.errors import ConfigError, StateError, brief

#: keys RecBole computes from others (or from the machine) and writes into every checkpoint's config
DERIVED = ("MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "valid_metric_bigger", "device", "single_spec", "local_rank",
           "valid_neg_sample_args", "test_neg_sample_args", "eval_neg_sample_args", "checkpoint_dir", "gpu_id",
           "world_size", "nproc", "offset", "ip", "port")
#: keys the round trip does not compare: the machine's and rec_es's own (the data may have moved: --set data_path)
UNCOMPARED = (*DERIVED, "data_path", "state", "show_progress", "use_gpu", "verbose")


@dataclass(frozen=True)
class Origin:
    """A stock RecBole checkpoint a rec_es run starts from: its file, digest, epoch and state."""

    path: Path
    sha256: str
    epoch: int
    model: str
    dataset: str
    best_valid_score: float | None
    state_dict: Mapping[str, Any]
    other_parameter: Any
    optimizer: Mapping[str, Any] | None
    config: Mapping[str, Any]

    def describe(self) -> dict[str, Any]:
        """What the trace header records about the checkpoint (``from_recbole``)."""
        return {"checkpoint": str(self.path), "sha256": self.sha256, "epoch": self.epoch,
                "best_valid_score": self.best_valid_score}

    def load_into(self, trainer: Any) -> None:
        """Load the weights, ``other_parameter`` and optimizer state into ``trainer``'s model and optimizer and
        make its fit start at this epoch (``EarlyStoppingTrainer.origin_``); ConfigError naming the file when they
        do not fit the model built from the config."""
        from rec_es.rundir.checkpoint import on_device, plain

        try:
            trainer.model.load_state_dict(dict(self.state_dict))
            if self.other_parameter is not None:
                trainer.model.load_other_parameter(on_device(plain(self.other_parameter), trainer.device))
            if self.optimizer is not None:
                trainer.optimizer.load_state_dict(dict(self.optimizer))
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"its weights or optimizer state do not fit the model built from the config "
                              f"({brief(exc)}); was a model setting changed with --config/--set?",
                              source=str(self.path)) from None
        trainer.origin_ = self


    def evaluate(self, trainer: Any, start: float, valid_data: Any, test_data: Any, verbose: bool,
                 show_progress: bool, saved: bool, callback_fn: Any) -> bool:
        """The trainer's first evaluation: the loaded weights, recorded as this epoch (without a training loss);
        True when the policy stops on it."""
        lr = float(trainer.optimizer.param_groups[0]["lr"])
        return bool(trainer._evaluation_step(self.epoch, lr, None, 0.0, start, valid_data, test_data, verbose,
                                             show_progress, saved, callback_fn))


def read_origin(path: str | os.PathLike[str]) -> Origin:
    """The checkpoint at ``path`` read through the restricted unpickler; ConfigError (exit 2) naming the file when
    it is missing, refused (``UnsafePickleError``: the global it asked for) or not a RecBole checkpoint."""
    from rec_es.rundir import recbole_checkpoint

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such checkpoint file", source="--from-recbole")
    try:
        ck = recbole_checkpoint.load(p)
    except StateError as exc:
        raise ConfigError(str(exc).removeprefix(f"{p}: "), source=str(p)) from None
    return Origin(path=p, sha256=hashlib.sha256(p.read_bytes()).hexdigest(), epoch=ck.epoch, model=ck.model,
                  dataset=ck.dataset, best_valid_score=ck.best_valid_score, state_dict=ck.state_dict,
                  other_parameter=ck.other_parameter, optimizer=ck.optimizer, config=ck.config)


def recovered_keys(origin: Origin) -> dict[str, Any]:
    """The RecBole keys that rebuild the checkpoint's config: its final config without RecBole's derived keys,
    ``data_path`` without the dataset RecBole joined to it (dropped for the ml-100k copy inside recbole), and, where
    RecBole's defaults for the model and dataset can be built, only the keys that differ from them."""
    config = dict(origin.config)
    keys = {k: v for k, v in config.items() if k not in DERIVED}
    data_path = keys.pop("data_path", None)
    if isinstance(data_path, str) and not _inside_recbole(data_path):
        keys["data_path"] = str(Path(data_path).parent)
    neg = keys.get("train_neg_sample_args")
    if isinstance(neg, dict) and neg.get("distribution") in ("none", None):
        keys["train_neg_sample_args"] = None  # RecBole's expanded form of "no sampling"
    defaults = _defaults(origin, keys)
    if defaults is not None:
        keep = ("model", "dataset", "data_path", "loss_type", "train_neg_sample_args", "eval_args", "metrics", "topk",
                "valid_metric", "epochs", "seed")
        keys = {k: v for k, v in keys.items() if k in keep or defaults.get(k, object()) != v}
    return keys


def _inside_recbole(path: str) -> bool:
    return "dataset_example" in Path(path).parts


def _defaults(origin: Origin, keys: Mapping[str, Any]) -> dict[str, Any] | None:
    """RecBole's final config for the model and dataset with only the keys its checks need; None if it fails."""
    from rec_es.rundir.recbole_checkpoint import plain_config

    base = {k: keys[k] for k in ("model", "dataset", "loss_type", "train_neg_sample_args", "data_path") if k in keys}
    try:
        return plain_config(_recbole_config(origin.model, origin.dataset, base).final_config_dict, "defaults")
    except Exception:  # RecBole refuses some bare combinations (a model that needs a key): keep every key
        return None


def _recbole_config(model: str, dataset: str, keys: Mapping[str, Any]) -> Any:
    from recbole.utils import get_model

    from rec_es.training.compat import recbole_config

    return recbole_config(get_model(model), dataset, dict(keys))


def check_round_trip(origin: Origin, keys: Mapping[str, Any]) -> None:
    """RecBole's Config built from ``keys`` gives the checkpoint's config back (every key but the machine's and
    ``data_path``); ConfigError naming the file and the keys that differ otherwise."""
    from rec_es.rundir.recbole_checkpoint import plain_config

    try:
        rebuilt = plain_config(_recbole_config(origin.model, origin.dataset, keys).final_config_dict, "rebuilt")
    except Exception as exc:  # RecBole raises ValueError, KeyError, NotImplementedError, ... on a bad config
        raise ConfigError(f"RecBole cannot build a config from the checkpoint's keys ({brief(exc)})",
                          source=str(origin.path)) from None
    differ = [k for k in sorted(set(origin.config) | set(rebuilt)) if k not in UNCOMPARED
              and origin.config.get(k) != rebuilt.get(k)]
    if differ:
        shown = ", ".join(f"{k} ({brief(origin.config.get(k))} -> {brief(rebuilt.get(k))})" for k in differ[:5])
        raise ConfigError(f"the checkpoint's config cannot be rebuilt from RecBole keys: {shown}; rec_es would not "
                          "train the model it was saved with", source=str(origin.path))


@contextlib.contextmanager
def _keys_file(origin: Origin, keys: Mapping[str, Any]) -> Iterator[str]:
    """The recovered keys as a property file in a private temporary directory, for ``load_config``."""
    folder = tempfile.mkdtemp(prefix="rec_es-from-recbole-")
    try:
        path = Path(folder) / f"{origin.path.name}.config.yaml"
        path.write_text(yaml.safe_dump(dict(keys), sort_keys=False), encoding="utf-8")
        yield str(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def config_from(origin: Origin, files: Sequence[str] = (), overrides: Mapping[str, Any] | None = None) -> Any:
    """The run's ``RunConfig``: the checkpoint's recovered keys, then ``files`` (e.g. a policy file), then
    ``overrides`` (``--set``), checked: the same model and dataset as the checkpoint, a round trip through RecBole,
    and an ``epochs`` budget beyond the checkpoint's epoch. Sources name the checkpoint, not a temporary file."""
    from rec_es.config.properties import load_config

    keys = recovered_keys(origin)
    check_round_trip(origin, keys)
    label = f"{origin.path} (its config)"
    with _keys_file(origin, keys) as tmp:
        try:
            cfg = load_config([tmp, *files], overrides)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(tmp, label)) from None
    cfg.files = [label if f == tmp else f for f in cfg.files]
    cfg.sources = {k: (label if v == tmp else v) for k, v in cfg.sources.items()}
    from rec_es.config.lint import PICKLE_PATH_KEYS

    for key in PICKLE_PATH_KEYS:  # RecBole would pickle.load such a path: the checkpoint may be someone else's
        if cfg.recbole.get(key) is not None and cfg.sources.get(key) == label:
            raise ConfigError(f"{key}: {cfg.recbole[key]!r} is recorded in the checkpoint, and RecBole would load it "
                              "with pickle.load (which runs any code stored in it); if it is your own file, pass it "
                              f"again with --set {key}=PATH, else --set {key}=null", source=label, key=key)
    for key in ("model", "dataset"):
        if cfg.recbole.get(key) != getattr(origin, key):
            raise ConfigError(f"the checkpoint holds {key} {getattr(origin, key)!r}, the config names "
                              f"{cfg.recbole.get(key)!r} (from {cfg.source_of(key)}); continuing a run keeps its "
                              f"{key}", source=str(origin.path), key=key)
    epochs = cfg.get("epochs")
    if isinstance(epochs, int) and epochs <= origin.epoch + 1:
        raise ConfigError(f"epochs {epochs} (from {cfg.source_of('epochs')}) leaves nothing to train after the "
                          f"checkpoint's epoch {origin.epoch}; pass --set epochs=N with N > {origin.epoch + 1}",
                          source=str(origin.path), key="epochs")
    return cfg
