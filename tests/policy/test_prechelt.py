"""Prechelt's GL, PQ and UP criteria at their edges: thresholds hit exactly, a zero lowest error, a stalled
training, strip ends, the parsed settings, the sentences a stop prints and the state across a patience grant.

Every expected number is worked out by hand in the comments; scores are chosen so the float arithmetic is exact
(0.5, 0.375, 0.625: binary fractions).
"""
from __future__ import annotations

import math
from typing import Any

import pytest

from rec_es import ConfigError, build_policy
from rec_es.policy import StopReason, rules
from rec_es.policy.errors import RecEsError, StateError
from rec_es.policy.policy import StoppingPolicy
from rec_es.policy.rules.prechelt import PrecheltSpec
from rec_es.policy.types import Decision


def policy(prechelt: Any, **extra: Any) -> StoppingPolicy:
    """A Prechelt-only policy (patience off) on ndcg@10 unless ``extra`` names another monitor."""
    return build_policy({"monitor": "ndcg@10", "patience": None, "prechelt": prechelt, **extra})


def feed(p: StoppingPolicy, scores: list[float], losses: list[float] | None = None, start: int = 0) -> list[Decision]:
    """The decisions for ``scores`` (epochs from ``start``), up to and including the first stop."""
    out = []
    for i, score in enumerate(scores):
        out.append(p.update(start + i, {p.monitor_keys[0]: score}, train_loss=None if losses is None else losses[i]))
        if out[-1].stop:
            break
    return out


def stops(p: StoppingPolicy, scores: list[float], losses: list[float] | None = None) -> list[bool]:
    return [d.stop for d in feed(p, scores, losses)]


# ----- the error E and GL -----------------------------------------------------------------------------------
def test_error_is_offset_minus_score_for_max_and_the_score_for_min() -> None:
    """E = error_offset - score when bigger is better, E = score when smaller is better; a min-mode GL judges
    the rise of the score itself."""
    assert rules.prechelt_error(0.25, "max", 1.0) == 0.75
    assert rules.prechelt_error(0.25, "min", 1.0) == 0.25
    # rmse 0.5 then 0.625: E rises 25 % (as 1 - score it would fall, a new lowest, and never fire)
    assert stops(policy({"criterion": "GL", "alpha": 24.99}, monitor="rmse"), [0.5, 0.625]) == [False, True]


def test_gl_fires_only_strictly_above_alpha() -> None:
    """GL > alpha fires, GL = alpha does not: E 0.5 -> 0.625 is GL = 100 (0.625 / 0.5 - 1) = 25 % exactly."""
    assert stops(policy({"criterion": "GL", "alpha": 25}), [0.5, 0.375]) == [False, False]
    assert stops(policy({"criterion": "GL", "alpha": 24.99}), [0.5, 0.375]) == [False, True]


def test_gl_stop_sentence_for_max_and_min_monitors() -> None:
    """The GL stop names the error as the monitor defines it (``1 − ndcg@10`` or ``rmse``), its value, GL, the
    lowest error, the fixed alpha and the key to raise."""
    d = feed(policy({"criterion": "GL", "alpha": 24.99}), [0.5, 0.375])[-1]
    assert d.reason is StopReason.PRECHELT_GL
    assert d.message == ("stopped at epoch 1: generalization loss GL = 25% (error 1 − ndcg@10 = 0.625 is 25% above "
                         "its lowest, 0.5) exceeds alpha 24.99 (Prechelt GL_24.99); raise the GL alpha in "
                         "early_stopping.prechelt")
    d = feed(policy({"criterion": "GL", "alpha": 24.99}, monitor="rmse"), [0.5, 0.625])[-1]
    assert d.message == ("stopped at epoch 1: generalization loss GL = 25% (error rmse = 0.625 is 25% above its "
                         "lowest, 0.5) exceeds alpha 24.99 (Prechelt GL_24.99); raise the GL alpha in "
                         "early_stopping.prechelt")
    # error_offset 2: E = 2 - 0.5 = 1.5, then 2 - 0.125 = 1.875, GL = 100 (1.875 / 1.5 - 1) = 25 %
    d = feed(policy({"criterion": "GL", "alpha": 24.99}, error_offset=2), [0.5, 0.125])[-1]
    assert "(error 2 − ndcg@10 = 1.875 is 25% above its lowest, 1.5)" in d.message


def test_gl_with_a_zero_lowest_error() -> None:
    """E_opt = 0 (ndcg@10 = 1 with error_offset 1): GL is 0 while E stays 0 and infinite once E rises."""
    assert rules.generalization_loss(0.0, 0.0) == 0.0
    assert rules.generalization_loss(-0.25, -0.25) == 0.0
    assert rules.generalization_loss(0.25, 0.0) == math.inf
    assert rules.generalization_loss(0.0, -0.25) == math.inf
    # E: 0, 0, 0.01 -> GL 0 %, 0 % (below alpha 0.5, not 1 % or inf), then inf %
    ds = feed(policy({"criterion": "GL", "alpha": 0.5}), [1.0, 1.0, 0.99])
    assert [d.stop for d in ds] == [False, False, True]
    assert "GL = inf% (error 1 − ndcg@10 = 0.01 is inf% above its lowest, 0)" in ds[-1].message


def test_lowest_error_moves_only_on_a_strictly_lower_error() -> None:
    """E_opt is replaced only by a lower error, never by an equal one. Equal errors differ only in the sign of a
    zero: a mean of the last 2 gives rmse 0 / 1 = 0.0, then (0 - 5e-324) / 2 = -0.0 (half the smallest
    subnormal rounds to zero); E_opt stays the first, +0.0, and the GL stop at 0.5 prints it as ``0``."""
    p = policy({"criterion": "GL", "alpha": 5}, monitor="rmse", smoothing="window", window=2)
    ds = feed(p, [0.0, -5e-324, 1.0])
    assert [d.smoothed for d in ds] == [0.0, 0.0, 0.5]
    assert math.copysign(1.0, ds[1].smoothed) == -1.0
    assert ds[-1].message.startswith("stopped at epoch 2: generalization loss GL = inf% (error rmse (mean of last "
                                     "2) = 0.5 is inf% above its lowest, 0) exceeds")
    assert math.copysign(1.0, p.state_dict()["state"]["error_opt"]) == 1.0


# ----- GL alpha auto ------------------------------------------------------------------------------------------
def test_auto_gl_stop_sentence_names_the_measured_noise_and_the_multiple() -> None:
    """The auto-alpha stop says alpha, the multiple, the noise it was measured from and to raise noise_multiple
    (values of tests/policy/test_gl_auto.py: GL 6.98 %, noise 1.4826 * 0.015 = 0.0222, alpha 5.17 %)."""
    d = feed(policy({"criterion": "GL", "alpha": "auto", "noise_multiple": 2}),
             [0.10, 0.12, 0.11, 0.13, 0.12, 0.14, 0.08])[-1]
    assert d.message == ("stopped at epoch 6: generalization loss GL = 6.98% (error 1 − ndcg@10 = 0.92 is 6.98% above "
                         "its lowest, 0.86) exceeds alpha 5.17 (Prechelt GL, alpha: auto = 2 x the curve noise 0.022, "
                         "1.4826·MAD of the last 20 evaluations' first differences, in % of the lowest error); raise "
                         "noise_multiple of the GL criterion in early_stopping.prechelt")


def test_auto_gl_has_no_threshold_while_the_lowest_error_is_zero() -> None:
    """alpha auto is a fall in % of E_opt: with E_opt = 0 (ndcg@10 = 1) there is none, even once the noise is
    measured (5 values: differences -.1 .1 -.1 .1, noise 1.4826 * 0.1), so GL never fires."""
    ds = feed(policy({"criterion": "GL", "alpha": "auto"}), [1.0, 0.9, 1.0, 0.9, 1.0])
    assert not any(d.stop for d in ds)
    got = ds[-1].measured["prechelt_gl_auto"]
    assert got[0]["alpha"] is None and got[0]["noise"] == pytest.approx(0.14826, rel=1e-4)


def test_only_auto_gl_records_a_measurement() -> None:
    """A decision's measured mapping has ``prechelt_gl_auto`` only when some GL criterion has alpha auto."""
    assert "prechelt_gl_auto" not in feed(policy({"criterion": "GL", "alpha": 5}), [0.5])[0].measured
    assert "prechelt_gl_auto" not in feed(build_policy({"monitor": "ndcg@10"}), [0.5])[0].measured
    assert "prechelt_gl_auto" in feed(policy({"criterion": "GL", "alpha": "auto"}), [0.5])[0].measured


# ----- PQ -----------------------------------------------------------------------------------------------------
def test_pq_fires_only_strictly_above_alpha_and_says_why() -> None:
    """At the end of a strip of 2: GL 25 % (E 0.5 -> 0.625) over P_2 = 1000 ((1 + 1.5) / (2 * 1) - 1) = 250 ‰
    is PQ 0.1 exactly: alpha 0.1 does not fire, alpha 0.099 does, with the whole sentence."""
    assert stops(policy({"criterion": "PQ", "alpha": 0.1, "strip": 2}), [0.5, 0.375], [1.0, 1.5]) == [False, False]
    d = feed(policy({"criterion": "PQ", "alpha": 0.099, "strip": 2}), [0.5, 0.375], [1.0, 1.5])[-1]
    assert d.reason is StopReason.PRECHELT_PQ
    assert d.message == ("stopped at epoch 1: PQ = GL/P_2 = 0.1 exceeds alpha 0.099 (GL 25%, training progress P_2 "
                         "250‰ over the last 2 evaluations; Prechelt PQ_0.099); raise the PQ alpha in "
                         "early_stopping.prechelt")


def test_pq_of_a_stalled_training() -> None:
    """P_k = 0 (a flat train loss): any GL above 0, even 0.5 %, gives PQ = inf; GL = 0 gives PQ = 0."""
    assert rules.progress_quotient(0.5, 0.0) == math.inf
    assert rules.progress_quotient(0.0, 0.0) == 0.0
    # E 0.5 -> 0.5025: GL 0.5 %, losses 1, 1: P_2 = 0 -> PQ inf > 100
    d = feed(policy({"criterion": "PQ", "alpha": 100, "strip": 2}), [0.5, 0.4975], [1.0, 1.0])[-1]
    assert d.stop and "PQ = GL/P_2 = inf exceeds alpha 100 (GL 0.5%, training progress P_2 0‰" in d.message


def test_pq_without_training_loss_says_what_to_pass() -> None:
    """PQ without a train loss raises with the whole instruction."""
    with pytest.raises(RecEsError) as err:
        policy({"criterion": "PQ", "alpha": 1, "strip": 2}).update(0, {"ndcg@10": 0.1})
    assert str(err.value) == ("Prechelt PQ needs the training loss: pass train_loss= to update() at every "
                              "evaluation")


# ----- UP and strips ------------------------------------------------------------------------------------------
def test_up_counts_only_strict_rises() -> None:
    """UP_1 with strips of 1: an unchanged error is no rise (E 0.5, 0.5); a higher one is (0.5 -> 0.51)."""
    assert stops(policy({"criterion": "UP", "s": 1, "strip": 1}), [0.5, 0.5]) == [False, False]
    assert stops(policy({"criterion": "UP", "s": 1, "strip": 1}), [0.5, 0.5, 0.49]) == [False, False, True]


def test_strip_defaults_to_5_evaluations() -> None:
    """Without ``strip``, UP judges at evaluations 5, 10, ...: E 0.5 at the 5th, 0.6 at the 10th (epoch 9) is a
    rise; the settings say strip 5."""
    p = policy({"criterion": "UP", "s": 1})
    ds = feed(p, [0.5] * 5 + [0.4] * 5)
    assert [d.stop for d in ds] == [False] * 9 + [True]
    assert ds[-1].message == ("stopped at epoch 9: error 1 − ndcg@10 rose at the end of 1 successive strips of 5 "
                              "evaluations (now 0.6; Prechelt UP_1); raise s of the UP criterion in "
                              "early_stopping.prechelt")
    assert p.settings_mapping()["prechelt"] == [{"criterion": "UP", "s": 1, "strip": 5}]
    assert policy({"criterion": "PQ", "alpha": 1}).settings.prechelt == (PrecheltSpec("PQ", 1.0, 5),)


def test_a_criterion_between_its_strip_ends_does_not_silence_the_next() -> None:
    """[UP strips of 2, GL 5]: at evaluation 3 UP waits for its strip end, GL still judges: E 0.4 -> 0.5 is GL
    25 % and stops at epoch 2."""
    ds = feed(policy([{"criterion": "UP", "s": 1, "strip": 2}, {"criterion": "GL", "alpha": 5}]), [0.5, 0.6, 0.5])
    assert [d.stop for d in ds] == [False, False, True]
    assert ds[-1].reason is StopReason.PRECHELT_GL


def test_a_patience_grant_restarts_the_up_count() -> None:
    """UP_2 with strips of 1 would stop at the second rise (epoch 2); a grant (an LR cut) after the first rise
    sets the count back to 0, so it stops at the second rise after the grant (epoch 3)."""
    p = policy({"criterion": "UP", "s": 2, "strip": 1})
    feed(p, [0.5, 0.4])                          # E 0.5, 0.6: one rise
    assert p.state_dict()["state"]["prechelt"][0]["rises"] == 1
    p.grant_patience()
    assert p.state_dict()["state"]["prechelt"][0] == {"losses": [], "prev_error": 0.6, "rises": 0}
    assert [d.stop for d in feed(p, [0.3, 0.2], start=2)] == [False, True]   # E 0.7, 0.8


# ----- settings, state and the wait description ---------------------------------------------------------------
def test_criterion_names_are_case_insensitive_and_each_item_a_mapping() -> None:
    """``gl`` is GL; a list item that is not a mapping, or a criterion that is not a name, is refused with the
    key and what was given. A GL criterion parses to the spec with the defaults of the keys it does not take."""
    assert policy({"criterion": "gl", "alpha": 5}).settings.prechelt == (PrecheltSpec("GL", 5.0, 5, None, None),)
    assert policy({"criterion": "Up", "s": 2}).settings.prechelt[0].criterion == "UP"
    for bad, got in ((["GL"], "None"), ({"criterion": 5}, "5"), ({"alpha": 5}, "None")):
        with pytest.raises(ConfigError) as err:
            policy(bad)
        assert str(err.value) == f"early_stopping.prechelt.criterion: allowed: GL | PQ | UP (got {got})"


def test_state_with_another_number_of_criteria_is_refused() -> None:
    """A state saved with two criteria does not load into a policy with one, and says why."""
    two = policy([{"criterion": "GL", "alpha": 5}, {"criterion": "UP", "s": 2}])
    one = policy({"criterion": "GL", "alpha": 5})
    with pytest.raises(StateError) as err:
        one.load_state_dict(two.state_dict())
    assert str(err.value) == "policy state was saved with a different number of prechelt criteria"


def test_wait_sentence_for_one_criterion() -> None:
    """One criterion ``decides`` (two ``decide``); alpha auto names its noise multiple."""
    def wait(prechelt: Any) -> str:
        return rules.describe_wait(policy(prechelt).settings, 1)[1]

    assert wait({"criterion": "GL", "alpha": 1}) == "the patience rule is off (patience: null); Prechelt GL decides"
    assert wait({"criterion": "GL", "alpha": "auto"}) == (
        "the patience rule is off (patience: null); Prechelt GL (alpha: auto, 3 x the measured curve noise) decides")
