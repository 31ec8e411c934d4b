"""early_stopping.restore: the setting, which evaluations an average takes, what a trainer keeps, the budget check
and the fallback verdict (pure: no torch)."""
from __future__ import annotations

import math
from typing import Any

import pytest

from rec_es import build_policy
from rec_es.policy.errors import ConfigError
from rec_es.policy.restore import (RestoreSpec, check_budget, epochs_to_average, epochs_to_keep, evaluations_in_budget,
                                   judge, ranked)

NAN = math.nan
#: (epoch, raw, smoothed): epoch 1 is ignored (smoothed None: start_from_epoch), epoch 4 is NaN
HISTORY = [(0, 0.10, 0.10), (1, 0.90, None), (2, 0.30, 0.20), (3, 0.25, 0.22), (4, NAN, None), (5, 0.28, 0.25),
           (6, 0.20, 0.23), (7, 0.15, 0.19)]


def spec(**mapping: Any) -> RestoreSpec:
    return RestoreSpec.parse(mapping)


@pytest.mark.parametrize("restore, best_by, expected", [
    ("best", "raw", []),
    ({"average": "best_k", "k": 3}, "raw", [2, 3, 5]),           # 0.30, 0.28, 0.25; the ignored 0.90 never counts
    ({"average": "best_k", "k": 3}, "smoothed", [3, 5, 6]),      # 0.25, 0.23, 0.22
    ({"average": "best_k", "k": 50}, "raw", [0, 2, 3, 5, 6, 7]),  # every counted evaluation
    ({"average": "window", "window": 3}, "raw", [5, 6, 7]),      # the last three counted, up to the stop
    ({"average": "window", "window": 4}, "smoothed", [3, 5, 6, 7]),  # NaN epoch 4 left out: fewer epochs
    ({"average": "peak", "window": 3}, "raw", [0, 2, 3]),        # centred on epoch 2 (raw 0.30)
    ({"average": "peak", "window": 3}, "smoothed", [3, 5, 6]),   # centred on epoch 5 (smoothed 0.25)
    ({"average": "peak", "window": 4}, "smoothed", [3, 5, 6, 7]),  # 1 before, 2 after
    ({"average": "peak", "window": 9}, "raw", [0, 2, 3, 5, 6, 7]),  # 4 before (only 1 exists), 4 after
    ({"average": "ema", "decay": 0.5}, "raw", [0, 2, 3, 5, 6, 7]),
])
def test_epochs_to_average(restore: Any, best_by: str, expected: list[int]) -> None:
    """Each mode's epochs on a scripted history, with ignored and NaN evaluations left out."""
    assert epochs_to_average(RestoreSpec.parse(restore), HISTORY, "max", best_by) == expected


def test_min_mode_and_ties_rank_the_earlier_first() -> None:
    """mode min ranks small values first; a tie goes to the earlier evaluation."""
    history = [(0, 3.0, 3.0), (1, 1.0, 1.0), (2, 1.0, 1.0), (3, 2.0, 2.0)]
    assert ranked(history, "min") == [1, 2, 3, 0]
    assert ranked(history, "max") == [0, 3, 1, 2]
    assert epochs_to_average(spec(average="best_k", k=1), history, "min") == [1]
    assert epochs_to_average(spec(average="peak", window=3), history, "min") == [0, 1, 2]
    assert epochs_to_average(spec(average="window", window=2), [], "max") == []


@pytest.mark.parametrize("restore", [{"average": "best_k", "k": 2}, {"average": "window", "window": 3},
                                     {"average": "peak", "window": 3}, {"average": "peak", "window": 5},
                                     {"average": "peak", "window": 2}])
def test_a_trainer_keeping_epochs_to_keep_has_every_weight_the_average_asks_for(restore: dict[str, Any]) -> None:
    """Fed one evaluation at a time, keeping only epochs_to_keep, every prefix's average is servable, and no more
    than RestoreSpec.copies() weights are ever held."""
    s = RestoreSpec.parse(restore)
    values = [0.1, 0.3, 0.2, 0.35, 0.34, 0.1, NAN, 0.36, 0.2, 0.1, 0.37, 0.05]
    history: list[tuple[int, float, float | None]] = []
    kept: set[int] = set()
    for epoch, v in enumerate(values):
        history.append((epoch, v, None if math.isnan(v) else v))
        keep = set(epochs_to_keep(s, history))
        kept = (kept | {epoch}) & keep
        assert kept == keep and len(kept) <= s.copies()
        assert set(epochs_to_average(s, history)) <= kept


@pytest.mark.parametrize("mapping, key, fragment", [
    ({"average": "best_k", "k": 0}, "early_stopping.restore.k", "allowed: an integer >= 1 (got 0)"),
    ({"average": "best_k", "k": 2.5}, "early_stopping.restore.k", "allowed: an integer >= 1 (got 2.5)"),
    ({"average": "best_k", "k": True}, "early_stopping.restore.k", "(got True)"),
    ({"average": "best_k"}, "early_stopping.restore.k", "required by average: best_k"),
    ({"average": "window", "window": 0}, "early_stopping.restore.window", "an integer >= 1 (got 0)"),
    ({"average": "peak", "window": -1}, "early_stopping.restore.window", "(got -1)"),
    ({"average": "ema", "decay": 1.0}, "early_stopping.restore.decay", "allowed: a number in (0, 1) (got 1.0)"),
    ({"average": "ema", "decay": 0}, "early_stopping.restore.decay", "(got 0)"),
    ({"average": "mean", "k": 2}, "early_stopping.restore.average", "unknown averaging mode; allowed: best_k | "
                                                                    "window | peak | ema (got 'mean')"),
    ({"average": "window", "window": 3, "k": 2}, "early_stopping.restore.k", "k does not apply to average: window"),
    ({"k": 2}, "early_stopping.restore", "allowed: best, or {average: best_k, k: K}"),
    ("last", "early_stopping.restore", "(got 'last')"),
])
def test_bad_restore_settings_name_the_key(mapping: Any, key: str, fragment: str) -> None:
    """Every bad restore value is a ConfigError naming the nested key, what is allowed and what was given."""
    with pytest.raises(ConfigError) as err:
        build_policy({"monitor": "ndcg@10", "restore": mapping}, source="p.yaml")
    assert err.value.key == key
    assert str(err.value).startswith(f"p.yaml: {key}: ") and fragment in str(err.value)


def test_default_and_round_trip() -> None:
    """restore defaults to best; the settings mapping writes it back as a property file does; the legacy preset
    takes no restore key."""
    assert build_policy({"monitor": "ndcg@10"}).settings.restore == RestoreSpec()
    policy = build_policy({"monitor": "ndcg@10", "restore": {"average": "EMA", "decay": 0.9}})
    assert policy.settings_mapping()["restore"] == {"average": "ema", "decay": 0.9}
    assert build_policy(policy.settings_mapping()).settings == policy.settings
    assert build_policy({"monitor": "ndcg@10", "restore": "BEST"}).settings_mapping()["restore"] == "best"
    with pytest.raises(ConfigError, match="restore"):
        build_policy({"preset": "recbole_legacy", "restore": {"average": "best_k", "k": 2}})


def test_budget() -> None:
    """A window or k above the evaluations the budget makes is refused naming the key; ema and best never are."""
    assert evaluations_in_budget(10, 1) == 10 and evaluations_in_budget(10, 3) == 3
    assert evaluations_in_budget(10, 20) == 1 and evaluations_in_budget(10, 0) == 0
    assert evaluations_in_budget(10, 1, max_epochs=4) == 4
    check_budget(spec(average="window", window=10), 10, 1)
    with pytest.raises(ConfigError) as err:
        check_budget(spec(average="window", window=11), 10, 1)
    assert err.value.key == "early_stopping.restore.window"
    assert str(err.value) == ("early_stopping.restore.window: the budget (epochs 10, eval_step 1) makes 10 evaluations, "
                              "fewer than window 11; lower window or raise epochs; allowed: an integer in [1, 10] "
                              "(got 11)")
    with pytest.raises(ConfigError, match=r"restore\.k: the budget \(epochs 10, max_epochs 4, eval_step 2\) makes 2"):
        check_budget(spec(average="best_k", k=3), 10, 2, max_epochs=4)
    check_budget(spec(average="ema", decay=0.9), 1, 1)
    check_budget(RestoreSpec(), 1, 1)


@pytest.mark.parametrize("average, best, mode, margin, keep", [
    (0.30, 0.31, "max", 0.02, True),    # worse by 0.01, within the noise
    (0.28, 0.31, "max", 0.02, False),   # worse by 0.03: falls back
    (0.35, 0.31, "max", 0.0, True),     # better
    (0.31, 0.31, "max", None, True),    # equal, no margin
    (1.10, 1.00, "min", 0.05, False),   # min mode: larger is worse
    (1.04, 1.00, "min", 0.05, True),
    (NAN, 0.31, "max", 1.0, False),     # a NaN average never wins
    (0.2, None, "max", 0.0, True),      # no best score to compare with
])
def test_judge(average: float, best: float | None, mode: str, margin: float | None, keep: bool) -> None:
    """The average is kept unless it is worse than the single best by more than the margin."""
    assert judge(average, best, mode, margin, "test").keep is keep


@pytest.mark.parametrize("mapping, expected", [
    ({"average": "window", "window": 3, "k": 2},
     "p.yaml: early_stopping.restore.k: k does not apply to average: window; allowed: only average and window with "
     "average: window (got 2)"),
    ({"average": "peak", "window": 3, "zz": 1, "decay": 0.5},   # the first extra key in sorted order is named
     "p.yaml: early_stopping.restore.decay: decay does not apply to average: peak; allowed: only average and window "
     "with average: peak (got 0.5)"),
    ({"average": "best_k"},
     "p.yaml: early_stopping.restore.k: required by average: best_k; allowed: an integer >= 1 (got nothing)"),
    ({"average": "ema"},
     "p.yaml: early_stopping.restore.decay: required by average: ema; allowed: a number in (0, 1) (got nothing)"),
    ({"average": 3, "k": 2},    # not a string: no .strip(), still the unknown-mode error
     "p.yaml: early_stopping.restore.average: unknown averaging mode; allowed: best_k | window | peak | ema (got 3)"),
])
def test_bad_restore_messages_word_for_word(mapping: dict[str, Any], expected: str) -> None:
    """An extra or missing parameter and a non-string mode: the whole message (what is allowed, what was given)."""
    with pytest.raises(ConfigError) as err:
        build_policy({"monitor": "ndcg@10", "restore": mapping}, source="p.yaml")
    assert str(err.value) == expected


@pytest.mark.parametrize("restore, described, copies", [
    ("best", "restore: best", 0),
    ({"average": "best_k", "k": 3}, "restore: best_k, k 3", 3),
    ({"average": "window", "window": 5}, "restore: window, window 5", 5),
    ({"average": "peak", "window": 1}, "restore: peak, window 1", 1),
    ({"average": "peak", "window": 2}, "restore: peak, window 2", 2),      # W + (W - 1) // 2 = 2 + 0
    ({"average": "peak", "window": 3}, "restore: peak, window 3", 4),      # 3 + 1
    ({"average": "peak", "window": 4}, "restore: peak, window 4", 5),      # 4 + 1
    ({"average": "peak", "window": 5}, "restore: peak, window 5", 7),      # 5 + 2
    ({"average": "ema", "decay": 0.9}, "restore: ema, decay 0.9", 1),
    ({"average": "ema", "decay": 0.25}, "restore: ema, decay 0.25", 1),
])
def test_describe_and_copies(restore: Any, described: str, copies: int) -> None:
    """describe() as messages name the setting; copies() per mode, an int (the trainer's buffer size)."""
    s = RestoreSpec.parse(restore)
    assert s.describe() == described
    assert s.copies() == copies and type(s.copies()) is int


#: raw and smoothed rank differently: raw's best is epoch 1, smoothed's epoch 0
SPLIT = [(0, 0.1, 0.3), (1, 0.3, 0.1), (2, 0.2, 0.2)]


def test_defaults_are_max_and_raw() -> None:
    """Left out, mode is max and best_by raw, in ranked, epochs_to_average and epochs_to_keep."""
    assert ranked(SPLIT) == [1, 2, 0]
    assert ranked(SPLIT, "max", "smoothed") == [0, 2, 1]
    assert epochs_to_average(spec(average="best_k", k=1), SPLIT) == [1]
    assert epochs_to_keep(spec(average="best_k", k=1), SPLIT) == [1]
    assert epochs_to_average(spec(average="peak", window=1), SPLIT) == [1]
    assert epochs_to_keep(spec(average="peak", window=1), SPLIT) == [1]


@pytest.mark.parametrize("restore, raw, smoothed", [
    ({"average": "best_k", "k": 1}, [1], [0]),
    ({"average": "peak", "window": 1}, [1], [0]),
    ({"average": "peak", "window": 2}, [1, 2], [0, 1]),      # the peak and the one after it
])
def test_epochs_to_keep_ranks_by_best_by(restore: dict[str, Any], raw: list[int], smoothed: list[int]) -> None:
    """epochs_to_keep passes best_by on: what a trainer keeps follows the series the average ranks by."""
    s = RestoreSpec.parse(restore)
    assert epochs_to_keep(s, SPLIT, "max", "raw") == raw
    assert epochs_to_keep(s, SPLIT, "max", "smoothed") == smoothed


def test_ranked_ties_break_on_the_epoch_and_extreme_values_keep_their_order() -> None:
    """A tie in the ranked series goes to the earlier epoch, whatever the other series says; values near the
    float limit rank by value (no scaling that overflows them into a tie)."""
    tie = [(0, 0.5, 0.2), (1, 0.1, 0.2)]
    assert ranked(tie, "max", "smoothed") == [0, 1] and ranked(tie, "min", "smoothed") == [0, 1]
    huge = [(0, 1e308, 1e308), (1, 1.5e308, 1.5e308)]
    assert ranked(huge, "max") == [1, 0]
    low = [(0, -1e308, -1e308), (1, -1.5e308, -1.5e308)]
    assert ranked(low, "min") == [1, 0]


def test_budget_edges() -> None:
    """No epochs: no evaluations (no division); one epoch: one; the message's source, singular and plural; ema is
    never refused, even by an empty budget."""
    assert evaluations_in_budget(0, 1) == 0 and evaluations_in_budget(1, 1) == 1
    assert evaluations_in_budget(1, 5) == 1 and evaluations_in_budget(-3, 1) == 0
    check_budget(spec(average="ema", decay=0.9), 0, 1)
    check_budget(RestoreSpec(), 0, 1)
    with pytest.raises(ConfigError) as err:
        check_budget(spec(average="best_k", k=3), 2, 1, source="run.yaml")
    assert err.value.source == "run.yaml" and err.value.key == "early_stopping.restore.k"
    assert str(err.value) == ("run.yaml: early_stopping.restore.k: the budget (epochs 2, eval_step 1) makes 2 "
                              "evaluations, fewer than k 3; lower k or raise epochs; allowed: an integer in [1, 2] "
                              "(got 3)")
    with pytest.raises(ConfigError) as err:
        check_budget(spec(average="peak", window=2), 1, 1)
    assert "makes 1 evaluation, fewer than window 2" in str(err.value)


def test_judge_verdicts_carry_their_inputs() -> None:
    """The verdict records the scores, the margin used (None or negative: 0) and the source, on each path."""
    from rec_es.policy.restore import Verdict
    inf = math.inf
    assert judge(-inf, 0.3, "max", 0.02, "noise") == Verdict(False, -inf, 0.3, 0.02, "noise")
    assert judge(None, 0.3, "max", None, "noise") == Verdict(False, None, 0.3, 0.0, "noise")
    assert judge(0.2, inf, "max", 0.05, "noise") == Verdict(True, 0.2, inf, 0.05, "noise")
    assert judge(0.2, None, "min", -1.0, "noise") == Verdict(True, 0.2, None, 0.0, "noise")
    assert judge(0.25, 0.5, "max", 0.25, "noise") == Verdict(True, 0.25, 0.5, 0.25, "noise")   # exactly the margin
    assert judge(0.75, 0.5, "min", 0.25, "noise") == Verdict(True, 0.75, 0.5, 0.25, "noise")
    assert judge(0.25, 0.5, "max", 0.125, "noise") == Verdict(False, 0.25, 0.5, 0.125, "noise")


@pytest.mark.parametrize("average, best, margin, keep", [
    (0.30, 0.31, None, False),   # worse by 0.01 with no margin: falls back
    (0.30, 0.31, 0.0, False),
    (0.30, 0.31, -0.5, False),   # a negative margin is 0
    (NAN, None, 0.0, False),     # a NaN average never wins, even with no best to compare with
    (None, None, 0.0, False),
])
def test_judge_without_margin(average: float | None, best: float | None, margin: float | None, keep: bool) -> None:
    """No margin means no slack; a missing or NaN average score is never kept."""
    assert judge(average, best, "max", margin, "test").keep is keep
