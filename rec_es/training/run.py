"""The library API for one run: ``train`` a ``RunConfig`` into a run directory (what ``rec-es run`` calls).

``train`` checks dataset and model (and a resumed run directory) before anything is written, writes
``config.yaml``, trains with
``EarlyStoppingTrainer`` (RecBole's ``checkpoint_dir`` is a fresh private scratch directory, never the run
directory), tests the restored best weights and writes ``summary.json``. ``prepare_run_dir`` picks and checks
the directory (``runs/<Model>-<dataset>-<YYYYmmdd-HHMMSS>`` by default; never overwritten).
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rec_es.policy.errors import ConfigError, brief
from rec_es.rundir.paths import write_config


def default_run_dir(recbole_keys: dict[str, Any]) -> Path:
    """``runs/<Model>-<dataset>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recbole_keys.get('model')}-{recbole_keys.get('dataset')}-{stamp}"


def prepare_run_dir(output_dir: Path | None, recbole_keys: dict[str, Any]) -> Path:
    """Pick and check the run directory (created later, by ``train``); ConfigError if it exists and is not an
    empty directory (a run is never overwritten) or cannot be created (under a file, not writable)."""
    from rec_es.rundir.paths import check_output_dir

    run_dir = output_dir if output_dir is not None else default_run_dir(recbole_keys)
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(f"run directory {run_dir} already exists and is not empty; rec_es never overwrites a run. "
                          f"Pick another --output-dir, or continue it with --resume {run_dir}", source="--output-dir")
    return check_output_dir(run_dir, "--output-dir")


def model_and_trainer_class(recbole_keys: dict[str, Any], sources: dict[str, str]) -> tuple[type, type]:
    """The RecBole model class named by ``model`` and its trainer class; ConfigError (key ``model``, naming the file)
    for a name RecBole does not know or a model whose trainer is not RecBole's base ``Trainer``."""
    from recbole.trainer import Trainer
    from recbole.utils import get_model, get_trainer

    name = recbole_keys.get("model")
    where = sources.get("model")
    if not isinstance(name, str):
        raise ConfigError(f"model: must name a RecBole model, e.g. model: GRU4Rec (got {name!r})", source=where,
                          key="model")
    try:
        model_class = get_model(name)
    except (ValueError, ImportError):  # an unknown name ends in recbole's exlib package, which needs lightgbm
        raise ConfigError(f"model: {name!r} is not a RecBole 1.2.1 model this installation can train "
                          "(e.g. GRU4Rec, SASRec, BPR; names are case-sensitive)", source=where, key="model") from None
    trainer_class = get_trainer(model_class.type, name)
    if trainer_class is not Trainer:
        raise ConfigError(f"model: {name} trains with RecBole's {trainer_class.__name__}, which has its own fit(); "
                          "rec_es drives models that use the base Trainer (GRU4Rec, SASRec, BPR, LightGCN, ...). "
                          f"Train {name} with stock RecBole (run_recbole) instead; rec-es explain reads its log",
                          source=where, key="model")
    return model_class, trainer_class


def train(cfg: Any, run_dir: Path, *, resume: bool = False, record_test: bool = False, progress: bool = False,
          verbose: bool = True, per_user_metrics: Sequence[str] | None = None,
          callback_fn: Callable[[int, float | None], Any] | None = None, launch: Any = None) -> dict[str, Any]:
    """Train ``cfg`` (a ``RunConfig``) into ``run_dir``; the Python API behind ``rec-es run``.

    Checks dataset and model before anything is written (and, with ``resume``, the whole run directory against
    ``cfg``: ``rec_es.training.resume_check.check_resume``; a run that recorded test metrics keeps doing so), writes
    ``config.yaml`` (on resume: only once the checkpoint has loaded into the model), trains with
    ``EarlyStoppingTrainer``, tests the restored best weights and writes ``summary.json``.
    ``per_user_metrics``: top-k keys (or ``target_ce``) recorded per user in ``RUN/per_user/`` (default: the monitor's).
    ``callback_fn(epoch, monitor value)``: RecBole's fit callback, called after each evaluation's trace record.
    ``launch``: a ``rec_es.training.distributed.LaunchSpec`` to train in several processes (RecBole's ``nproc``);
    global rank 0 alone writes ``run_dir``, and on a machine without rank 0 the summary returned is ``{}``.
    """
    from rec_es.config import datasets

    check_budget(cfg)
    if launch is not None and launch.total > 1:
        return _train_distributed(cfg, run_dir, launch, resume, record_test, progress, verbose, per_user_metrics,
                                  callback_fn)
    plan = None
    if resume:
        from rec_es.training.resume_check import check_resume

        plan = check_resume(run_dir, cfg)
        _refuse_distributed_resume(plan)
        record_test = record_test or plan.record_test
    location = datasets.resolve(cfg.recbole, cfg.sources)
    model_class, _ = model_and_trainer_class(cfg.recbole, cfg.sources)
    if plan is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg.to_dict())
    return _train(cfg, run_dir, location, model_class, plan, record_test, progress, verbose, per_user_metrics,
                  callback_fn)


def _train_distributed(cfg: Any, run_dir: Path, launch: Any, resume: bool, record_test: bool, progress: bool,
                       verbose: bool, per_user_metrics: Sequence[str] | None,
                       callback_fn: Callable[[int, float | None], Any] | None) -> dict[str, Any]:
    """Check, write ``config.yaml`` (rank 0's machine), then spawn the ranks (``distributed.launch``)."""
    import json

    from rec_es.config import datasets
    from rec_es.training import distributed

    if resume:
        raise ConfigError("--resume with --nproc is not supported yet: a distributed run cannot be resumed "
                          "(docs/distributed.md)", source="--resume")
    if callback_fn is not None:
        raise ConfigError("callback_fn cannot be called across processes; train with launch=None to use it")
    distributed.check_launch(launch, cfg.recbole, cfg.sources)
    if "target_ce" in [k.lower() for k in (getattr(cfg.build_policy(), "monitor_keys", ()) or ())] + \
            [str(k).lower() for k in (per_user_metrics or ())]:
        raise ConfigError("target_ce is not gathered across processes yet; with --nproc monitor a RecBole metric",
                          key="early_stopping.monitor")
    location = datasets.resolve(cfg.recbole, cfg.sources)
    model_class, _ = model_and_trainer_class(cfg.recbole, cfg.sources)
    writes = launch.group_offset == 0
    if writes:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg.to_dict())
    distributed.launch(launch, _train_rank, (cfg, run_dir, location, model_class, record_test, progress, verbose,
                                             per_user_metrics))
    return json.loads((run_dir / "summary.json").read_text()) if writes else {}


def _train_rank(local_rank: int, launch: Any, cfg: Any, run_dir: Path, location: Any, model_class: type,
                record_test: bool, progress: bool, verbose: bool, per_user_metrics: Sequence[str] | None) -> None:
    """One process of a distributed run: global rank 0 gets ``run_dir``, the others no directory at all."""
    from rec_es.training.distributed import rank_keys

    rank0 = local_rank + launch.group_offset == 0
    _train(cfg, run_dir if rank0 else None, location, model_class, None, record_test, progress and rank0, verbose,
           per_user_metrics, None, extra_keys=rank_keys(launch, local_rank))


def _refuse_distributed_resume(plan: Any) -> None:
    """A run trained by several processes is not resumed (in one process or several): its ``last.pth`` holds rank
    0's random state only, so the resumed run would not repeat the uninterrupted one (rec_es's resume promise)."""
    world = plan.trace.header.get("world_size")
    if isinstance(world, int) and world > 1:
        raise ConfigError(f"{plan.run_dir} was trained by {world} processes (trace header world_size: {world}); "
                          "resuming a distributed run is not supported yet, in one process or in several: its "
                          "last.pth holds rank 0's random state only, so the resumed run would not repeat the "
                          "uninterrupted one. Its best.pth and trace are complete up to the last epoch; start a "
                          "new run to train further", source="--resume")


def check_budget(cfg: Any) -> None:
    """The RecBole keys rec_es's trainer computes with (``epochs``, ``eval_step``, ``learning_rate``), whichever
    file or ``--set`` gave them, have usable values; ConfigError naming the key and its source, before any write."""
    rules = (("epochs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
             ("eval_step", lambda v: isinstance(v, int), "an integer (<= 0: never evaluate)"),
             ("learning_rate", lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0"))
    for key, ok, allowed in rules:
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not ok(value)):
            raise ConfigError(f"{key}: must be {allowed} (got {brief(value)})", source=cfg.source_of(key), key=key)


def _train(cfg: Any, run_dir: Path | None, location: Any, model_class: type, resume: Any, record_test: bool,
           progress: bool, verbose: bool, per_user_metrics: Sequence[str] | None = None,
           callback_fn: Callable[[int, float | None], Any] | None = None,
           extra_keys: dict[str, Any] | None = None) -> dict[str, Any]:
    from rec_es.training.compat import quiet_recbole_warnings

    quiet_recbole_warnings()
    keys = {**cfg.recbole, **(extra_keys or {})}
    if not verbose:
        keys.setdefault("state", "WARNING")  # RecBole's own log level: quiet means its INFO lines too
    with recbole_scratch_dir() as scratch:
        # RecBole pickle.loads `<dataset>-<Class>.pth` / `<dataset>-for-<Model>-dataloader.pth` from its
        # checkpoint_dir by name: it gets a fresh private directory, never the run directory (which may have
        # come from someone else), so a planted file there is never unpickled. rec_es writes the run's own
        # files (best.pth, last.pth, ...) to run_dir itself.
        keys["checkpoint_dir"] = scratch
        return _train_in(cfg, keys, run_dir, location, model_class, resume, record_test, progress, verbose,
                         per_user_metrics, callback_fn)


@contextlib.contextmanager
def recbole_scratch_dir() -> Iterator[str]:
    """A new, empty, private (0700) directory for RecBole's ``checkpoint_dir``, removed afterwards."""
    path = tempfile.mkdtemp(prefix="rec_es-recbole-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _train_in(cfg: Any, keys: dict[str, Any], run_dir: Path | None, location: Any, model_class: type, resume: Any,
              record_test: bool, progress: bool, verbose: bool,
              per_user_metrics: Sequence[str] | None = None,
              callback_fn: Callable[[int, float | None], Any] | None = None) -> dict[str, Any]:
    """Build RecBole's config, dataset, model and trainer, then fit; ``resume``: a ResumePlan, or None/False."""
    from logging import getLogger

    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    from rec_es.config import datasets
    from rec_es.training.compat import recbole_config
    from rec_es.training.trainer import EarlyStoppingTrainer  # importing it applies compat.apply_recbole_fixes

    config = recbole_config(model_class, keys["dataset"], keys)
    datasets.apply_data_path(config, location)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    if verbose:
        logger.info(config)
    dataset = create_dataset(config)
    if verbose:
        logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = model_class(config, train_data._dataset).to(config["device"])
    if verbose:
        logger.info(model)
    trainer = EarlyStoppingTrainer(config, model, cfg.build_policy(), lr_schedule=cfg.lr_schedule, run_dir=run_dir,
                                   record_test=record_test, run_config=cfg.to_dict(), epoch_progress=progress,
                                   per_user_metrics=per_user_metrics)
    if resume:
        trainer.load_resume(run_dir, resume)
    trainer.fit(train_data, valid_data, verbose=verbose, saved=True, show_progress=bool(config["show_progress"]),
                test_data=test_data if record_test else None, callback_fn=callback_fn)
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=bool(config["show_progress"]))
    if run_dir is not None:
        trainer.write_summary(test_result)
    return trainer.summary(test_result)
