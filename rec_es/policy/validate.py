"""Composable validators with one message template, in the attrs style. Stdlib only (the pure core uses it).

Every error reads ``FILE: KEY: [PROBLEM; ]allowed: ALLOWED (got GIVEN)``, for example
``policy.yaml: early_stopping.patience: allowed: an integer >= 1 or null (got 0)``. A validator is one small
callable that returns the normalised value or raises ``Invalid``; ``optional()`` and ``and_()`` compose them,
and each carries two descriptions: ``allowed`` for messages and ``doc`` for the type column of the docs::

    >>> optional(integer(1)).doc
    'int >= 1 | null'

``Scope`` binds a file and a key prefix and turns ``Invalid`` into a ``ConfigError``. ``did_you_mean`` is the
one near-key helper and ``is_int`` / ``is_number`` the one int-not-bool check.
"""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from rec_es.policy.errors import ConfigError

#: ``difflib`` ratio a key must reach to be suggested (attrs and difflib's own default).
CUTOFF = 0.6


class _Missing:
    """The value of a key that was not given; shows as ``(got nothing)`` in messages."""

    def __repr__(self) -> str:
        return "nothing"


MISSING: Any = _Missing()


class Invalid(ValueError):
    """Raised by a validator: what is allowed, what was given, what is wrong, and (for nested keys) where."""

    def __init__(self, allowed: str, given: Any, problem: str = "", key: str | None = None) -> None:
        super().__init__(allowed)
        self.allowed = allowed
        self.given = given
        self.problem = problem
        self.key = key


def is_int(value: Any) -> bool:
    """An ``int`` and not a ``bool`` (YAML's ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` and not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def did_you_mean(key: str, known: Iterable[str], aliases: Mapping[str, str] | None = None,
                 cutoff: float = CUTOFF) -> str:
    """``" — did you mean 'patience'?"`` for the alias or the nearest known key, else ``""``."""
    if aliases and key in aliases:
        return f" — did you mean '{aliases[key]}'?"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=cutoff)
    return f" — did you mean '{close[0]}'?" if close else ""


def message(key: str | None, allowed: str, given: Any, problem: str = "") -> str:
    """The one template: ``KEY: [PROBLEM; ]allowed: ALLOWED (got GIVEN)`` (without ``KEY: `` when None, for
    reports that name the key on their own)."""
    what = f"{problem}; " if problem else ""
    return f"{'' if key is None else key + ': '}{what}allowed: {allowed} (got {given!r})"


@dataclass(frozen=True)
class Validator:
    """One check: ``allowed`` says what passes (messages), ``doc`` the same for the docs' type column."""

    allowed: str
    doc: str
    convert: Callable[[Any], Any]

    def __call__(self, value: Any) -> Any:
        """The normalised value; raises ``Invalid``."""
        return self.convert(value)

    def describe(self) -> str:
        return self.doc

    def __repr__(self) -> str:
        return f"<validator {self.doc}>"


def custom(allowed: str, doc: str, test: Callable[[Any], bool], convert: Callable[[Any], Any] = lambda v: v) -> Validator:
    """A validator from a predicate: values passing ``test`` are returned through ``convert``."""
    def check(value: Any) -> Any:
        if not test(value):
            raise Invalid(allowed, value)
        return convert(value)

    return Validator(allowed, doc, check)


def boolean() -> Validator:
    return custom("true or false", "bool", lambda v: isinstance(v, bool))


def integer(minimum: int) -> Validator:
    """An int (never a bool) >= ``minimum``."""
    return custom(f"an integer >= {minimum}", f"int >= {minimum}", lambda v: is_int(v) and v >= minimum)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Validator:
    """A finite int or float (never a bool) within the bounds, returned as a float."""
    bounds = _bounds(low, high, low_open, high_open)

    def inside(v: Any) -> bool:
        if not is_number(v) or not math.isfinite(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or not (v >= high if high_open else v > high)

    return custom(f"a number {bounds}" if bounds else "a finite number", f"float {bounds}".rstrip(), inside, float)


def one_of(*options: str, ignore_case: bool = True) -> Validator:
    """One of the strings ``options`` (lower-cased first unless ``ignore_case=False``)."""
    text = " | ".join(options)

    def check(value: Any) -> str:
        folded = value.lower() if isinstance(value, str) and ignore_case else value
        if isinstance(value, bool) and ("on" if value else "off") in options:
            return "on" if value else "off"  # YAML 1.1 reads an unquoted on/off as a boolean
        if folded not in options:
            raise Invalid(text, value)
        return folded

    return Validator(text, text, check)


def optional(inner: Validator) -> Validator:
    """``None`` passes as it is; anything else must pass ``inner``."""
    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return inner(value)
        except Invalid as exc:
            raise Invalid(f"{exc.allowed} or null", exc.given, exc.problem, exc.key) from None

    return Validator(f"{inner.allowed} or null", f"{inner.doc} | null", check)


def and_(*validators: Validator) -> Validator:
    """Every validator in turn, each on the previous one's result (so the first one normalises)."""
    def check(value: Any) -> Any:
        for v in validators:
            value = v(value)
        return value

    return Validator(" and ".join(v.allowed for v in validators), ", ".join(v.doc for v in validators), check)


class Scope:
    """Where values come from: ``source`` (a file name, or None) and a key ``prefix`` such as ``early_stopping.``.

    Every ConfigError it raises names the file, the full key, what is allowed and what was given.
    """

    def __init__(self, source: str | None, prefix: str) -> None:
        self.source = source
        self.prefix = prefix

    def error(self, key: str, allowed: str, given: Any, problem: str = "") -> ConfigError:
        full = f"{self.prefix}{key}"
        return ConfigError(message(full, allowed, given, problem), source=self.source, key=full)

    def check(self, key: str, validator: Validator | Callable[[Any], Any], value: Any) -> Any:
        """``validator(value)``; an ``Invalid`` becomes the ConfigError for ``key`` (or the key it names)."""
        try:
            return validator(value)
        except Invalid as exc:
            raise self.error(exc.key or key, exc.allowed, exc.given, exc.problem) from None

    def unknown_keys(self, given: Iterable[Any], known: Iterable[str], aliases: Mapping[str, str] | None = None,
                     listed: Iterable[str] | None = None, suggest_from: Iterable[str] | None = None) -> None:
        """Refuse the first key of ``given`` not in ``known``, suggesting an alias or the nearest of
        ``suggest_from`` (default ``known``); the message offers ``listed`` (default ``known``)."""
        known = list(known)
        for key in given:
            if key not in known:
                near = did_you_mean(str(key), known if suggest_from is None else suggest_from, aliases)
                offered = ", ".join(known if listed is None else listed)
                raise self.error(str(key), f"the keys {offered}", key, f"unknown key{near}")

    def mapping(self, value: Any, what: str) -> Mapping[str, Any]:
        """``value`` if it is a mapping, else ``KEY: must be a mapping of WHAT (got VALUE)``."""
        if not isinstance(value, Mapping):
            name = self.prefix.rstrip(".")
            raise ConfigError(f"{name}: must be a mapping of {what} (got {value!r})", source=self.source, key=name)
        return value


_DERIVED: Any = object()


@dataclass(frozen=True)
class KeySpec:
    """One key of a settings mapping: its validator, its default (as written in a file; ``MISSING`` makes it
    required where it applies) and its meaning, which with ``type`` (default: the validator's ``doc``) writes the
    docs table row. ``only_with=("decay", ("step",))``: the key applies only when an earlier key has one of
    those values; given otherwise it is refused. ``bind`` builds the validator from the keys parsed before it.
    ``dump`` turns a parsed value back into plain data; ``inapplicable`` is the value held where it does not
    apply (default: the validated default)."""

    name: str
    validator: Validator
    default: Any
    meaning: str
    type: str = ""
    only_with: tuple[str, tuple[str, ...]] | None = None
    bind: Callable[[Mapping[str, Any]], Validator] | None = None
    dump: Callable[[Any], Any] | None = None
    inapplicable: Any = _DERIVED

    def __post_init__(self) -> None:
        if not self.type:
            object.__setattr__(self, "type", self.validator.doc)

    def applies(self, parsed: Mapping[str, Any]) -> bool:
        """Does this key apply, given the values parsed before it?"""
        return self.only_with is None or parsed.get(self.only_with[0]) in self.only_with[1]

    def fallback(self) -> Any:
        """The value held where the key does not apply (or is not parsed)."""
        if self.inapplicable is not _DERIVED:
            return self.inapplicable
        return None if self.default is MISSING else self.validator(self.default)

    def plain(self, value: Any) -> Any:
        """The parsed ``value`` as plain data (``dump``, or the value itself)."""
        return value if self.dump is None else self.dump(value)


def parse_keys(scope: Scope, mapping: Mapping[str, Any], specs: Iterable[KeySpec]) -> dict[str, Any]:
    """Validate ``mapping`` key by key in the order of ``specs``; return the keys that apply, defaults filled.

    Unknown keys are not checked here (``Scope.unknown_keys``).
    """
    parsed: dict[str, Any] = {}
    for spec in specs:
        given = spec.name in mapping
        if not spec.applies(parsed):
            if given:
                on, values = spec.only_with  # type: ignore[misc]
                raise scope.error(spec.name, f"only with {on}: {' | '.join(values)}", mapping[spec.name],
                                  f"{spec.name} is set but {on} is '{parsed.get(on)}'")
            continue
        value = mapping[spec.name] if given else spec.default
        validator = spec.validator if spec.bind is None else spec.bind(parsed)
        if value is MISSING:
            on = spec.only_with[0] if spec.only_with else ""
            raise scope.error(spec.name, validator.allowed, MISSING, f"required by {on}: {parsed.get(on)}"
                              if on else "required")
        parsed[spec.name] = scope.check(spec.name, validator, value)
    return parsed


def table(specs: Iterable[KeySpec]) -> str:
    """The docs' reference table (markdown): key, type, default, meaning; ``|`` in cells escaped."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    def default(value: Any) -> str:
        if value is MISSING:
            return "required"
        if value is None:
            return "`null`"
        return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"

    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {cell(s.type)} | {default(s.default)} | {cell(s.meaning)} |" for s in specs]
    return "\n".join(rows)


def within(key: str, validator: Validator, value: Any) -> Any:
    """``validator(value)`` for a nested key (``mapping.factor``): its error names that key."""
    try:
        return validator(value)
    except Invalid as exc:
        raise Invalid(exc.allowed, exc.given, exc.problem, exc.key or key) from None
