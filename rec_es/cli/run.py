"""``rec-es run`` / ``scripts/run_gru4rec.py``: train a RecBole model with a rec_es policy into a run directory.

    rec-es run --config properties/gru4rec_ml100k.yaml [more.yaml ...] [--set key=value ...]
               [--output-dir DIR] [--resume RUN_DIR] [--record-test] [--no-progress]
    rec-es run --from-recbole CHECKPOINT [--config POLICY.yaml] [--set epochs=N] [--output-dir DIR]

Files merge RecBole-style (later overrides earlier); ``--set`` values are read as YAML. Everything is
validated (config, dataset, model, run directory) before the first epoch. The run directory
(default ``runs/<Model>-<dataset>-<YYYYmmdd-HHMMSS>``) is never overwritten; ``--resume RUN_DIR``
continues a killed or stopped run from ``RUN_DIR/last.pth`` with ``RUN_DIR/config.yaml`` (plus any
``--config``/``--set`` given, e.g. a new policy).

This module is the command line only (arguments, validation before training, the printed result); the
training API it calls is ``rec_es.training.run`` (``train``, ``prepare_run_dir``).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from rec_es.policy.errors import ConfigError, RecEsError, report
from rec_es.config.properties import load_config, parse_set_args
from rec_es.config.lint import PICKLE_PATH_KEYS, PICKLE_WARNING_KEYS, lint_files, pickle_cache_warnings
from rec_es.training.resume_check import check_run_dir
from rec_es.training.run import RunFailed, RunInterrupted, prepare_run_dir, train


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
    p.add_argument("--from-recbole", type=Path, default=None, metavar="CHECKPOINT",
                   help="start a run directory from a stock RecBole checkpoint (its config, weights, optimizer and "
                        "epoch; read without running code from it) and continue under --config's policy")
    p.add_argument("--record-test", action="store_true", help="also evaluate the test set at every evaluation")
    p.add_argument("--ranked", type=int, default=0, metavar="K",
                   help="keep each validation user's top K items at every evaluation (RUN/ranked/, 4 K bytes per user "
                        "and evaluation) and their churn, coverage, overlap and gini in the trace (default 0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over epochs")
    p.add_argument("--quiet", action="store_true", help="no per-epoch log lines (the result is still printed)")
    d = p.add_argument_group("several processes (RecBole's distributed data parallel; docs/distributed.md)")
    d.add_argument("--nproc", type=int, default=1, metavar="N", help="processes on this machine (default 1)")
    d.add_argument("--world-size", type=int, default=-1, metavar="W",
                   help="processes on all machines together (default -1: --nproc)")
    d.add_argument("--ip", default="localhost", help="address of the machine running rank 0 (default localhost)")
    d.add_argument("--port", type=int, default=5678, help="rendezvous port on --ip (default 5678, RecBole's)")
    d.add_argument("--group-offset", type=int, default=0, metavar="O",
                   help="global rank of this machine's first process (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input, 1 training failed or another rec_es error, 130
    interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except RunInterrupted as exc:
        print(f"rec-es run: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("rec-es run: interrupted; the run directory keeps every finished epoch - continue it with "
              "rec-es run --resume RUN_DIR", file=sys.stderr)
        return 130
    except RecEsError as exc:  # ConfigError: bad input, exit 2; RunFailed: what ended training comes first
        if isinstance(exc, RunFailed) and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return report("rec-es run", exc)
    _print_result(summary)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Validate everything, then train; returns the summary written to ``RUN/summary.json``."""
    from rec_es.training.distributed import LaunchSpec, check_launch, check_resume_launch

    launch = LaunchSpec(nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
                        group_offset=args.group_offset)
    check_launch(launch, {})  # the arguments alone, before any file is read
    if args.resume is not None:
        check_resume_launch(launch)
    if launch.total > 1 and args.from_recbole is not None:
        raise ConfigError("--from-recbole with --nproc is not supported yet (docs/distributed.md)",
                          source="--from-recbole")
    overrides = parse_set_args(args.overrides)
    if args.from_recbole is not None:
        return _from_recbole(args, overrides)
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
    if launch.total > 1:
        check_launch(launch, cfg.recbole, cfg.sources)
    if run_dir is None:
        run_dir = prepare_run_dir(args.output_dir, cfg.recbole)
    # on resume, train() checks the whole run directory against cfg before it writes anything
    return train(cfg, run_dir, resume=args.resume is not None, record_test=args.record_test,
                 progress=not args.no_progress, verbose=not args.quiet, launch=launch, ranked_k=args.ranked)


def _from_recbole(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """``--from-recbole CHECKPOINT``: the checkpoint read and its config rebuilt and checked, then train."""
    from rec_es.training.from_recbole import config_from, read_origin

    if args.resume is not None:
        raise ConfigError("--from-recbole starts a new run directory; it does not go with --resume",
                          source="--from-recbole")
    origin = read_origin(args.from_recbole)
    cfg = config_from(origin, args.config, overrides)
    _warn_pickle_caches(cfg)
    run_dir = prepare_run_dir(args.output_dir, cfg.recbole)
    print(f"rec-es run: continuing {origin.model} on {origin.dataset} from {origin.path} (RecBole's best epoch "
          f"{origin.epoch}: its weights and optimizer; RNG and data order start afresh)", file=sys.stderr)
    return train(cfg, run_dir, record_test=args.record_test, progress=not args.no_progress, verbose=not args.quiet,
                 origin=origin, ranked_k=args.ranked)


def lint_before_training(files: list[str], overrides: dict[str, Any]) -> None:
    """Run ``rec-es check`` on the files with the ``--set`` values: its errors (e.g. a misspelt key RecBole would
    silently ignore) stop the run before training; its warnings are printed, whether a value came from a file or
    from ``--set``."""
    # run() prints the pickle-cache warnings itself, for the merged config including resumes
    findings = [f for f in lint_files(files, overrides) if f.key.partition(".")[0] not in PICKLE_WARNING_KEYS]
    for f in findings:
        if f.level == "warning":
            print(f"rec-es run: {f}", file=sys.stderr)
    errors = [str(f) for f in findings if f.level == "error"]
    if errors:
        raise ConfigError("the property files have errors (rec-es check " + " ".join(files) + (" with the same --set "
                          "values" if overrides else "") + " lists them):\n  "
                          + "\n  ".join(errors))


def _warn_pickle_caches(cfg: Any) -> None:
    for key, message in pickle_cache_warnings(cfg.recbole):
        print(f"rec-es run: warning: {cfg.source_of(key)}: {key}: {message}", file=sys.stderr)


def _refuse_recorded_pickle_paths(cfg: Any, recorded: str) -> None:
    """A resumed run's own config.yaml may have come from someone else: a pickle path recorded there is
    refused (RecBole would ``pickle.load`` it); the user can name it again on this command line."""
    for key in PICKLE_PATH_KEYS:
        if cfg.recbole.get(key) is not None and cfg.sources.get(key) == recorded:
            raise ConfigError(f"{key}: {cfg.recbole[key]!r} is recorded in the run directory, and RecBole would "
                              "load it with pickle.load (which runs any code stored in it); if it is your own file, "
                              f"pass it again with --set {key}=PATH, else --set {key}=null", source=recorded, key=key)


def _check_resumable(run_dir: Path) -> None:
    check_run_dir(run_dir)


def _print_result(summary: dict[str, Any]) -> None:
    if not summary:  # a machine without rank 0 (--group-offset > 0): rank 0's machine holds the run directory
        print("this machine's ranks finished; the run directory and its summary are on the machine of rank 0 (--ip)")
        return
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
