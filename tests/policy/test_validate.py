"""rec_es.validate: each validator's check, its two descriptions, composition and the one message template."""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from rec_es.policy.errors import ConfigError
from rec_es.policy.validate import (
    MISSING,
    Invalid,
    KeySpec,
    Scope,
    Validator,
    and_,
    boolean,
    custom,
    did_you_mean,
    integer,
    is_int,
    is_number,
    message,
    number,
    one_of,
    optional,
    parse_keys,
    table,
    within,
)


# Factories, not validators: each test builds its validators itself, so a mutant of a builder (boolean(), optional()
# ...) is on when they are built (mutmut imports the test modules, and so evaluates these lists, before it switches a
# mutant on).
@pytest.mark.parametrize("make, allowed, doc, good, bad", [
    (boolean, "true or false", "bool", [True, False], [0, 1, "yes", None]),
    (lambda: integer(1), "an integer >= 1", "int >= 1", [1, 7], [0, True, 1.0, "2", None]),
    (lambda: number(0), "a number >= 0", "float >= 0", [0, 0.5, 3], [-0.1, math.nan, math.inf, True, "1"]),
    (lambda: number(0, low_open=True), "a number > 0", "float > 0", [1e-9, 2], [0, -1]),
    (lambda: number(0, 1, low_open=True), "a number in (0, 1]", "float in (0, 1]", [0.5, 1], [0, 1.01]),
    (lambda: number(0, 1, low_open=True, high_open=True), "a number in (0, 1)", "float in (0, 1)", [0.5], [0, 1]),
    (number, "a finite number", "float", [-3, 2.5], [math.nan, None]),
    # closed at both ends: both ends pass, just outside them does not
    (lambda: number(0, 1), "a number in [0, 1]", "float in [0, 1]", [0, 0.5, 1], [-0.01, 1.01]),
    # an upper bound alone: closed (<=) or open (<), the bound itself passes only when closed
    (lambda: number(high=1), "a number <= 1", "float <= 1", [1, 0.99, -5], [1.01, math.inf]),
    (lambda: number(high=1, high_open=True), "a number < 1", "float < 1", [0.99, -5], [1, 1.01]),
    (lambda: one_of("abs", "rel"), "abs | rel", "abs | rel", ["abs", "REL"], ["percent", 1, None]),
    (lambda: one_of("none", "step", ignore_case=False), "none | step", "none | step", ["step"], ["Step"]),
    (lambda: optional(integer(1)), "an integer >= 1 or null", "int >= 1 | null", [None, 3], [0, True]),
])
def test_validator_checks_and_describes(make: Callable[[], Validator], allowed: str, doc: str, good: list,
                                        bad: list) -> None:
    """Good values pass, bad ones raise Invalid with the allowed text; `doc` is the docs' type column."""
    validator = make()
    assert (validator.allowed, validator.doc, validator.describe()) == (allowed, doc, doc)
    assert repr(validator) == f"<validator {doc}>"
    for value in good:
        validator(value)
    for value in bad:
        with pytest.raises(Invalid) as info:
            validator(value)
        assert info.value.allowed == allowed and info.value.given is value


def test_boolean_passes_true_and_false_unchanged() -> None:
    """boolean() returns True and False as they are (YAML's true/false) and refuses the int 1 with its text."""
    check = boolean()
    assert check(True) is True and check(False) is False
    with pytest.raises(Invalid, match=r"^true or false$"):
        check(1)


def test_values_are_normalised() -> None:
    """Numbers come back as floats, choices lower-cased, optional passes None through."""
    assert number(0)(2) == 2.0 and isinstance(number(0)(2), float)
    assert one_of("abs", "rel")("REL") == "rel"
    assert optional(number())(None) is None


def test_yaml_off_read_as_false_is_the_choice_off(tmp_path) -> None:
    """An unquoted `still_learning: off` in a property file reaches the policy as False (YAML 1.1): it means
    `off`; True means `on` only where `on` is a choice, and a boolean stays an error elsewhere."""
    import yaml

    from rec_es import build_policy
    raw = yaml.safe_load("early_stopping: {monitor: ndcg@10, still_learning: off}")["early_stopping"]
    assert raw["still_learning"] is False
    assert build_policy(raw).settings.still_learning == "off"
    assert one_of("on", "off")(True) == "on"
    assert one_of("on", "off")(False) == "off"
    assert one_of("off", "hold", "stop")(False) == "off"
    with pytest.raises(Invalid):
        one_of("on", "stop")(False)  # False is "off", which is not a choice here
    for value in (True, False):
        with pytest.raises(Invalid):
            one_of("abs", "rel")(value)
    with pytest.raises(Invalid):
        one_of("off", "hold", "stop")(True)


def test_and_applies_each_in_turn() -> None:
    """and_() feeds each validator the previous one's result and joins their descriptions."""
    even = custom("an even number", "even", lambda v: v % 2 == 0)
    both = and_(integer(0), even)
    assert both(4) == 4 and both.allowed == "an integer >= 0 and an even number"
    assert both.doc == "int >= 0, even"
    with pytest.raises(Invalid, match="an integer >= 0"):
        both(-2)
    with pytest.raises(Invalid) as info:
        both(3)
    assert info.value.allowed == "an even number"


def test_int_and_number_checks_refuse_bool() -> None:
    """YAML's true is an int to Python; is_int / is_number refuse it."""
    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_number(3) and is_number(2.5) and not is_number(False) and not is_number("1")


def test_did_you_mean_alias_then_nearest() -> None:
    """An alias wins, then the nearest known key above the cut-off, else nothing."""
    assert did_you_mean("patiance", ["patience", "warmup"]) == " — did you mean 'patience'?"
    assert did_you_mean("early_stop", ["enabled"], {"early_stop": "enabled"}) == " — did you mean 'enabled'?"
    assert did_you_mean("zzz", ["patience"]) == ""
    assert did_you_mean("stoping_stepp", ["stopping_step"], cutoff=0.99) == ""


def test_one_template_names_file_key_allowed_and_given() -> None:
    """Scope.check: FILE: PREFIX.KEY: allowed: ... (got ...); nested keys and problems keep the template."""
    scope = Scope("policy.yaml", "early_stopping.")
    with pytest.raises(ConfigError) as info:
        scope.check("patience", optional(integer(1)), 0)
    assert str(info.value) == "policy.yaml: early_stopping.patience: allowed: an integer >= 1 or null (got 0)"
    assert (info.value.source, info.value.key) == ("policy.yaml", "early_stopping.patience")

    def nested(value: object) -> None:
        raise Invalid("a number > 0", value, "too small", key="dynamic_patience.factor")

    with pytest.raises(ConfigError) as info:
        Scope(None, "early_stopping.").check("dynamic_patience", nested, 0)
    assert str(info.value) == "early_stopping.dynamic_patience.factor: too small; allowed: a number > 0 (got 0)"


def test_message_without_key_or_problem() -> None:
    """message(): `KEY: ` only when a key is given (None for reports that name the key themselves, as lint's) and
    `PROBLEM; ` only when a problem is given."""
    assert message(None, "an integer", 2.5) == "allowed: an integer (got 2.5)"
    assert message("epochs", "an integer >= 1", 0) == "epochs: allowed: an integer >= 1 (got 0)"
    assert message(None, "a number > 0", 0, "too small") == "too small; allowed: a number > 0 (got 0)"


def test_optional_keeps_the_inner_problem_and_nested_key() -> None:
    """optional() only adds `or null` to what is allowed: the inner validator's problem and nested key stay in the
    error, so the ConfigError names the nested key and says what is wrong."""
    def factor(value: object) -> object:
        raise Invalid("a number > 0", value, "too small", key="dynamic_patience.factor")

    check = optional(Validator("a number > 0", "float > 0", factor))
    assert check(None) is None
    with pytest.raises(Invalid) as raised:
        check(0)
    assert (raised.value.allowed, raised.value.given, raised.value.problem, raised.value.key) == (
        "a number > 0 or null", 0, "too small", "dynamic_patience.factor")
    with pytest.raises(ConfigError) as info:
        Scope("p.yaml", "early_stopping.").check("dynamic_patience", check, 0)
    assert str(info.value) == ("p.yaml: early_stopping.dynamic_patience.factor: too small; "
                               "allowed: a number > 0 or null (got 0)")


def test_unknown_keys_and_mapping_messages() -> None:
    """An unknown key is named with a suggestion and the keys allowed; a non-mapping says what it must hold."""
    scope = Scope("s.yaml", "lr_schedule.")
    with pytest.raises(ConfigError, match=r"^s\.yaml: lr_schedule\.gama: unknown key — did you mean 'gamma'\?; "
                                          r"allowed: the keys gamma, decay \(got 'gama'\)$"):
        scope.unknown_keys({"gama": 1}, ["gamma", "decay"])
    with pytest.raises(ConfigError, match=r"^s\.yaml: lr_schedule: must be a mapping of gamma \(got 3\)$") as err:
        scope.mapping(3, "gamma")
    assert err.value.key == "lr_schedule"
    with pytest.raises(ConfigError) as err:  # only the one trailing dot goes, not letters before it
        Scope("s.yaml", "QUEUE_MAX.").mapping([], "sizes")
    assert (err.value.message, err.value.key) == ("QUEUE_MAX: must be a mapping of sizes (got [])", "QUEUE_MAX")


def test_unknown_keys_suggest_from_and_offer_their_own_lists() -> None:
    """``suggest_from`` is where the nearest key is looked for and ``listed`` what the message offers; each
    replaces ``known`` for its own part only."""
    scope = Scope("s.yaml", "restore.")
    with pytest.raises(ConfigError) as err:
        scope.unknown_keys({"averag": 1}, ["average", "k", "window"], listed=["average", "k"],
                           suggest_from=["k"])
    assert err.value.message == ("restore.averag: unknown key; allowed: the keys average, k (got 'averag')")
    with pytest.raises(ConfigError) as err:
        scope.unknown_keys({"windo": 1}, ["average", "k"], suggest_from=["window"])
    assert err.value.message == ("restore.windo: unknown key — did you mean 'window'?; allowed: the keys average, k "
                                 "(got 'windo')")


def specs() -> tuple[KeySpec, ...]:
    """Built in each test (not at import), so mutants of KeySpec and the validators are on when they are built."""
    return (KeySpec("decay", one_of("none", "step"), "none", "decay"),
            KeySpec("gamma", number(0, 1, low_open=True), MISSING, "factor", only_with=("decay", ("step",))),
            KeySpec("floor", number(0), 0.0, "lowest", only_with=("decay", ("step",))))


def test_parse_keys_defaults_required_and_only_with() -> None:
    """Defaults fill in, a key that applies only with another value is refused elsewhere, MISSING is required."""
    scope = Scope("f.yaml", "s.")
    assert parse_keys(scope, {}, specs()) == {"decay": "none"}
    assert parse_keys(scope, {"decay": "step", "gamma": 0.5}, specs()) == {"decay": "step", "gamma": 0.5, "floor": 0.0}
    with pytest.raises(ConfigError, match=r"^f\.yaml: s\.gamma: gamma is set but decay is 'none'; allowed: only with "
                                          r"decay: step \(got 0\.5\)$"):
        parse_keys(scope, {"gamma": 0.5}, specs())
    with pytest.raises(ConfigError, match=r"^f\.yaml: s\.gamma: required by decay: step; allowed: a number in \(0, 1\] "
                                          r"\(got nothing\)$"):
        parse_keys(scope, {"decay": "step"}, specs())


def test_a_key_required_everywhere_says_required() -> None:
    """A MISSING default without ``only_with``: the problem is "required", naming no other key."""
    with pytest.raises(ConfigError) as err:
        parse_keys(Scope("f.yaml", "s."), {}, (KeySpec("monitor", one_of("ndcg", "mrr"), MISSING, "monitor"),))
    assert err.value.message == "s.monitor: required; allowed: ndcg | mrr (got nothing)"


def test_table_rows_come_from_the_specs() -> None:
    """The docs table: one row per key, type from the validator, default as YAML, pipes escaped."""
    assert table(specs()).splitlines() == [
        "| key | type | default | meaning |", "|---|---|---|---|",
        "| `decay` | none \\| step | `none` | decay |",
        "| `gamma` | float in (0, 1] | required | factor |",
        "| `floor` | float >= 0 | `0.0` | lowest |"]


def test_table_writes_defaults_as_yaml_and_keeps_a_given_type() -> None:
    """Defaults read as YAML: null, true / false (not Python's None / True), strings bare; a spec's own `type`
    wins over its validator's doc, which is the type otherwise."""
    rows = table((KeySpec("baseline", optional(number()), None, "a floor"),
                  KeySpec("enabled", boolean(), True, "on or off"),
                  KeySpec("ties", boolean(), False, "ties count"),
                  KeySpec("preset", optional(one_of("recbole")), None, "a preset", type="str | null"),
                  KeySpec("window", integer(1), 3, "epochs"))).splitlines()[2:]
    assert rows == ["| `baseline` | float \\| null | `null` | a floor |",
                    "| `enabled` | bool | `true` | on or off |",
                    "| `ties` | bool | `false` | ties count |",
                    "| `preset` | str \\| null | `null` | a preset |",
                    "| `window` | int >= 1 | `3` | epochs |"]
    assert KeySpec("window", integer(1), 3, "epochs").type == "int >= 1"
    assert KeySpec("preset", optional(one_of("recbole")), None, "", type="str | null").type == "str | null"


def test_within_names_the_nested_key_and_keeps_the_problem() -> None:
    """within() re-raises under the nested key it is given (unless the error names one itself) and keeps what
    was allowed, what was given and the inner problem, so the ConfigError says what is wrong."""
    with pytest.raises(Invalid) as raised:
        within("dynamic_patience.factor", number(0, low_open=True), 0)
    assert (raised.value.allowed, raised.value.given, raised.value.problem, raised.value.key) == (
        "a number > 0", 0, "", "dynamic_patience.factor")

    def factor(value: object) -> object:
        raise Invalid("a number > 0", value, "too small", key="mapping.factor")

    with pytest.raises(Invalid) as raised:
        within("dynamic_patience.factor", Validator("a number > 0", "float > 0", factor), 0)
    assert (raised.value.allowed, raised.value.given, raised.value.problem, raised.value.key) == (
        "a number > 0", 0, "too small", "mapping.factor")
    with pytest.raises(ConfigError) as info:
        Scope("p.yaml", "early_stopping.").check(
            "x", lambda v: within("x.factor", Validator("a number > 0", "float > 0", factor), v), 0)
    assert str(info.value) == "p.yaml: early_stopping.mapping.factor: too small; allowed: a number > 0 (got 0)"


def test_fallback_is_the_validated_default_none_for_a_required_key_or_the_value_given() -> None:
    """Where a key does not apply it holds its default as the validator returns it (``"STEP"`` -> ``"step"``),
    None when it has no default (a required key), or the ``inapplicable`` value its spec names."""
    assert KeySpec("decay", one_of("none", "step"), "STEP", "decay").fallback() == "step"
    assert KeySpec("gamma", number(0, 1), MISSING, "factor").fallback() is None
    assert KeySpec("floor", number(0), 0.0, "lowest", inapplicable="n/a").fallback() == "n/a"
