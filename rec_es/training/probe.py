"""Continue a stopped run N more epochs with stopping disabled, into a new directory (``explain --probe``).

A stock RecBole log continues from the checkpoint RecBole saved (``check_stock_probe``: its best epoch, through
``rec_es.training.from_recbole``); a rec_es run directory as follows.

``check_probe`` validates everything before a byte is written: N, the run directory and its ``last.pth`` as
``--resume`` checks them (``rec_es.training.resume_check.check_resume``, read-only: trace digests, sidecars, the
states), the probe directory (new, or an empty directory, outside the run), the dataset where the config says
(never downloaded), the model. ``run_probe`` then copies the files a resume reads (``config.yaml``, ``last.pth``,
``trace.jsonl``, ``per_user/``) into the probe directory and resumes the copy there, exactly as ``rec-es run
--resume`` would, under the run's own config with ``early_stopping.enabled: false`` and ``epochs`` = the epochs
trained + N. The original run directory is only read, so every file in it stays byte-identical. The probe
directory is a run directory like any other: its trace holds the original evaluations and the continuation's
(``resumed_with_changes`` names the original policy), so it can be explained, replayed and compared.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rec_es.policy.errors import ConfigError
from rec_es.training.resume_check import RESUME_FILES, ResumePlan, check_config, check_resume, check_sidecars

#: what ``--probe`` names in its errors
OPTION = "--probe"


@dataclass(frozen=True)
class ProbePlan:
    """A checked probe: the run, its resume plan (a rec_es run) or stock checkpoint (a stock log: ``origin``), N,
    the probe directory and the config it trains with."""

    run_dir: Path
    plan: ResumePlan | None
    n: int
    probe_dir: Path
    cfg: Any
    origin: Any = None

    @property
    def stop_epoch(self) -> int:
        """The epoch the probe continues after: ``last.pth``'s, or the stock checkpoint's (RecBole's best)."""
        return int(self.origin.epoch if self.origin is not None else self.plan.checkpoint["epoch"])  # type: ignore

    @property
    def epochs(self) -> int:
        """The probe's ``epochs`` budget: the epochs trained + N."""
        return self.stop_epoch + 1 + self.n


def default_probe_dir(run_dir: Path, n: int) -> Path:
    """``<run>-probe<N>`` beside the run directory."""
    return run_dir.parent / f"{run_dir.name}-probe{n}"


def check_epochs(n: Any) -> int:
    """N as an integer >= 1; ConfigError naming ``--probe`` otherwise."""
    if isinstance(n, str):
        try:
            n = int(n.strip(), 10)
        except ValueError:
            raise ConfigError(f"must be an integer number of epochs >= 1, e.g. --probe 20 (got {n!r})",
                              source=OPTION) from None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"must be an integer number of epochs >= 1, e.g. --probe 20 (got {n!r})", source=OPTION)
    return n


def check_probe(run_dir: str | Path, n: Any, probe_dir: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> ProbePlan:
    """Everything a probe of ``run_dir`` depends on, checked before anything is written (ConfigError, exit 2).

    ``overrides``: ``--set`` values over the run's config.yaml (e.g. ``data_path`` when the data moved); the
    probe itself sets ``epochs`` and ``early_stopping.enabled``."""
    from rec_es.config import datasets
    from rec_es.config.properties import load_config
    from rec_es.training.run import model_and_trainer_class

    n = check_epochs(n)
    run = Path(run_dir)
    if run.is_file() and run.name == "trace.jsonl":
        run = run.parent
    missing = [name for name in RESUME_FILES if not (run / name).is_file()]
    if not run.is_dir() or missing:
        what = (f"{run} is not a run directory" if not run.is_dir() else
                f"{run} has no {', '.join(missing)}")
        raise ConfigError(f"{what}: a probe continues a run from its last checkpoint (last.pth), which rec-es run "
                          "writes beside config.yaml and trace.jsonl at every epoch; a run directory without it "
                          "(a copied trace, an archived run) can be explained but not continued", source=OPTION)
    user = dict(overrides or {})
    for key in ("epochs", "early_stopping.enabled"):
        if key in user:
            raise ConfigError(f"--set {key} is the probe's own (epochs: the epochs trained + N; stopping off); "
                              "leave it out", source="--set", key=key)
    plan = check_resume(run, None, writable=False)
    files = [str(run / "config.yaml")]
    epochs = int(plan.checkpoint["epoch"]) + 1 + n
    cfg = load_config(files, {**user, "early_stopping.enabled": False, "epochs": epochs})
    _refuse_recorded_pickle_paths(cfg, files[0])
    check_config(plan, cfg)
    check_sidecars(plan, cfg)
    target = Path(probe_dir) if probe_dir is not None else default_probe_dir(run, n)
    _check_probe_dir(target, run, explicit=probe_dir is not None)
    datasets.resolve(cfg.recbole, cfg.sources, download_missing=False)
    model_and_trainer_class(cfg.recbole, cfg.sources)
    return ProbePlan(run_dir=run, plan=plan, n=n, probe_dir=target, cfg=cfg)


def check_stock_probe(log_path: str | Path, n: Any, *, model: str | None, dataset: str | None,
                      saved_epoch: int | None, named: str | None, monitor: str, checkpoint: str | Path | None = None,
                      probe_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ProbePlan:
    """A probe of a stock RecBole log, checked before anything is written (ConfigError, exit 2): the checkpoint
    (``checkpoint``, else ``named``: the path of the log's last "Saving current" line, looked up as written, from
    the working directory and from the directory RecBole ran in) read through the restricted loader, of the log's
    model and dataset and of the epoch it last saved (``saved_epoch``); the probe directory; the data. The probe
    trains from that epoch with stopping off, monitoring ``monitor``."""
    from rec_es.config import datasets
    from rec_es.training.from_recbole import config_from, read_origin

    n = check_epochs(n)
    log = Path(log_path)
    path = Path(checkpoint) if checkpoint is not None else named_checkpoint(log, named, saved_epoch)
    origin = read_origin(path)
    for key, want in (("model", model), ("dataset", dataset)):
        if want is not None and getattr(origin, key) != want:
            raise ConfigError(f"the checkpoint holds {key} {getattr(origin, key)!r}, the log {log} trained {want!r}: "
                              "it is another run's; point --checkpoint at this run's file", source=str(path))
    if saved_epoch is not None and origin.epoch != saved_epoch:
        raise ConfigError(f"the checkpoint was saved at epoch {origin.epoch}, but the log {log} last saved at epoch "
                          f"{saved_epoch}: it is another run's (or was overwritten by a later one); point "
                          "--checkpoint at this run's file", source=str(path))
    user = dict(overrides or {})
    for key in ("epochs", "early_stopping"):
        if any(k == key or k.startswith(key + ".") for k in user):
            raise ConfigError(f"--set {key} is the probe's own; leave it out", source="--set", key=key)
    cfg = config_from(origin, (), {**user, "early_stopping": {"enabled": False, "monitor": monitor},
                                   "epochs": origin.epoch + 1 + n})
    target = Path(probe_dir) if probe_dir is not None else log.with_name(f"{log.stem}-probe{n}")
    _check_probe_dir(target, log, explicit=probe_dir is not None)
    datasets.resolve(cfg.recbole, cfg.sources, download_missing=False)
    return ProbePlan(run_dir=log, plan=None, n=n, probe_dir=target, cfg=cfg, origin=origin)


def named_checkpoint(log: Path, named: str | None, saved_epoch: int | None) -> Path:
    """The checkpoint file the log's "Saving current" line names, wherever it is found first: as written, from the
    working directory, from where RecBole ran (``<there>/log/<Model>/<file>.log``), beside the log. ConfigError
    (exit 2) when the log names none (``saved=False``) or the file is in none of those places."""
    if named is None:
        raise ConfigError(f"{log} names no checkpoint: RecBole wrote no 'Saving current' line, so the run was not "
                          "saved (run_recbole(..., saved=False), or its log level hid the line) and there is nothing "
                          "to continue from; give the file with --checkpoint FILE if it exists", source="--probe")
    p = Path(named)
    ran_in = log.resolve().parent.parent.parent  # RecBole writes <where it ran>/log/<Model>/<file>.log
    places = [p] if p.is_absolute() else list(dict.fromkeys([p, ran_in / p, log.parent / p]))
    for place in places:
        if place.is_file():
            return place
    raise ConfigError(f"the checkpoint {log} names (its last 'Saving current' line, epoch {saved_epoch}) is not "
                      f"there: looked at {', '.join(map(str, places))}; give it with --checkpoint FILE",
                      source="--probe")


def _check_probe_dir(target: Path, run: Path, explicit: bool) -> None:
    from rec_es.rundir.paths import check_output_dir

    option = "--probe-dir"
    if run.is_dir() and (target.resolve() == run.resolve() or run.resolve() in target.resolve().parents):
        raise ConfigError(f"{target} is inside the run directory {run}, which a probe leaves as it is; pick a "
                          "directory outside it", source=option)
    if (target.exists() or target.is_symlink()) and (not target.is_dir() or any(target.iterdir())):
        hint = "" if explicit else " (the default for --probe, beside the run)"
        raise ConfigError(f"probe directory {target}{hint} already exists and is not empty; a probe never writes "
                          f"into another run: remove it or pick another with --probe-dir DIR", source=option)
    check_output_dir(target, option)


def _refuse_recorded_pickle_paths(cfg: Any, recorded: str) -> None:
    """The run's own config.yaml may have come from someone else: a pickle path recorded there is refused (RecBole
    would ``pickle.load`` it), as ``rec-es run --resume`` refuses it; the user can name it again with --set."""
    from rec_es.config.lint import PICKLE_PATH_KEYS

    for key in PICKLE_PATH_KEYS:
        if cfg.recbole.get(key) is not None and cfg.sources.get(key) == recorded:
            raise ConfigError(f"{key}: {cfg.recbole[key]!r} is recorded in the run directory, and RecBole would "
                              "load it with pickle.load (which runs any code stored in it); if it is your own file, "
                              f"pass it again with --set {key}=PATH, else --set {key}=null", source=recorded, key=key)


def copy_resumable(run: Path, target: Path, plan: ResumePlan) -> None:
    """Copy what a resume of ``run`` reads into ``target``: config.yaml, last.pth, trace.jsonl and the per-user
    sidecars the resume continues (``per_user/<split>.json`` and ``.bin``)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in RESUME_FILES:
        shutil.copyfile(run / name, target / name)
    side = run / "per_user"
    if side.is_dir():
        (target / "per_user").mkdir(exist_ok=True)
        for split in ("valid", "test") if plan.record_test else ("valid",):
            for suffix in (".json", ".bin"):
                src = side / f"{split}{suffix}"
                if src.is_file():
                    shutil.copyfile(src, target / "per_user" / src.name)


def run_probe(probe: ProbePlan, *, progress: bool = False, verbose: bool = False,
              per_user_metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """Copy the run into the probe directory and resume it there for N epochs with stopping disabled; the probe
    run's summary (``summary.json``) with ``probe_seconds``: the wall-clock time of the whole continuation."""
    from rec_es.training.run import train

    start = time.time()
    if probe.origin is not None:  # a stock checkpoint: a new run directory that starts from it
        summary = train(probe.cfg, probe.probe_dir, progress=progress, verbose=verbose,
                        per_user_metrics=per_user_metrics, origin=probe.origin)
        return {**summary, "probe_seconds": time.time() - start}
    assert probe.plan is not None
    copy_resumable(probe.run_dir, probe.probe_dir, probe.plan)
    summary = train(probe.cfg, probe.probe_dir, resume=True, record_test=probe.plan.record_test,
                    progress=progress, verbose=verbose, per_user_metrics=per_user_metrics)
    return {**summary, "probe_seconds": time.time() - start}
