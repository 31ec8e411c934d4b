"""One test per error message: each names the key, the allowed values and what was given."""
from __future__ import annotations

import pytest

from rec_es import ConfigError, build_policy
from rec_es.policy.errors import (
    MetricMissingError,
    RecEsError,
    StateError,
    bounded,
    brief,
    report,
)

CASES = [
    ({"patiance": 5}, r"early_stopping\.patiance: unknown key — did you mean 'patience'\?; allowed: the keys enabled, preset, monitor.*\(got 'patiance'\)"),
    ({"early_stop": True}, r"early_stopping\.early_stop: unknown key — did you mean 'enabled'\?"),
    ({"stopping_step": 10}, r"early_stopping\.stopping_step: unknown key — did you mean 'patience \(RecBole's stopping_step N equals patience N\+1"),
    ({"patience": 0}, r"early_stopping\.patience: allowed: an integer >= 1 or null \(got 0\)"),
    ({"patience": True}, r"early_stopping\.patience: allowed: an integer >= 1 or null \(got True\)"),
    ({"patience": "10"}, r"early_stopping\.patience: allowed: an integer >= 1 or null \(got '10'\)"),
    ({"mode": "maxx"}, r"early_stopping\.mode: allowed: auto \| max \| min \(got 'maxx'\)"),
    ({"min_delta": -0.1}, r"early_stopping\.min_delta: allowed: a number >= 0 or auto \(got -0\.1\)"),
    ({"min_delta_mode": "percent"}, r"early_stopping\.min_delta_mode: allowed: abs \| rel \(got 'percent'\)"),
    ({"ties_improve": "yes"}, r"early_stopping\.ties_improve: allowed: true or false \(got 'yes'\)"),
    ({"enabled": 0}, r"early_stopping\.enabled: allowed: true or false \(got 0\)"),
    ({"patience_unit": "steps"}, r"early_stopping\.patience_unit: allowed: evaluations \| epochs \(got 'steps'\)"),
    ({"warmup": -1}, r"early_stopping\.warmup: allowed: an integer >= 0 \(got -1\)"),
    ({"start_from_epoch": 1.5}, r"early_stopping\.start_from_epoch: allowed: an integer >= 0 \(got 1\.5\)"),
    ({"smoothing": "kalman"}, r"early_stopping\.smoothing: allowed: none \| ema \| window \(got 'kalman'\)"),
    ({"smoothing": "ema", "ema_alpha": 0}, r"early_stopping\.ema_alpha: allowed: a number in \(0, 1\] \(got 0\)"),
    ({"ema_alpha": 0.5}, r"early_stopping\.ema_alpha: ema_alpha is set but smoothing is 'none'; allowed: only with smoothing: ema"),
    ({"smoothing": "window", "window": 0}, r"early_stopping\.window: allowed: an integer >= 1 \(got 0\)"),
    ({"window": 3}, r"early_stopping\.window: window is set but smoothing is 'none'"),
    ({"best_by": "mean"}, r"early_stopping\.best_by: allowed: raw \| smoothed \(got 'mean'\)"),
    ({"stopping_threshold": "high"}, r"early_stopping\.stopping_threshold: allowed: a finite number or null \(got 'high'\)"),
    ({"divergence_threshold": float("nan")}, r"early_stopping\.divergence_threshold: allowed: a finite number or null \(got nan\)"),
    ({"baseline": [1]}, r"early_stopping\.baseline: allowed: a finite number or null \(got \[1\]\)"),
    ({"check_finite": "warn"}, r"early_stopping\.check_finite: allowed: stop \| miss \(got 'warn'\)"),
    ({"max_epochs": 0}, r"early_stopping\.max_epochs: allowed: an integer >= 1 or null \(got 0\)"),
    ({"max_minutes": -5}, r"early_stopping\.max_minutes: allowed: a number > 0 or null \(got -5\)"),
    ({"combine": "majority"}, r"early_stopping\.combine: allowed: any_of \| all_of \(got 'majority'\)"),
    ({"error_offset": None}, r"early_stopping\.error_offset: allowed: a finite number \(got None\)"),
    ({"monitor": ""}, r"early_stopping\.monitor: allowed: a RecBole metric key such as ndcg@10, or \{metric: weight, \.\.\.\} \(got ''\)"),
    ({"monitor": {"ndcg@10": 0}}, r"early_stopping\.monitor: allowed: \{metric: non-zero weight, \.\.\.\}"),
    ({"monitor": {"ndcg@10": 0.5, "rmse": 0.5}}, r"early_stopping\.mode: monitor mixes bigger-is-better \(ndcg@10\) and smaller-is-better \(rmse\) metrics; set mode: max"),
    ({"preset": "keras"}, r"early_stopping\.preset: allowed: recbole_legacy or null \(got 'keras'\)"),
    ({"preset": "recbole_legacy", "patience": 3}, r"early_stopping\.patience: recbole_legacy reproduces RecBole exactly, so it takes no other setting"),
    ({"preset": "recbole_legacy", "stopping_step": -1}, r"early_stopping\.stopping_step: allowed: an integer >= 0 \(got -1\)"),
    ({"prechelt": "GL"}, r"early_stopping\.prechelt: allowed: \{criterion: GL\|PQ\|UP, \.\.\.\} or a list of them \(got 'GL'\)"),
    ({"prechelt": {"criterion": "XY"}}, r"early_stopping\.prechelt\.criterion: allowed: GL \| PQ \| UP \(got 'XY'\)"),
    ({"prechelt": {"criterion": "GL"}}, r"early_stopping\.prechelt\.alpha: allowed: a number > 0 or auto \(got None\)"),
    ({"prechelt": {"criterion": "GL", "alpha": 5, "s": 2}}, r"early_stopping\.prechelt \(GL\): unknown key; allowed: alpha, criterion, noise_multiple \(got \['s'\]\)"),
    ({"prechelt": {"criterion": "GL", "alpha": "often"}}, r"early_stopping\.prechelt\.alpha: allowed: a number > 0 or auto \(got 'often'\)"),
    ({"prechelt": {"criterion": "GL", "alpha": 0.5, "noise_multiple": 2}}, r"early_stopping\.prechelt\.alpha: noise_multiple sets GL's threshold only when it is measured \(alpha: auto\); allowed: alpha: auto with noise_multiple \(got 0\.5\)"),
    ({"prechelt": {"criterion": "GL", "alpha": "auto", "noise_multiple": 0}}, r"early_stopping\.prechelt\.noise_multiple: allowed: a number > 0 \(got 0\)"),
    ({"prechelt": {"criterion": "PQ", "alpha": "auto"}}, r"early_stopping\.prechelt\.alpha: allowed: a number > 0 \(got 'auto'\)"),
    ({"prechelt": {"criterion": "UP", "strip": 0, "s": 2}}, r"early_stopping\.prechelt\.strip: allowed: an integer >= 1 \(got 0\)"),
    ({"prechelt": {"criterion": "UP"}}, r"early_stopping\.prechelt\.s: allowed: an integer >= 1 \(got None\)"),
    ({"dynamic_patience": {"grow": 1}}, r"early_stopping\.dynamic_patience: allowed: null or \{factor: > 0"),
    ({"patience": None, "dynamic_patience": {"factor": 1}}, r"early_stopping\.dynamic_patience: dynamic patience adapts the patience rule; allowed: null when patience is null"),
    ({"dynamic_patience": {"factor": 0}}, r"early_stopping\.dynamic_patience\.factor: allowed: a number > 0 \(got 0\)"),
    ({"patience": 10, "dynamic_patience": {"factor": 1, "max_patience": 5}}, r"early_stopping\.dynamic_patience\.max_patience: allowed: an integer >= 10 \(got 5\)"),
    ({"dynamic_patience": {"factor": 1, "min_gain": -1}}, r"early_stopping\.dynamic_patience\.min_gain: allowed: a number >= 0 \(got -1\)"),
]


@pytest.mark.parametrize("mapping,pattern", CASES, ids=[next(iter(m)) + "=" + repr(next(iter(m.values())))[:20] for m, _ in CASES])
def test_bad_setting_is_named(mapping: dict, pattern: str) -> None:
    """Each invalid setting raises ConfigError naming source, key, allowed values and what was given."""
    with pytest.raises(ConfigError, match=f"^policy.yaml: {pattern}"):
        build_policy({"monitor": "ndcg@10", **mapping} if "monitor" not in mapping else mapping, source="policy.yaml")


def test_mapping_must_be_a_mapping() -> None:
    """A scalar where the mapping belongs is named."""
    with pytest.raises(ConfigError, match=r"early_stopping: must be a mapping of settings \(got 10\)"):
        build_policy(10)  # type: ignore[arg-type]


def test_missing_metric_names_what_the_result_has() -> None:
    """A monitor key absent from the evaluation result lists the keys that are there and the fix."""
    p = build_policy({"monitor": "ndcg@20"})
    with pytest.raises(MetricMissingError, match=r"monitor needs ndcg@20 but the evaluation result has only: "
                                                 r"ndcg@10, recall@10; change early_stopping.monitor"):
        p.update(0, {"NDCG@10": 0.1, "recall@10": 0.2})


def test_pq_without_train_loss() -> None:
    """Prechelt PQ without a training loss says what to pass."""
    p = build_policy({"monitor": "ndcg@10", "prechelt": {"criterion": "PQ", "alpha": 1, "strip": 2}})
    with pytest.raises(RecEsError, match="Prechelt PQ needs the training loss: pass train_loss="):
        p.update(0, {"ndcg@10": 0.1})


@pytest.mark.parametrize("epoch", [-1, 1.0, True])
def test_bad_epoch(epoch) -> None:
    """Epoch must be a non-negative int."""
    with pytest.raises(ValueError, match=r"epoch must be an int >= 0"):
        build_policy({"monitor": "ndcg@10"}).update(epoch, {"ndcg@10": 0.1})


def test_report_prints_the_command_and_the_error_and_exits_2_for_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input (ConfigError) exits 2, any other rec_es error 1; one stderr line names the command."""
    assert report("rec-es run", ConfigError("patience must be >= 0", source="a.yaml", key="patience")) == 2
    assert capsys.readouterr().err == "rec-es run: error: a.yaml: patience must be >= 0\n"
    assert report("rec-es explain", StateError("trace line 3 is not JSON")) == 1
    assert capsys.readouterr().err == "rec-es explain: error: trace line 3 is not JSON\n"


def test_brief_cuts_a_long_value_to_twelve_items() -> None:
    assert brief(list(range(20))) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...]"
    assert brief("short") == "'short'"


def test_bounded_keeps_a_text_at_the_limit_and_cuts_one_beyond_it() -> None:
    """A text of exactly ``limit`` characters is kept whole; a longer one keeps its first two thirds of the limit
    and its last third, and says how many characters were left out between them."""
    assert bounded("x" * 30, 30) == "x" * 30
    text = "a" * 20 + "b" * 20 + "c" * 20  # 60 characters, limit 30: head 30*2//3 = 20, tail 30//3 = 10
    assert bounded(text, 30) == "a" * 20 + " … (30 characters left out) … " + "c" * 10  # 60 - 20 - 10 = 30
    # limit 31: head 62//3 = 20, tail 31//3 = 10, 61 - 30 = 31 left out
    assert bounded(text + "d", 31) == "a" * 20 + " … (31 characters left out) … " + "c" * 9 + "d"


def test_config_error_message_is_cut_beyond_2000_characters() -> None:
    """A ConfigError keeps a 2000-character message whole; a 10,000-character one keeps 1,333 + 666 characters
    and says, with a thousands separator, that 8,001 were left out; the source stays in front."""
    assert ConfigError("m" * 2000).message == "m" * 2000
    err = ConfigError("h" * 5000 + "t" * 5000, source="a.yaml")
    assert err.message == "h" * 1333 + " … (8,001 characters left out) … " + "t" * 666
    assert str(err) == "a.yaml: " + err.message


def test_metric_missing_error_prints_its_sentence_unquoted() -> None:
    """str() is the sentence itself (KeyError would quote it), and empty when raised without one."""
    assert str(MetricMissingError("monitor needs ndcg@20")) == "monitor needs ndcg@20"
    assert str(MetricMissingError()) == ""
