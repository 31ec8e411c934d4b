"""rec_es.training.averaging without training: averaging state_dicts, the EMA, RecBole's other_parameter (caches reset,
the rest refused), the fallback's noise margin and the averager's state in last.pth."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import recbole.model
from rec_es import build_policy
from rec_es.policy.errors import ConfigError, StateError
from rec_es.policy.restore import RestoreSpec
from rec_es.training.averaging import (CACHES, CURVE_SOURCE, NO_SOURCE, OTHER_PARAMETERS, SE_SOURCE, WeightAverager,
                                       average_state_dicts, check_model, ema_update, for_trainer, noise_margin,
                                       reset_caches)


def state(w: float, steps: int) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 2), w), "half": torch.tensor([w], dtype=torch.float16),
            "num_batches_tracked": torch.tensor(steps)}


def test_average_state_dicts_averages_floats_and_copies_the_rest_from_the_base() -> None:
    """Float tensors are the mean in their dtype; an integer buffer comes from the base (the best evaluation)."""
    states = [state(1.0, 10), state(2.0, 20), state(6.0, 30)]
    out = average_state_dicts(states, base=states[1])
    assert torch.equal(out["w"], torch.full((2, 2), 3.0)) and out["half"].dtype == torch.float16
    assert out["half"].item() == 3.0 and out["num_batches_tracked"].item() == 20
    assert average_state_dicts(states)["num_batches_tracked"].item() == 10  # default base: the first state
    assert out["w"].data_ptr() not in {s["w"].data_ptr() for s in states}  # a new state, inputs untouched
    assert torch.equal(states[0]["w"], torch.ones(2, 2))
    one = average_state_dicts([states[2]])
    assert all(torch.equal(one[k], states[2][k]) for k in one)


def test_average_state_dicts_refuses_mismatched_states() -> None:
    """No states, other keys or other shapes: ValueError naming the key."""
    with pytest.raises(ValueError, match="at least one"):
        average_state_dicts([])
    with pytest.raises(ValueError, match="other keys"):
        average_state_dicts([state(1.0, 1), {"w": torch.ones(2, 2)}])
    with pytest.raises(ValueError, match=r"w has shape \(3,\)"):
        average_state_dicts([state(1.0, 1), {**state(1.0, 1), "w": torch.ones(3)}])


def test_ema_update() -> None:
    """The first state starts the EMA; then ema = d * ema + (1 - d) * state, integer entries follow the state."""
    ema = ema_update(None, state(4.0, 1), 0.75)
    ema = ema_update(ema, state(8.0, 2), 0.75)
    assert torch.allclose(ema["w"], torch.full((2, 2), 5.0)) and ema["num_batches_tracked"].item() == 2


class Cached(torch.nn.Module):
    """LightGCN's shape: embeddings cached at prediction, listed in other_parameter_name."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(3, 2)
        self.restore_user_e = torch.ones(3, 2)
        self.restore_item_e = torch.ones(3, 2)
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]


class Counted(torch.nn.Module):
    """Pop's shape: counts that are the model, not a cache."""

    def __init__(self) -> None:
        super().__init__()
        self.item_cnt = torch.zeros(3, 1)
        self.other_parameter_name = ["item_cnt"]


class WithSubmodule(torch.nn.Module):
    """FDSA's shape: a sub-module listed in other_parameter_name (its weights are in the state_dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_embed_layer = torch.nn.Linear(2, 2)
        self.other_parameter_name = ["feature_embed_layer"]


def test_caches_are_reset_and_non_caches_refused() -> None:
    """An averaging restore resets cached embeddings to None; a model keeping counts is refused naming model and key;
    restore: best refuses nothing."""
    avg = RestoreSpec.parse({"average": "best_k", "k": 2})
    model = Cached()
    check_model(model, avg, "LightGCN")
    reset_caches(model)
    assert model.restore_user_e is None and model.restore_item_e is None and model.emb.weight is not None
    check_model(WithSubmodule(), avg, "FDSA")
    with pytest.raises(ConfigError) as err:
        check_model(Counted(), avg, "Pop")
    assert err.value.key == "early_stopping.restore"
    assert str(err.value) == ("early_stopping.restore: Pop keeps item_cnt (fitted counts) in other_parameter(), which an "
                              "average of weights cannot restore; allowed: restore: best with Pop (got restore: "
                              "best_k, k 2)")
    check_model(Counted(), RestoreSpec(), "Pop")


def test_every_other_parameter_of_recbole_is_classified() -> None:
    """Every name a RecBole 1.2.1 model lists in other_parameter_name is in OTHER_PARAMETERS, so check_model's
    messages say what it holds; the caches are exactly the embeddings computed from the weights at prediction."""
    root = Path(recbole.model.__file__).parent
    names: set[str] = set()
    for path in root.rglob("*.py"):
        for found in re.findall(r"other_parameter_name\s*=\s*\[([^\]]*)\]", path.read_text(encoding="utf-8")):
            names |= set(re.findall(r"[\"'](\w+)[\"']", found))
    assert names == set(OTHER_PARAMETERS)
    assert CACHES == {"restore_user_e", "restore_item_e", "restore_entity_e", "i_embedding"}


def test_noise_margin_sources() -> None:
    """Per-user paired SE when both vectors are there, else the curve noise (5 values), else none."""
    a, b = np.array([0.1, 0.2, 0.4, 0.3]), np.array([0.2, 0.2, 0.2, 0.2])
    se = np.std(a - b, ddof=1) / 2
    margin, source = noise_margin(a, b, [])
    assert source == SE_SOURCE and margin == pytest.approx(se)
    margin, source = noise_margin(None, b, [0.1, 0.2, 0.1, 0.2, 0.1])
    assert source == CURVE_SOURCE and margin > 0
    assert noise_margin(a, None, [0.1, 0.2]) == (0.0, NO_SOURCE)


def decision(epoch: int, value: float, new_best: bool) -> SimpleNamespace:
    return SimpleNamespace(epoch=epoch, value=value, smoothed=value, new_best=new_best)


def test_averager_keeps_what_it_needs_and_round_trips_through_last_pth(tmp_path: Path) -> None:
    """best_k 2 over four evaluations keeps two copies, averages the two best, and a state saved with torch.save
    (weights only) loads into a fresh averager that continues identically; another basis is refused."""
    policy = build_policy({"monitor": "ndcg@10", "restore": {"average": "best_k", "k": 2}})
    model = torch.nn.Linear(2, 1)
    averager = for_trainer(policy, model, "Linear", epochs=10, eval_step=1)
    assert isinstance(averager, WeightAverager)
    weights = {}
    for epoch, value in enumerate([0.1, 0.4, 0.2, 0.3]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        weights[epoch] = model.weight.detach().clone()
        averager.observe(decision(epoch, value, value == 0.4), model)
        assert len(averager.kept) <= 2
    assert averager.epochs() == [1, 3] and sorted(averager.kept) == [1, 3]
    best = averager.kept[1]
    assert torch.equal(averager.average(best)["weight"], (weights[1] + weights[3]) / 2)
    torch.save(averager.state_dict(), tmp_path / "a.pth")
    again = for_trainer(policy, torch.nn.Linear(2, 1), "Linear", epochs=10, eval_step=1)
    assert again is not None
    again.load_state_dict(torch.load(tmp_path / "a.pth", weights_only=True))
    assert again.epochs() == [1, 3] and torch.equal(again.average(best)["weight"], averager.average(best)["weight"])
    other = for_trainer(build_policy({"monitor": "ndcg@10", "restore": {"average": "best_k", "k": 3}}),
                        model, "Linear", epochs=10, eval_step=1)
    assert other is not None
    with pytest.raises(StateError, match="chosen under"):
        other.load_state_dict(averager.state_dict())
    assert for_trainer(build_policy({"monitor": "ndcg@10"}), model, "Linear", 10, 1) is None
    with pytest.raises(ConfigError, match="restore.k: the budget"):
        for_trainer(build_policy({"monitor": "ndcg@10", "restore": {"average": "best_k", "k": 2}}), model, "L", 3, 2)


def test_docstring_example() -> None:
    """average_state_dicts' example gives what it shows."""
    import doctest

    import rec_es.training.averaging as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0, result
