"""The policies of a comparison: each policy file validated against the base config, replayed or trained live."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rec_es.config.properties import RunConfig, load_config, read_yaml
from rec_es.policy.errors import ConfigError
from rec_es.policy.monitor import computed_metric_keys
from rec_es.replay import why_not_replayable

#: Test metrics of the table (RecBole result keys).
QUALITY = ("ndcg@10", "recall@10")


@dataclass
class PolicySpec:
    """One policy file: its name (the file stem), merged config and why it must train live (None: replayable)."""

    name: str
    file: str
    config: RunConfig
    live_reason: str | None

    @property
    def live(self) -> bool:
        return self.live_reason is not None

    @property
    def note(self) -> str:
        if self.live_reason:
            return f"live: {self.live_reason}"
        if self.config.settings.is_legacy:
            return "RecBole's own rule"
        return ""


def load_policies(config_files: Sequence[str], policy_files: Sequence[str], overrides: Mapping[str, Any],
                  recording: RunConfig) -> list[PolicySpec]:
    """Validate every policy file against the base config; decide replay or live. Raises ConfigError."""
    if not policy_files:
        raise ConfigError("no policy file given; pass --policies FILE [FILE ...] (e.g. properties/policies/*.yaml)",
                          source="--policies")
    specs: list[PolicySpec] = []
    seen: dict[str, str] = {}
    for f in policy_files:
        name = Path(f).stem
        if not Path(f).is_file():
            raise ConfigError(f"policy file not found (looked at {Path(f).resolve()})", source=str(f))
        if name in seen or name == "oracle":
            other = seen.get(name, "the oracle row")
            raise ConfigError(f"policy name {name!r} (the file stem) is already taken by {other}; rename the file",
                              source=str(f))
        seen[name] = str(f)
        cfg = load_config([*config_files, f], overrides)
        extra = {k: v for k, v in read_yaml(f).items() if k not in ("early_stopping", "lr_schedule")}
        why = why_not_replayable(cfg.lr_schedule, recording.lr_schedule, extra)
        specs.append(PolicySpec(name=name, file=str(f), config=cfg, live_reason=why))
    return specs


def recording_config(config_files: Sequence[str], overrides: Mapping[str, Any], max_epochs: int | None,
                     monitor: str | None) -> RunConfig:
    """The recording run's config: the base files, stopping disabled, ``epochs`` = the budget."""
    base = load_config(config_files, overrides)
    mon = monitor or str(base.get("valid_metric"))
    ov = dict(overrides)
    ov["early_stopping"] = {"enabled": False, "monitor": mon}
    if max_epochs is not None:
        ov["epochs"] = max_epochs
    return load_config(config_files, ov)


def check_quality_metrics(cfg: RunConfig) -> None:
    """The table reports test NDCG@10 and Recall@10: RecBole must compute them."""
    computed = computed_metric_keys(cfg.get("metrics"), cfg.get("topk"))
    missing = [k for k in QUALITY if k not in computed]
    if missing:
        raise ConfigError(f"metrics/topk: the comparison table reports {', '.join(QUALITY)} but RecBole will compute "
                          f"only {', '.join(computed)} (metrics {cfg.get('metrics')}, topk {cfg.get('topk')}); add "
                          "NDCG and Recall to metrics and 10 to topk", source=cfg.source_of("metrics"), key="metrics")
