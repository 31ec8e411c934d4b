"""Pre-flight: build RecBole's config, data and model, and take one batch through training and evaluation, before
a run directory exists.

``build`` does what a run needs anyway (RecBole's ``Config``, ``create_dataset``, ``data_preparation``, the model),
each step under a named phase, then ``check_batches`` feeds the first training batch (its first ``TRAIN_ROWS``
rows) through ``model.calculate_loss`` and the first batch of the validation loader through ``full_sort_predict``
/ ``predict`` and RecBole's evaluator, as RecBole's ``Trainer._train_epoch`` and ``Trainer._full_sort_batch_eval``
/ ``_neg_sample_batch_eval`` would (their own code runs on a stand-in for the trainer). A RecBole exception in any
phase becomes a ``ConfigError`` that names the key, the model and the fix (``translate``); nothing has been written
then.

The batches change nothing training will see: Python's, numpy's and torch's RNGs, the generators of the three data
loaders, the model's weights, buffers, ``other_parameter`` (cached embeddings), plain attributes and train/eval
modes are saved before and restored after, so a run gives the same trace with and without the pre-flight (a test
compares both). The data is built once and handed on to training. Cost: docs/run.md.
"""
from __future__ import annotations

import contextlib
import re
import time
import types
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch

from rec_es.config import models
from rec_es.policy.errors import ConfigError, bounded
from rec_es.rundir.checkpoint import capture_rng_state, restore_rng_state

#: What each phase does, as the error message says it.
PHASES = {
    "config": "building RecBole's Config",
    "dataset": "loading the dataset (create_dataset)",
    "split": "splitting the data and building the data loaders (data_preparation)",
    "model": "building the model",
    "train": "training one batch (calculate_loss)",
    "eval": "evaluating one batch (full_sort_predict / predict and the metrics)",
}


#: Rows of the first training batch the pre-flight feeds to ``calculate_loss`` (a train_batch_size batch of a
#: transformer took seconds; the failures it catches do not depend on the batch size).
TRAIN_ROWS = 128


@dataclass
class Built:
    """What a run trains with: RecBole's ``config``, ``dataset``, the three data loaders and the ``model``;
    ``train_seconds`` / ``eval_seconds``: what the two pre-flight batches took."""

    config: Any
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: torch.nn.Module
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        """What the pre-flight batches took (0 when they did not run)."""
        return self.train_seconds + self.eval_seconds


def build(model_class: type, keys: Mapping[str, Any], location: Any, *, verbose: bool = True,
          check: bool = True) -> Built:
    """RecBole's config, dataset, data loaders and model from the merged RecBole ``keys`` (as a run builds them,
    seeds included); with ``check`` (default) the two pre-flight batches then run (``check_batches``).
    ConfigError naming the key, the model and the fix when RecBole fails in any of it. RecBole's logger (its
    ``log/`` directory) is set up only after all of it passed, so a refused config writes nothing; with
    ``verbose`` the config, dataset and model are logged then, as RecBole's ``run_recbole`` logs them."""
    from logging import getLogger

    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    from rec_es.config import datasets
    from rec_es.training.compat import recbole_config

    with failing_as_config_error("config", keys):
        config = recbole_config(model_class, keys["dataset"], keys)
    datasets.apply_data_path(config, location)
    init_seed(config["seed"], config["reproducibility"])
    with failing_as_config_error("dataset", keys):
        dataset = create_dataset(config)
    with failing_as_config_error("split", keys):
        train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    with failing_as_config_error("model", keys):
        model = model_class(config, train_data._dataset).to(config["device"])
    built = Built(config, dataset, train_data, valid_data, test_data, model)
    if check:
        built.train_seconds, built.eval_seconds = check_batches(built, keys)
    init_logger(config)  # RecBole's log/ directory: only once everything above has passed
    if verbose:
        logger = getLogger()
        for part in (config, dataset, model):
            logger.info(part)
        if check:
            logger.info(f"pre-flight: one training batch ({built.train_seconds:.2f} s) and one evaluation batch "
                        f"({built.eval_seconds:.2f} s) passed")
    return built


def check_batches(built: Built, keys: Mapping[str, Any]) -> tuple[float, float]:
    """One training batch through ``calculate_loss`` and one validation batch through prediction and RecBole's
    evaluator; every RNG, loader generator and the model's state restored afterwards. Returns the seconds each took."""
    with untouched(built):
        start = time.perf_counter()
        with failing_as_config_error("train", keys):
            _train_batch(built)
        middle = time.perf_counter()
        if built.valid_data:
            with failing_as_config_error("eval", keys):
                _eval_batch(built)
    return middle - start, time.perf_counter() - middle


def _train_batch(built: Built) -> None:
    config, model, train_data = built.config, built.model, built.train_data
    if config["train_neg_sample_args"].get("dynamic", False):
        train_data.get_model(model)  # as the trainer's fit does before its first epoch
    batch = next(iter(train_data))
    if len(batch) > TRAIN_ROWS:
        batch = batch[:TRAIN_ROWS]  # the smallest slice that proves it: RecBole fails on a config, not on a size
    interaction = batch.to(config["device"])
    model.train()
    with torch.autocast(device_type=config["device"].type, enabled=config["enable_amp"]):
        losses = model.calculate_loss(interaction)
    loss = sum(losses) if isinstance(losses, tuple) else losses
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"calculate_loss returned {type(loss).__name__}, not a one-element tensor")


@torch.no_grad()
def _eval_batch(built: Built) -> None:
    from recbole.data.dataloader import FullSortEvalDataLoader
    from recbole.evaluator import Collector, Evaluator
    from recbole.trainer import Trainer
    from recbole.utils import EvaluatorType

    config, model, data = built.config, built.model, built.valid_data
    device = config["device"]
    full = isinstance(data, FullSortEvalDataLoader)
    # a stand-in for the trainer, with what RecBole's batch-evaluation methods read from it
    stand_in = types.SimpleNamespace(
        model=model, config=config, device=device, test_batch_size=config["eval_batch_size"],
        item_tensor=data._dataset.get_item_feature().to(device) if full else None,
        tot_item_num=data._dataset.item_num if config["eval_type"] == EvaluatorType.RANKING else None)
    stand_in._spilt_predict = types.MethodType(Trainer._spilt_predict, stand_in)
    batch = next(iter(data))
    model.eval()
    evaluate = Trainer._full_sort_batch_eval if full else Trainer._neg_sample_batch_eval
    interaction, scores, positive_u, positive_i = evaluate(stand_in, batch)
    collector = Collector(config)
    collector.data_collect(built.train_data)
    collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
    collector.model_collect(model)
    Evaluator(config).evaluate(collector.get_data_struct())


@contextlib.contextmanager
def untouched(built: Built) -> Iterator[None]:
    """Whatever runs inside leaves the RNGs, the loaders' generators and the model as they were."""
    model = built.model
    rng = capture_rng_state()
    loaders = [d for d in (built.train_data, built.valid_data, built.test_data) if d is not None]
    generators = [(d.generator, d.generator.get_state()) for d in loaders if getattr(d, "generator", None) is not None]
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    other = dict(model.other_parameter())
    attributes = {k: v for k, v in vars(model).items() if not k.startswith("_")}
    modes = {name: m.training for name, m in model.named_modules()}
    loader_models = [(d, getattr(d, "model", None)) for d in loaders]
    try:
        yield
    finally:
        with torch.no_grad():
            model.load_state_dict(weights)
        for key in [k for k in vars(model) if not k.startswith("_") and k not in attributes]:
            delattr(model, key)
        for key, value in attributes.items():
            if getattr(model, key, None) is not value:
                setattr(model, key, value)
        model.load_other_parameter(other)
        for name, m in model.named_modules():
            m.training = modes.get(name, m.training)
        for d, m in loader_models:
            d.model = m
        for generator, state in generators:
            generator.set_state(state)
        restore_rng_state(rng)


@contextlib.contextmanager
def failing_as_config_error(phase: str, keys: Mapping[str, Any]) -> Iterator[None]:
    """A RecBole exception raised inside becomes the ConfigError ``translate`` makes of it."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:  # RecBole raises bare KeyError / ValueError / ... for configuration mistakes
        raise translate(exc, phase, keys) from exc


def translate(exc: BaseException, phase: str, keys: Mapping[str, Any]) -> ConfigError:
    """The ConfigError for ``exc`` raised by RecBole during ``phase``: the key, the model and the fix where the
    failure is a known one (``rec_es.config.models`` words the fixes, shared with ``rec-es check``); otherwise
    what RecBole raised and where, with the phase it failed in."""
    model = str(keys.get("model"))
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    neg_item = f"{keys.get('NEG_PREFIX', 'neg_')}{keys.get('ITEM_ID_FIELD', 'item_id')}"
    label = str(keys.get("LABEL_FIELD", "label"))
    known: tuple[str, str] | None = None
    if isinstance(exc, KeyError) and text == neg_item:
        known = ("train_neg_sample_args", models.needs_negatives_message(model, keys))
    elif isinstance(exc, KeyError) and text == label:
        known = (models.label_key(model), models.needs_label_message(model, keys))
    elif match := re.search(r"Field \[(.+?)\] not in inter_feat", text):
        known = models.missing_field_finding(model, keys, match.group(1))
    elif "ordering args for sequential recommendation has to be 'TO'" in text:
        known = ("eval_args.order", models.sequential_order_message(model, keys))
    elif "should be None when the loss_type is CE" in text:
        known = ("train_neg_sample_args", models.ce_takes_no_negatives_message(model, keys))
    elif "Full sort evaluation do not match value-based metrics" in text:
        known = ("eval_args.mode", models.value_metrics_full_message(model, keys))
    elif isinstance(exc, KeyError) and phase == "model" and text in (models.effective("selected_features", keys, model)
                                                                      or ()):
        known = ("selected_features", models.item_features_message(model, keys, text))
    elif match := re.search(r"Additional feature file \[(.+?)\] not found", text):
        known = ("additional_feat_suffix", models.additional_features_message(model, keys, match.group(1)))
    if known is not None:
        key, message = known
        return ConfigError(f"{key}: {message} (RecBole raised {type(exc).__name__}: {bounded(text, 200)} while "
                           f"{PHASES[phase]}); nothing was written", key=key)
    return ConfigError(f"model: {model}: RecBole failed while {PHASES[phase]} with this config: "
                       f"{type(exc).__name__}: {bounded(text, 400)}{_where(exc)}. Nothing was written; docs/run.md "
                       "('RecBole models') says what each model needs", key="model")


def _where(exc: BaseException) -> str:
    """`` (at recbole/.../file.py:line)``: the innermost RecBole frame of ``exc``'s traceback, if any."""
    tb, found = exc.__traceback__, ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if "/recbole/" in filename:
            found = f" (at recbole/{filename.rsplit('/recbole/', 1)[1]}:{tb.tb_lineno})"
        tb = tb.tb_next
    return found


__all__ = ["Built", "PHASES", "build", "check_batches", "translate", "untouched"]
