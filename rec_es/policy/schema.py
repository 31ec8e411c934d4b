"""The ``early_stopping:`` mapping: every key, its type, default and meaning, and its validation.

The keys are declared by the parts in the registry (``rec_es.policy.rules.PARTS``: the core, the smoothers and
each rule); ``KEYS`` collects them in docs order and serves validation, ``PolicySettings`` (a frozen dataclass
with one field per key), the reference table of docs/properties.md and ``rec-es check``. Errors are
``ConfigError`` naming the file, the key, the allowed values and what was given (``rec_es.policy.validate``).

``python scripts/keys_table.py`` prints the reference table; ``--write docs/properties.md`` puts it between the
``<!-- keys-table:start -->`` / ``<!-- keys-table:end -->`` markers; ``--check docs/properties.md`` exits 1 if
it differs.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import Any, Mapping

import rec_es.policy.rules as rules
import rec_es.policy.smoothing as smoothing
from rec_es.policy.core import LEGACY
from rec_es.policy.monitor import Monitor
from rec_es.policy.validate import KeySpec, Scope, parse_keys, table

KEYS: dict[str, KeySpec] = {spec.name: spec for spec in rules.KEYS}
#: the only keys the legacy preset (``LEGACY``, RecBole's own rule) takes, in the order ``to_mapping`` writes them
LEGACY_KEYS = ("preset", "monitor", "mode", "stopping_step", "enabled")
#: Keys users bring from RecBole or other libraries, with what to write instead.
ALIASES = {
    "early_stop": "enabled",
    "stopping_step": "patience (RecBole's stopping_step N equals patience N+1 with ties_improve: true, or use preset: recbole_legacy)",
    "valid_metric": "monitor",
    "valid_metric_bigger": "mode",
    "start_from": "start_from_epoch",
    "min_epochs": "warmup",
}
MARKERS = ("<!-- keys-table:start -->", "<!-- keys-table:end -->")


def legacy_settings(stopping_step: int) -> dict[str, Any]:
    """What the legacy preset sets: RecBole stops on the stopping_step+1-th evaluation not reaching the best
    (ties reach it); a NaN never wins a comparison, so it is a miss."""
    return {"ties_improve": True, "patience": stopping_step + 1, "check_finite": "miss"}


def _mode(self: Any) -> str:
    return self.monitor.mode


def _smoothing_param(self: Any) -> float:
    """The one parameter of the smoother in use (``ema_alpha`` for EMA, ``window`` for a window)."""
    return smoothing.param(self)


def _is_legacy(self: Any) -> bool:
    """Is this RecBole's own rule (the legacy preset, ``rec_es.policy.presets``)?"""
    return self.preset == LEGACY


def _to_mapping(self: Any) -> dict[str, Any]:
    """A plain mapping that ``build_policy`` turns back into these settings (for trace headers)."""
    if self.is_legacy:
        return {k: KEYS[k].plain(getattr(self, k)) for k in LEGACY_KEYS}
    values = {k: getattr(self, k) for k in KEYS}
    return {k: spec.plain(values[k]) for k, spec in KEYS.items() if k != "preset" and spec.applies(values)}


PolicySettings = make_dataclass(
    "PolicySettings",
    [("monitor", Monitor)] + [(k, Any, field(default=spec.fallback())) for k, spec in KEYS.items()
                              if k not in ("monitor", "mode")],
    namespace={"mode": property(_mode), "smoothing_param": property(_smoothing_param),
               "is_legacy": property(_is_legacy), "to_mapping": _to_mapping,
               "__doc__": "Validated, normalised settings of a StoppingPolicy (hyper-parameters only, never state): "
                          "one field per key of KEYS, plus the monitor's ``mode``, the smoother's "
                          "``smoothing_param`` and ``is_legacy`` (RecBole's own rule)."},
    frozen=True,
)
PolicySettings.__module__ = __name__


def parse_settings(mapping: Mapping[str, Any] | None, source: str | None = None,
                   prefix: str = "early_stopping.") -> Any:
    """Validate an ``early_stopping:`` mapping and return normalised ``PolicySettings``; raise ConfigError."""
    scope = Scope(source, prefix)
    mapping = scope.mapping({} if mapping is None else mapping, "settings")
    preset = mapping.get("preset")
    listed = [k for k in KEYS if k != "stopping_step"]
    scope.unknown_keys(mapping, KEYS if preset is not None else listed, ALIASES, listed=listed, suggest_from=KEYS)
    scope.check("preset", KEYS["preset"].validator, preset)
    if preset == LEGACY:
        extra = sorted(set(mapping) - set(LEGACY_KEYS))
        if extra:
            raise scope.error(extra[0], ", ".join(sorted(LEGACY_KEYS)), mapping[extra[0]],
                              "recbole_legacy reproduces RecBole exactly, so it takes no other setting; drop the "
                              "key or the preset")
    parsed = parse_keys(scope, mapping, KEYS.values())
    if preset == LEGACY:
        parsed.update(legacy_settings(parsed["stopping_step"]))
    monitor = Monitor(parsed.pop("monitor"), parsed.pop("mode"))
    return PolicySettings(monitor=monitor, **{k: parsed[k] if k in parsed else spec.fallback()
                                              for k, spec in KEYS.items() if k not in ("monitor", "mode")})


def reference_table() -> str:
    """The property-file reference of docs/properties.md: one row per key, from the registry's declarations."""
    return table(KEYS.values())


def with_table(text: str) -> str:
    """``text`` with the reference table between the markers replaced by the generated one."""
    start, end = MARKERS
    if start not in text or end not in text:
        raise ValueError(f"the markers {start} and {end} are missing")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{reference_table()}\n{end}{rest.split(end, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    """Print the reference table, or write / check it in a markdown file between the markers."""
    parser = argparse.ArgumentParser(prog="python -m rec_es.policy.schema", description=main.__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="replace the table between the markers in FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 if the table in FILE is not the generated one")
    args = parser.parse_args(argv)
    if args.write is None and args.check is None:
        print(reference_table())
        return 0
    path = Path(args.write or args.check)
    text = path.read_text(encoding="utf-8")
    if args.check is not None:
        same = with_table(text) == text
        print(f"{path}: the keys table is {'up to date' if same else 'stale; run with --write ' + str(path)}")
        return 0 if same else 1
    path.write_text(with_table(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
