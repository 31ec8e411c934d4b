"""Settings that are overridden without a word: `rec-es check` warns, naming both files and which one decides.

RecBole's stopping_step / valid_metric next to an early_stopping mapping that sets its own, and monitor weights
whose sign works against the metric's direction. Property files on disk, linted as `rec-es check` lints them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rec_es.config.properties import load_config
from rec_es.config.lint import Finding, lint_files

from conftest import tiny_recbole_config

LEGACY_POLICY = "early_stopping: {preset: recbole_legacy, stopping_step: 10, monitor: mrr@10}\n"


def files(tmp_path: Path, *texts: str) -> list[str]:
    """tiny.yaml (the base config) followed by one file per text."""
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump(tiny_recbole_config(epochs=40)))
    out = [str(base)]
    for i, text in enumerate(texts):
        p = tmp_path / f"f{i}.yaml"
        p.write_text(text)
        out.append(str(p))
    return out


def warnings(paths: list[str], key: str) -> list[Finding]:
    return [f for f in lint_files(paths) if f.level == "warning" and f.key == key]


@pytest.mark.parametrize("later, key, said, decides, effective", [
    ("stopping_step: 1\n", "stopping_step", "stopping_step 1 (in {later}) is not used",
     "the early_stopping mapping in {policy} sets its own stopping_step 10, and that one decides",
     lambda cfg: cfg.settings.stopping_step == 10),
    ("valid_metric: NDCG@10\n", "valid_metric", "valid_metric NDCG@10 (in {later}) does not choose when to stop",
     "early_stopping.monitor mrr@10 in {policy} decides both", lambda cfg: cfg.settings.monitor.name == "mrr@10"),
])
def test_a_later_recbole_key_under_a_policy_file_warns_naming_both(tmp_path: Path, later: str, key: str, said: str,
                                                                   decides: str, effective: Any) -> None:
    """policy file (stopping_step 10, monitor mrr@10), then a file setting the RecBole key: warned, naming both
    files and that the policy file decides, which is what load_config then does."""
    paths = files(tmp_path, LEGACY_POLICY, later)
    [w] = warnings(paths, key)
    names = {"later": paths[2], "policy": paths[1]}
    assert w.file == paths[2] and "comes later in the file list" in w.message
    assert said.format(**names) in w.message and decides.format(**names) in w.message
    assert effective(load_config(paths))


def test_both_in_one_file_warns_too(tmp_path: Path) -> None:
    """valid_metric and a different early_stopping.monitor in the same file: warned, saying so."""
    paths = files(tmp_path, "valid_metric: Recall@10\nearly_stopping: {monitor: ndcg@10, patience: 5}\n")
    [w] = warnings(paths, "valid_metric")
    assert "(both are in that file)" in w.message


def test_a_later_policy_file_overriding_the_base_is_not_warned(tmp_path: Path) -> None:
    """The usual layering (base config with valid_metric NDCG@10, then a policy file with its monitor) is silent:
    there the later file wins, as RecBole users expect."""
    paths = files(tmp_path, LEGACY_POLICY)
    assert warnings(paths, "valid_metric") == [] and warnings(paths, "stopping_step") == []


@pytest.mark.parametrize("monitor, mode, flagged", [
    ("{ndcg@10: 1.0, recall@10: -0.5}", "max", ["recall@10"]),   # rewards a lower recall
    ("{ndcg@10: 1.0, recall@10: 0.5}", "min", ["ndcg@10", "recall@10"]),  # minimising two better-when-higher
    ("ndcg@10", "min", ["ndcg@10"]),
    ("{ndcg@10: 1.0, recall@10: 0.5}", "auto", []),
    ("ndcg@10", "auto", []),
])
def test_weights_against_the_metric_direction_warn(tmp_path: Path, monitor: str, mode: str,
                                                   flagged: list[str]) -> None:
    """Each term whose weight sign and the mode make the run prefer a worse value of that metric is named."""
    paths = files(tmp_path, f"early_stopping: {{monitor: {monitor}, mode: {mode}, patience: 5}}\n")
    found = warnings(paths, "early_stopping.monitor")
    assert [w.message.split(" works against")[0].split(" on ")[1] for w in found] == flagged
    assert all(w.file == paths[1] and "prefers epochs with a" in w.message for w in found)


def test_smaller_is_better_metrics_follow_the_reverse_rule(tmp_path: Path) -> None:
    """A value-metric config: minimising rmse is right; a positive rmse weight in a maximised monitor is not."""
    base = dict(tiny_recbole_config(), metrics=["RMSE", "MAE"], valid_metric="RMSE")
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(base))
    right = tmp_path / "right.yaml"
    right.write_text("early_stopping: {monitor: {rmse: 1.0, mae: 1.0}, patience: 5}\n")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("early_stopping: {monitor: {rmse: 1.0, mae: 1.0}, mode: max, patience: 5}\n")
    assert warnings([str(tmp_path / "v.yaml"), str(right)], "early_stopping.monitor") == []
    found = warnings([str(tmp_path / "v.yaml"), str(wrong)], "early_stopping.monitor")
    assert len(found) == 2 and "rmse is better when lower" in found[0].message
