"""Exceptions raised by rec_es. Stdlib only: the pure policy core imports this module."""
from __future__ import annotations

import reprlib

#: Longest message a ConfigError carries: a value printed into it is cut, never the whole of a huge value.
MAX_MESSAGE = 2000
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 120
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 12
_REPR.maxlevel = 4
_REPR.maxlong = 40


def brief(value: object) -> str:
    """``repr(value)`` cut to a readable size (at most 12 items per level, 4 levels, 120-character strings)."""
    return _REPR.repr(value)


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut in the middle to at most about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3):]
    return f"{head} … ({len(text) - len(head) - len(tail):,} characters left out) … {tail}"


class RecEsError(Exception):
    """Base class of every error rec_es raises on purpose."""


class ConfigError(RecEsError, ValueError):
    """A property file, mapping or CLI argument is invalid; raised before any training starts.

    The message names the source (file or mapping), the key, the allowed values and what was given.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.key = key
        self.message = bounded(message)  # without the source, for callers that name it themselves
        super().__init__(f"{source}: {self.message}" if source else self.message)


class StateError(RecEsError, ValueError):
    """A saved state (policy state, checkpoint, trace) cannot be loaded as it is."""


class MetricMissingError(RecEsError, KeyError):
    """An evaluation result lacks a metric the monitor needs."""

    def __str__(self) -> str:  # KeyError would quote the whole sentence
        return str(self.args[0]) if self.args else ""


def report(command: str, exc: RecEsError) -> int:
    """Print ``exc`` as ``<command>: error: ...`` on stderr; the exit status: 2 for bad input, 1 otherwise."""
    import sys

    print(f"{command}: error: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, ConfigError) else 1
