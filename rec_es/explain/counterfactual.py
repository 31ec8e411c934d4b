"""What other settings would have done: policies replayed on the observed evaluations, nothing guessed beyond.

A policy that would not have stopped before the data ends is reported as "still running at epoch N (data ends)".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from rec_es.policy.errors import ConfigError
from rec_es.explain.fmt import _label
from rec_es.explain.observed import Observed
from rec_es.policy import build_policy
from rec_es.policy.presets import LEGACY, legacy_mapping
from rec_es.policy.schema import legacy_settings
from rec_es.replay import ReplayError, replay

#: Counterfactual policies replayed by default (monitor and mode are the run's own).
DEFAULT_POLICIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("stopping_step 10 (RecBole default)", legacy_mapping(10)),
    ("stopping_step 30", legacy_mapping(30)),
    ("patience 10", {"patience": 10}),
    ("patience 20", {"patience": 20}),
    ("patience 30", {"patience": 30}),
    ("patience 10 + EMA α=0.5", {"patience": 10, "smoothing": "ema", "ema_alpha": 0.5}),
    ("patience 20 + EMA α=0.5", {"patience": 20, "smoothing": "ema", "ema_alpha": 0.5}),
    ("patience 30 + EMA α=0.5", {"patience": 30, "smoothing": "ema", "ema_alpha": 0.5}),
)


def _tie_sensitivity(obs: Observed) -> dict[str, Any] | None:
    """Replay the observed policy with ties counted the other way; report it when the stop epoch changes.

    RecBole counts a value equal to the best as an improvement; rec_es by default does not. Metrics are rounded
    to ``metric_decimal_place`` decimals, so whether ties count can decide when a run stops.
    """
    s = obs.policy.settings
    mapping = dict(obs.policy_mapping)
    if s.is_legacy:  # the preset takes no ties_improve: the same rule written out in plain keys
        mapping = {"monitor": mapping.get("monitor", obs.monitor), "mode": obs.mode,
                   **legacy_settings(s.stopping_step), "ties_improve": False}
    else:
        mapping["ties_improve"] = not s.ties_improve
    try:
        flipped = replay(build_policy(mapping), obs.trace, name="ties flipped")
    except (ConfigError, ReplayError):
        return None
    observed_stop = obs.last_epoch if obs.ending == "early_stopped" else None
    flipped_stop = flipped.stop_epoch if flipped.stopped else None
    if flipped_stop == observed_stop:
        return None
    counted = "not counted as improvements" if s.ties_improve else "counted as improvements"
    places = f" (values rounded to {obs.decimal_places} decimals)" if obs.decimal_places is not None else ""
    if flipped_stop is None:
        sentence = (f"Ties decided the stop: with ties {counted}{places}, the same run would still have been "
                    f"running at epoch {obs.last_epoch} (data ends).")
    elif observed_stop is None:
        sentence = (f"Ties kept the run going: with ties {counted}{places}, it would have stopped at epoch "
                    f"{flipped_stop}.")
    else:
        sentence = (f"Ties moved the stop: with ties {counted}{places}, the same run would have stopped at epoch "
                    f"{flipped_stop} instead of epoch {observed_stop}.")
    return {"stop_epoch": flipped_stop, "ties_improve": not s.ties_improve, "sentence": sentence}


def _policy_mapping(obs: Observed, mapping: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(mapping)
    out.setdefault("monitor", obs.policy_mapping.get("monitor", obs.monitor))
    out.setdefault("mode", obs.mode)
    return out


def counterfactuals(obs: Observed, extra: Sequence[tuple[str, dict[str, Any]]] = ()) -> list[dict[str, Any]]:
    """Replay the observed policy, the built-in set and ``extra`` on the observed evaluations."""
    rows: list[dict[str, Any]] = []
    named = [("observed: " + _observed_label(obs), obs.policy_mapping)]
    if obs.original_policy is not None:
        named.append(obs.original_policy)
    for name, mapping in [*DEFAULT_POLICIES, *extra]:
        if _same_as_observed(obs, mapping):
            continue
        named.append((name, mapping))
    values = dict(obs.values())
    for name, mapping in named:
        full = _policy_mapping(obs, mapping)
        try:
            policy = build_policy(full)
            result = replay(policy, obs.trace, name=name)
        except (ConfigError, ReplayError) as exc:
            rows.append({"policy": name, "mapping": full, "error": str(exc)})
            continue
        status = "stopped" if result.stopped else ("budget" if result.reason == "max_epochs" else "data_ends")
        test = result.metric(obs.monitor, "test") if len(policy.monitor_keys) == 1 else None
        rows.append({"policy": name, "mapping": full, "status": status, "stop_epoch": result.stop_epoch,
                     "best_test": test,
                     "reason": result.reason, "best_epoch": result.best_epoch,
                     "best_value": values.get(result.best_epoch) if result.best_epoch is not None else None,
                     "epochs_trained": result.epochs_trained, "setting": _setting_text(obs, mapping)})
    return rows


def _observed_label(obs: Observed) -> str:
    return _label(obs.policy)


def _same_as_observed(obs: Observed, mapping: Mapping[str, Any]) -> bool:
    try:
        return build_policy(_policy_mapping(obs, mapping)).settings == obs.policy.settings
    except ConfigError:
        return False


def _setting_text(obs: Observed, mapping: Mapping[str, Any]) -> str:
    """How to write ``mapping`` in a property file (stock users get ``stopping_step: N`` for the legacy rule)."""
    body = {k: v for k, v in mapping.items() if k not in ("monitor", "mode")}
    if obs.kind == "recbole_log" and body.get("preset") == LEGACY and set(body) <= {"preset", "stopping_step"}:
        return f"stopping_step: {body.get('stopping_step', 10)}"
    return "early_stopping: " + yaml.safe_dump(body, default_flow_style=True, allow_unicode=True).strip()


def read_policy_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """A ``--policies`` file: a property file with ``early_stopping:`` or a bare policy mapping."""
    from rec_es.config.properties import read_yaml

    data = read_yaml(path)
    mapping = data.get("early_stopping", data) if isinstance(data, dict) else data
    if not isinstance(mapping, dict):
        raise ConfigError(f"early_stopping: must be a mapping of settings (got {mapping!r})", source=str(path))
    build_policy({"monitor": "ndcg@10", **mapping}, source=str(path))  # validate now, with the file's name
    name = Path(path).stem
    if isinstance(data, dict) and data.get("lr_schedule"):
        name += " (policy only: its lr_schedule changes training and cannot be replayed)"
    return name, dict(mapping)
