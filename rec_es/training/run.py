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

from rec_es.config import models
from rec_es.policy.errors import ConfigError, RecEsError, brief
from rec_es.rundir.paths import write_config


def default_run_dir(recbole_keys: dict[str, Any]) -> Path:
    """``runs/<Model>-<dataset>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recbole_keys.get('model')}-{recbole_keys.get('dataset')}-{stamp}"


def prepare_run_dir(output_dir: Path | None, recbole_keys: dict[str, Any]) -> Path:
    """Pick and check the run directory (created later, by ``train``); ConfigError if it exists and is not an
    empty directory (a run is never overwritten; one killed before its first epoch was saved is named as such,
    with the command that deletes it) or cannot be created (under a file, not writable)."""
    from rec_es.rundir.paths import check_output_dir
    from rec_es.training.resume_check import nothing_to_resume, unfinished_before_first_epoch

    run_dir = output_dir if output_dir is not None else default_run_dir(recbole_keys)
    if run_dir.is_dir() and unfinished_before_first_epoch(run_dir):
        raise ConfigError(f"run directory {run_dir} already exists: {nothing_to_resume(run_dir)} (or pick another "
                          "--output-dir)", source="--output-dir")
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
        raise ConfigError(f"model: {models.unknown_model_message(name)}", source=where, key="model") from None
    trainer_class = get_trainer(model_class.type, name)
    if trainer_class is not Trainer:
        raise ConfigError(f"model: {models.own_trainer_message(name, trainer_class.__name__)}", source=where,
                          key="model")
    return model_class, trainer_class


def train(cfg: Any, run_dir: Path, *, resume: bool = False, record_test: bool = False, progress: bool = False,
          verbose: bool = True, per_user_metrics: Sequence[str] | None = None,
          callback_fn: Callable[[int, float | None], Any] | None = None, preflight: bool = True,
          origin: Any = None, launch: Any = None, ranked_k: int = 0) -> dict[str, Any]:
    """Train ``cfg`` (a ``RunConfig``) into ``run_dir``; the Python API behind ``rec-es run``.

    Checks dataset and model before anything is written (and, with ``resume``, the whole run directory against
    ``cfg``: ``rec_es.training.resume_check.check_resume``; a run that recorded test metrics keeps doing so), builds
    RecBole's config, data and model and runs the pre-flight (``rec_es.training.preflight``: one training and one
    evaluation batch, which change nothing training sees; ``preflight=False`` skips the batches), writes
    ``config.yaml`` (on resume: only once the checkpoint has loaded into the model), trains with
    ``EarlyStoppingTrainer``, tests the restored best weights and writes ``summary.json``.
    A failure in training that leaves nothing ``--resume`` could continue (no ``last.pth`` yet) removes what the
    run wrote (the directory itself if this call created it) and raises ``RunFailed`` naming the cause; a later
    failure keeps the directory and says how to continue it.
    ``per_user_metrics``: top-k keys (or ``target_ce``) recorded per user in ``RUN/per_user/`` (default: the monitor's).
    ``ranked_k``: keep each validation user's top ``ranked_k`` items in ``RUN/ranked/`` and their signals in the
    trace (default 0: none; one process and full ranking only: ``rec_es.rundir.ranked``).
    ``callback_fn(epoch, monitor value)``: RecBole's fit callback, called after each evaluation's trace record.
    ``origin``: a stock RecBole checkpoint to start from (``rec_es.training.from_recbole.Origin``).
    ``launch``: a ``rec_es.training.distributed.LaunchSpec`` to train in several processes (RecBole's ``nproc``);
    the pre-flight runs here, before any process starts; global rank 0 alone writes ``run_dir``, and on a machine
    without rank 0 the summary returned is ``{}``.
    """
    from rec_es.config import datasets

    from rec_es.training.capture import check_ranked_k

    check_budget(cfg)
    ranked_k = check_ranked_k(cfg.recbole, ranked_k)  # before anything is written
    world = launch.total if launch is not None else 1
    plan = None
    if resume:
        from rec_es.training.distributed import check_resume_launch
        from rec_es.training.resume_check import check_resume, check_world_size

        if launch is not None:
            check_resume_launch(launch)
        plan = check_resume(run_dir, cfg)
        check_world_size(plan, world)
        record_test = record_test or plan.record_test
    if world > 1:
        if ranked_k:
            raise ConfigError("ranked: top-k lists are kept on one process only; drop --ranked or --nproc",
                              key="ranked")
        return _train_distributed(cfg, run_dir, launch, plan, record_test, progress, verbose, per_user_metrics,
                                  callback_fn, preflight, origin)
    location = datasets.resolve(cfg.recbole, cfg.sources)
    model_class, _ = model_and_trainer_class(cfg.recbole, cfg.sources)
    return _train(cfg, run_dir, location, model_class, plan, record_test, progress, verbose, per_user_metrics,
                  callback_fn, preflight, origin, ranked_k)


class RunFailed(RecEsError):
    """Training raised after the pre-flight passed; the message says what became of the run directory (removed,
    or kept for ``--resume``). The exception that ended training is the ``__cause__``."""


class RunInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the message says what became of the run directory, as ``RunFailed``'s."""


def _train_distributed(cfg: Any, run_dir: Path, launch: Any, plan: Any, record_test: bool, progress: bool,
                       verbose: bool, per_user_metrics: Sequence[str] | None,
                       callback_fn: Callable[[int, float | None], Any] | None, preflight: bool,
                       origin: Any) -> dict[str, Any]:
    """Check and pre-flight here (one process, nothing written), write ``config.yaml`` (rank 0's machine; on resume
    rank 0 writes it once the checkpoint has loaded), then spawn the ranks (``distributed.launch``), each with the
    checked resume ``plan`` (None: a new run); a failure leaves the run directory as ``after_failure`` says."""
    import json

    from rec_es.config import datasets
    from rec_es.training import distributed
    from rec_es.training import preflight as pf

    for given, what in ((callback_fn is not None, "callback_fn"), (origin is not None, "a stock checkpoint")):
        if given:
            raise ConfigError(f"{what} with --nproc is not supported yet (docs/distributed.md)", source=what)
    distributed.check_launch(launch, cfg.recbole, cfg.sources)
    if "target_ce" in [k.lower() for k in (getattr(cfg.build_policy(), "monitor_keys", ()) or ())] + \
            [str(k).lower() for k in (per_user_metrics or ())]:
        raise ConfigError("target_ce is not gathered across processes yet; with --nproc monitor a RecBole metric",
                          key="early_stopping.monitor")
    location = datasets.resolve(cfg.recbole, cfg.sources)
    model_class, _ = model_and_trainer_class(cfg.recbole, cfg.sources)
    if preflight:
        from rec_es.training.compat import quiet_recbole_warnings

        quiet_recbole_warnings()
        with recbole_scratch_dir() as scratch:
            pf.build(model_class, {**_recbole_keys(cfg, verbose=False), "checkpoint_dir": scratch}, location,
                     verbose=False)
    writes = launch.group_offset == 0
    resumed = plan is not None
    created = _topmost_missing(run_dir) if writes and not resumed else None
    if writes and not resumed:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg.to_dict())
    try:
        distributed.launch(launch, _train_rank, (cfg, run_dir, location, model_class, plan, record_test, progress,
                                                 verbose, per_user_metrics))
    except KeyboardInterrupt as exc:
        raise RunInterrupted(f"interrupted; {after_failure(run_dir, resumed, created)}" if writes
                             else "interrupted") from exc
    except RecEsError as exc:
        raise RunFailed(f"{exc}; {after_failure(run_dir, resumed, created)}" if writes else str(exc)) from None
    return json.loads((run_dir / "summary.json").read_text()) if writes else {}


def _train_rank(local_rank: int, launch: Any, cfg: Any, run_dir: Path, location: Any, model_class: type, plan: Any,
                record_test: bool, progress: bool, verbose: bool, per_user_metrics: Sequence[str] | None) -> None:
    """One process of a distributed run (the pre-flight already passed): global rank 0 gets ``run_dir``, the others
    no directory at all; with a resume ``plan`` every rank loads its model and optimizer state, and rank 0 sends
    the rest (``rec_es.training.resume.begin_resumed``).

    The ``plan`` is deep-copied first: ``torch.multiprocessing.spawn`` passes the tensors of its arguments in
    shared memory, and the optimizer adopts the loaded moment tensors as its own, so without a copy every rank
    would update the same Adam moments in place."""
    import copy

    plan = copy.deepcopy(plan)
    from rec_es.training import preflight as pf
    from rec_es.training.compat import quiet_recbole_warnings
    from rec_es.training.distributed import rank_keys

    quiet_recbole_warnings()
    rank0 = local_rank + launch.group_offset == 0
    with recbole_scratch_dir() as scratch:
        keys = {**_recbole_keys(cfg, verbose), **rank_keys(launch, local_rank), "checkpoint_dir": scratch}
        built = pf.build(model_class, keys, location, verbose=verbose and rank0, check=False)
        _train_in(cfg, built, run_dir if rank0 else None, plan, record_test, progress and rank0, verbose,
                  per_user_metrics)


def _recbole_keys(cfg: Any, verbose: bool) -> dict[str, Any]:
    keys = dict(cfg.recbole)
    if not verbose:
        keys.setdefault("state", "WARNING")  # RecBole's own log level: quiet means its INFO lines too
    return keys


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


def _train(cfg: Any, run_dir: Path, location: Any, model_class: type, resume: Any, record_test: bool,
           progress: bool, verbose: bool, per_user_metrics: Sequence[str] | None = None,
           callback_fn: Callable[[int, float | None], Any] | None = None, preflight: bool = True,
           origin: Any = None, ranked_k: int = 0) -> dict[str, Any]:
    from rec_es.training import averaging
    from rec_es.training import preflight as pf
    from rec_es.training.compat import quiet_recbole_warnings

    quiet_recbole_warnings()
    keys = _recbole_keys(cfg, verbose)
    with recbole_scratch_dir() as scratch:
        # RecBole pickle.loads `<dataset>-<Class>.pth` / `<dataset>-for-<Model>-dataloader.pth` from its
        # checkpoint_dir by name: it gets a fresh private directory, never the run directory (which may have
        # come from someone else), so a planted file there is never unpickled. rec_es writes the run's own
        # files (best.pth, last.pth, ...) to run_dir itself.
        keys["checkpoint_dir"] = scratch
        built = pf.build(model_class, keys, location, verbose=verbose, check=preflight)  # ConfigError: nothing written
        averaging.for_trainer(cfg.build_policy(), built.model, built.config["model"], built.config["epochs"],
                              built.config["eval_step"])  # an average the model or budget cannot serve: the same
        created, kept = None, frozenset(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else frozenset()
        if not resume:
            created = _topmost_missing(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            write_config(run_dir, cfg.to_dict())
        try:
            return _train_in(cfg, built, run_dir, resume, record_test, progress, verbose, per_user_metrics,
                             callback_fn, origin, ranked_k)
        except KeyboardInterrupt as exc:
            raise RunInterrupted(f"interrupted; {after_failure(run_dir, bool(resume), created, kept)}") from exc
        except RecEsError:
            after_failure(run_dir, bool(resume), created, kept)
            raise
        except Exception as exc:
            message = after_failure(run_dir, bool(resume), created, kept)
            raise RunFailed(f"training failed ({type(exc).__name__}: {brief_error(exc)}); {message}") from exc


def _topmost_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (what ``mkdir(parents=True)`` creates)."""
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


@contextlib.contextmanager
def recbole_scratch_dir() -> Iterator[str]:
    """A new, empty, private (0700) directory for RecBole's ``checkpoint_dir``, removed afterwards."""
    path = tempfile.mkdtemp(prefix="rec_es-recbole-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def after_failure(run_dir: Path, resumed: bool, created: Path | None, kept: frozenset[str] = frozenset()) -> str:
    """Leave ``run_dir`` after a failed training so that it never blocks the user, and say what became of it.

    Without ``last.pth`` there is nothing ``--resume`` could continue, so what the run wrote is removed: the
    directories it created (``created``: the outermost one), or else the files it added to the directory it was
    given (``kept``: the names that were there before, e.g. a tune trial's ``trial.json``, stay). With ``last.pth``
    (or when the run was resumed) the directory is kept, and the sentence says how to continue it or what to delete.
    """
    if not resumed and not (run_dir / "last.pth").exists():
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif run_dir.is_dir():
            for child in [c for c in run_dir.iterdir() if c.name not in kept]:
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()
        where = (f"the run directory {run_dir} was removed" if created is not None
                 else f"what it wrote into {run_dir} was removed")
        return f"it failed before anything --resume could continue, so {where}; fix the cause and run it again"
    return (f"{run_dir} keeps {_kept_epochs(run_dir)} and last.pth: once the cause is fixed, continue it with "
            f"rec-es run --resume {run_dir}, or delete the directory (rm -r {run_dir}) to start over")


def _kept_epochs(run_dir: Path) -> str:
    from rec_es.rundir.trace import read_trace

    try:
        epochs = [r["epoch"] for r in read_trace(run_dir).records]
    except (RecEsError, OSError, KeyError, TypeError):
        return "what it recorded"
    if not epochs:
        return "no evaluation yet"
    return f"{len(epochs)} evaluation{'s' * (len(epochs) != 1)} (epochs {epochs[0]}-{epochs[-1]})"


def brief_error(exc: BaseException) -> str:
    """The first line of ``exc``'s message, cut to 300 characters."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:300]


def _train_in(cfg: Any, built: Any, run_dir: Path | None, resume: Any, record_test: bool, progress: bool, verbose: bool,
              per_user_metrics: Sequence[str] | None = None,
              callback_fn: Callable[[int, float | None], Any] | None = None, origin: Any = None,
              ranked_k: int = 0) -> dict[str, Any]:
    """Fit with ``EarlyStoppingTrainer`` on what ``preflight.build`` made; ``resume``: a ResumePlan, or None/False;
    ``origin``: a stock checkpoint whose state the trainer starts from."""
    from rec_es.training.trainer import EarlyStoppingTrainer  # importing it applies compat.apply_recbole_fixes

    config, model = built.config, built.model
    trainer = EarlyStoppingTrainer(config, model, cfg.build_policy(), lr_schedule=cfg.lr_schedule, run_dir=run_dir,
                                   record_test=record_test, run_config=cfg.to_dict(), epoch_progress=progress,
                                   per_user_metrics=per_user_metrics, ranked_k=ranked_k)
    if resume:
        trainer.load_resume(resume.run_dir, resume)  # every rank; only the one with run_dir writes
    elif origin is not None:
        origin.load_into(trainer)
    show = bool(config["show_progress"])
    trainer.fit(built.train_data, built.valid_data, verbose=verbose, saved=True, show_progress=show,
                test_data=built.test_data if record_test else None, callback_fn=callback_fn)
    test_result = trainer.evaluate(built.test_data, load_best_model=True, show_progress=show)
    if run_dir is not None:  # None: a rank other than 0 of a distributed run
        trainer.write_summary(test_result)
    return trainer.summary(test_result)
