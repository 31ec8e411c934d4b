"""Text inputs: the one reader for every file rec_es reads as text (property files, policy files, traces, logs).

A path that is not a regular file, a file that cannot be opened, one larger than the reader allows, or bytes
that are not UTF-8 all end in one ``TextInputError`` (a ``ConfigError``, so exit status 2 in every command) that
names the file, where the bad byte is, and what the file was expected to hold, never in a ``UnicodeDecodeError``.
Stdlib only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from rec_es.policy.errors import ConfigError


class TextInputError(ConfigError):
    """A text input cannot be read: missing, not a regular file, unreadable, too large, or not UTF-8."""


def _open_error(path: Path, what: str, exc: OSError) -> TextInputError:
    reason = exc.strerror or type(exc).__name__
    return TextInputError(f"cannot read the file ({reason}); expected {what}", source=str(path))


def check_readable(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path if it names an existing regular file; else ``TextInputError`` saying what it is."""
    p = Path(path)
    if not p.exists():
        raise TextInputError(f"file not found (looked at {p.resolve()}); expected {what}", source=str(path))
    if not p.is_file():
        kind = "a directory" if p.is_dir() else "not a regular file (a device, pipe or socket)"
        raise TextInputError(f"is {kind}; expected {what}", source=str(path))
    return p


def decode(data: bytes, path: str | os.PathLike[str], what: str, first_line: int = 1) -> str:
    """``data`` decoded as strict UTF-8 (a leading BOM dropped); ``TextInputError`` naming line and column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = first_line + data.count(b"\n", 0, start)
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise TextInputError(
            f"line {line}, column {column}: byte 0x{data[start]:02x} is not UTF-8 text; expected {what}. "
            "Save the file as UTF-8 (rec_es reads text files as UTF-8 only)", source=str(path)) from None
    return text[1:] if text.startswith("\ufeff") and first_line == 1 else text


def read_text(path: str | os.PathLike[str], what: str, *, max_bytes: int | None = None,
              lenient: bool = False) -> str:
    """The whole file as text; ``what`` says what it should hold (it ends every error message).

    ``max_bytes`` refuses a larger file (default: no limit). ``lenient`` replaces bytes that are not UTF-8
    instead of refusing them (for RecBole log files, which may hold a terminal's bytes); default False.
    """
    p = check_readable(path, what)
    try:
        size = p.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise TextInputError(f"is {size:,} bytes, more than the {max_bytes:,} rec_es reads; expected {what}",
                                 source=str(path))
        with open(p, "rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except OSError as exc:
        raise _open_error(p, what, exc) from None
    if lenient:
        return data.decode("utf-8", errors="replace")
    return decode(data, path, what)


def iter_lines(path: str | os.PathLike[str], what: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for each line of the file, 1-based, each with its ``\\n`` (the last may lack it).

    Streams the file; a line that is not UTF-8 raises ``TextInputError`` naming it.
    """
    p = check_readable(path, what)
    try:
        fh = open(p, "rb")
    except OSError as exc:
        raise _open_error(p, what, exc) from None
    with fh:
        for no, raw in enumerate(fh, start=1):
            yield no, decode(raw, path, what, first_line=no)
