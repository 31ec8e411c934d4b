"""rec_es.policy.schema: what the legacy preset sets, the settings' derived properties and plain mapping, and the
reference-table tool (``with_table`` and ``python -m rec_es.policy.schema``) at its edges."""
from __future__ import annotations

import locale
from pathlib import Path

import pytest

from rec_es import build_policy
from rec_es.policy.presets import recbole_legacy
from rec_es.policy.errors import ConfigError
from rec_es.policy.schema import legacy_settings, main, parse_settings, reference_table, with_table

START, END = "<!-- keys-table:start -->", "<!-- keys-table:end -->"


# --- parse_settings: what it refuses, and how -------------------------------------------------------------------
KEYS_LISTED = ("enabled, preset, monitor, mode, min_delta, improvement, alpha, min_delta_mode, ties_improve, patience, "
               "patience_unit, dynamic_patience, warmup, start_from_epoch, smoothing, ema_alpha, window, best_by, "
               "restore, stopping_threshold, divergence_threshold, baseline, check_finite, max_epochs, max_minutes, "
               "prechelt, error_offset, still_learning, learning_confidence, combine")


def refusal(mapping: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_settings(mapping, source="p.yaml")
    return err.value


def test_no_mapping_is_the_defaults() -> None:
    """``early_stopping:`` left empty (None) is the empty mapping: every default."""
    assert parse_settings(None) == parse_settings({})


def test_the_legacy_preset_refuses_any_other_key_naming_the_ones_it_takes() -> None:
    """recbole_legacy reproduces RecBole, so a key it does not take is refused: the key, why, what it takes, what
    was given."""
    err = refusal({"preset": "recbole_legacy", "monitor": "ndcg@10", "patience": 3})
    assert err.message == ("early_stopping.patience: recbole_legacy reproduces RecBole exactly, so it takes no other "
                           "setting; drop the key or the preset; allowed: enabled, mode, monitor, preset, "
                           "stopping_step (got 3)")
    assert (err.source, err.key) == ("p.yaml", "early_stopping.patience")


def test_unknown_keys_offer_the_documented_keys_and_suggest_from_all() -> None:
    """An unknown key offers the documented keys (never stopping_step, which only the legacy preset takes), with
    or without a preset; the suggestion is looked for among every key, stopping_step included."""
    with_preset = refusal({"preset": "recbole_legacy", "patienc": 3})
    assert with_preset.message == (f"early_stopping.patienc: unknown key — did you mean 'patience'?; allowed: the "
                                   f"keys {KEYS_LISTED} (got 'patienc')")
    misspelt = refusal({"stoping_step": 3})
    assert misspelt.message == (f"early_stopping.stoping_step: unknown key — did you mean 'stopping_step'?; "
                                f"allowed: the keys {KEYS_LISTED} (got 'stoping_step')")


def test_the_preset_is_checked_before_any_other_key() -> None:
    """A wrong preset is named first, even when a key before it in the table is wrong too."""
    err = refusal({"enabled": "maybe", "preset": "fast"})
    assert err.key == "early_stopping.preset"
    assert err.message == "early_stopping.preset: allowed: recbole_legacy or null (got 'fast')"


# --- the legacy preset and the settings ----------------------------------------------------------------------

def test_legacy_settings_are_recboles_rule_in_plain_keys() -> None:
    """stopping_step N is patience N+1 with ties improving, and a NaN is a miss (RecBole never lets it win)."""
    assert legacy_settings(4) == {"ties_improve": True, "patience": 5, "check_finite": "miss"}
    settings = recbole_legacy("ndcg@10", 4).settings
    assert (settings.ties_improve, settings.patience, settings.check_finite) == (True, 5, "miss")


def test_legacy_preset_counts_a_nan_as_a_miss_not_a_stop() -> None:
    """stopping_step 1 (patience 2): a NaN after the best is one miss, a second NaN stops on patience, never on
    non_finite."""
    policy = recbole_legacy("ndcg@10", 1)
    decisions = [policy.update(e, {"ndcg@10": v}) for e, v in enumerate([0.5, float("nan"), float("nan")])]
    assert [(d.stop, d.reason.value, d.wait_count) for d in decisions] == [
        (False, "not_stopped", 0), (False, "not_stopped", 1), (True, "patience", 2)]


def test_smoothing_param_is_the_smoothers_one_parameter() -> None:
    """``settings.smoothing_param`` is ema_alpha under EMA, the window under a window, 0 with no smoothing."""
    def param(**m: object) -> float:
        return build_policy({"monitor": "ndcg@10", **m}).settings.smoothing_param

    assert param(smoothing="ema", ema_alpha=0.3) == 0.3
    assert param(smoothing="window", window=4) == 4
    assert param() == 0.0


def test_legacy_mapping_holds_only_the_presets_keys_in_order() -> None:
    """A legacy policy's plain mapping is preset, monitor, mode, stopping_step, enabled (in that order), and
    builds the same settings again."""
    settings = recbole_legacy("ndcg@10", 3).settings
    mapping = settings.to_mapping()
    assert list(mapping.items()) == [("preset", "recbole_legacy"), ("monitor", "ndcg@10"), ("mode", "max"),
                                     ("stopping_step", 3), ("enabled", True)]
    assert build_policy(mapping).settings == settings


def test_plain_mapping_has_no_preset_key_and_round_trips() -> None:
    """Without a preset the mapping starts enabled, monitor, mode, leaves ``preset`` out (a null preset is the
    absence of one), leaves out keys that do not apply (ema_alpha without EMA) and builds the same settings."""
    settings = build_policy({"monitor": "ndcg@10", "patience": 4, "smoothing": "window", "window": 3}).settings
    mapping = settings.to_mapping()
    assert list(mapping)[:3] == ["enabled", "monitor", "mode"]
    assert "preset" not in mapping and "ema_alpha" not in mapping
    assert (mapping["patience"], mapping["smoothing"], mapping["window"]) == (4, "window", 3)
    assert build_policy(mapping).settings == settings


# --- with_table ------------------------------------------------------------------------------------------------

def test_with_table_needs_both_markers() -> None:
    """A text missing either marker (or both) is refused with one message naming both markers."""
    message = f"the markers {START} and {END} are missing"
    for text in (f"intro\n{START}\nold\n", f"intro\nold\n{END}\n", "intro\n"):
        with pytest.raises(ValueError) as raised:
            with_table(text)
        assert str(raised.value) == message


def test_with_table_replaces_from_the_first_start_to_the_first_end_after_it() -> None:
    """The first start marker opens the table and the first end marker after it closes it: a repeated start
    marker inside the old table is replaced with it, a repeated end marker after it is kept as text."""
    table = reference_table()
    assert with_table(f"a {START} old {START} older {END} b") == f"a {START}\n{table}\n{END} b"
    assert with_table(f"a {START} old {END} b {END} c") == f"a {START}\n{table}\n{END} b {END} c"


# --- python -m rec_es.policy.schema ---------------------------------------------------------------------------

def test_main_help_names_the_module_and_both_options(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` shows the command as it is run, the description and each option's FILE and meaning."""
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as raised:
        main(["--help"])
    assert raised.value.code == 0
    assert capsys.readouterr().out == (
        "usage: python -m rec_es.policy.schema [-h] [--write FILE | --check FILE]\n"
        "\n"
        "Print the reference table, or write / check it in a markdown file between the markers.\n"
        "\n"
        "options:\n"
        "  -h, --help    show this help message and exit\n"
        "  --write FILE  replace the table between the markers in FILE\n"
        "  --check FILE  exit 1 if the table in FILE is not the generated one\n")


def test_main_without_options_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    """No option: the reference table on stdout, exit status 0."""
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out == reference_table() + "\n"
    assert "| `patience` |" in out


def test_check_says_whether_the_table_is_up_to_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check prints '<file>: the keys table is up to date' (exit 0) or '... stale; run with --write <file>'
    (exit 1), naming the file both times."""
    page = tmp_path / "props.md"
    page.write_text(f"intro\n{START}\n| old |\n{END}\n", encoding="utf-8")
    assert main(["--check", str(page)]) == 1
    assert capsys.readouterr().out == f"{page}: the keys table is stale; run with --write {page}\n"
    assert main(["--write", str(page)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["--check", str(page)]) == 0
    assert capsys.readouterr().out == f"{page}: the keys table is up to date\n"


def test_write_and_check_use_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """Under an ASCII locale (LC_CTYPE=C, as a cp1252 Windows console would be for non-Latin text) the page is
    still read and written as UTF-8: its non-ASCII text survives --write and --check."""
    page = tmp_path / "props.md"
    page.write_text(f"α ≥ 0 — intro\n{START}\n| old |\n{END}\nβ\n", encoding="utf-8")
    saved = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        assert main(["--check", str(page)]) == 1
        assert main(["--write", str(page)]) == 0
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    assert page.read_text(encoding="utf-8") == f"α ≥ 0 — intro\n{START}\n{reference_table()}\n{END}\nβ\n"
