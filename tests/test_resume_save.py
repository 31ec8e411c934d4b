"""``rec_es.training.resume.save_last``: what ``RUN/last.pth`` holds after an epoch, written from a trainer stand-in.

The stand-in is a ``SimpleNamespace`` with the attributes ``save_last`` reads (model, optimizer, policy, schedule,
averager, best_, trace_, train_data_, run_dir, ranks_); the policy, schedule, trace writer, best snapshot and
averager are the real ones, and the file is read back through ``rec_es.rundir.checkpoint.load``. No training.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from tiny_model import TinyRecommender

from rec_es import build_policy
from rec_es.policy.schedule import LRSchedule
from rec_es.rundir import checkpoint
from rec_es.rundir.trace import TraceWriter, jsonable
from rec_es.training.averaging import for_trainer
from rec_es.training.resume import save_last


class Ranks:
    """A process group's ``gather_states`` as rank ``rank`` of two sees it: rank 0 gets every rank's state."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.gathered: list[dict[str, Any]] = []

    def gather_states(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        self.gathered.append(state)
        return [state, {**state, "sampler": {"seed": 7, "epoch": 3}}] if self.rank == 0 else None


POLICY = {"monitor": "mrr@10", "patience": 2}


def stand_in(tmp_path: Path, *, ranks: Ranks | None = None, run_dir: bool = True, averaged: bool = False,
             trace: bool = True) -> SimpleNamespace:
    """A trainer after epoch 1 of a run: two evaluations (mrr@10 0.3, 0.35), one optimizer step, a cosine LR
    schedule, a best snapshot of epoch 1 and a two-line trace."""
    torch.manual_seed(0)
    model = TinyRecommender()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    policy = build_policy({**POLICY, **({"restore": {"average": "best_k", "k": 2}} if averaged else {})})
    for epoch, value in enumerate([0.3, 0.35]):
        policy.update(epoch, {"mrr@10": value})
    writer = None
    if trace:
        writer = TraceWriter(tmp_path / "trace.jsonl")
        writer.header(type="header")
        writer.record(type="eval", epoch=1)
    generator = torch.Generator().manual_seed(5)
    averager = for_trainer(policy, model, "Linear", epochs=10, eval_step=1) if averaged else None
    return SimpleNamespace(
        model=model, optimizer=optimizer, policy=policy, schedule=LRSchedule(
            {"decay": "cosine", "t_max": 10, "eta_min": 0.005}, base_lr=0.01), averager=averager,
        best_=checkpoint.BestSnapshot.take(model, 1, {"mrr@10": 0.35}, 0.35), trace_=writer,
        train_data_=SimpleNamespace(generator=generator), run_dir=tmp_path if run_dir else None, ranks_=ranks)


def test_last_pth_holds_what_a_resume_reads_back(tmp_path: Path) -> None:
    """Model, optimizer, policy and schedule states with the settings they belong to, the data order's random
    state, the best snapshot, the trace's line count and digests, the elapsed seconds; one process: no
    world_size or rank_states, no averaging entry without an averaging restore."""
    trainer = stand_in(tmp_path)
    save_last(trainer, 1, 12.5, saved=True)
    data = checkpoint.load(tmp_path / "last.pth", kind="last")
    assert data["epoch"] == 1
    assert data["elapsed_seconds"] == 12.5
    assert data["model"].keys() == {"weight", "bias"}
    assert torch.equal(data["model"]["weight"], trainer.model.weight.detach())
    assert data["optimizer"]["state"][0]["step"] == torch.tensor(1.0)
    assert data["policy"] == trainer.policy.state_dict()
    assert data["policy"]["state"]["restore_epoch"] == 1
    assert data["policy_settings"] == jsonable(trainer.policy.settings_mapping())
    assert data["lr_schedule"] == trainer.schedule.state_dict()
    assert data["schedule_settings"] == trainer.schedule.settings
    assert torch.equal(data["train_data_rng"], trainer.train_data_.generator.get_state())
    assert data["best"]["epoch"] == 1 and data["best"]["score"] == 0.35
    assert data["best"]["valid_result"] == {"mrr@10": 0.35}
    assert data["trace_lines"] == 2
    assert data["trace_digests"] == trainer.trace_.digests and len(data["trace_digests"]) == 1
    assert not {"world_size", "rank_states", "averaging"} & data.keys()


def test_without_a_schedule_or_a_best_their_entries_are_empty(tmp_path: Path) -> None:
    """No LR schedule: its state and settings are None; before the first best: ``best`` is None."""
    trainer = stand_in(tmp_path)
    trainer.schedule, trainer.best_, trainer.train_data_ = None, None, object()
    save_last(trainer, 0, 1.0, saved=True)
    data = checkpoint.load(tmp_path / "last.pth", kind="last")
    assert (data["lr_schedule"], data["schedule_settings"], data["best"], data["train_data_rng"]) == (
        None, None, None, None)


def test_an_averaging_restore_keeps_its_state(tmp_path: Path) -> None:
    """With ``restore: best_k``, last.pth holds the averager's state (its basis and the weights it kept)."""
    trainer = stand_in(tmp_path, averaged=True)
    save_last(trainer, 1, 2.0, saved=True)
    data = checkpoint.load(tmp_path / "last.pth", kind="last")
    assert data["averaging"]["basis"] == trainer.averager.state_dict()["basis"]
    assert data["averaging"]["basis"]["restore"] == {"average": "best_k", "k": 2}


@pytest.mark.parametrize("why", ["not saved", "no run directory", "no trace"])
def test_nothing_is_written_when_the_run_does_not_save(tmp_path: Path, why: str) -> None:
    """``saved`` false (RecBole's ``saved: False``), no run directory or no trace writer: no last.pth."""
    trainer = stand_in(tmp_path, run_dir=why != "no run directory", trace=why != "no trace")
    save_last(trainer, 1, 2.0, saved=why != "not saved")
    assert not (tmp_path / "last.pth").exists()


def test_every_rank_joins_the_gather_and_rank_0_alone_writes(tmp_path: Path) -> None:
    """Several processes: rank 0 stores every rank's random state with the world size; another rank (no run
    directory) still takes part in the gather, once, and writes nothing; an epoch that is not saved gathers
    nothing on any rank."""
    (tmp_path / "other").mkdir()
    other = stand_in(tmp_path / "other", ranks=Ranks(1), run_dir=False)
    save_last(other, 1, 2.0, saved=True)
    assert len(other.ranks_.gathered) == 1
    assert torch.equal(other.ranks_.gathered[0]["train_data_rng"], other.train_data_.generator.get_state())
    assert not (tmp_path / "other" / "last.pth").exists()

    rank_0 = stand_in(tmp_path, ranks=Ranks(0))
    save_last(rank_0, 1, 2.0, saved=False)
    assert rank_0.ranks_.gathered == [] and not (tmp_path / "last.pth").exists()
    save_last(rank_0, 1, 2.0, saved=True)
    data = checkpoint.load(tmp_path / "last.pth", kind="last")
    assert data["world_size"] == 2
    assert [s["sampler"] for s in data["rank_states"]] == [None, {"seed": 7, "epoch": 3}]
