"""YAML edge cases through the one loader (rec_es.rundir.yamlio) that config, check, compare and explain share.

Malformed --set values, keys that are not strings, alias bombs (a few hundred bytes that expand to 10**8
values), recursive aliases, deep nesting and duplicate keys: each is a ConfigError or a check finding naming
the file (or --set) and the key, with a message of bounded length, and never a traceback or an out-of-memory.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from rec_es.cli.compare import main as compare_main
from rec_es.config.properties import load_config, parse_set_args, read_yaml
from rec_es.policy.errors import MAX_MESSAGE, ConfigError
from rec_es.cli.explain import main as explain_main
from rec_es.config.lint import lint_files
from rec_es.cli.run import main as run_main
from rec_es.rundir.yamlio import MAX_NODES, loads

from conftest import tiny_recbole_config


def bomb(levels: int = 8, width: int = 10) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the previous: width**levels values in ~300 bytes."""
    lines = ["a0: &a0 [" + ", ".join(["1"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"epochs: [" + ", ".join([f"*a{levels - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tiny(path: Path, **overrides: object) -> Path:
    return write(path, yaml.safe_dump(tiny_recbole_config(**overrides)))


def test_the_bomb_is_a_bomb() -> None:
    """The test input really expands past the limit (10**9 values) while being a few hundred bytes."""
    assert len(bomb()) < 600 and 10 ** 9 > MAX_NODES


def test_alias_bomb_is_refused_fast_by_every_reader(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check, run, compare --policies and explain --policies refuse the bomb in well under a second each."""
    f = write(in_tmp / "bomb.yaml", bomb())
    good = tiny(in_tmp / "good.yaml")
    started = time.perf_counter()
    findings = lint_files([f])
    assert [(x.level, x.key) for x in findings] == [("error", "epochs")]
    assert "aliases expand to more than 100,000 values" in findings[0].message
    assert run_main(["--config", str(f), "--output-dir", "run"]) == 2
    assert compare_main(["--config", str(good), "--policies", str(f), "--output", "out", "--cache-dir", "c"]) == 2
    assert explain_main(["nowhere", "--policies", str(f)]) == 2
    assert time.perf_counter() - started < 10
    err = capsys.readouterr().err
    assert err.count("aliases expand to more than 100,000 values") == 3 and "Traceback" not in err


def test_alias_bomb_in_a_set_value_is_refused() -> None:
    """The same expansion inside one --set value: a ConfigError naming --set and the key."""
    value = "[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], " \
            "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"
    with pytest.raises(ConfigError, match=r"^--set: YAML aliases expand .*got 'epochs=") as info:
        parse_set_args([f"epochs={value}"])
    assert info.value.key == "epochs"


@pytest.mark.parametrize("text, needle", [
    ("a: &a [*a]\n", "a recursive alias"),
    ("deep: " + "[" * 3000 + "]" * 3000 + "\n", "nests"),
    ("deep: " + "[" * 80 + "]" * 80 + "\n", "nests more than 64 levels deep"),
    ("epochs: " + "1" * 5000 + "\n", "a value cannot be read .*4300 digits"),
    ("day: 2020-99-31\n", "a value cannot be read .*month must be in 1..12"),
    ("x: !!python/object/apply:os.mkdir [PWNED]\n", "could not determine a constructor"),
])
def test_documents_that_cannot_be_built_are_refused(in_tmp: Path, text: str, needle: str) -> None:
    """A value containing itself, nesting past what anything downstream could print, a scalar Python cannot
    build, or a Python tag (never executed): ConfigError naming the file."""
    f = write(in_tmp / "odd.yaml", text)
    with pytest.raises(ConfigError, match=needle) as info:
        read_yaml(f)
    assert str(info.value).startswith(str(f))
    assert not (in_tmp / "PWNED").exists()


@pytest.mark.parametrize("item", ["epochs=[1,", "early_stopping={patience: 3", "epochs=: :", "x=\t- a"])
def test_malformed_set_values(in_tmp: Path, capsys: pytest.CaptureFixture[str], item: str) -> None:
    """A --set value YAML cannot read: exit 2 from run, naming --set and the item, before anything is written."""
    cfg = tiny(in_tmp / "tiny.yaml")
    assert run_main(["--config", str(cfg), "--set", item, "--output-dir", "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rec-es run: error: --set: not valid YAML") and repr(item) in err
    assert "Traceback" not in err and not (in_tmp / "run").exists()


def test_duplicate_key_in_a_set_value_is_refused() -> None:
    """early_stopping={patience: 1, patience: 2}: which one was meant is unknown, so it is an error."""
    with pytest.raises(ConfigError, match="key 'patience' is given twice"):
        parse_set_args(["early_stopping={patience: 1, patience: 2}"])


@pytest.mark.parametrize("text, key, kind", [
    ("1: 2\nepochs: 3\n", "1", "a number"),
    ("on: 3\nepochs: 3\n", "on", "a boolean"),
    ("null: 3\n", "null", "null"),
    ("? [a, b]\n: 3\n", None, "found unhashable key"),
])
def test_keys_that_are_not_strings(tmp_path: Path, text: str, key: str | None, kind: str) -> None:
    """check reports one error naming the file, line and key (its did-you-mean never sees a non-string)."""
    f = write(tmp_path / "keys.yaml", text)
    findings = lint_files([f])
    assert len(findings) == 1 and findings[0].level == "error" and findings[0].file == str(f)
    assert kind in findings[0].message and "line 1" in findings[0].message
    if key is not None:
        assert f"key {key!r} is read by YAML as {kind}" in findings[0].message and findings[0].key == key


def test_non_string_keys_inside_early_stopping(tmp_path: Path) -> None:
    """A number as a key inside the policy mapping: an error finding, not a crash."""
    f = write(tmp_path / "p.yaml", "early_stopping:\n  1: 2\n")
    findings = [x for x in lint_files([tiny(tmp_path / "t.yaml"), f]) if x.level == "error"]
    assert len(findings) == 1 and findings[0].file == str(f) and "unknown key" in findings[0].message


def test_duplicate_keys_warn_with_both_lines(tmp_path: Path) -> None:
    """A duplicated early_stopping: (a hidden policy) and a duplicated key inside it: warnings naming both lines."""
    f = write(tmp_path / "dup.yaml", "early_stopping:\n  patience: 3\n  patience: 8\nepochs: 40\n"
                                     "early_stopping:\n  patience: 5\n")
    warned = {x.key: x for x in lint_files([f]) if x.level == "warning" and "given twice" in x.message}
    assert set(warned) == {"early_stopping", "early_stopping.patience"}
    assert all(x.file == str(f) for x in warned.values())
    assert "at lines 1 and 5" in warned["early_stopping"].message
    assert "the whole early_stopping: mapping at line 1 is ignored" in warned["early_stopping"].message
    assert "at lines 2 and 3" in warned["early_stopping.patience"].message
    assert load_config([f]).settings.patience == 5  # RecBole's and PyYAML's last-wins, unchanged


def test_a_huge_value_prints_a_bounded_message(tmp_path: Path) -> None:
    """A legitimate but huge value (20,000 numbers) in an error: the message stays under the bound."""
    f = write(tmp_path / "big.yaml", "epochs: [" + ", ".join(["7"] * 20_000) + "]\n")
    findings = [x for x in lint_files([f]) if x.key == "epochs"]
    assert findings and all(len(x.message) <= MAX_MESSAGE + 100 for x in findings)
    with pytest.raises(ConfigError) as info:
        load_config([f, write(tmp_path / "p.yaml", "early_stopping: " + "{patience: [" + "1," * 20_000 + "1]}\n")])
    assert len(str(info.value)) <= MAX_MESSAGE + 200


def test_loader_reads_floats_the_way_recbole_does() -> None:
    """1e-3 is a float (plain YAML 1.1 would read a string), as in RecBole's own loader."""
    assert loads("learning_rate: 1e-3\n", "x").data == {"learning_rate": 0.001}
