"""`rec-es check`: lint of RecBole + rec_es property files (rec_es.config.lint)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rec_es.cli.check import main
from rec_es.config.lint import Finding, earliest_stop, lint_files, recbole_known_keys
from rec_es.policy.schema import parse_settings


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def only(findings: list[Finding], key: str) -> Finding:
    matching = [f for f in findings if f.key == key]
    assert len(matching) == 1, findings
    return matching[0]


def test_recbole_keys_come_from_its_property_files_and_code() -> None:
    """Keys from overall.yaml, model yamls, argument_list and config[...] reads are all known."""
    keys = recbole_known_keys()
    assert {"stopping_step", "eval_step", "valid_metric", "embedding_size", "MAX_ITEM_LIST_LENGTH",
            "train_neg_sample_args", "benchmark_filename"} <= keys
    assert "early_stop" not in keys and "stoping_step" not in keys


def test_misspelt_keys_are_errors_with_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`stoping_step` and `early_stop` are errors naming the file, the key and what to write."""
    cfg = write(tmp_path, "a.yaml", "valid_metric: MRR@10\nstoping_step: 30\nearly_stop: false\n")
    findings = lint_files([cfg])
    typo = only(findings, "stoping_step")
    assert (typo.level, typo.file) == ("error", cfg)
    assert "did you mean 'stopping_step'?" in typo.message
    switch = only(findings, "early_stop")
    assert switch.level == "error" and "RecBole has no early_stop switch" in switch.message
    assert "early_stopping: {enabled: false}" in switch.message
    assert main([cfg]) == 1
    out = capsys.readouterr().out
    assert f"{cfg}: stoping_step: error: unknown key — did you mean 'stopping_step'?" in out
    assert out.strip().endswith("2 errors, 0 warnings, 1 note")


def test_unknown_key_without_near_match_is_only_a_warning(tmp_path: Path) -> None:
    """A key nobody knows may belong to a custom model: warning, exit 0."""
    cfg = write(tmp_path, "a.yaml", "valid_metric: MRR@10\nmy_model_depth: 3\n")
    assert only(lint_files([cfg]), "my_model_depth").level == "warning"
    assert main([cfg]) == 0


def test_valid_metric_not_computed_names_what_recbole_computes(tmp_path: Path) -> None:
    """valid_metric outside metrics × topk is an error listing the computed keys and where they come from."""
    base = write(tmp_path, "base.yaml", "metrics: [Recall, NDCG]\ntopk: [10, 20]\n")
    over = write(tmp_path, "over.yaml", "valid_metric: MRR@10\n")
    finding = only(lint_files([base, over]), "valid_metric")
    assert finding.level == "error" and finding.file == over
    assert "RecBole will not compute 'MRR@10'" in finding.message
    assert "computes recall@10, recall@20, ndcg@10, ndcg@20" in finding.message
    assert f"(from {base})" in finding.message


def test_value_metric_with_cutoff_gets_the_right_spelling(tmp_path: Path) -> None:
    """RMSE has no @k: the error says to write RMSE."""
    cfg = write(tmp_path, "a.yaml", "metrics: [RMSE, MAE]\nvalid_metric: RMSE@10\n")
    finding = only(lint_files([cfg]), "valid_metric")
    assert "computes rmse, mae" in finding.message
    assert "RMSE is a value metric and has no @k: write valid_metric: RMSE." in finding.message


def test_valid_metric_bigger_is_overwritten_by_recbole(tmp_path: Path) -> None:
    """A user-set valid_metric_bigger is a warning saying what RecBole will use instead."""
    cfg = write(tmp_path, "a.yaml", "valid_metric: NDCG@10\nvalid_metric_bigger: false\n")
    finding = only(lint_files([cfg]), "valid_metric_bigger")
    assert finding.level == "warning"
    assert "(NDCG@10 → True)" in finding.message and "it becomes True, not False" in finding.message


def _recbole_stop_epoch(stopping_step: int, eval_step: int, epochs: int) -> int | None:
    """RecBole's own early_stopping on a monitor that only gets worse after the first evaluation."""
    from recbole.utils import early_stopping

    best, cur_step = float("-inf"), 0
    for n, epoch in enumerate(e for e in range(epochs) if (e + 1) % eval_step == 0):
        best, cur_step, stop, _ = early_stopping(0.5 - 0.001 * n, best, cur_step, max_step=stopping_step, bigger=True)
        if stop:
            return epoch
    return None


def test_stock_patience_in_epochs_matches_recbole(tmp_path: Path) -> None:
    """stopping_step 10 with eval_step 5 waits 55 epochs; the earliest stop is RecBole's own (epoch 59)."""
    cfg = write(tmp_path, "a.yaml", "epochs: 500\neval_step: 5\nstopping_step: 10\nvalid_metric: NDCG@10\n")
    expected = _recbole_stop_epoch(10, 5, 500)
    assert expected == 59
    finding = only(lint_files([cfg]), "stopping_step")
    assert finding.level == "note" and finding.file == cfg
    assert finding.message == (
        "stock stopping_step 10 with eval_step 5 waits 55 epochs (11 evaluations × 5 epochs) without reaching "
        f"the best; your run can stop as early as epoch {expected} (0-based, as RecBole logs it: after "
        f"{expected + 1} of 500 epochs)"
    )


@pytest.mark.parametrize("stopping_step, eval_step, epochs", [(0, 1, 10), (3, 2, 50), (10, 1, 300), (4, 3, 16)])
def test_earliest_stop_equals_recbole(stopping_step: int, eval_step: int, epochs: int) -> None:
    """The simulated earliest stop of the legacy policy equals RecBole's function on the same worst case."""
    legacy = parse_settings({"preset": "recbole_legacy", "monitor": "ndcg@10", "stopping_step": stopping_step})
    assert earliest_stop(legacy, epochs, eval_step) == _recbole_stop_epoch(stopping_step, eval_step, epochs)


def test_patience_longer_than_budget_warns(tmp_path: Path) -> None:
    """stopping_step 30 with epochs 20: the stop can never fire, which is a warning."""
    cfg = write(tmp_path, "a.yaml", "epochs: 20\nstopping_step: 30\nvalid_metric: NDCG@10\n")
    finding = only(lint_files([cfg]), "stopping_step")
    assert finding.level == "warning"
    assert "waits 31 epochs" in finding.message and "always trains all 20 epochs" in finding.message


def test_rec_es_patience_in_epochs_and_ignored_stopping_step(tmp_path: Path) -> None:
    """An early_stopping policy reports its wait in epochs; a stopping_step beside it is flagged as unused."""
    base = write(tmp_path, "base.yaml", "epochs: 100\neval_step: 2\nstopping_step: 10\nvalid_metric: NDCG@10\n")
    es = write(tmp_path, "es.yaml", "early_stopping:\n  patience: 4\n  warmup: 30\n")
    findings = lint_files([base, es])
    note = only(findings, "early_stopping.patience")
    assert note.file == es
    assert note.message.startswith("early_stopping.patience 4 evaluations with eval_step 2 waits 8 epochs")
    assert "can stop as early as epoch 31" in note.message  # warmup 30: first evaluation at or after it is epoch 31
    unused = only(findings, "stopping_step")
    assert unused.level == "warning" and unused.file == base and f"mapping in {es}" in unused.message


def test_min_delta_below_rounding_warmup_and_eval_step(tmp_path: Path) -> None:
    """min_delta under 10^-metric_decimal_place, warmup past the budget and eval_step > epochs are warnings."""
    cfg = write(tmp_path, "a.yaml", "epochs: 10\neval_step: 20\nvalid_metric: NDCG@10\n"
                "early_stopping:\n  patience: 3\n  min_delta: 0.00005\n  warmup: 10\n")
    findings = lint_files([cfg])
    delta = only(findings, "early_stopping.min_delta")
    assert delta.level == "warning" and "metric_decimal_place 4 decimals (0.0001)" in delta.message
    warm = only(findings, "early_stopping.warmup")
    assert warm.level == "warning" and "warmup 10 is not before the last epoch" in warm.message
    step = only(findings, "eval_step")
    assert step.level == "warning" and "min(eval_step, epochs) = 10" in step.message
    assert main([cfg]) == 0


def test_min_delta_respects_metric_decimal_place(tmp_path: Path) -> None:
    """With metric_decimal_place 6 the same min_delta is fine."""
    cfg = write(tmp_path, "a.yaml", "metric_decimal_place: 6\nvalid_metric: NDCG@10\n"
                "early_stopping:\n  min_delta: 0.00005\n")
    assert not [f for f in lint_files([cfg]) if f.key == "early_stopping.min_delta"]


def test_eval_step_zero_means_no_evaluation(tmp_path: Path) -> None:
    """eval_step 0: RecBole never evaluates, so nothing can stop and the last epoch is tested."""
    cfg = write(tmp_path, "a.yaml", "eval_step: 0\nvalid_metric: NDCG@10\n")
    finding = only(lint_files([cfg]), "eval_step")
    assert finding.level == "warning" and "never evaluates" in finding.message


def test_early_stopping_errors_come_from_load_config(tmp_path: Path) -> None:
    """A bad early_stopping mapping is reported with load_config's own ConfigError text, file and key."""
    cfg = write(tmp_path, "a.yaml", "valid_metric: NDCG@10\nearly_stopping:\n  patiance: 5\n")
    finding = only(lint_files([cfg]), "early_stopping.patiance")
    assert finding.level == "error" and finding.file == cfg
    assert finding.message.startswith("unknown key — did you mean 'patience'?")


def test_monitor_not_computed_is_reported_once(tmp_path: Path) -> None:
    """A monitor RecBole will not compute is an error under early_stopping.monitor."""
    cfg = write(tmp_path, "a.yaml", "valid_metric: NDCG@10\nearly_stopping:\n  monitor: hit@5\n")
    findings = [f for f in lint_files([cfg]) if f.level == "error"]
    assert [f.key for f in findings] == ["early_stopping.monitor"]
    assert "RecBole will not compute hit@5" in findings[0].message


def test_missing_file_and_bad_yaml_are_errors(tmp_path: Path) -> None:
    """Unreadable inputs are errors naming the file, never tracebacks."""
    missing = str(tmp_path / "nope.yaml")
    finding = lint_files([missing])[0]
    assert finding.level == "error" and finding.file == missing and "not found" in finding.message
    bad = write(tmp_path, "bad.yaml", "epochs: [1,\n")
    assert "not valid YAML" in lint_files([bad])[0].message


def test_clean_config_exits_zero_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A clean config gives only the patience note; --json carries the same findings."""
    cfg = write(tmp_path, "a.yaml", "epochs: 50\nvalid_metric: NDCG@10\nmetrics: [NDCG]\n")
    assert main([cfg, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["errors"] == 0
    assert [(f["level"], f["key"], f["file"]) for f in data["findings"]] == [("note", "stopping_step", "RecBole's defaults")]


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("policy", sorted((REPO / "properties" / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policy_files_lint_without_errors(policy: Path) -> None:
    """Every policy file the project ships passes `rec-es check` with no error."""
    assert [f for f in lint_files([str(policy)]) if f.level == "error"] == []


def test_reduce_on_plateau_defers_the_earliest_stop(tmp_path: Path) -> None:
    """Two LR reductions each grant a fresh patience window: patience 10 can stop at epoch 30, not 10."""
    cfg = write(tmp_path, "a.yaml", "valid_metric: NDCG@10\nearly_stopping:\n  patience: 10\n"
                "lr_schedule:\n  reduce_on_plateau:\n    factor: 0.3\n    max_reductions: 2\n")
    note = only(lint_files([cfg]), "early_stopping.patience")
    assert "reduce_on_plateau defers the stop up to 2 times" in note.message
    assert "can stop as early as epoch 30" in note.message


def test_legacy_preset_and_prechelt_name_their_own_keys(tmp_path: Path) -> None:
    """A recbole_legacy mapping reports early_stopping.stopping_step; a Prechelt-only policy early_stopping.prechelt."""
    legacy = write(tmp_path, "l.yaml", "valid_metric: NDCG@10\nearly_stopping:\n  preset: recbole_legacy\n  stopping_step: 4\n")
    note = only(lint_files([legacy]), "early_stopping.stopping_step")
    assert note.message.startswith("early_stopping.stopping_step (recbole_legacy) 4 with eval_step 1 waits 5 epochs")
    gl = write(tmp_path, "g.yaml", "valid_metric: NDCG@10\nearly_stopping:\n  patience: null\n"
               "  prechelt: {criterion: GL, alpha: 5}\n")
    assert only(lint_files([gl]), "early_stopping.prechelt").message.startswith(
        "the patience rule is off (patience: null); Prechelt GL decides")


def test_bad_valid_metric_is_not_reported_twice_through_the_default_monitor(tmp_path: Path) -> None:
    """An early_stopping mapping without monitor uses valid_metric: one error, under valid_metric."""
    base = write(tmp_path, "base.yaml", "metrics: [Recall]\nvalid_metric: MRR@10\n")
    es = write(tmp_path, "es.yaml", "early_stopping:\n  patience: 3\n")
    errors = [f for f in lint_files([base, es]) if f.level == "error"]
    assert [(f.file, f.key) for f in errors] == [(base, "valid_metric")]


def test_unknown_metric_and_mixed_metric_kinds_are_errors(tmp_path: Path) -> None:
    """A metric RecBole does not have, and ranking mixed with value metrics, are errors before training."""
    typo = write(tmp_path, "a.yaml", "metrics: [Recall, NDGC]\nvalid_metric: Recall@10\n")
    finding = only(lint_files([typo]), "metrics")
    assert finding.level == "error" and "RecBole has no metric named 'NDGC' — did you mean 'ndcg'?" in finding.message
    mixed = write(tmp_path, "b.yaml", "metrics: [Recall, RMSE]\nvalid_metric: Recall@10\n")
    finding = only(lint_files([mixed]), "metrics")
    assert "cannot compute ranking and value metrics together (value metrics here: RMSE)" in finding.message


def test_bad_recbole_values_use_the_one_message_template(tmp_path: Path) -> None:
    """epochs / eval_step / valid_metric / metrics of the wrong type: `allowed: ... (got ...)`, like every schema."""
    cfg = write(tmp_path, "a.yaml", "epochs: 0\nmetrics: {a: 1}\n")
    messages = {f.key: f.message for f in lint_files([cfg]) if f.level == "error"}
    assert messages["epochs"] == "allowed: an integer >= 1 (got 0)"
    assert messages["metrics"] == "allowed: a metric name or a list of them, e.g. [Recall, NDCG] (got {'a': 1})"
    cfg = write(tmp_path, "b.yaml", "eval_step: 2.5\nvalid_metric: 3\n")
    assert only(lint_files([cfg]), "eval_step").message == "allowed: an integer (got 2.5)"
    assert only(lint_files([cfg]), "valid_metric").message == "allowed: a metric key such as NDCG@10 (got 3)"


def test_every_error_of_a_mapping_is_reported(tmp_path: Path) -> None:
    """An invalid value beside a misspelt key: both are errors (the check does not stop at the first)."""
    f = write(tmp_path, "es.yaml", "early_stopping:\n  smoothing: ewma\n  patiance: 5\n  min_delta: -1\n")
    errors = {x.key: x for x in lint_files([f]) if x.level == "error"}
    assert {"early_stopping.smoothing", "early_stopping.patiance", "early_stopping.min_delta"} <= set(errors)
    assert "did you mean 'patience'" in errors["early_stopping.patiance"].message
    assert "ewma" in errors["early_stopping.smoothing"].message
    assert all(x.file == f for x in errors.values())


def test_every_error_in_every_file(tmp_path: Path) -> None:
    """Errors in two files are all reported, each naming its own file."""
    a = write(tmp_path, "a.yaml", "stoping_step: 3\nlr_schedule: {decay: linear}\n")
    b = write(tmp_path, "b.yaml", "early_stopping: {smoothing: ewma}\n")
    found = {(x.file, x.key) for x in lint_files([a, b]) if x.level == "error"}
    assert {(a, "stoping_step"), (a, "lr_schedule.decay"), (b, "early_stopping.smoothing")} <= found


def test_check_takes_set_and_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rec-es check FILE --set k=v` lints the value as `rec-es run --set` would merge it, naming --set."""
    f = write(tmp_path, "ok.yaml", "epochs: 20\n")
    assert main([f]) == 0
    capsys.readouterr()
    assert main([f, "--set", "early_stopping.smoothing=ewma", "--set", "stoping_step=3"]) == 1
    out = capsys.readouterr().out
    assert "--set: early_stopping.smoothing: error:" in out
    assert "--set: stoping_step: error: unknown key — did you mean 'stopping_step'?" in out
    assert main([f, "--set", "oops"]) == 2  # a malformed --set is bad usage, as in rec-es run


def test_run_prints_warnings_for_set_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rec-es run warns about a value given with --set exactly as about the same value in a file."""
    from rec_es.cli.run import lint_before_training

    f = write(tmp_path, "ok.yaml", "epochs: 20\n")
    lint_before_training([f], {"eval_step": 50})
    assert "rec-es run: --set: eval_step: warning: eval_step 50 is larger than epochs 20" in capsys.readouterr().err
    g = write(tmp_path, "file.yaml", "epochs: 20\neval_step: 50\n")
    lint_before_training([g], {})
    assert f"rec-es run: {g}: eval_step: warning: eval_step 50 is larger than epochs 20" in capsys.readouterr().err
