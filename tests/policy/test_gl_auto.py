"""Prechelt GL with ``alpha: auto``: the threshold measured from the curve noise, worked out by hand in the
comments, and its state across a resume."""
from __future__ import annotations

import pytest

from rec_es import build_policy
from rec_es.policy import StopReason

MAD_SCALE = 1.482602218505602
# error E = 1 - score. Evaluation 6 (0.08) after the best 0.14: E = 0.92 against E_opt = 0.86, GL = 6.9767 %.
# Its noise, over the 7 values: first differences .02 -.01 .02 -.01 .02 -.06, median .005, |d - .005| = .015 five
# times and .065, so MAD .015 and noise 1.4826 * .015 = .022239; alpha = 100 * k * .022239 / .86 = 5.1719 % at
# k = 2 (fires) and 7.7579 % at k = 3 (does not).
SCORES = [0.10, 0.12, 0.11, 0.13, 0.12, 0.14, 0.08]
NOISE_AT_6 = MAD_SCALE * 0.015


def run(prechelt: dict, scores: list[float] = SCORES) -> list:
    policy = build_policy({"monitor": "ndcg@10", "patience": None, "prechelt": prechelt, "error_offset": 1.0})
    out = []
    for epoch, score in enumerate(scores):
        out.append(policy.update(epoch, {"ndcg@10": score}))
        if out[-1].stop:
            break
    return out


def test_auto_alpha_is_the_noise_multiple_over_the_lowest_error() -> None:
    """k = 2: no stop while the noise is unmeasured (4 values) or GL is below 2 x noise / E_opt; stop at epoch 6."""
    ds = run({"criterion": "GL", "alpha": "auto", "noise_multiple": 2})
    assert [d.stop for d in ds] == [False] * 6 + [True]
    assert ds[-1].reason is StopReason.PRECHELT_GL
    assert ds[3].measured["prechelt_gl_auto"] == [{"alpha": None, "noise": None}]
    got = ds[-1].measured["prechelt_gl_auto"][0]
    assert got["noise"] == pytest.approx(NOISE_AT_6)
    assert got["alpha"] == pytest.approx(100 * 2 * NOISE_AT_6 / 0.86)
    assert "GL = 6.98% " in ds[-1].message and "exceeds alpha 5.17 (Prechelt GL, alpha: auto = 2 x the curve noise" \
        in ds[-1].message
    assert "raise noise_multiple" in ds[-1].message


def test_a_larger_multiple_waits_and_a_fixed_alpha_stops_on_the_first_dip() -> None:
    """k = 3 needs GL above 7.76 %: no stop. A fixed GL 0.5 stops at epoch 2 (0.11 after 0.12: GL 1.14 %)."""
    assert not any(d.stop for d in run({"criterion": "GL", "alpha": "auto", "noise_multiple": 3}))
    fixed = run({"criterion": "GL", "alpha": 0.5})
    assert fixed[-1].stop and fixed[-1].epoch == 2


def test_default_multiple_and_written_settings() -> None:
    """The default noise_multiple is 3 (the recommended policy's) and the settings mapping writes it back; a fixed
    GL writes no multiple."""
    auto = build_policy({"monitor": "ndcg@10", "prechelt": {"criterion": "GL", "alpha": "auto"}})
    assert auto.settings_mapping()["prechelt"] == [{"alpha": "auto", "criterion": "GL", "noise_multiple": 3.0}]
    fixed = build_policy({"monitor": "ndcg@10", "prechelt": {"criterion": "GL", "alpha": 0.5}})
    assert fixed.settings_mapping()["prechelt"] == [{"alpha": 0.5, "criterion": "GL"}]


def test_resume_keeps_the_measured_noise() -> None:
    """A policy restored from its state after epoch 4 stops at epoch 6 like the uninterrupted one: the raw values
    the noise is measured from are in the state."""
    mapping = {"monitor": "ndcg@10", "patience": None, "prechelt": {"criterion": "GL", "alpha": "auto",
                                                                     "noise_multiple": 2}}
    first = build_policy(mapping)
    for epoch, score in enumerate(SCORES[:5]):
        first.update(epoch, {"ndcg@10": score})
    resumed = build_policy(mapping)
    resumed.load_state_dict(first.state_dict())
    assert resumed.state_dict()["state"]["prechelt"][0]["values"] == SCORES[:5]
    decisions = [resumed.update(epoch, {"ndcg@10": s}) for epoch, s in enumerate(SCORES[5:], start=5)]
    assert [d.stop for d in decisions] == [False, True]
