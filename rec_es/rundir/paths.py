"""Output paths: checked before any work starts (``run --output-dir``, ``compare --output``/``--cache-dir``,
``explain --plot``), and run files written atomically without following a planted link (``atomic_write``).

A path that names a file where a directory is wanted, or lies under a file, a directory that does not exist
where it is not created, one that cannot be written, or a plot format matplotlib cannot write: one
``ConfigError`` naming the option and the path (exit status 2), before any training or reading starts, so a
long comparison never ends in a traceback at its last step. Stdlib only.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from rec_es.policy.errors import ConfigError

#: File extensions ``matplotlib.figure.Figure.savefig`` writes (with the Agg backend and Pillow).
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or the closest of its parents that exists (or is a dangling link)."""
    p = path.absolute()
    while not p.exists() and not p.is_symlink() and p != p.parent:
        p = p.parent
    return p


def _writable_dir(directory: Path) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)


def check_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """A directory that will be created with its parents (or written into if it exists); ConfigError if it cannot."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise ConfigError(f"{p} is an existing file, not a directory; pick a directory path", source=option)
        if not _writable_dir(p):
            raise ConfigError(f"{p}: the directory is not writable", source=option)
        return p
    base = _nearest_existing(p)
    if not base.is_dir():
        raise ConfigError(f"cannot create directory {p}: {base} is a file, not a directory", source=option)
    if not _writable_dir(base):
        raise ConfigError(f"cannot create directory {p}: {base} is not writable", source=option)
    return p


def check_output_file(path: str | os.PathLike[str], option: str,
                      suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> Path:
    """A file to write in an existing, writable directory, with one of ``suffixes`` (none: the first is added).

    An existing file of that kind is replaced; anything else at the path (a directory, a run's trace) is refused.
    Returns the path that will be written.
    """
    p = Path(path)
    if not p.suffix:
        p = p.with_name(p.name + suffixes[0])
    if p.suffix.lower() not in suffixes:
        raise ConfigError(f"{p}: cannot write a {p.suffix} file; give it one of the extensions "
                          f"{', '.join(suffixes)}", source=option)
    if (p.exists() or p.is_symlink()) and not p.is_file():
        raise ConfigError(f"{p} exists and is not a file; pick a file path", source=option)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise ConfigError(f"{p}: directory {parent} does not exist; create it first or pick another path",
                          source=option)
    if not parent.is_dir():
        raise ConfigError(f"{p}: {parent} is a file, not a directory", source=option)
    if not _writable_dir(parent) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{p}: cannot write there (permission denied)", source=option)
    return p


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically: a new temporary file beside it (created exclusively, so never a
    file or link planted under that name), fsync'ed, then renamed over ``path`` (a link there is replaced, its
    target untouched). Permissions follow the umask."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def write_config(run_dir: Path, mapping: dict[str, Any]) -> None:
    """``RUN/config.yaml`` written atomically (``atomic_write``: a planted link is never followed)."""
    atomic_write(run_dir / "config.yaml", yaml.safe_dump(mapping, sort_keys=False).encode("utf-8"))
