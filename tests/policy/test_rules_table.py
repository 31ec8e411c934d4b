"""Every rule driven by a scripted score sequence: (settings, scores) -> (stop epoch, best epoch, reason)."""
from __future__ import annotations

import math

import pytest

from rec_es import build_policy
from rec_es.policy import StopReason
from rec_es.policy.smoothing import describe, label, smooth

NAN = math.nan


def run(mapping: dict, scores: list[float], *, step: int = 1, losses: list[float] | None = None,
        minutes: list[float] | None = None) -> tuple[int | None, int | None, StopReason]:
    """Feed scores at epochs step-1, 2*step-1, ...; return (stop epoch or None, best epoch, reason)."""
    policy = build_policy({"monitor": "ndcg@10", **mapping})
    for i, score in enumerate(scores):
        epoch = (i + 1) * step - 1
        d = policy.update(epoch, {"ndcg@10": score}, train_loss=None if losses is None else losses[i],
                          elapsed_seconds=None if minutes is None else minutes[i] * 60)
        if d.stop:
            return epoch, policy.best_epoch, d.reason
    return None, policy.best_epoch, StopReason.NOT_STOPPED


P = StopReason.PATIENCE
CASES = [
    # id, settings, scores, expected (stop epoch, best epoch, reason)
    ("patience counts misses", {"patience": 2}, [0.1, 0.2, 0.15, 0.18, 0.3], (3, 1, P)),
    ("tie is a miss by default", {"patience": 2}, [0.1, 0.2, 0.2, 0.2], (3, 1, P)),
    ("ties_improve resets the wait", {"patience": 2, "ties_improve": True}, [0.1, 0.2, 0.2, 0.2, 0.19, 0.18], (5, 3, P)),
    ("min_delta abs: small gains are misses", {"patience": 2, "min_delta": 0.01}, [0.1, 0.105, 0.109, 0.2], (2, 0, P)),
    ("min_delta rel: 10% of |best|", {"patience": 2, "min_delta": 0.1, "min_delta_mode": "rel"},
     [0.1, 0.105, 0.12, 0.125, 0.13], (4, 2, P)),
    ("warmup suppresses the stop", {"patience": 1, "warmup": 3}, [0.3, 0.2, 0.1, 0.05, 0.04], (3, 0, P)),
    ("warmup does not latch once recovered", {"patience": 1, "warmup": 3}, [0.3, 0.2, 0.1, 0.4, 0.35], (4, 3, P)),
    ("start_from_epoch ignores early evaluations", {"patience": 1, "start_from_epoch": 2}, [0.9, 0.9, 0.1, 0.05], (3, 2, P)),
    ("EMA smooths a single dip away", {"patience": 1, "smoothing": "ema", "ema_alpha": 0.5},
     [0.1, 0.2, 0.19, 0.3, 0.1], (4, 3, P)),
    # alpha 0.3 weighs the newest value 0.3 (EMA .1 .16 .172 .1804 .15628): the dip at 2 is still a rise; with the
    # weights swapped (0.7 on the newest: .1 .24 .212) it is a miss and patience 1 stops at 2
    ("EMA alpha 0.3 weighs the newest value 0.3", {"patience": 1, "smoothing": "ema", "ema_alpha": 0.3},
     [0.1, 0.3, 0.2, 0.2, 0.1], (4, 1, P)),
    ("EMA alpha 0.7 weighs the newest value 0.7", {"patience": 1, "smoothing": "ema", "ema_alpha": 0.7},
     [0.1, 0.3, 0.2, 0.2, 0.1], (2, 1, P)),
    ("raw patience stops on that dip", {"patience": 1}, [0.1, 0.2, 0.19, 0.3, 0.1], (2, 1, P)),
    ("window mean", {"patience": 1, "smoothing": "window", "window": 2}, [0.1, 0.3, 0.2, 0.1], (3, 1, P)),
    ("best_by smoothed restores the smoothed peak", {"patience": 2, "smoothing": "window", "window": 2, "best_by": "smoothed"},
     [0.1, 0.5, 0.4, 0.1, 0.1], (4, 2, P)),
    ("stopping_threshold: good enough", {"stopping_threshold": 0.25}, [0.1, 0.2, 0.3, 0.4], (2, 2, StopReason.STOPPING_THRESHOLD)),
    ("stopping_threshold is strict", {"stopping_threshold": 0.3}, [0.1, 0.3, 0.31], (2, 2, StopReason.STOPPING_THRESHOLD)),
    ("divergence_threshold: hopeless", {"divergence_threshold": 0.05}, [0.1, 0.06, 0.04], (2, 0, StopReason.DIVERGENCE_THRESHOLD)),
    ("baseline never beaten", {"patience": 2, "baseline": 0.5}, [0.1, 0.2, 0.3, 0.25], (3, 2, StopReason.BASELINE)),
    ("baseline beaten resets the wait", {"patience": 2, "baseline": 0.25}, [0.1, 0.2, 0.3, 0.25, 0.2], (4, 2, P)),
    ("NaN stops by default", {"patience": 5}, [0.1, NAN, 0.2], (1, 0, StopReason.NON_FINITE)),
    ("NaN as a miss", {"patience": 2, "check_finite": "miss"}, [0.1, NAN, NAN, 0.2], (2, 0, P)),
    ("inf is not finite either", {"patience": 5}, [0.1, math.inf], (1, 0, StopReason.NON_FINITE)),
    ("NaN stops even in warmup", {"patience": 5, "warmup": 10}, [0.1, NAN], (1, 0, StopReason.NON_FINITE)),
    ("max_epochs budget", {"patience": 50, "max_epochs": 3}, [0.1, 0.2, 0.3, 0.4], (2, 2, StopReason.MAX_EPOCHS)),
    ("max_epochs applies in warmup", {"patience": 50, "max_epochs": 2, "warmup": 10}, [0.1, 0.2, 0.3], (1, 1, StopReason.MAX_EPOCHS)),
    ("disabled never stops", {"enabled": False, "patience": 1, "max_epochs": 1}, [0.3, 0.2, NAN, 0.1], (None, 0, StopReason.NOT_STOPPED)),
    ("patience null and no other rule never stops", {"patience": None}, [0.3, 0.2, 0.1, 0.0], (None, 0, StopReason.NOT_STOPPED)),
    ("dynamic patience grows with a late improvement",
     {"patience": 2, "dynamic_patience": {"factor": 0.5, "max_patience": 4}},
     [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1], (11, 7, P)),
    ("dynamic patience ignores small gains", {"patience": 2, "dynamic_patience": {"factor": 1.0, "min_gain": 0.5}},
     [0.1, 0.11, 0.12, 0.13, 0.1, 0.1], (5, 3, P)),
    ("Prechelt GL", {"patience": None, "prechelt": {"criterion": "GL", "alpha": 5}},
     [0.5, 0.6, 0.59, 0.57], (3, 1, StopReason.PRECHELT_GL)),  # E: .5 .4 .41 .43 -> GL 2.5%, 7.5%
    ("Prechelt UP_2 with strips of 2", {"patience": None, "prechelt": {"criterion": "UP", "s": 2, "strip": 2}},
     [0.5, 0.6, 0.6, 0.55, 0.6, 0.5], (5, 1, StopReason.PRECHELT_UP)),
    ("combine all_of waits for every rule", {"patience": 1, "combine": "all_of", "prechelt": {"criterion": "GL", "alpha": 5}},
     [0.5, 0.6, 0.59, 0.57], (3, 1, StopReason.ALL_OF)),
    ("combine any_of takes the first", {"patience": 1, "prechelt": {"criterion": "GL", "alpha": 5}},
     [0.5, 0.6, 0.59, 0.57], (2, 1, P)),
]


@pytest.mark.parametrize("mapping,scores,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_table(mapping: dict, scores: list[float], expected: tuple) -> None:
    """Stop epoch, restored-best epoch and reason match the table."""
    assert run(mapping, scores) == expected


@pytest.mark.parametrize("patience,unit,expected", [(2, "evaluations", (19, 9, P)), (5, "epochs", (14, 9, P)),
                                                    (10, "epochs", (19, 9, P))])
def test_patience_unit_with_eval_step(patience: int, unit: str, expected: tuple) -> None:
    """Evaluating every 5 epochs (epochs 4, 9, 14, ...): patience counts evaluations or the epochs they span."""
    assert run({"patience": patience, "patience_unit": unit}, [0.1, 0.2, 0.1, 0.1, 0.1], step=5) == expected


def test_prechelt_pq_uses_training_progress() -> None:
    """PQ fires at a strip end once GL / P_k exceeds alpha; a fast-falling train loss holds it off."""
    scores = [0.5, 0.6, 0.59, 0.58, 0.58, 0.58]
    falling = [10.0, 5.0, 2.5, 1.2, 0.6, 0.3]      # big progress: PQ small
    flat = [1.0, 1.0, 1.0, 1.001, 1.0, 1.0]         # no progress: PQ large
    pq = {"patience": None, "prechelt": {"criterion": "PQ", "alpha": 0.5, "strip": 2}}
    assert run(pq, scores, losses=falling)[0] is None
    assert run(pq, scores, losses=flat) == (3, 1, StopReason.PRECHELT_PQ)


def test_time_budget() -> None:
    """max_minutes stops at the first evaluation at or past the budget."""
    assert run({"max_minutes": 2.0}, [0.1, 0.2, 0.3], minutes=[0.9, 1.99, 2.0]) == (2, 2, StopReason.TIME_BUDGET)


def test_composite_monitor_and_min_mode() -> None:
    """A weighted composite is a weighted sum; an RMSE monitor is smaller-is-better automatically."""
    p = build_policy({"monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "patience": 1})
    assert p.update(0, {"NDCG@10": 0.1, "Recall@10": 0.3}).value == pytest.approx(0.2)
    assert p.update(1, {"ndcg@10": 0.3, "recall@10": 0.0}).stop  # 0.15 < 0.2
    q = build_policy({"monitor": "rmse", "patience": 1})
    assert q.mode == "min"
    assert not q.update(0, {"rmse": 1.0}).stop and not q.update(1, {"rmse": 0.9}).stop
    assert q.update(2, {"rmse": 0.95}).stop and q.best_epoch == 1


def test_stop_sentence_names_rule_values_and_setting() -> None:
    """The stop message is one sentence with the rule, both counts, the best and the setting to change."""
    p = build_policy({"monitor": "ndcg@10", "patience": 3, "min_delta": 0.001, "smoothing": "ema", "ema_alpha": 0.6})
    scores = [0.05, 0.07, 0.0812, 0.075, 0.074, 0.073]  # EMA: .05 .062 .0735 .0744 .0742 .0735
    d = None
    for e, s in enumerate(scores):
        d = p.update(e, {"ndcg@10": s})
    assert d is not None and d.stop
    assert d.message.startswith("stopped at epoch 5: ndcg@10 (EMA α=0.6) did not improve by more than 0.001 "
                                "for 3 evaluations (3 epochs) since epoch 2 (")
    assert d.message.endswith("raise early_stopping.patience or set early_stopping.enabled: false")
    assert "\n" not in d.message


def test_legacy_message_names_stopping_step() -> None:
    """recbole_legacy speaks RecBole's language: stopping_step, ties count."""
    p = build_policy({"preset": "recbole_legacy", "monitor": "mrr@10", "stopping_step": 1})
    msgs = [p.update(e, {"mrr@10": s}).message for e, s in enumerate([0.2, 0.2, 0.1, 0.1])]
    assert msgs[-1] == ("stopped at epoch 3: mrr@10 did not reach its best (0.2 at epoch 1) for 2 evaluations "
                        "(2 epochs), one more than stopping_step: 1 allows (RecBole counts ties as reaching the best); "
                        "raise stopping_step, or use an early_stopping policy with a larger patience")


def test_decision_fields_track_state() -> None:
    """Decision carries raw and smoothed values, wait counters and the new_best flag."""
    p = build_policy({"monitor": "ndcg@10", "patience": 5, "smoothing": "ema", "ema_alpha": 0.5})
    d0 = p.update(0, {"ndcg@10": 0.2})
    d1 = p.update(1, {"ndcg@10": 0.1})
    assert (d0.improved, d0.new_best, d0.smoothed) == (True, True, 0.2)
    assert (d1.improved, d1.new_best, d1.value, d1.smoothed, d1.wait_count) == (False, False, 0.1, pytest.approx(0.15), 1)
    assert d1.to_dict()["reason"] == "not_stopped"


def test_ema_smoothed_values_with_alpha_0_3() -> None:
    """s_0 = x_0, s_t = 0.3 x_t + 0.7 s_(t-1): 0.2, 0.17, 0.239 (swapping the weights gives 0.2, 0.13, 0.319)."""
    p = build_policy({"monitor": "ndcg@10", "patience": 5, "smoothing": "ema", "ema_alpha": 0.3})
    smoothed = [p.update(e, {"ndcg@10": s}).smoothed for e, s in enumerate([0.2, 0.1, 0.4])]
    assert smoothed == [0.2, pytest.approx(0.17), pytest.approx(0.239)]
    assert smooth("ema", 0.3, {"ema": 0.5}, 1.0) == (pytest.approx(0.65), {"ema": pytest.approx(0.65)})
    assert smooth("ema", 0.3, {}, 1.0) == (1.0, {"ema": 1.0})


@pytest.mark.parametrize("settings, suffix, short", [
    ({"smoothing": "ema", "ema_alpha": 0.3}, " (EMA α=0.3)", " + EMA α=0.3"),
    ({"smoothing": "window", "window": 4}, " (mean of last 4)", " + window 4"),
    ({"smoothing": "none"}, "", ""),
])
def test_smoother_names_in_messages(settings: dict, suffix: str, short: str) -> None:
    """The message suffix and the short label name the smoother and its parameter (nothing without smoothing)."""
    p = build_policy({"monitor": "ndcg@10", **settings})
    param = {"ema": 0.3, "window": 4}.get(settings["smoothing"], 0)
    assert describe(settings["smoothing"], param) == suffix
    assert label(p.settings) == short


def test_window_smoothed_values_are_means_of_the_last_n() -> None:
    """window 2: 0.1, then (0.1 + 0.3) / 2, then (0.3 + 0.2) / 2."""
    p = build_policy({"monitor": "ndcg@10", "patience": 5, "smoothing": "window", "window": 2})
    smoothed = [p.update(e, {"ndcg@10": s}).smoothed for e, s in enumerate([0.1, 0.3, 0.2])]
    assert smoothed == [0.1, pytest.approx(0.2), pytest.approx(0.25)]


def test_baseline_stop_sentence_and_other_reasons_kept() -> None:
    """A patience stop with the baseline never beaten says so, with the setting to change; a budget stop with the
    baseline never beaten stays a budget stop."""
    p = build_policy({"monitor": "ndcg@10", "patience": 2, "baseline": 0.5})
    d = [p.update(e, {"ndcg@10": s}) for e, s in enumerate([0.1, 0.2, 0.3, 0.25])][-1]
    assert (d.reason, d.message) == (StopReason.BASELINE, (
        "stopped at epoch 3: ndcg@10 did not beat baseline 0.5 within 4 evaluations (4 epochs) (best 0.3 at epoch 2); "
        "lower early_stopping.baseline or raise early_stopping.patience"))
    q = build_policy({"monitor": "ndcg@10", "patience": 5, "baseline": 0.5, "max_epochs": 2})
    d = [q.update(e, {"ndcg@10": s}) for e, s in enumerate([0.1, 0.2])][-1]
    assert d.stop and d.reason == StopReason.MAX_EPOCHS


@pytest.mark.parametrize("settings, scores, elapsed, message", [
    ({"patience": 50, "max_epochs": 3}, [0.1, 0.2, 0.3], None,
     "stopped at epoch 2: the budget of early_stopping.max_epochs: 3 epochs is used up; raise early_stopping.max_epochs"),
    ({"patience": 50, "max_minutes": 0.5}, [0.1, 0.2, 0.3], [10.0, 20.0, 33.0],
     "stopped at epoch 2: 0.6 minutes of training reached the budget early_stopping.max_minutes: 0.5; raise "
     "early_stopping.max_minutes"),
    ({"stopping_threshold": 0.25}, [0.1, 0.2, 0.3], None,
     "stopped at epoch 2: ndcg@10 0.3 is better than stopping_threshold 0.25 (good enough); raise or remove "
     "early_stopping.stopping_threshold"),
    ({"divergence_threshold": 0.05}, [0.1, 0.06, 0.04], None,
     "stopped at epoch 2: ndcg@10 0.04 is worse than divergence_threshold 0.05; lower or remove "
     "early_stopping.divergence_threshold"),
    ({"patience": 3}, [0.3, 0.2], None, "epoch 1: ndcg@10 0.2, best 0.3 at epoch 0, wait 1/3 evaluations"),
    ({"patience": None}, [0.3, 0.2], None, "epoch 1: ndcg@10 0.2, best 0.3 at epoch 0"),
])
def test_each_rule_says_its_whole_sentence(settings: dict, scores: list, elapsed: list | None, message: str) -> None:
    """The last decision's message, word for word: what fired, the values, the setting, and what to change."""
    p = build_policy({"monitor": "ndcg@10", **settings})
    d = None
    for e, v in enumerate(scores):
        d = p.update(e, {"ndcg@10": v}, elapsed_seconds=None if elapsed is None else elapsed[e])
    assert d is not None and d.message == message


@pytest.mark.parametrize("settings, scores, message", [
    ({"monitor": "ndcg@10", "stopping_threshold": 0.25}, [0.1, 0.3],
     "stopped at epoch 1: ndcg@10 0.3 is better than stopping_threshold 0.25 (good enough); raise or remove "
     "early_stopping.stopping_threshold"),
    ({"monitor": "rmse", "stopping_threshold": 0.9}, [1.2, 0.8],
     "stopped at epoch 1: rmse 0.8 is better than stopping_threshold 0.9 (good enough); lower or remove "
     "early_stopping.stopping_threshold"),
    ({"monitor": "ndcg@10", "divergence_threshold": 0.05}, [0.1, 0.04],
     "stopped at epoch 1: ndcg@10 0.04 is worse than divergence_threshold 0.05; lower or remove "
     "early_stopping.divergence_threshold"),
    ({"monitor": "rmse", "divergence_threshold": 1.5}, [1.2, 1.6],
     "stopped at epoch 1: rmse 1.6 is worse than divergence_threshold 1.5; raise or remove "
     "early_stopping.divergence_threshold"),
])
def test_threshold_hint_points_the_way_that_fires_later(settings: dict, scores: list, message: str) -> None:
    """A threshold that fired too soon moves away from the values it caught: a stopping_threshold up for ndcg@10
    (bigger is better) but down for rmse (smaller is better), a divergence_threshold the other way round."""
    p = build_policy(settings)
    monitor = settings["monitor"]
    decisions = [p.update(e, {monitor: v}) for e, v in enumerate(scores)]
    assert p.settings.mode == ("min" if monitor == "rmse" else "max")
    assert decisions[-1].stop and decisions[-1].message == message


@pytest.mark.parametrize("value, best, mode, kwargs, improves", [
    (0.5, None, "max", {}, True),                                   # no best yet
    (0.5, 0.5, "max", {}, False), (0.5, 0.5, "max", {"ties": True}, True),
    (0.75, 0.5, "max", {"min_delta": 0.25}, False),                 # 0.75 - 0.25 is not above 0.5 ...
    (0.75, 0.5, "max", {"min_delta": 0.25, "ties": True}, True),    # ... but reaches it
    (0.875, 0.5, "max", {"min_delta": 0.25}, True),
    (0.25, 0.5, "max", {"min_delta": 0.25, "ties": True}, False),   # the margin is taken off the value
    (0.75, 0.5, "max", {"min_delta": 0.5, "relative": True}, False),  # margin 0.5 x |0.5|
    (0.875, 0.5, "max", {"min_delta": 0.5, "relative": True}, True),
    (0.25, 0.5, "min", {"min_delta": 0.25}, False), (0.25, 0.5, "min", {"min_delta": 0.25, "ties": True}, True),
    (0.125, 0.5, "min", {"min_delta": 0.25}, True),
    (0.75, 0.5, "min", {"min_delta": 0.25, "ties": True}, False),   # the margin is added to the value
    (-0.75, -0.5, "min", {"min_delta": 0.5, "relative": True}, False),  # margin 0.5 x |-0.5|
    (-0.875, -0.5, "min", {"min_delta": 0.5, "relative": True}, True),
])
def test_is_improvement_at_its_boundaries(value: float, best: float | None, mode: str, kwargs: dict,
                                          improves: bool) -> None:
    """Keras' rule, exact binary fractions at the boundary: max value - margin > best, min value + margin < best,
    >=/<= with ties, margin min_delta or min_delta x |best|; ties and relative are off by default."""
    from rec_es.policy.compare import is_improvement

    assert is_improvement(value, best, mode, **kwargs) is improves


_TAIL = " for 2 evaluations (2 epochs) since epoch 0 (0.3); patience 2 evaluations; raise early_stopping.patience or " \
        "set early_stopping.enabled: false"


@pytest.mark.parametrize("settings, scores, message", [
    ({"ties_improve": True}, [0.3, 0.2, 0.1], "stopped at epoch 2: ndcg@10 did not reach its best" + _TAIL),
    ({"min_delta": 0.01}, [0.3, 0.2, 0.1], "stopped at epoch 2: ndcg@10 did not improve by more than 0.01" + _TAIL),
    ({"min_delta": 0.01, "ties_improve": True}, [0.3, 0.2, 0.1],
     "stopped at epoch 2: ndcg@10 did not improve by ≥ 0.01" + _TAIL),
    ({"min_delta": 0.1, "min_delta_mode": "rel"}, [0.3, 0.2, 0.1],
     "stopped at epoch 2: ndcg@10 did not improve by more than 0.1×|best|" + _TAIL),
    ({"min_delta": 0.1, "min_delta_mode": "rel", "ties_improve": True}, [0.3, 0.2, 0.1],
     "stopped at epoch 2: ndcg@10 did not improve by at least 0.1×|best|" + _TAIL),
    ({"check_finite": "miss"}, [NAN, NAN], "stopped at epoch 1: ndcg@10 had no finite value for 2 evaluations "
                                           "(2 epochs); check the training, or set early_stopping.check_finite: stop"),
    ({"patience": 5}, [0.2, NAN], "stopped at epoch 1: ndcg@10 is nan (not finite); check the training (learning "
                                  "rate, loss), or set early_stopping.check_finite: miss to count it as a miss"),
])
def test_patience_and_non_finite_sentences(settings: dict, scores: list, message: str) -> None:
    """How the patience stop words the margin (none, ties, absolute, relative) and the two non-finite stops."""
    p = build_policy({"monitor": "ndcg@10", "patience": 2, **settings})
    d = [p.update(e, {"ndcg@10": v}) for e, v in enumerate(scores)][-1]
    assert d.stop and d.message == message


def test_settings_edges_the_messages_rest_on() -> None:
    """check_finite takes booleans as stop/miss; no smoothing has parameter 0; min_delta: auto refuses rel naming it;
    a missing monitor metric lists what the result has (or says nothing)."""
    from rec_es.policy.errors import MetricMissingError
    from rec_es.policy.smoothing import param

    assert build_policy({"monitor": "ndcg@10", "check_finite": True}).settings.check_finite == "stop"
    assert build_policy({"monitor": "ndcg@10", "check_finite": False}).settings.check_finite == "miss"
    assert param(build_policy({"monitor": "ndcg@10"}).settings) == 0.0
    with pytest.raises(ValueError, match=r"^early_stopping\.min_delta_mode: min_delta: auto measures an absolute "
                                         r"margin; allowed: abs with min_delta: auto \(got 'rel'\)$"):
        build_policy({"monitor": "ndcg@10", "min_delta": "auto", "min_delta_mode": "rel"})
    end = "; change early_stopping.monitor or add the metric to RecBole's `metrics`/`topk`"
    with pytest.raises(MetricMissingError) as info:
        build_policy({"monitor": {"ndcg@10": 0.5, "mrr@10": 0.5}}).update(0, {"recall@10": 0.1})
    assert str(info.value) == "monitor needs ndcg@10, mrr@10 but the evaluation result has only: recall@10" + end
    with pytest.raises(MetricMissingError) as info:
        build_policy({"monitor": "ndcg@10"}).update(0, {})
    assert str(info.value) == "monitor needs ndcg@10 but the evaluation result has only: nothing" + end


@pytest.mark.parametrize("monitor, message", [
    ({"ndcg@10": 1, "recall@10": 1, "giniindex@10": 1, "averagepopularity@10": 1},
     "early_stopping.mode: monitor mixes bigger-is-better (ndcg@10, recall@10) and smaller-is-better (giniindex@10, "
     "averagepopularity@10) metrics; set mode: max and give the smaller-is-better ones a negative weight, or monitor one direction; "
     "allowed: max or min, given explicitly when a composite mixes directions (got 'auto')"),
    ({1: 0.5}, "early_stopping.monitor: allowed: {metric: non-zero weight, ...} such as {ndcg@10: 0.5, "
               "recall@10: 0.5} (got {1: 0.5})"),
    ({"ndcg@10": "x"}, "early_stopping.monitor: allowed: {metric: non-zero weight, ...} such as {ndcg@10: 0.5, "
                       "recall@10: 0.5} (got {'ndcg@10': 'x'})"),
    (5, "early_stopping.monitor: allowed: a RecBole metric key such as ndcg@10, or {metric: weight, ...} (got 5)"),
    ({}, "early_stopping.monitor: allowed: a RecBole metric key such as ndcg@10, or {metric: weight, ...} (got {})"),
])
def test_a_monitor_that_cannot_be_built_is_refused_whole(monitor: object, message: str) -> None:
    """Mixed directions under mode: auto, a weight on a non-string key or a non-number weight, a number, an empty
    mapping: ConfigError with the key, the problem, what is allowed and what was given."""
    with pytest.raises(ValueError) as info:
        build_policy({"monitor": monitor})
    assert str(info.value) == message


@pytest.mark.parametrize("key, allowed", [("mode", "auto | max | min"), ("min_delta_mode", "abs | rel"),
                                          ("check_finite", "stop | miss")])
def test_choice_keys_document_their_choices(key: str, allowed: str) -> None:
    """The docs table's type column and the messages' allowed text of the choice keys resolved by code."""
    from rec_es.policy.schema import KEYS

    assert (KEYS[key].validator.allowed, KEYS[key].validator.doc) == (allowed, allowed)


def test_plain_patience_stop_sentence() -> None:
    """No margin and no ties: 'did not improve'."""
    p = build_policy({"monitor": "ndcg@10", "patience": 2})
    d = [p.update(e, {"ndcg@10": v}) for e, v in enumerate([0.3, 0.2, 0.1])][-1]
    assert d.message == "stopped at epoch 2: ndcg@10 did not improve" + _TAIL
