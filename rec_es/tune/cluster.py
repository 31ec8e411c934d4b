"""``rec-es compare --ray [ADDRESS]``: training runs as Ray tasks; each run's files come back as bytes.

A task trains into a scratch directory on its worker (no shared file system needed), with ``num_cpus``
CPUs and as many torch threads, and returns the run directory's files (trace, summary, config, per-user
sidecars; checkpoints dropped). The driver writes them into its own scratch directory and stores that in
the trace cache exactly as a local run, so cache keys, verification and the table do not change.
"""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from rec_es.config.properties import RunConfig
from rec_es.policy.errors import ConfigError
from rec_es.tune.workers import with_keys, worker_init, worker_train

#: Files of a run directory a task never sends back (large, and the cache drops them anyway).
SKIPPED = frozenset({"best.pth", "last.pth"})
#: ``--ray`` with no value: start a local instance.
LOCAL = "local"


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail at once with a clear ``ConfigError`` when ``host:port`` (or ``ray://host:port``) does not answer.

    ``ray.init`` itself may retry for a minute before it gives up; ``auto`` and ``local`` are left to Ray.
    """
    if address in (LOCAL, "auto"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray {address!r}: expected local, auto, HOST:PORT (the head's GCS port, 6379 by "
                          "default) or ray://HOST:PORT (Ray Client, 10001)", source="--ray")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"--ray {address}: cannot reach a Ray cluster there ({exc}). Start one with "
                          "`ray start --head` on that machine (same Ray and Python version as here), or use "
                          "--ray local", source="--ray") from None


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """``ray.init`` for ``address`` (None/``local``: a local instance with ``num_cpus``); True if this call started it.

    An instance already running in this process (a test's, or a second compare) is reused, never restarted.
    """
    address = address or LOCAL
    check_reachable(address)
    if address == LOCAL:  # a local instance listens on loopback only (Ray's switch, read when ray is imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return False
    try:
        if address == LOCAL:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"--ray {address}: ray.init failed ({exc})", source="--ray") from None
    return True


def cpus_per_task(n_jobs: int) -> int:
    """CPUs (and torch threads) each task asks for: the cluster's CPUs shared by ``n_jobs`` runs at a time."""
    import ray

    total = int(ray.cluster_resources().get("CPU", 1))
    return max(1, total // max(1, n_jobs))


def run_files(run_dir: Path) -> dict[str, bytes]:
    """Every file under ``run_dir`` (relative POSIX path -> bytes), checkpoints left out."""
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in SKIPPED}


def write_files(files: Mapping[str, bytes], run_dir: Path) -> None:
    """Write a task's files into ``run_dir``; a path escaping it is refused."""
    root = run_dir.resolve()
    for name, data in files.items():
        target = (run_dir / name).resolve()
        if root not in target.parents:
            raise ConfigError(f"a Ray task returned file {name!r}, outside the run directory {run_dir}",
                              source="--ray")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def train_task(train: Callable[[RunConfig, Path, bool], Any] | None, cfg: RunConfig, record_test: bool,
               threads: int) -> dict[str, bytes]:
    """The body of one Ray task: set its threads, train into a scratch directory, return the run's files."""
    worker_init(threads)
    with tempfile.TemporaryDirectory(prefix="rec_es-ray-") as tmp:
        run_dir = Path(tmp) / "run"
        cwd = os.getcwd()
        os.chdir(tmp)  # RecBole writes log/ and log_tensorboard/ relative to the working directory
        try:
            worker_train(train, cfg, run_dir, record_test)
        finally:
            os.chdir(cwd)
        return run_files(run_dir)


def run_ray(cache: Any, todo: list[tuple[Any, str, dict[str, Any], Path]], epochs: int,
            train: Callable[[RunConfig, Path, bool], Any] | None, n_jobs: int, bar: Any) -> dict[tuple[str, int], Path]:
    """Train every job of ``todo`` as a Ray task; store each returned run in ``cache`` as it finishes."""
    import ray


    threads = cpus_per_task(n_jobs)
    remote = ray.remote(num_cpus=threads)(train_task)
    refs = {remote.remote(train, with_keys(cfg, seed=seed, epochs=epochs), not live, threads):
            (name, seed, key, fields, scratch) for (name, cfg, seed, live), key, fields, scratch in todo}
    bar.set_description(f"{len(refs)} Ray tasks, {threads} CPU{'s' * (threads != 1)} each")
    out: dict[tuple[str, int], Path] = {}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            name, seed, key, fields, scratch = refs[done[0]]
            write_files(ray.get(done[0]), scratch)
            out[(name, seed)] = cache.store(scratch, key, fields)
            bar.update(1)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return out
