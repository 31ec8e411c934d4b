"""The trace cache: finished run directories stored under a key hashed from everything that affects training."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from rec_es.config.properties import RunConfig
from rec_es.policy.errors import RecEsError, StateError
from rec_es.rundir.textio import TextInputError, read_text
from rec_es.rundir.trace import read_trace

#: rec_es modules whose source decides how a recording run trains (hashed into every cache key).
TRAINING_MODULES = ("training/trainer.py", "training/resume.py", "training/run.py", "training/preflight.py",
                    "policy/schedule.py", "rundir/checkpoint.py", "training/compat.py", "config/datasets.py",
                    "rundir/trace.py", "config/properties.py", "rundir/per_user.py", "training/capture.py",
                    "policy/controller.py")
#: The rec_es package directory (the root of TRAINING_MODULES).
PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: RecBole keys that change logging or paths only, left out of cache keys.
NON_TRAINING_KEYS = frozenset({"state", "show_progress", "checkpoint_dir", "log_wandb", "wandb_project",
                               "use_gpu", "gpu_id", "save_dataset", "save_dataloaders", "dataset_save_path",
                               "dataloaders_save_path"})
DEFAULT_CACHE = Path(".rec_es_cache") / "traces"
CACHE_META = "cache.json"
CACHE_FILES = ("trace.jsonl", "summary.json")
CACHE_FORMAT = "rec_es.trace_cache"
CACHE_VERSION = 1


class CacheError(StateError):
    """A cache entry exists but cannot be trusted (edited, truncated, or recorded for another key)."""


@functools.lru_cache(maxsize=None)
def _cached_hash(root: str, modules: tuple[str, ...]) -> str:
    """Hashed once per process: the key describes the code this process runs, even if files change meanwhile."""
    return source_hash(Path(root), modules)


def source_hash(package_dir: Path | None = None, modules: Iterable[str] = TRAINING_MODULES) -> str:
    """SHA-256 over the source of rec_es's training modules; a missing module is an error, never hashed as empty."""
    root = package_dir or PACKAGE_DIR
    names = tuple(modules)
    h = hashlib.sha256()
    for name in names:
        p = root / name
        if not p.is_file():
            raise RecEsError(f"{p}: missing, but the trace cache key hashes the source of {name} (one of "
                             f"{', '.join(names)} in {root}); a key without it would not change when that code "
                             "does. Reinstall rec_es, or update TRAINING_MODULES in rec_es/compare/cache.py if the "
                             "module was renamed")
        h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("rec_es", "recbole", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def cache_fields(cfg: RunConfig, seed: int, epochs: int, *, live: bool, record_test: bool) -> dict[str, Any]:
    """Everything that decides what a run records: the cache key is the SHA-256 of this mapping."""
    recbole = {k: v for k, v in sorted(cfg.recbole.items()) if k not in NON_TRAINING_KEYS}
    recbole["seed"] = seed
    recbole["epochs"] = epochs
    out = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "kind": "live" if live else "record",
           "recbole": recbole, "lr_schedule": cfg.lr_schedule, "record_test": record_test,
           "versions": _versions(), "source": _cached_hash(str(PACKAGE_DIR), TRAINING_MODULES)}
    if live:
        out["early_stopping"] = cfg.early_stopping
        root = PACKAGE_DIR / "policy"
        out["policy_source"] = _cached_hash(str(root), tuple(sorted(p.relative_to(root).as_posix()
                                                                    for p in root.rglob("*.py"))))
    return out


def cache_key(fields: Mapping[str, Any]) -> str:
    """The cache key (hex SHA-256, 24 chars) of ``cache_fields`` output."""
    blob = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TraceCache:
    """Run directories (trace.jsonl + summary.json + cache.json) stored under ``root/<key>/``."""

    def __init__(self, root: str | os.PathLike[str], refresh: bool = False, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.refresh = refresh
        self.log = log

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str, fields: Mapping[str, Any]) -> Path | None:
        """The verified entry for ``key``, or None when absent (or corrupt and ``refresh`` is on).

        Raises ``CacheError`` naming the file and what does not match when an entry is corrupt.
        """
        d = self.entry(key)
        if not d.exists():
            return None
        try:
            self.verify(d, key, fields)
        except CacheError as exc:
            if not self.refresh:
                raise
            aside = d.with_name(f"{d.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            d.rename(aside)
            self.log(f"re-recording: {exc} (moved to {aside})")
            return None
        return d

    def verify(self, d: Path, key: str, fields: Mapping[str, Any]) -> None:
        """Check the sidecar's key and fields, each file's SHA-256, and that the trace reads as a finished run."""
        hint = f"delete {d} or rerun with --refresh-cache to record it again"
        meta_path = d / CACHE_META
        if not meta_path.exists():
            raise CacheError(f"cache entry {d} has no {CACHE_META} (an interrupted or foreign directory); {hint}")
        try:
            meta = json.loads(read_text(meta_path, "a trace cache entry's cache.json (JSON, UTF-8)"))
        except TextInputError as exc:
            raise CacheError(f"{meta_path}: {exc.message}; {hint}") from None
        except (json.JSONDecodeError, RecursionError) as exc:
            raise CacheError(f"{meta_path}: unreadable ({exc}); {hint}") from None
        if not isinstance(meta, dict) or meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
            got = meta.get("key") if isinstance(meta, dict) else None
            raise CacheError(f"{meta_path}: records key {got!r}, expected {key!r}; {hint}")
        if json.loads(json.dumps(meta.get("fields"), default=str)) != json.loads(json.dumps(fields, default=str)):
            raise CacheError(f"{meta_path}: its fields do not hash to key {key}; {hint}")
        sums = meta.get("sha256") or {}
        for name in CACHE_FILES:
            p = d / name
            if not p.is_file():
                raise CacheError(f"{p}: missing from the cache entry; {hint}")
            actual = file_sha256(p)
            if sums.get(name) != actual:
                raise CacheError(f"{p}: content changed since it was recorded (sha256 {actual[:12]}…, "
                                 f"cache.json says {str(sums.get(name))[:12]}…); {hint}")
        try:
            trace = read_trace(d / "trace.jsonl")
        except (StateError, TextInputError) as exc:
            raise CacheError(f"{exc}; {hint}") from None
        if not trace.complete:
            raise CacheError(f"{d / 'trace.jsonl'}: has no footer (the run did not finish); {hint}")

    def store(self, run_dir: Path, key: str, fields: Mapping[str, Any]) -> Path:
        """Move a finished run directory into the cache under ``key`` (checkpoints dropped, sidecar added)."""
        for name in ("best.pth", "last.pth"):
            (run_dir / name).unlink(missing_ok=True)
        meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key, "fields": fields,
                "sha256": {name: file_sha256(run_dir / name) for name in CACHE_FILES},
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (run_dir / CACHE_META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        target = self.entry(key)
        if target.exists():
            shutil.rmtree(target)
        os.replace(run_dir, target)
        return target

    def scratch(self, key: str) -> Path:
        """A fresh, empty directory to train into before ``store``."""
        d = self.root / f".tmp-{key}-{os.getpid()}"
        if d.exists():
            shutil.rmtree(d)
        self.root.mkdir(parents=True, exist_ok=True)
        return d
