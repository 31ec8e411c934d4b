"""dynamic_patience: patience grows to ceil(factor x n) with the time n (in patience_unit) the latest improvement
took, capped at max_patience, and only for improvements of at least min_gain (relative); scripted scores with the
effective patience worked out by hand in the comments."""
from __future__ import annotations

import pytest

from rec_es import ConfigError, build_policy
from rec_es.policy import StopReason


def patiences(mapping: dict, scores: list[float], epochs: list[int] | None = None, monitor: str = "ndcg@10") -> list:
    """The effective patience after each evaluation of ``scores`` (at ``epochs``, default 0, 1, 2, ...)."""
    policy = build_policy({"monitor": monitor, **mapping})
    return [policy.update(e, {monitor: v}).patience
            for e, v in zip(range(len(scores)) if epochs is None else epochs, scores)]


def test_grown_patience_is_capped_and_the_stop_says_it_grew() -> None:
    """Six improvements in a row grow patience 2 with factor 1 towards 6 (n = 6 evaluations), but max_patience caps
    it at 3: the run stops after 3 evaluations without improvement, and the stop says dynamic_patience grew it."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 2, "dynamic_patience": {"factor": 1.0, "max_patience": 3}})
    ds = [policy.update(e, {"ndcg@10": v}) for e, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.1, 0.1, 0.1])]
    # n = 1, 2, 3, ...: ceil(1 x n) = n, capped at 3; never below patience 2
    assert [d.patience for d in ds] == [2, 2, 3, 3, 3, 3, 3, 3, 3]
    assert [d.stop for d in ds] == [False] * 8 + [True]
    assert ds[-1].reason is StopReason.PATIENCE
    assert ds[-1].message == (
        "stopped at epoch 8: ndcg@10 did not improve for 3 evaluations (3 epochs) since epoch 5 (0.6); patience 3 "
        "evaluations (dynamic_patience grew it from 2); raise early_stopping.patience or set early_stopping.enabled: "
        "false")


# factor 2, patience 1, min_gain 0.5: the first evaluation improves from nothing and grants ceil(2 x 1) = 2; the
# second grants ceil(2 x 2) = 4 only if its gain over the first, (new - old) / |old| (sign flipped for min), is
# at least 0.5.
@pytest.mark.parametrize("monitor,scores,patience", [
    ("ndcg@10", [0.5, 0.75], 4),   # gain .25 / .5 = .5 exactly: enough (min_gain is inclusive)
    ("ndcg@10", [0.5, 0.74], 2),   # gain .24 / .5 = .48: too small, restarts the wait, grants nothing
    ("rmse", [0.5, 0.25], 4),      # smaller is better: gain -(-.25) / .5 = .5 exactly
    ("rmse", [0.5, 0.26], 2),      # gain .24 / .5 = .48
    ("ndcg@10", [1.0, 1.1], 2),    # gain .1 / 1 = .1
    ("ndcg@10", [0.0, 0.1], 4),    # from a best of 0 no relative gain can be measured: the improvement counts
])
def test_min_gain_is_relative_to_the_previous_best(monitor: str, scores: list[float], patience: int) -> None:
    """Only an improvement of at least min_gain relative to the best it beats (in the monitor's direction) grows
    patience; smaller ones restart the wait but leave patience where it was."""
    got = patiences({"patience": 1, "dynamic_patience": {"factor": 2.0, "min_gain": 0.5}}, scores, monitor=monitor)
    assert got == [2, patience]


@pytest.mark.parametrize("unit,expected", [
    ("evaluations", [2, 2, 3]),    # n = 1, 2, 3 evaluations: ceil(1 x n), never below patience 2
    ("epochs", [2, 4, 6]),         # n = epoch + 1 = 2, 4, 6 epochs
])
def test_growth_counts_in_patience_unit(unit: str, expected: list[int]) -> None:
    """n counts in patience_unit: evaluations at epochs 1, 3 and 5 (every second epoch) are 3 evaluations but 6
    epochs, so factor 1 grows patience 2 to 3 evaluations or to 6 epochs."""
    got = patiences({"patience": 2, "patience_unit": unit, "dynamic_patience": {"factor": 1.0}},
                    [0.1, 0.2, 0.3], epochs=[1, 3, 5])
    assert got == expected


ALLOWED = "allowed: null or {factor: > 0, max_patience: int | null, min_gain: >= 0}"


@pytest.mark.parametrize("given,got", [
    ({"factor": 1.0, "bogus": 1}, "{'factor': 1.0, 'bogus': 1}"),   # an unknown field beside factor
    ({"max_patience": 3}, "{'max_patience': 3}"),                  # known fields only, but no factor
    (2.0, "2.0"),                                                    # not a mapping
    (["factor"], "['factor']"),                                      # not a mapping, though it holds 'factor'
])
def test_bad_dynamic_patience_is_refused_naming_what_was_given(given: object, got: str) -> None:
    """dynamic_patience must be null or a mapping with factor and no fields but factor, max_patience and
    min_gain; anything else is a ConfigError with the allowed form and the value as given."""
    with pytest.raises(ConfigError) as info:
        build_policy({"monitor": "ndcg@10", "patience": 2, "dynamic_patience": given}, source="policy.yaml")
    assert str(info.value) == f"policy.yaml: early_stopping.dynamic_patience: {ALLOWED} (got {got})"


def test_dynamic_patience_needs_patience() -> None:
    """With patience: null there is nothing to grow: dynamic_patience is refused, naming the value given."""
    with pytest.raises(ConfigError) as info:
        build_policy({"monitor": "ndcg@10", "patience": None, "dynamic_patience": {"factor": 1.0}},
                     source="policy.yaml")
    assert str(info.value) == ("policy.yaml: early_stopping.dynamic_patience: dynamic patience adapts the patience "
                               "rule; allowed: null when patience is null (got {'factor': 1.0})")


def test_reference_table_row() -> None:
    """The keys table of docs/properties.md gives dynamic_patience's type as null or the mapping's fields."""
    from rec_es.policy.schema import reference_table

    row = "| `dynamic_patience` | null \\| {factor, max_patience, min_gain} | `null` | patience grows with the time "
    assert row in reference_table()
