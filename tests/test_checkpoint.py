"""Checkpoints: weights-only loadable, atomic, RNG states restored exactly."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rec_es.rundir import checkpoint
from rec_es.policy.errors import StateError


class Tiny(torch.nn.Module):
    """A model with an ``other_parameter`` like RecBole's AbstractRecommender."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(5, 3)

    def other_parameter(self) -> dict:
        return {"weights": np.arange(3.0), "name": "tiny"}


def test_best_payload_loads_weights_only(tmp_path: Path) -> None:
    """best.pth content loads with torch.load(weights_only=True) and gives the same weights back."""
    model = Tiny()
    path = checkpoint.atomic_save(checkpoint.best_payload(model, epoch=7), tmp_path / "best.pth")
    data = torch.load(path, weights_only=True)
    assert data["format"] == "rec_es.checkpoint" and data["epoch"] == 7 and data["kind"] == "best"
    assert torch.equal(data["state_dict"]["emb.weight"], model.emb.weight.detach())
    assert data["other_parameter"]["weights"].tolist() == [0.0, 1.0, 2.0]
    assert checkpoint.load(path, kind="best")["epoch"] == 7


def test_last_payload_loads_weights_only_with_numpy_results_made_plain(tmp_path: Path) -> None:
    """last.pth content (numpy values in the best snapshot's results) loads with weights_only=True, values kept."""
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    best = {"epoch": 3, "state_dict": checkpoint.cpu_state_dict(model), "other_parameter": None,
            "valid_result": {"ndcg@10": np.float64(0.25)}, "score": 0.25, "test_result": None}
    payload = checkpoint.last_payload(model, optimizer, 4, policy_state={"wait_count": np.int64(2)},
                                      schedule_state=None, train_data_rng=None, trace_lines=6, elapsed_seconds=1.5,
                                      best=best)
    data = checkpoint.load(checkpoint.atomic_save(payload, tmp_path / "last.pth"), kind="last")
    assert (data["epoch"], data["trace_lines"], data["elapsed_seconds"]) == (4, 6, 1.5)
    assert data["policy"] == {"wait_count": 2} and data["optimizer"]["param_groups"][0]["lr"] == 0.5
    assert data["best"]["valid_result"] == {"ndcg@10": 0.25} and data["best"]["epoch"] == 3
    assert torch.equal(data["model"]["emb.weight"], model.emb.weight.detach())
    assert data["other_parameter"]["weights"].tolist() == [0.0, 1.0, 2.0]
    assert checkpoint.last_payload(model, optimizer, 0, policy_state={}, schedule_state=None, train_data_rng=None,
                                   trace_lines=1, elapsed_seconds=0.0, best=None)["best"] is None


def test_failed_save_keeps_previous_file(tmp_path: Path) -> None:
    """A save that fails midway leaves the previous checkpoint intact and no temp file behind."""
    target = tmp_path / "best.pth"
    checkpoint.atomic_save({"format": "rec_es.checkpoint", "version": 1, "kind": "best", "epoch": 1}, target)
    payload = checkpoint.best_payload(Tiny(), 2)
    payload["unpicklable"] = lambda: None  # torch.save fails midway, after the temp file was opened
    with pytest.raises(Exception, match="lambda"):
        checkpoint.atomic_save(payload, target)
    assert checkpoint.load(target)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.pth"]


def test_payload_refuses_non_plain_values() -> None:
    """Anything that would need pickle (here a plain object) is refused before writing."""
    with pytest.raises(StateError, match="cannot store a object"):
        checkpoint.best_payload(Tiny(), 2, bad=object())


def test_load_refuses_foreign_and_corrupt_files(tmp_path: Path) -> None:
    """Files that are not rec_es checkpoints are refused with the path named."""
    torch.save({"state_dict": {}}, tmp_path / "recbole.pth")
    with pytest.raises(StateError, match="not a rec_es checkpoint"):
        checkpoint.load(tmp_path / "recbole.pth")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(StateError, match="cut.pth: cannot be read"):
        checkpoint.load(tmp_path / "cut.pth")
    checkpoint.atomic_save(checkpoint.best_payload(Tiny(), 0), tmp_path / "b.pth")
    with pytest.raises(StateError, match="holds a 'best' checkpoint, expected 'last'"):
        checkpoint.load(tmp_path / "b.pth", kind="last")


def test_rng_state_round_trip_through_file(tmp_path: Path) -> None:
    """Python, numpy and torch RNGs continue identically after save → load → restore."""
    random.seed(3); np.random.seed(3); torch.manual_seed(3)
    random.random(); np.random.normal(); torch.rand(2)
    checkpoint.atomic_save({"rng": checkpoint.capture_rng_state()}, tmp_path / "rng.pth")
    expected = (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist())
    random.seed(99); np.random.seed(99); torch.manual_seed(99)
    checkpoint.restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True)["rng"])
    assert (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist()) == expected
