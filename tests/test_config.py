"""Property files: RecBole-order merging, --set, and errors that name the file and key before training."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rec_es import ConfigError
from rec_es.config.properties import RECBOLE_DEFAULTS, load_config, parse_set_args
from rec_es.policy.monitor import PAIR_METRICS, PER_USER_METRICS, SMALLER_METRICS, TOPK_METRICS, VALUE_METRICS

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_later_files_override_and_policy_mapping_replaces_whole(tmp_path: Path) -> None:
    """Later files win key by key; a later early_stopping mapping replaces the earlier one whole."""
    a = write(tmp_path, "a.yaml", "epochs: 50\nlearning_rate: 1e-3\nearly_stopping: {monitor: ndcg@10, smoothing: ema, ema_alpha: 0.3}\n")
    b = write(tmp_path, "b.yaml", "epochs: 80\nearly_stopping: {monitor: recall@10, patience: 4}\n")
    cfg = load_config([a, b])
    assert cfg.recbole["epochs"] == 80 and cfg.recbole["learning_rate"] == 0.001
    assert cfg.early_stopping["monitor"] == "recall@10" and cfg.early_stopping["smoothing"] == "none"
    assert cfg.source_of("epochs") == str(b) and cfg.source_of("learning_rate") == str(a)


def test_set_overrides_one_policy_key(tmp_path: Path) -> None:
    """--set early_stopping.patience=20 edits one key; values parse as YAML like RecBole's files."""
    a = write(tmp_path, "a.yaml", "early_stopping: {monitor: ndcg@10, patience: 4}\n")
    cfg = load_config([a], parse_set_args(["early_stopping.patience=20", "learning_rate=5e-4", "topk=[10, 20]"]))
    assert cfg.early_stopping["patience"] == 20 and cfg.recbole["learning_rate"] == 0.0005
    assert cfg.recbole["topk"] == [10, 20] and cfg.source_of("early_stopping.patience") == "--set"


def test_no_policy_means_recbole_rule(tmp_path: Path) -> None:
    """Without early_stopping, the policy is RecBole's own rule built from valid_metric and stopping_step."""
    a = write(tmp_path, "a.yaml", "valid_metric: NDCG@10\nstopping_step: 3\n")
    cfg = load_config([a])
    assert cfg.early_stopping == {"preset": "recbole_legacy", "monitor": "ndcg@10", "mode": "max", "stopping_step": 3,
                                  "enabled": True}


def test_monitor_defaults_to_valid_metric(tmp_path: Path) -> None:
    """Inside a mapping, monitor defaults to RecBole's valid_metric."""
    a = write(tmp_path, "a.yaml", "valid_metric: Recall@10\nearly_stopping: {patience: 3}\n")
    assert load_config([a]).build_policy().monitor_name == "recall@10"


def test_monitor_not_computed_names_what_recbole_computes(tmp_path: Path) -> None:
    """A monitor outside metrics x topk fails naming the file, the key and what RecBole will compute."""
    a = write(tmp_path, "a.yaml", "metrics: [NDCG, Recall]\ntopk: [5, 10]\n")
    b = write(tmp_path, "b.yaml", "early_stopping: {monitor: ndcg@20}\n")
    with pytest.raises(ConfigError) as err:
        load_config([a, b])
    msg = str(err.value)
    assert msg.startswith(f"{b}: early_stopping.monitor: RecBole will not compute ndcg@20")
    assert "it computes: ndcg@5, ndcg@10, recall@5, recall@10" in msg and f"(from {a})" in msg


def test_bad_key_in_file_names_the_file(tmp_path: Path) -> None:
    """The file that holds the bad policy key is named first."""
    a = write(tmp_path, "base.yaml", "epochs: 5\n")
    b = write(tmp_path, "policy.yaml", "early_stopping:\n  monitor: ndcg@10\n  patiance: 5\n")
    with pytest.raises(ConfigError, match=rf"^{b}: early_stopping\.patiance: unknown key — did you mean 'patience'"):
        load_config([a, b])


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    """A missing file says where it looked; broken YAML gives the line."""
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found \(looked at .*nope\.yaml\)"):
        load_config([tmp_path / "nope.yaml"])
    bad = write(tmp_path, "bad.yaml", "epochs: 5\nearly_stopping: {monitor: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML at line \d+"):
        load_config([bad])
    lst = write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: must hold a mapping of keys \(got list\)"):
        load_config([lst])


def test_set_errors() -> None:
    """--set without '=' is refused with the fix."""
    with pytest.raises(ConfigError, match=r"--set takes key=value"):
        parse_set_args(["patience"])


def test_dotted_set_edits_one_key_of_any_recbole_mapping() -> None:
    """--set eval_args.mode=uni100 changes that key and keeps the file's split and order (RecBole would fill a
    dropped key with its own default: order RO, which sequential models refuse)."""
    cfg = load_config([ROOT / "properties/gru4rec_ml100k.yaml"], parse_set_args(["eval_args.mode=uni100"]))
    assert cfg.recbole["eval_args"] == {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"}
    assert cfg.source_of("eval_args.mode") == "--set"


def test_dotted_set_goes_deeper_and_into_a_null_mapping() -> None:
    """Dotted keys reach nested mappings, and a mapping the files set to null starts empty (RecBole fills the rest)."""
    sets = parse_set_args(["train_neg_sample_args.sample_num=5", "eval_args.split.LS=valid_and_test",
                           "early_stopping.patience=20"])
    cfg = load_config([ROOT / "properties/gru4rec_ml100k.yaml"], sets)
    assert cfg.recbole["train_neg_sample_args"] == {"sample_num": 5}
    assert cfg.recbole["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert cfg.settings.patience == 20


def test_dotted_set_into_a_scalar_is_refused() -> None:
    """A dotted key under a key that holds a scalar names the key and its file."""
    with pytest.raises(ConfigError, match=r"epochs: must be a mapping to --set epochs\.x \(got 100\)"):
        load_config([ROOT / "properties/gru4rec_ml100k.yaml"], {"epochs.x": 1})


def test_whole_mapping_that_drops_keys_is_refused_with_the_keys() -> None:
    """--set 'eval_args={mode: uni100}' would drop split and order: refused, naming them and the dotted form."""
    with pytest.raises(ConfigError, match=r"drops split, order that .*gru4rec_ml100k\.yaml sets.*"
                                          r"--set eval_args\.mode=\.\.\."):
        load_config([ROOT / "properties/gru4rec_ml100k.yaml"], parse_set_args(["eval_args={mode: uni100}"]))
    full = "eval_args={split: {LS: valid_and_test}, order: TO, mode: uni100}"
    assert load_config([ROOT / "properties/gru4rec_ml100k.yaml"], parse_set_args([full])).recbole["eval_args"][
        "mode"] == "uni100"


def test_lr_schedule_is_validated_with_file(tmp_path: Path) -> None:
    """lr_schedule errors name the file and key too."""
    a = write(tmp_path, "a.yaml", "lr_schedule: {decay: linear}\n")
    with pytest.raises(ConfigError, match=rf"^{a}: lr_schedule\.decay"):
        load_config([a])


@pytest.mark.parametrize("path", sorted((ROOT / "properties/policies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_load_and_comment_every_key(path: Path) -> None:
    """Every shipped policy file is valid and every key line carries a `# (type) meaning` comment."""
    load_config([path])
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line and not line.rstrip().endswith(":"):
            assert "# (" in line, f"{path.name}: key without a type comment: {line!r}"


def test_recbole_defaults_and_metric_tables_match_recbole() -> None:
    """Our copies of RecBole's defaults and metric tables equal RecBole 1.2.1's own."""
    import os

    import recbole
    from recbole.evaluator import metric_types, smaller_metrics
    from recbole.utils import EvaluatorType

    overall = yaml.safe_load(open(os.path.join(os.path.dirname(recbole.__file__), "properties/overall.yaml")))
    for key, value in RECBOLE_DEFAULTS.items():
        assert overall[key] == value, key
    assert set(smaller_metrics) == set(SMALLER_METRICS)
    ranking_topk = {m for m in metric_types if m not in VALUE_METRICS}
    assert ranking_topk == set(TOPK_METRICS)
    assert {m for m, t in metric_types.items() if t == EvaluatorType.VALUE} == PAIR_METRICS <= VALUE_METRICS
    from recbole.evaluator.base_metric import TopkMetric
    from recbole.evaluator.register import metrics_dict

    assert {m for m, cls in metrics_dict.items() if issubclass(cls, TopkMetric)} == set(PER_USER_METRICS)
