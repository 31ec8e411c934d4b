"""rec_es.policy.presets: RecBole's own rule as a mapping (``legacy_mapping``) and as a policy
(``recbole_legacy``), with RecBole's defaults."""
from __future__ import annotations

from rec_es.policy.presets import legacy_mapping, recbole_legacy


def test_legacy_mapping_defaults_to_stopping_step_10_and_names_only_what_is_given() -> None:
    """Without arguments: the preset and RecBole's stopping_step 10; monitor and mode appear only when given."""
    assert legacy_mapping() == {"preset": "recbole_legacy", "stopping_step": 10}
    assert list(legacy_mapping(2, monitor="rmse").items()) == [
        ("preset", "recbole_legacy"), ("monitor", "rmse"), ("stopping_step", 2)]


def test_legacy_mapping_writes_mode_between_monitor_and_stopping_step() -> None:
    """A given mode is written as ``mode`` with its value, after monitor and before stopping_step."""
    assert list(legacy_mapping(2, monitor="recall@20", mode="min").items()) == [
        ("preset", "recbole_legacy"), ("monitor", "recall@20"), ("mode", "min"), ("stopping_step", 2)]


def test_recbole_legacy_defaults_are_recboles_mrr_at_10_and_stopping_step_10() -> None:
    """recbole_legacy() monitors mrr@10 (bigger is better) and waits stopping_step 10, i.e. patience 11."""
    policy = recbole_legacy()
    assert (policy.monitor_name, policy.mode, policy.settings.stopping_step, policy.settings.patience) == (
        "mrr@10", "max", 10, 11)


def test_recbole_legacy_monitors_the_valid_metric_given() -> None:
    """The valid_metric passed is the monitor (not the default mrr@10), in lower case, with its direction."""
    policy = recbole_legacy("NDCG@20", 2)
    assert (policy.monitor_name, policy.mode, policy.settings.patience) == ("ndcg@20", "max", 3)
    assert recbole_legacy("RMSE").mode == "min"
