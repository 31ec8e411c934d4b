"""``rec_es.training.resume``'s writing half, called directly (no training, no RecBole dataset).

``_check_averaging`` gets a real ``WeightAverager`` (``averaging.for_trainer``) and hand-built ``last.pth`` dicts.
``apply_resume`` and ``begin_resumed`` get a small trainer stand-in (a ``SimpleNamespace`` with the attributes they
read: policy, schedule, run_config, epochs, run_dir, logger, model, averager and, for several processes,
``ranks_``: an object with ``rank`` and ``share`` standing for rank 0's broadcast), a real policy built by
``rec_es.build_policy``, a real ``LRSchedule`` and a trace file written by hand and read with ``read_trace``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import trace_header, write_trace_lines
from tiny_model import TinyRecommender

from rec_es import build_policy
from rec_es.policy.errors import ConfigError, StateError
from rec_es.policy.schedule import LRSchedule
from rec_es.rundir.checkpoint import capture_rng_state
from rec_es.rundir.per_user import PerUserWriter
from rec_es.rundir.trace import jsonable, read_trace
from rec_es.training.averaging import WeightAverager, for_trainer
from rec_es.training.resume import _check_averaging, apply_resume, begin_resumed

NOTHING_CHANGED = "; nothing in the run directory was changed"


# ----- _check_averaging -----------------------------------------------------------------------------------------
def averager(k: int) -> WeightAverager:
    """The averager of a trainer restoring the average of the best ``k`` evaluations of ndcg@10."""
    made = for_trainer(build_policy({"monitor": "ndcg@10", "restore": {"average": "best_k", "k": k}}),
                       torch.nn.Linear(2, 1), "Linear", epochs=10, eval_step=1)
    assert made is not None
    return made


def basis(k: int, monitor: str = "ndcg@10") -> dict[str, Any]:
    """The averaging basis last.pth records for best_k ``k`` (written out, as a checkpoint holds it)."""
    return {"restore": {"average": "best_k", "k": k}, "monitor": monitor, "mode": "max", "smoothing": "none",
            "ema_alpha": None, "window": None, "best_by": "raw", "start_from_epoch": 0}


def test_averaging_resumes_from_weights_kept_under_the_same_settings(tmp_path: Path) -> None:
    """Weights kept under the same basis pass (None/None entries such as ema_alpha compare equal too)."""
    trainer = SimpleNamespace(averager=averager(2))
    assert _check_averaging(trainer, {"averaging": {"basis": basis(2), "kept": {"3": {}}}}, tmp_path) is None


@pytest.mark.parametrize("data", [{}, {"averaging": None}, {"averaging": {"basis": basis(2), "kept": None}}],
                         ids=["no-entry", "none", "kept-none"])
def test_averaging_refuses_a_run_that_kept_no_weights(tmp_path: Path, data: dict[str, Any]) -> None:
    """A run that restored its best evaluation kept no weights to average: refused, naming the setting and file."""
    where = tmp_path / "last.pth"
    with pytest.raises(ConfigError) as err:
        _check_averaging(SimpleNamespace(averager=averager(2)), data, where)
    assert err.value.message == (
        "cannot resume: early_stopping.restore: restore: best_k, k 2 averages weights of several evaluations, and "
        "this run kept none (it restored the best evaluation); resume with the run's own restore setting, or start "
        "a new run" + NOTHING_CHANGED)
    assert err.value.source == str(where)


def test_averaging_refuses_weights_chosen_under_other_settings(tmp_path: Path) -> None:
    """Every basis entry that changed is named, old and new value, in the basis order, joined by '; '."""
    where = tmp_path / "last.pth"
    saved = {"averaging": {"basis": basis(3, monitor="recall@10"), "kept": {}}}
    with pytest.raises(ConfigError) as err:
        _check_averaging(SimpleNamespace(averager=averager(2)), saved, where)
    assert err.value.message == (
        "cannot resume: early_stopping.restore: the weights last.pth keeps for the average were chosen under other "
        "settings (restore: {'average': 'best_k', 'k': 3} (now {'average': 'best_k', 'k': 2}); monitor: "
        "'recall@10' (now 'ndcg@10')); resume with the run's settings (or restore: best), or start a new run"
        + NOTHING_CHANGED)
    assert err.value.source == str(where)


# ----- apply_resume / begin_resumed -----------------------------------------------------------------------------
MRR = [0.3, 0.35, 0.32]  # best 0.35 at epoch 1; epoch 2 waits 1
BASE = {"monitor": "mrr@10", "patience": 2}
COSINE = {"decay": "cosine", "t_max": 10, "eta_min": 0.005}
RUN_CONFIG = {"model": "BPR", "dataset": "ml-100k"}


def settings_of(policy_settings: dict[str, Any]) -> dict[str, Any]:
    return jsonable(build_policy(policy_settings).settings_mapping())


def fed_state(policy_settings: dict[str, Any], values: list[float]) -> dict[str, Any]:
    """The policy state after evaluations ``values`` (epochs 0, 1, ...)."""
    policy = build_policy(policy_settings)
    for epoch, v in enumerate(values):
        policy.update(epoch, {"mrr@10": v})
    return policy.state_dict()


def write_run(run: Path, values: list[float], test: list[float] | None = None, **head: Any) -> Any:
    """RUN/trace.jsonl: a header (``head``) and one mrr@10 record per value (with the test split's mrr@10 from
    ``test`` when given); returns it as read_trace reads it."""
    header = trace_header(**{"config": RUN_CONFIG, "lr_schedule": None, "epochs": 10, **head})
    lines = [header] + [{"type": "eval", "epoch": e, "valid": {"mrr@10": v}, "decision": {},
                         **({"test": {"mrr@10": test[e]}} if test is not None else {})}
                        for e, v in enumerate(values)]
    return read_trace(write_trace_lines(run, lines))


def last(values: list[float], policy_settings: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A last.pth payload after the last of ``values`` (policy state of ``policy_settings``)."""
    data: dict[str, Any] = {"epoch": len(values) - 1, "policy": fed_state(policy_settings, values),
                            "policy_settings": settings_of(policy_settings), "rng": capture_rng_state(),
                            "trace_lines": len(values) + 1, "elapsed_seconds": 1.5, "best": None,
                            "lr_schedule": None}
    data.update(changes)
    return data


def stand_in(run: Path | None, policy_settings: dict[str, Any], schedule: LRSchedule | None = None,
             run_config: dict[str, Any] | None = None, **more: Any) -> SimpleNamespace:
    return SimpleNamespace(policy=build_policy(policy_settings), schedule=schedule, run_config=run_config, epochs=10,
                           run_dir=run, logger=logging.getLogger("test_resume_apply"), model=torch.nn.Linear(2, 1),
                           averager=None, **more)


def best_payload(epoch: int, score: float) -> dict[str, Any]:
    """A best snapshot in last.pth (no weights: the stand-in never loads them)."""
    return {"epoch": epoch, "state_dict": {}, "other_parameter": None, "valid_result": {"mrr@10": score},
            "score": score, "test_result": None}


def plateau_schedule() -> LRSchedule:
    return LRSchedule(COSINE, base_lr=0.01)


def saved_schedule_state() -> dict[str, Any]:
    """A schedule state unlike a fresh one (one reduction to half the LR)."""
    return {**plateau_schedule().state_dict(), "scale": 0.5, "reductions": 1}


@pytest.mark.parametrize("settings_in", ["last.pth", "header"])
def test_unchanged_settings_load_the_saved_states_and_leave_the_trace_alone(tmp_path: Path,
                                                                            settings_in: str) -> None:
    """Same policy and schedule (named by last.pth, or for an older checkpoint by the trace header), same config and
    epochs: the saved policy and schedule states are loaded (not replayed: the trace here holds no records, so a
    replay would know no best) and the trace file is not rewritten."""
    schedule = plateau_schedule()
    trace = write_run(tmp_path, [], policy=settings_of(BASE), lr_schedule=jsonable(schedule.settings))
    before = (tmp_path / "trace.jsonl").read_bytes()
    data = last(MRR, BASE, lr_schedule=saved_schedule_state(), best=best_payload(1, 0.35))
    if settings_in == "header":
        del data["policy_settings"]
    trainer = stand_in(tmp_path, BASE, schedule=schedule, run_config=dict(RUN_CONFIG))
    best = apply_resume(trainer, data, None, trace)
    assert trainer.policy.state_dict() == data["policy"]
    assert trainer.policy.best_epoch == 1
    assert schedule.state_dict() == saved_schedule_state()
    assert best is not None and best.epoch == 1
    assert (tmp_path / "trace.jsonl").read_bytes() == before


def test_without_a_run_config_the_headers_config_is_kept(tmp_path: Path) -> None:
    """A trainer given no run config keeps the config the header names: nothing changed, nothing rewritten."""
    trace = write_run(tmp_path, MRR, policy=settings_of(BASE))
    before = (tmp_path / "trace.jsonl").read_bytes()
    apply_resume(stand_in(tmp_path, BASE), last(MRR, BASE), None, trace)
    assert (tmp_path / "trace.jsonl").read_bytes() == before


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The messages the stand-in trainer's logger logged at ``level``."""
    return [r.getMessage() for r in caplog.records if r.name == "test_resume_apply" and r.levelno == level]


def test_a_changed_run_config_is_recorded_in_the_header(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The trainer's run config differs from the header's: the header takes the new one and names the old; policy
    and schedule are the saved ones, so nothing says they changed (nothing is logged)."""
    trace = write_run(tmp_path, MRR, policy=settings_of(BASE))
    new_config = {**RUN_CONFIG, "learning_rate": 0.01}
    with caplog.at_level(logging.INFO, logger="test_resume_apply"):
        apply_resume(stand_in(tmp_path, BASE, run_config=new_config), last(MRR, BASE), None, trace)
    assert logged(caplog, logging.INFO) == []
    header = read_trace(tmp_path / "trace.jsonl").header
    assert header["config"] == new_config
    assert [c["previous_config"] for c in header["resumed_with_changes"]] == [RUN_CONFIG]


def test_a_changed_policy_is_replayed_and_the_header_names_every_change(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Resumed under patience 5 (saved under 2), 12 epochs (was 10) and a schedule: the new policy is replayed over
    the three records (best epoch 1, wait 1), the schedule starts fresh, the header appends to the changes an
    earlier resume recorded one entry naming what was there before, and the log says how many records were
    replayed."""
    old, new = settings_of(BASE), {**BASE, "patience": 5}
    earlier = {"from_epoch": 1, "previous_policy": None}
    trace = write_run(tmp_path, MRR, policy=old, resumed_with_changes=[earlier])
    schedule = plateau_schedule()
    schedule.scale_ = 0.25  # whatever the schedule held is forgotten: it was not the one saved
    trainer = stand_in(tmp_path, new, schedule=schedule, run_config=dict(RUN_CONFIG))
    trainer.epochs = 12
    with caplog.at_level(logging.INFO, logger="test_resume_apply"):
        best = apply_resume(trainer, last(MRR, BASE, best=best_payload(1, 0.35)), None, trace)
    assert logged(caplog, logging.INFO) == [
        "resumed under a changed policy/schedule: replayed 3 recorded evaluations through the new policy"]
    assert trainer.policy.state_dict() == fed_state(new, MRR)
    assert schedule.state_dict() == plateau_schedule().state_dict()
    assert best is not None and best.epoch == 1
    header = read_trace(tmp_path / "trace.jsonl").header
    assert header["resumed_with_changes"] == [
        earlier, {"from_epoch": 3, "previous_policy": old, "previous_lr_schedule": None,
                  "previous_config": RUN_CONFIG, "previous_epochs": 10}]
    assert (header["policy"], header["lr_schedule"], header["epochs"]) == (
        settings_of(new), jsonable(schedule.settings), 12)


def test_a_replayed_best_without_weights_restores_the_kept_snapshot(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Under min_delta 0.1 the replayed best is epoch 0 (0.35 - 0.3 = 0.05 is no improvement), whose weights the run
    never kept (it kept epoch 1): epoch 1 is restored instead, a warning says so and the header records it."""
    new = {**BASE, "min_delta": 0.1}
    trace = write_run(tmp_path, MRR, policy=settings_of(BASE))
    trainer = stand_in(tmp_path, new)
    with caplog.at_level(logging.WARNING, logger="test_resume_apply"):
        best = apply_resume(trainer, last(MRR, BASE, best=best_payload(1, 0.35)), None, trace)
    assert logged(caplog, logging.WARNING) == [
        ("resumed under another policy: it would restore epoch 0, whose weights this run never kept (it snapshotted "
         "epoch 1); epoch 1 is restored instead unless a later epoch beats it")]
    assert trainer.policy.best_epoch == 1
    assert best is not None and best.epoch == 1
    change = read_trace(tmp_path / "trace.jsonl").header["resumed_with_changes"][-1]
    assert change["best_without_weights"] == {"wanted": 0, "restored": 1}


def test_a_replayed_best_at_the_last_epoch_is_snapshotted_from_the_model(tmp_path: Path) -> None:
    """Saved under min_delta 0.02 (best epoch 1: 0.35 - 0.3 = 0.05 improves, 0.36 - 0.35 = 0.01 does not), resumed
    under min_delta 0: the replayed best is epoch 2 (0.36 > 0.35), the last saved epoch, whose weights the model
    holds now. It is snapshotted from the model (weights and other_parameter) with the last record's valid and test results and score 0.36; the
    kept epoch 1 is not substituted for it (no best_without_weights in the header)."""
    old = {**BASE, "min_delta": 0.02}
    trace = write_run(tmp_path, [0.3, 0.35, 0.36], test=[0.2, 0.25, 0.26], policy=settings_of(old),
                      record_test=True)
    trainer = stand_in(tmp_path, BASE)
    trainer.model = TinyRecommender(cache={"items": torch.tensor([1.0, 2.0])})
    best = apply_resume(trainer, last([0.3, 0.35, 0.36], old, best=best_payload(1, 0.35)), None, trace)
    assert trainer.policy.best_epoch == 2
    assert best is not None
    assert (best.epoch, best.valid_result, best.score, best.test_result) == (2, {"mrr@10": 0.36}, 0.36,
                                                                             {"mrr@10": 0.26})
    assert best.state_dict.keys() == {"weight", "bias"}
    assert all(torch.equal(best.state_dict[k], v) for k, v in trainer.model.state_dict().items())
    assert best.other_parameter["items"].tolist() == [1.0, 2.0]
    [change] = read_trace(tmp_path / "trace.jsonl").header["resumed_with_changes"]
    assert change["previous_policy"] == settings_of(old) and "best_without_weights" not in change


def test_a_saved_best_at_the_last_epoch_is_restored_as_saved(tmp_path: Path) -> None:
    """Unchanged policy whose best is the last saved epoch (0.35 at epoch 1 of 0.3, 0.35): the saved snapshot is
    the one the run continues from, exactly as last.pth holds it (its weights, not a new copy of the model's)."""
    trace = write_run(tmp_path, [0.3, 0.35], policy=settings_of(BASE))
    trainer = stand_in(tmp_path, BASE)
    best = apply_resume(trainer, last([0.3, 0.35], BASE, best=best_payload(1, 0.35)), None, trace)
    assert trainer.policy.best_epoch == 1
    assert best is not None and best.to_payload() == best_payload(1, 0.35)


def test_an_averaging_restore_continues_from_the_weights_it_kept(tmp_path: Path) -> None:
    """With restore: best_k 2, the averager takes last.pth's history of the three evaluations and the weights it
    kept for the two best (epoch 1: 0.35, epoch 2: 0.32), so the average at the end can use them."""
    settings = {**BASE, "restore": {"average": "best_k", "k": 2}}
    policy, model = build_policy(settings), torch.nn.Linear(2, 1)
    before = for_trainer(policy, model, "Linear", epochs=10, eval_step=1)
    assert before is not None
    for epoch, v in enumerate(MRR):
        before.observe(policy.update(epoch, {"mrr@10": v}), model)
    trace = write_run(tmp_path, MRR, policy=settings_of(settings))
    trainer = stand_in(tmp_path, settings)
    trainer.averager = for_trainer(trainer.policy, trainer.model, "Linear", epochs=10, eval_step=1)
    apply_resume(trainer, last(MRR, settings, averaging=before.state_dict()), None, trace)
    assert trainer.averager.history == [(0, 0.3, 0.3), (1, 0.35, 0.35), (2, 0.32, 0.32)]
    assert sorted(trainer.averager.kept) == [1, 2]
    assert all(torch.equal(trainer.averager.kept[1][k], v) for k, v in model.state_dict().items())


def test_a_replay_without_per_user_scores_says_what_it_used_instead(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A changed policy that reads per-user scores (min_delta: auto), replayed over a run with no sidecar, logs the
    note that the curve's noise was used instead."""
    trace = write_run(tmp_path, MRR, policy=settings_of(BASE))
    with caplog.at_level(logging.WARNING, logger="test_resume_apply"):
        apply_resume(stand_in(tmp_path, {**BASE, "min_delta": "auto"}), last(MRR, BASE), None, trace)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [(f"{tmp_path / 'trace.jsonl'}: no per-user validation scores recorded, so mrr@10 per user were "
                      "not available: min_delta: auto and improvement: significant used the curve's noise instead "
                      "(1.4826·MAD of first differences; a z-test for significance), not what a live run decides")]


def test_a_replay_reads_the_runs_per_user_scores(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With a per-user sidecar (three users at mean - 0.1, mean, mean + 0.1), a changed policy with min_delta: auto
    is replayed on those scores: its noise is the per-user paired SE against the best epoch 1 (every user moved by
    the same -0.03 at epoch 2, so the SE and the margin are 0.0), and no fallback note is logged."""
    trace = write_run(tmp_path, MRR, policy=settings_of(BASE))
    (tmp_path / "per_user").mkdir()
    writer = PerUserWriter.create(tmp_path, "valid", ("mrr@10",))
    for epoch, v in enumerate(MRR):
        writer.append(epoch, np.array([1, 2, 3]), {"mrr@10": np.array([v - 0.1, v, v + 0.1])})
    trainer = stand_in(tmp_path, {**BASE, "min_delta": "auto"})
    with caplog.at_level(logging.WARNING, logger="test_resume_apply"):
        apply_resume(trainer, last(MRR, BASE), None, trace)
    state = trainer.policy.state_dict()["state"]
    assert (state["noise_source"], state["noise_margin"]) == ("per-user paired SE vs epoch 1", 0.0)
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


def test_a_schedule_added_on_resume_starts_fresh(tmp_path: Path) -> None:
    """The run was saved without a schedule (no lr_schedule state): a schedule given on resume is reset."""
    schedule = plateau_schedule()
    schedule.scale_ = 0.25
    trace = write_run(tmp_path, MRR, policy=settings_of(BASE))
    apply_resume(stand_in(tmp_path, BASE, schedule=schedule), last(MRR, BASE), None, trace)
    assert schedule.state_dict() == plateau_schedule().state_dict()


class Ranks:
    """Several processes, seen from one rank: ``share`` is rank 0's broadcast (rank 0 sends, the others receive
    what rank 0 sent: ``from_rank_0``)."""

    def __init__(self, rank: int, from_rank_0: Any = None) -> None:
        self.rank, self.from_rank_0, self.sent = rank, from_rank_0, []  # type: list[Any]

    def share(self, obj: Any) -> Any:
        self.sent.append(obj)
        return obj if self.rank == 0 else self.from_rank_0


@pytest.mark.parametrize("with_schedule_and_best", [True, False])
def test_rank_0_writes_the_config_and_shares_its_states(tmp_path: Path, with_schedule_and_best: bool) -> None:
    """Rank 0 writes config.yaml, restores, and sends the other ranks its policy state, schedule state and best
    snapshot (None for those it has not); it continues after the saved epoch with the seconds already spent."""
    schedule = plateau_schedule() if with_schedule_and_best else None
    sched_settings = jsonable(schedule.settings) if schedule is not None else None
    write_run(tmp_path, MRR, policy=settings_of(BASE), lr_schedule=sched_settings)
    data = last(MRR, BASE, lr_schedule=saved_schedule_state() if schedule is not None else None,
                best=best_payload(1, 0.35) if with_schedule_and_best else None)
    ranks = Ranks(0)
    trainer = stand_in(tmp_path, BASE, schedule=schedule, run_config={**RUN_CONFIG, "epochs": 10}, ranks_=ranks)
    state = begin_resumed(trainer, data, None)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {**RUN_CONFIG, "epochs": 10}
    assert ranks.sent == [{"policy": data["policy"],
                           "schedule": saved_schedule_state() if with_schedule_and_best else None,
                           "best": best_payload(1, 0.35) if with_schedule_and_best else None}]
    assert (state.start_epoch, state.elapsed_seconds) == (3, 1.5)
    assert state.trace is not None


def test_a_checkpoint_without_elapsed_seconds_starts_the_clock_at_zero(tmp_path: Path) -> None:
    """An older last.pth without elapsed_seconds: the resumed fit counts from 0.0 seconds."""
    write_run(tmp_path, MRR, policy=settings_of(BASE))
    data = last(MRR, BASE)
    del data["elapsed_seconds"]
    trainer = SimpleNamespace(**vars(stand_in(tmp_path, BASE)))  # a trainer with no ranks_ attribute at all
    assert not hasattr(trainer, "ranks_")
    state = begin_resumed(trainer, data, None)
    assert state.elapsed_seconds == 0.0
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize("ranks", [None, Ranks(0)], ids=["one-process", "rank-0"])
def test_resuming_without_a_run_dir_is_refused_where_the_run_dir_belongs(ranks: Ranks | None) -> None:
    """One process, or rank 0 of several, without a run_dir: a StateError saying it needs one."""
    trainer = stand_in(None, BASE) if ranks is None else stand_in(None, BASE, ranks_=ranks)
    with pytest.raises(StateError) as err:
        begin_resumed(trainer, last(MRR, BASE), None)
    assert str(err.value) == "resuming needs the run_dir the run was written to"


def test_another_rank_takes_rank_0s_states_and_its_own_random_state() -> None:
    """Rank 1 (no run_dir) loads the policy and schedule state and best snapshot rank 0 shares, restores its own
    train-loader generator from rank_states[1], and continues after the saved epoch."""
    generator = torch.Generator().manual_seed(7)
    other = torch.Generator().manual_seed(11)
    rank_states = [{"rng": capture_rng_state(), "train_data_rng": generator.get_state(), "sampler": None},
                   {"rng": capture_rng_state(), "train_data_rng": other.get_state(), "sampler": None}]
    shared = {"policy": fed_state(BASE, MRR), "schedule": saved_schedule_state(), "best": best_payload(1, 0.35)}
    schedule = plateau_schedule()
    trainer = stand_in(None, BASE, schedule=schedule, ranks_=Ranks(1, from_rank_0=shared))
    train_data = SimpleNamespace(generator=generator)
    state = begin_resumed(trainer, last(MRR, BASE, rank_states=rank_states), train_data)
    assert trainer.policy.state_dict() == fed_state(BASE, MRR)
    assert schedule.state_dict() == saved_schedule_state()
    assert state.best is not None and (state.best.epoch, state.best.score) == (1, 0.35)
    assert torch.equal(generator.get_state(), other.get_state())
    assert (state.trace, state.start_epoch, state.elapsed_seconds) == (None, 3, 1.5)


def test_another_rank_keeps_what_rank_0_does_not_share() -> None:
    """Rank 0 shares no schedule state (it runs without a schedule) and no best snapshot (none yet), and last.pth is
    older, without elapsed_seconds: rank 1 leaves its own schedule as it is (scale 0.25), has no best snapshot and
    counts from 0.0 seconds."""
    rank_states = [{"rng": capture_rng_state(), "train_data_rng": None, "sampler": None} for _ in range(2)]
    data = last(MRR, BASE, rank_states=rank_states)
    del data["elapsed_seconds"]
    schedule = plateau_schedule()
    schedule.scale_ = 0.25
    shared = {"policy": fed_state(BASE, MRR), "schedule": None, "best": None}
    trainer = stand_in(None, BASE, schedule=schedule, ranks_=Ranks(1, from_rank_0=shared))
    state = begin_resumed(trainer, data, None)
    assert trainer.policy.state_dict() == fed_state(BASE, MRR)
    assert schedule.scale_ == 0.25
    assert (state.best, state.start_epoch, state.elapsed_seconds) == (None, 3, 0.0)


def test_apply_resume_restores_the_calling_ranks_own_data_order(tmp_path: Path) -> None:
    """apply_resume called for a trainer of rank 1 restores rank_states[1] (its train-loader generator), not rank
    0's."""
    write_run(tmp_path, MRR, policy=settings_of(BASE))
    generator = torch.Generator().manual_seed(7)
    own = torch.Generator().manual_seed(11)
    rank_states = [{"rng": capture_rng_state(), "train_data_rng": generator.get_state(), "sampler": None},
                   {"rng": capture_rng_state(), "train_data_rng": own.get_state(), "sampler": None}]
    trainer = stand_in(tmp_path, BASE, ranks_=Ranks(1))
    trace = read_trace(tmp_path / "trace.jsonl")
    apply_resume(trainer, last(MRR, BASE, rank_states=rank_states), SimpleNamespace(generator=generator), trace)
    assert torch.equal(generator.get_state(), own.get_state())
