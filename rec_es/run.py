"""``rec-es run`` / ``scripts/run_gru4rec.py``: train a RecBole model with a rec_es policy into a run directory.

    rec-es run --config properties/gru4rec_ml100k.yaml [more.yaml ...] [--set key=value ...]
               [--output-dir DIR] [--resume RUN_DIR] [--record-test] [--no-progress]

Files merge RecBole-style (later overrides earlier); ``--set`` values are read as YAML. Everything is
validated (config, dataset, model, run directory) before the first epoch. The run directory
(default ``runs/<Model>-<dataset>-<YYYYmmdd-HHMMSS>``) is never overwritten; ``--resume RUN_DIR``
continues a killed or stopped run from ``RUN_DIR/last.pth`` with ``RUN_DIR/config.yaml`` (plus any
``--config``/``--set`` given, e.g. a new policy).
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from rec_es.errors import ConfigError, RecEsError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rec-es run``."""
    p = argparse.ArgumentParser(
        prog="rec-es run", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a RecBole model with a rec_es stopping policy into a run directory.",
        epilog="example: rec-es run --config properties/gru4rec_ml100k.yaml --set early_stopping.patience=20\n"
               "run directory: trace.jsonl, summary.json, best.pth, last.pth, config.yaml (never overwritten)")
    p.add_argument("--config", nargs="+", default=[], metavar="FILE",
                   help="RecBole property files with early_stopping:/lr_schedule:, merged in order")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key, value read as YAML (e.g. --set epochs=50 --set early_stopping.patience=5)")
    p.add_argument("--output-dir", type=Path, default=None, metavar="DIR",
                   help="run directory (default runs/<Model>-<dataset>-<time>); must not exist or be empty")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--record-test", action="store_true", help="also evaluate the test set at every evaluation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over epochs")
    p.add_argument("--quiet", action="store_true", help="no per-epoch log lines (the result is still printed)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input, 1 other rec_es error)."""
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except KeyboardInterrupt:
        print("rec-es run: interrupted; the run directory keeps every finished epoch - continue it with "
              "rec-es run --resume RUN_DIR", file=sys.stderr)
        return 130
    except ConfigError as exc:
        print(f"rec-es run: error: {exc}", file=sys.stderr)
        return 2
    except RecEsError as exc:
        print(f"rec-es run: error: {exc}", file=sys.stderr)
        return 1
    _print_result(summary)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Validate everything, then train; returns the summary written to ``RUN/summary.json``."""
    from rec_es.config import load_config, parse_set_args

    overrides = parse_set_args(args.overrides)
    if args.resume is not None:
        run_dir = args.resume
        _check_resumable(run_dir)
        files = [str(run_dir / "config.yaml"), *args.config]
    else:
        if not args.config:
            raise ConfigError("no config file given; pass --config FILE [FILE ...] (or --resume RUN_DIR)",
                              source="--config")
        files = list(args.config)
        run_dir = None
    cfg = load_config(files, overrides)
    if args.resume is None:
        lint_before_training(files, overrides)
    else:
        _refuse_recorded_pickle_paths(cfg, files[0])
    _warn_pickle_caches(cfg)
    if run_dir is None:
        run_dir = prepare_run_dir(args.output_dir, cfg.recbole)
    record_test = args.record_test or (args.resume is not None and _header_record_test(run_dir))
    return train(cfg, run_dir, resume=args.resume is not None, record_test=record_test,
                 progress=not args.no_progress, verbose=not args.quiet)


def lint_before_training(files: list[str], overrides: dict[str, Any]) -> None:
    """Run ``rec-es check`` on the files: its errors (e.g. a misspelt key RecBole would silently ignore)
    stop the run before training; warnings are printed. Keys given with ``--set`` are not held against the files.
    """
    try:
        from rec_es.lint import lint_files
    except ModuleNotFoundError as exc:  # the lint tool is optional for running
        if exc.name != "rec_es.lint":
            raise
        return
    from rec_es.lint import PICKLE_WARNING_KEYS

    # run() prints the pickle-cache warnings itself, for the merged config including --set and resumes
    overridden = {key.partition(".")[0] for key in overrides} | set(PICKLE_WARNING_KEYS)
    findings = [f for f in lint_files(files) if f.key.partition(".")[0] not in overridden]
    for f in findings:
        if f.level == "warning":
            print(f"rec-es run: {f}", file=sys.stderr)
    errors = [str(f) for f in findings if f.level == "error"]
    if errors:
        raise ConfigError("the property files have errors (rec-es check " + " ".join(files) + " lists them):\n  "
                          + "\n  ".join(errors))


def _warn_pickle_caches(cfg: Any) -> None:
    from rec_es.lint import pickle_cache_warnings

    for key, message in pickle_cache_warnings(cfg.recbole):
        print(f"rec-es run: warning: {cfg.source_of(key)}: {key}: {message}", file=sys.stderr)


def _refuse_recorded_pickle_paths(cfg: Any, recorded: str) -> None:
    """A resumed run's own config.yaml may have come from someone else: a pickle path recorded there is
    refused (RecBole would ``pickle.load`` it); the user can name it again on this command line."""
    from rec_es.lint import PICKLE_PATH_KEYS

    for key in PICKLE_PATH_KEYS:
        if cfg.recbole.get(key) is not None and cfg.sources.get(key) == recorded:
            raise ConfigError(f"{key}: {cfg.recbole[key]!r} is recorded in the run directory, and RecBole would "
                              "load it with pickle.load (which runs any code stored in it); if it is your own file, "
                              f"pass it again with --set {key}=PATH, else --set {key}=null", source=recorded, key=key)


def _header_record_test(run_dir: Path) -> bool:
    """Whether the run being resumed recorded test metrics (it keeps doing so)."""
    import json

    with open(run_dir / "trace.jsonl", encoding="utf-8") as fh:
        first = fh.readline()
    try:
        return bool(json.loads(first).get("record_test", False))
    except (json.JSONDecodeError, AttributeError):
        raise ConfigError(f"cannot resume: {run_dir / 'trace.jsonl'} has no readable header line",
                          source="--resume") from None


def _check_resumable(run_dir: Path) -> None:
    for name in ("config.yaml", "last.pth", "trace.jsonl"):
        if not (run_dir / name).is_file():
            raise ConfigError(f"cannot resume: {run_dir / name} is missing (a run directory written by rec-es run "
                              "with saving on holds config.yaml, last.pth and trace.jsonl)", source="--resume")


def default_run_dir(recbole_keys: dict[str, Any]) -> Path:
    """``runs/<Model>-<dataset>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recbole_keys.get('model')}-{recbole_keys.get('dataset')}-{stamp}"


def prepare_run_dir(output_dir: Path | None, recbole_keys: dict[str, Any]) -> Path:
    """Create the run directory; an existing non-empty one is an error (never overwritten)."""
    run_dir = output_dir if output_dir is not None else default_run_dir(recbole_keys)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"run directory {run_dir} already exists and is not empty; rec_es never overwrites a run. "
                          f"Pick another --output-dir, or continue it with --resume {run_dir}", source="--output-dir")
    return run_dir


def _model_and_trainer_class(recbole_keys: dict[str, Any], sources: dict[str, str]) -> tuple[type, type]:
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
          verbose: bool = True) -> dict[str, Any]:
    """Train ``cfg`` (a ``RunConfig``) into ``run_dir``; the Python API behind ``rec-es run``.

    Checks dataset and model before anything is written, writes ``config.yaml``, trains with
    ``EarlyStoppingTrainer``, tests the restored best weights and writes ``summary.json``.
    """
    from rec_es import datasets

    location = datasets.resolve(cfg.recbole, cfg.sources)
    model_class, _ = _model_and_trainer_class(cfg.recbole, cfg.sources)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_config(run_dir, cfg.to_dict())
    return _train(cfg, run_dir, location, model_class, resume, record_test, progress, verbose)


def _write_config(run_dir: Path, mapping: dict[str, Any]) -> None:
    import os

    path = run_dir / "config.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def _train(cfg: Any, run_dir: Path, location: Any, model_class: type, resume: bool, record_test: bool,
           progress: bool, verbose: bool) -> dict[str, Any]:
    from rec_es.compat import quiet_recbole_warnings

    quiet_recbole_warnings()
    keys = dict(cfg.recbole)
    if not verbose:
        keys.setdefault("state", "WARNING")  # RecBole's own log level: quiet means its INFO lines too
    with recbole_scratch_dir() as scratch:
        # RecBole pickle.loads `<dataset>-<Class>.pth` / `<dataset>-for-<Model>-dataloader.pth` from its
        # checkpoint_dir by name: it gets a fresh private directory, never the run directory (which may have
        # come from someone else), so a planted file there is never unpickled. rec_es writes the run's own
        # files (best.pth, last.pth, ...) to run_dir itself.
        keys["checkpoint_dir"] = scratch
        return _train_in(cfg, keys, run_dir, location, model_class, resume, record_test, progress, verbose)


@contextlib.contextmanager
def recbole_scratch_dir() -> Iterator[str]:
    """A new, empty, private (0700) directory for RecBole's ``checkpoint_dir``, removed afterwards."""
    path = tempfile.mkdtemp(prefix="rec_es-recbole-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _train_in(cfg: Any, keys: dict[str, Any], run_dir: Path, location: Any, model_class: type, resume: bool,
              record_test: bool, progress: bool, verbose: bool) -> dict[str, Any]:
    from logging import getLogger

    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    from rec_es import datasets
    from rec_es.compat import recbole_config
    from rec_es.trainer import EarlyStoppingTrainer  # importing it applies compat.apply_recbole_fixes

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
                                   record_test=record_test, run_config=cfg.to_dict(), epoch_progress=progress)
    if resume:
        trainer.load_resume(run_dir)
    trainer.fit(train_data, valid_data, verbose=verbose, saved=True, show_progress=bool(config["show_progress"]),
                test_data=test_data if record_test else None)
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=bool(config["show_progress"]))
    trainer.write_summary(test_result)
    return trainer.summary(test_result)


def _print_result(summary: dict[str, Any]) -> None:
    test = summary.get("test_result") or {}
    print(summary.get("message"))
    if summary.get("best_epoch") is None:
        print(f"no evaluation ran in {summary.get('epochs_trained')} epochs; test result of the final weights:")
    else:
        print(f"best epoch {summary.get('best_epoch')} of {summary.get('epochs_trained')} trained "
              f"({summary.get('wall_seconds', 0.0):.0f} s); test result at the best epoch:")
    print("  " + "  ".join(f"{k}: {v:.4f}" for k, v in test.items()))
    print(f"run directory: {summary.get('run_dir')}  (why it stopped, with a plot: rec-es explain {summary.get('run_dir')})")


if __name__ == "__main__":
    raise SystemExit(main())
