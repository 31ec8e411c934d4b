"""rec_es.target_ce's pieces: per-row cross-entropy with several positives, eval_args.mode as RecBole resolves it."""
from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from rec_es.policy.monitor import metric_mode
from rec_es.config.protocol import eval_modes, unavailable
from rec_es.training.target_ce import per_row


def test_per_row_averages_a_users_positives() -> None:
    """Each row's value is the mean of -log softmax at its positives; masked items (-inf) take no mass."""
    scores = torch.tensor([[0.0, 1.0, 2.0], [-torch.inf, 0.0, 0.0], [1.0, 1.0, 1.0]])
    got = per_row(scores, torch.tensor([0, 0, 1, 2]), torch.tensor([1, 2, 2, 0]))
    z0 = math.log(1 + math.e + math.e ** 2)
    expected = [((z0 - 1) + (z0 - 2)) / 2, math.log(2), math.log(3)]
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


def test_per_row_of_a_masked_target_is_inf_and_of_a_row_without_positive_nan() -> None:
    """A target RecBole masked to -inf costs +inf; a row with no positive has no value (NaN)."""
    scores = torch.tensor([[-torch.inf, 0.0], [0.0, 0.0]])
    got = per_row(scores, torch.tensor([0]), torch.tensor([0]))
    assert math.isinf(got[0].item()) and math.isnan(got[1].item())


@pytest.mark.parametrize("eval_args, expected", [
    (None, {"valid": "full", "test": "full"}),
    ({"split": {"LS": "valid_and_test"}}, {"valid": "full", "test": "full"}),
    ({"mode": "uni100"}, {"valid": "uni100", "test": "uni100"}),
    ({"mode": {"valid": "uni100"}}, {"valid": "uni100", "test": "uni100"}),  # RecBole: the one key is the default
    ({"mode": {"test": "pop50"}}, {"valid": "pop50", "test": "pop50"}),
    ({"mode": {"valid": "full", "test": "uni100"}}, {"valid": "full", "test": "uni100"}),
])
def test_eval_modes_resolve_as_recbole_config_does(eval_args: Any, expected: dict[str, str]) -> None:
    """eval_args.mode per split, with RecBole 1.2.1's defaults and its one-key rule (config/configurator.py)."""
    assert eval_modes(eval_args) == expected


def test_unavailable_names_the_sampled_split_and_mode_is_min() -> None:
    """Only full ranking on both splits allows target_ce; the reason names what is sampled; smaller is better."""
    assert unavailable({"mode": "full"}) is None
    assert "eval_args.mode is test: uni100:" in unavailable({"mode": {"valid": "full", "test": "uni100"}})
    assert metric_mode("target_ce") == "min" and metric_mode("TARGET_CE") == "min"
