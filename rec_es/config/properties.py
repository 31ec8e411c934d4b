"""Property files: RecBole YAML files merged in order, with rec_es's ``early_stopping:`` and ``lr_schedule:``.

Later files override earlier ones key by key, as in RecBole; a later ``early_stopping:`` mapping replaces an
earlier one whole (so a policy file is self-contained), and ``--set early_stopping.patience=20`` edits one key.
Everything is validated here, before any training: errors name the file, the key, the allowed values and what
was given. No torch or recbole import: `rec-es check` and the tests stay fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from rec_es.rundir import yamlio
from rec_es.policy.errors import ConfigError, brief
from rec_es.policy import StoppingPolicy
from rec_es.policy.monitor import TARGET_CE, computed_metric_keys
from rec_es.policy.presets import legacy_mapping
from rec_es.policy.schema import PolicySettings, parse_settings
from rec_es.config.protocol import require
from rec_es.policy.schedule import validate_lr_schedule

#: RecBole defaults (properties/overall.yaml of recbole 1.2.1) for the keys rec_es reads; a test compares them.
RECBOLE_DEFAULTS: dict[str, Any] = {
    "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
    "topk": [10],
    "valid_metric": "MRR@10",
    "stopping_step": 10,
    "eval_step": 1,
    "epochs": 300,
    "metric_decimal_place": 4,
}
REC_ES_KEYS = ("early_stopping", "lr_schedule")


#: RecBole's YAML loader (a SafeLoader that reads ``1e-3`` as a float), from ``rec_es.rundir.yamlio``.
LOADER = yamlio.Loader
PROPERTY_FILE = "a RecBole property file: a mapping of keys such as `epochs: 50`"


def parse_value(text: str, source: str = "--set") -> Any:
    """A ``--set`` value or a YAML scalar, read the way RecBole reads its files; ConfigError if it is not YAML."""
    doc = yamlio.loads(text, source)
    if doc.duplicates:
        d = doc.duplicates[0]
        raise ConfigError(f"key '{d.key}' is given twice in {brief(text)}; give it once", source=source)
    return doc.data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """One property file as a mapping; a missing, unreadable, non-UTF-8 or non-mapping file is a ConfigError.

    Top-level keys must be strings (YAML reads ``1:``, ``on:`` or ``null:`` as a number, boolean or null).
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found (looked at {p.resolve()})", source=str(path))
    doc = yamlio.load_file(p, PROPERTY_FILE)
    data = doc.data
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"must hold a mapping of keys (got {type(data).__name__}); expected {PROPERTY_FILE}",
                          source=str(path))
    for odd in doc.odd_keys:
        if not odd.parent:
            raise ConfigError(f"line {odd.line}: key {odd.text!r} is read by YAML as {odd.type_name}, not a name; "
                              f"RecBole keys are names (quote it, e.g. '{odd.text}': ..., if it is meant as one)",
                              source=str(path), key=str(odd.text))
    return data


def parse_set_args(items: Iterable[str]) -> dict[str, Any]:
    """``["epochs=50", "early_stopping.patience=20"]`` -> ``{"epochs": 50, "early_stopping.patience": 20}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, e.g. --set early_stopping.patience=20 (got {item!r})", source="--set")
        try:
            out[key.strip()] = parse_value(value, source=f"--set {key.strip()}")
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} (got {brief(item)}; quote a value YAML cannot read, "
                              f"e.g. --set '{key.strip()}=\"...\"')", source="--set", key=key.strip()) from None
    return out


@dataclass
class RunConfig:
    """Merged, validated configuration of one run."""

    files: list[str]
    recbole: dict[str, Any]
    early_stopping: dict[str, Any]
    lr_schedule: dict[str, Any] | None
    settings: PolicySettings
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        """A RecBole key with RecBole's default where rec_es knows it."""
        return self.recbole.get(key, RECBOLE_DEFAULTS.get(key))

    def source_of(self, key: str) -> str:
        return self.sources.get(key, "RecBole's defaults")

    def build_policy(self) -> StoppingPolicy:
        return StoppingPolicy(self.settings)

    def to_dict(self) -> dict[str, Any]:
        """The whole merged config, as written to ``RUN/config.yaml``."""
        out = dict(self.recbole)
        out["early_stopping"] = self.early_stopping
        if self.lr_schedule is not None:
            out["lr_schedule"] = self.lr_schedule
        return out


def merge_files(files: Iterable[str | Path], overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge files in order (top-level keys; later wins) and apply ``overrides``; return (config, sources).

    An override's dotted key edits one key inside a mapping, at any depth (``eval_args.mode``,
    ``train_neg_sample_args.sample_num``, ``early_stopping.patience``), keeping the mapping's other keys. A whole
    RecBole mapping given as an override (``eval_args={mode: uni100}``) replaces the files' one only if it keeps
    every key they set: dropping one is a ConfigError naming the keys dropped and the dotted form to use. The
    ``early_stopping:`` and ``lr_schedule:`` mappings are replaced whole (a policy file is self-contained).
    """
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in files:
        for key, value in read_yaml(f).items():
            merged[key] = value
            sources[key] = str(f)
    for dotted, value in (overrides or {}).items():
        head, _, rest = dotted.partition(".")
        if rest:
            merged[head] = _set_nested(merged.get(head), rest.split("."), value, head, sources.get(head))
        else:
            _check_whole_mapping(head, merged.get(head), value, sources.get(head))
            merged[head] = value
        sources[dotted] = "--set"
        sources.setdefault(head, "--set")
    return merged, sources


def _set_nested(mapping: Any, path: list[str], value: Any, head: str, source: str | None) -> dict[str, Any]:
    """A copy of ``mapping`` (None: empty) with ``value`` at ``path``; ConfigError where a step is not a mapping."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{head}: must be a mapping to --set {head}.{'.'.join(path)} (got {brief(mapping)})",
                          source=source or "--set", key=head)
    out = dict(mapping)
    key, rest = path[0], path[1:]
    out[key] = _set_nested(out.get(key), rest, value, f"{head}.{key}", source) if rest else value
    return out


def _check_whole_mapping(key: str, before: Any, value: Any, source: str | None) -> None:
    """A whole RecBole mapping from ``--set`` must keep every key the files set (RecBole fills what is missing with
    its defaults, not with the files' values: ``eval_args={mode: uni100}`` would lose ``order: TO``)."""
    if key in REC_ES_KEYS or not isinstance(before, dict) or not isinstance(value, dict):
        return
    dropped = [k for k in before if k not in value]
    if dropped:
        first = dropped[0]
        raise ConfigError(f"--set {key}={{...}} replaces the whole mapping and drops {', '.join(map(str, dropped))} "
                          f"that {source} sets (RecBole would fill them with its defaults, not with those values). "
                          f"Change one key with a dotted --set, e.g. --set {key}.{next(iter(value), first)}=..., or "
                          f"give every key: {', '.join(map(str, before))}", source="--set", key=key)


def _check_monitor(settings: PolicySettings, recbole: Mapping[str, Any], source: str, sources: Mapping[str, str]) -> None:
    metrics = recbole.get("metrics", RECBOLE_DEFAULTS["metrics"])
    topk = recbole.get("topk", RECBOLE_DEFAULTS["topk"])
    computed = computed_metric_keys(metrics, topk)
    if TARGET_CE in settings.monitor.keys:

        require(recbole.get("eval_args"), f"early_stopping.monitor ({TARGET_CE})",
                sources.get("eval_args", "RecBole's defaults"))
        computed.append(TARGET_CE)
    missing = [k for k in settings.monitor.keys if k not in computed]
    if missing:
        where = sources.get("metrics", "RecBole's defaults")
        raise ConfigError(
            f"early_stopping.monitor: RecBole will not compute {', '.join(missing)} with metrics {metrics} and "
            f"topk {topk} (from {where}); it computes: {', '.join(computed)}. Pick one of those, or add the metric "
            "to `metrics` / its k to `topk`", source=source, key="early_stopping.monitor")


def load_config(files: Iterable[str | Path], overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read, merge and validate property files (RecBole order: later overrides earlier); raise ConfigError.

    With no ``early_stopping:`` mapping anywhere, the policy is RecBole's own rule (``recbole_legacy`` built
    from ``valid_metric`` and ``stopping_step``). Inside a mapping, ``monitor`` defaults to ``valid_metric``.
    ``overrides``: ``--set`` values (``merge_files``). The first error is raised; ``config_errors`` lists them all.
    """
    files = [str(f) for f in files]
    if not files:
        raise ConfigError("no config file given; pass --config FILE [FILE ...]", source="--config")
    merged, sources = merge_files(files, overrides)
    return _validated(files, merged, sources)


def config_errors(files: Iterable[str | Path], overrides: Mapping[str, Any] | None = None,
                  limit: int = 50) -> tuple[RunConfig | None, list[ConfigError]]:
    """Every error ``load_config`` finds, not only the first: (the config if it is valid, the errors in order).

    After each error the key it names is left out and the rest is validated again, so an invalid value beside a
    misspelt key reports both. Stops at an error whose key cannot be left out, or after ``limit`` errors.
    """
    files = [str(f) for f in files]
    try:
        if not files:
            raise ConfigError("no config file given; pass --config FILE [FILE ...]", source="--config")
        merged, sources = merge_files(files, overrides)
    except ConfigError as exc:
        return None, [exc]
    errors: list[ConfigError] = []
    while len(errors) < limit:
        try:
            cfg = _validated(files, merged, sources)
            return (cfg if not errors else None), errors
        except ConfigError as exc:
            errors.append(exc)
            merged = _without(merged, exc.key)
            if merged is None:
                break
    return None, errors


def _without(merged: dict[str, Any], key: str | None) -> dict[str, Any] | None:
    """A copy of ``merged`` without the nested ``key`` (``early_stopping.smoothing``); None if it is not there
    or is a whole mapping whose removal would change what is validated (``early_stopping`` itself)."""
    if not key or "." not in key:
        return None
    out = dict(merged)
    parts, node = key.split("."), out
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            return None
        node[part] = dict(node[part])
        node = node[part]
    if parts[-1] not in node:
        return None
    del node[parts[-1]]
    return out


def _validated(files: list[str], merged: dict[str, Any], sources: dict[str, str]) -> RunConfig:
    merged = dict(merged)
    es = merged.pop("early_stopping", None)
    lr = merged.pop("lr_schedule", None)
    es_source = sources.get("early_stopping", "RecBole's stopping_step")
    if es is None:
        es = legacy_mapping({k: merged.get(k, RECBOLE_DEFAULTS[k]) for k in ("valid_metric", "stopping_step")})
    elif not isinstance(es, dict):
        raise ConfigError(f"early_stopping: must be a mapping of settings (got {es!r})", source=es_source, key="early_stopping")
    else:
        es = dict(es)
        es.setdefault("monitor", merged.get("valid_metric", RECBOLE_DEFAULTS["valid_metric"]))
        if es.get("preset") == "recbole_legacy":
            es.setdefault("stopping_step", merged.get("stopping_step", RECBOLE_DEFAULTS["stopping_step"]))
    settings = parse_settings(es, source=es_source)
    _check_monitor(settings, merged, es_source, sources)
    schedule = validate_lr_schedule(lr, source=sources.get("lr_schedule", "lr_schedule"))
    return RunConfig(files=files, recbole=merged, early_stopping=settings.to_mapping(), lr_schedule=schedule,
                     settings=settings, sources=sources)
