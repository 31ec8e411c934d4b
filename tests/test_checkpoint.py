"""Checkpoints: weights-only loadable, atomic, RNG states restored exactly."""
from __future__ import annotations

import os
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

    def load_other_parameter(self, para: dict | None) -> None:
        self.loaded_other = para


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


class _Plain(torch.nn.Module):
    """A model without RecBole's other_parameter (a plain torch module)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)


def test_atomic_save_writes_through_a_hidden_temp_file_beside_the_target(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent directories are created; the temp file is `.best.pth.*.tmp` in the target's own directory (an
    os.replace across directories would not be atomic), and only the target remains."""
    moves: list[tuple[str, str]] = []
    real_replace = checkpoint.os.replace

    def replace(src: str, dst: object) -> None:
        moves.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    target = tmp_path / "a" / "b" / "best.pth"
    assert checkpoint.atomic_save({"format": "rec_es.checkpoint", "version": 1, "epoch": 1}, target) == target
    (src, dst), = moves
    assert Path(src).parent == target.parent and dst == str(target)
    assert Path(src).name.startswith(".best.pth.") and src.endswith(".tmp")
    assert [p.name for p in target.parent.iterdir()] == ["best.pth"]


def test_last_payload_holds_every_field_a_resume_reads(tmp_path: Path) -> None:
    """Every field of last.pth (docs/CONTRACT.md) is saved under its name and loads weights-only with its value."""
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    best = {"epoch": 3, "state_dict": checkpoint.cpu_state_dict(model), "other_parameter": None,
            "valid_result": {"ndcg@10": np.float64(0.25)}, "score": 0.25, "test_result": {"ndcg@10": np.float32(0.5)}}
    rng = torch.Generator().manual_seed(5).get_state()
    payload = checkpoint.last_payload(model, optimizer, 4, policy_state={"wait_count": 2},
                                      schedule_state={"factor": 0.5}, train_data_rng=rng, trace_lines=6,
                                      elapsed_seconds=1.5, best=best, trace_digests=("ab", "cd"),
                                      policy_settings={"patience": np.int64(3)},
                                      schedule_settings={"factor": np.float64(0.5)})
    data = checkpoint.load(checkpoint.atomic_save(payload, tmp_path / "last.pth"), kind="last")
    assert set(data) == {"format", "version", "kind", "epoch", "model", "other_parameter", "optimizer",
                         "lr_schedule", "policy", "rng", "train_data_rng", "trace_lines", "elapsed_seconds", "best",
                         "trace_digests", "policy_settings", "schedule_settings"}
    assert data["lr_schedule"] == {"factor": 0.5} and torch.equal(data["train_data_rng"], rng)
    assert set(data["rng"]) >= {"python", "numpy", "torch"}
    assert data["trace_digests"] == ["ab", "cd"]
    assert data["policy_settings"] == {"patience": 3} and data["schedule_settings"] == {"factor": 0.5}
    assert data["best"]["test_result"] == {"ndcg@10": 0.5} and type(data["best"]["test_result"]["ndcg@10"]) is float
    without = checkpoint.last_payload(model, optimizer, 0, policy_state={}, schedule_state=None, train_data_rng=None,
                                      trace_lines=1, elapsed_seconds=0.0, best=None)
    assert not {"trace_digests", "policy_settings", "schedule_settings"} & set(without)


def test_best_payload_of_given_weights_and_of_a_plain_module() -> None:
    """best_payload stores the given state_dict (not the model's current one); a module without other_parameter
    stores None."""
    model = Tiny()
    kept = {"emb.weight": torch.zeros(5, 3)}
    assert checkpoint.best_payload(model, 1, kept)["state_dict"] == kept
    assert checkpoint.best_payload(_Plain(), 1)["other_parameter"] is None


def test_cpu_state_dict_is_a_copy() -> None:
    """Training on after the snapshot does not change it (a CPU tensor is copied, not shared)."""
    model = Tiny()
    snap = checkpoint.cpu_state_dict(model)
    before = snap["emb.weight"].clone()
    with torch.no_grad():
        model.emb.weight.add_(1.0)
    assert torch.equal(snap["emb.weight"], before)


def test_best_snapshot_round_trip_best_file_and_restore(tmp_path: Path) -> None:
    """take -> to_payload -> from_payload keeps every field; best_file is best.pth's content; restore loads the
    weights and hands other_parameter to the model."""
    model = Tiny()
    snap = checkpoint.BestSnapshot.take(model, np.int64(4), {"ndcg@10": 0.3}, 0.3, {"ndcg@10": 0.2})
    assert (snap.epoch, snap.valid_result, snap.score, snap.test_result) == (4, {"ndcg@10": 0.3}, 0.3, {"ndcg@10": 0.2})
    assert type(snap.epoch) is int and snap.other_parameter["weights"].tolist() == [0.0, 1.0, 2.0]
    back = checkpoint.BestSnapshot.from_payload(snap.to_payload())
    assert (back.epoch, back.valid_result, back.score, back.test_result) == (4, {"ndcg@10": 0.3}, 0.3, {"ndcg@10": 0.2})
    assert torch.equal(back.state_dict["emb.weight"], model.emb.weight.detach())
    assert back.other_parameter["name"] == "tiny"
    with torch.no_grad():
        model.emb.weight.add_(1.0)  # trained on: best.pth holds the snapshot's weights, not the current ones
    data = checkpoint.load(checkpoint.atomic_save(snap.best_file(model, "GRU4Rec", "ml-100k"), tmp_path / "b.pth"),
                           kind="best")
    assert (data["epoch"], data["valid_result"], data["score"], data["test_result"]) == (
        4, {"ndcg@10": 0.3}, 0.3, {"ndcg@10": 0.2})
    assert (data["model_name"], data["dataset"]) == ("GRU4Rec", "ml-100k")
    assert torch.equal(data["state_dict"]["emb.weight"], snap.state_dict["emb.weight"])
    assert not torch.equal(data["state_dict"]["emb.weight"], model.emb.weight.detach())
    assert data["other_parameter"]["name"] == "tiny" and data["other_parameter"]["weights"].tolist() == [0.0, 1.0, 2.0]
    other = Tiny()
    snap.restore(other, "cpu")
    assert torch.equal(other.emb.weight, snap.state_dict["emb.weight"])
    assert other.loaded_other["weights"].tolist() == [0.0, 1.0, 2.0] and other.loaded_other["name"] == "tiny"
    snap.restore(other, torch.device("meta"))  # other_parameter's tensors go to the device the model is on
    assert other.loaded_other["weights"].device.type == "meta"


def test_on_device_moves_nested_tensors() -> None:
    """Tensors inside nested dicts go to the device (here 'meta'); other values are kept as they are."""
    moved = checkpoint.on_device({"a": torch.ones(2), "b": {"c": torch.ones(1)}, "d": 3}, torch.device("meta"))
    assert moved["a"].device.type == "meta" and moved["b"]["c"].device.type == "meta" and moved["d"] == 3


def test_plain_makes_nested_values_weights_only_safe() -> None:
    """numpy scalars become Python numbers and tuples lists, at any depth."""
    assert checkpoint.plain([np.float64(1.5), (np.int64(1), 2)]) == [1.5, [1, 2]]
    assert type(checkpoint.plain((np.float32(0.5),))[0]) is float


def test_load_names_what_is_wrong(tmp_path: Path) -> None:
    """A missing file, another version and an unreadable file are refused with the path, the version found and the
    reading error's type."""
    with pytest.raises(StateError, match=r"nope.pth: checkpoint file not found"):
        checkpoint.load(tmp_path / "nope.pth")
    torch.save({"format": "rec_es.checkpoint", "version": 2}, tmp_path / "v2.pth")
    with pytest.raises(StateError, match=r"v2.pth: checkpoint version 2 is not 1"):
        checkpoint.load(tmp_path / "v2.pth")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(StateError, match=r"cannot be read as a weights-only checkpoint \(RuntimeError: "):
        checkpoint.load(tmp_path / "cut.pth")


def test_load_stays_weights_only_when_torch_is_told_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 makes torch.load unpickle anything when weights_only is not passed;
    checkpoint.load passes it, so a planted pickle is still refused and runs no code."""
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.mkdir, (str(marker),))

    torch.save({"format": "rec_es.checkpoint", "version": 1, "kind": "last", "x": Payload()}, tmp_path / "last.pth")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(StateError, match="cannot be read as a weights-only checkpoint"):
        checkpoint.load(tmp_path / "last.pth")
    assert not marker.exists()
