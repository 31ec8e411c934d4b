"""Exceptions raised by rec_es. Stdlib only: the pure policy core imports this module."""
from __future__ import annotations


class RecEsError(Exception):
    """Base class of every error rec_es raises on purpose."""


class ConfigError(RecEsError, ValueError):
    """A property file, mapping or CLI argument is invalid; raised before any training starts.

    The message names the source (file or mapping), the key, the allowed values and what was given.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {message}" if source else message)


class StateError(RecEsError, ValueError):
    """A saved state (policy state, checkpoint, trace) cannot be loaded as it is."""


class MetricMissingError(RecEsError, KeyError):
    """An evaluation result lacks a metric the monitor needs."""

    def __str__(self) -> str:  # KeyError would quote the whole sentence
        return str(self.args[0]) if self.args else ""
