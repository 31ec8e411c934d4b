"""Resuming a run from ``RUN/last.pth``: validate, restore model and optimizer, then write, in that order.

``rec_es.training.resume_check.check_resume`` validates the run directory and the new config and writes nothing.
``EarlyStoppingTrainer.load_resume`` calls ``read_resume``, which restores model and optimizer from the checked
payload (a state that does not fit the model built from the config is refused here, still before any write);
its ``fit`` then calls ``begin_resumed``, the only place a resume writes: ``config.yaml``, the trace cut back to
the lines the checkpoint counted (a new file renamed over the old one) and its header, then policy, schedule,
best snapshot, RNG and data order as they were after the saved epoch (under several processes, each rank's own:
``begin_resumed``). The policy state is loaded when the
policy is the one the checkpoint was saved with (``policy_settings`` in ``last.pth``); other settings are
replayed over the recorded evaluations, and the trace header names both (``resumed_with_changes``).
``save_last`` writes ``last.pth`` after each saved epoch (its payload built by
``rec_es.rundir.checkpoint.last_payload``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from rec_es.rundir import checkpoint
from rec_es.policy.errors import StateError, brief
from rec_es.policy.types import Decision
from rec_es.replay import per_user_source
from rec_es.training.resume_check import (ResumePlan, check_resume, refuse, replay_policy, saved_policy_settings,
                                          saved_schedule_settings)
from rec_es.rundir.paths import write_config
from rec_es.rundir.trace import TraceWriter, jsonable, read_trace, rewrite_header

if TYPE_CHECKING:
    from rec_es.training.trainer import EarlyStoppingTrainer


def save_last(trainer: EarlyStoppingTrainer, epoch: int, elapsed_seconds: float, saved: bool) -> None:
    """Write ``RUN/last.pth`` after ``epoch`` (``saved``: the trainer saves, ``elapsed_seconds``: the run's wall time
    so far): model, optimizer, policy, schedule and averaging states, the data order's random state, the best
    snapshot, the trace lines and digests, and the settings ``check_resume`` compares; what ``read_resume`` and
    ``begin_resumed`` read back. Under several processes every rank takes part (the ranks' random states are
    gathered) and rank 0 alone writes."""
    rank_states = None
    if saved and trainer.ranks_ is not None:  # collective: every rank's random state, for rank 0's last.pth
        rank_states = trainer.ranks_.gather_states(checkpoint.rank_state(trainer.train_data_))
    if not saved or trainer.run_dir is None or trainer.trace_ is None:
        return
    best = trainer.best_.to_payload() if trainer.best_ is not None else None
    gen = getattr(trainer.train_data_, "generator", None)
    schedule, averager = trainer.schedule, trainer.averager
    payload = checkpoint.last_payload(
        trainer.model, trainer.optimizer, epoch, policy_state=trainer.policy.state_dict(),
        schedule_state=schedule.state_dict() if schedule is not None else None,
        train_data_rng=gen.get_state() if gen is not None else None, trace_lines=trainer.trace_.lines,
        elapsed_seconds=elapsed_seconds, best=best, trace_digests=trainer.trace_.digests,
        policy_settings=jsonable(trainer.policy.settings_mapping()),
        schedule_settings=schedule.settings if schedule is not None else None, rank_states=rank_states,
        averaging=averager.state_dict() if averager is not None else None)
    checkpoint.atomic_save(payload, trainer.run_dir / "last.pth")


def read_resume(trainer: EarlyStoppingTrainer, run_dir: str | os.PathLike[str],
                plan: ResumePlan | None = None) -> dict[str, Any]:
    """Restore the trainer's model and optimizer from ``RUN/last.pth`` now and return the checked payload, which
    the trainer keeps for ``begin_resumed``.

    ``plan`` is ``check_resume``'s result (default: checked here, without a new config). Writes nothing; a
    state that does not fit the model or optimizer is a ConfigError naming last.pth.
    """
    plan = plan if plan is not None else check_resume(run_dir)
    data = plan.checkpoint
    try:
        trainer.model.load_state_dict(data["model"])
        trainer.model.load_other_parameter(checkpoint.on_device(data.get("other_parameter"), trainer.device))
        trainer.optimizer.load_state_dict(data["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise refuse(f"its model/optimizer state does not fit the model built from the config ({brief(exc)}); "
                     "was a model setting (embedding_size, hidden_size, ...) or the learner changed with "
                     "--config/--set? Resume with the run's own model settings", Path(run_dir) / "last.pth") from None
    _check_averaging(trainer, data, Path(run_dir) / "last.pth")
    trainer.logger.info(f"resuming {run_dir} from epoch {int(data['epoch']) + 1} "
                        f"(trace keeps its first {data['trace_lines']} lines)")
    return data


def _check_averaging(trainer: EarlyStoppingTrainer, data: Mapping[str, Any], path: Path) -> None:
    """An averaging ``restore`` resumes only from the weights it kept, chosen under the same settings."""
    if trainer.averager is None:
        return
    saved, now = data.get("averaging"), trainer.averager.basis
    if not isinstance(saved, Mapping) or not isinstance(saved.get("kept"), Mapping):
        raise refuse(f"early_stopping.restore: {trainer.averager.spec.describe()} averages weights of several "
                     "evaluations, and this run kept none (it restored the best evaluation); resume with the run's "
                     "own restore setting, or start a new run", path)
    before = jsonable(saved.get("basis") or {})
    changed = [f"{k}: {before.get(k)!r} (now {v!r})" for k, v in jsonable(now).items() if before.get(k) != v]
    if changed:
        raise refuse(f"early_stopping.restore: the weights last.pth keeps for the average were chosen under other "
                     f"settings ({'; '.join(changed)}); resume with the run's settings (or restore: best), or start "
                     "a new run", path)


@dataclass
class ResumeState:
    """What a resumed fit continues from, for the trainer to apply: the trace writer (cut back to the lines the
    checkpoint counted; None on a rank that writes nothing), the best snapshot, the first epoch to train and the
    seconds already spent."""

    trace: TraceWriter | None
    best: checkpoint.BestSnapshot | None
    start_epoch: int
    elapsed_seconds: float


def begin_resumed(trainer: EarlyStoppingTrainer, resume: Mapping[str, Any], train_data: Any) -> ResumeState:
    """The start of a resumed ``fit``, where a resume first writes: ``config.yaml``, the trace cut back to the
    checkpoint's ``trace_lines`` (atomically), then ``apply_resume``. Returns the state the trainer continues from.

    Several processes (``trainer.ranks_``; every rank calls this): global rank 0, the one with the run directory,
    does the above, then sends its policy and schedule state and best snapshot (loaded, or replayed under a changed
    policy) to the other ranks, which write nothing, take them and restore their own random state and data order
    from ``last.pth``'s ``rank_states``."""
    ranks = getattr(trainer, "ranks_", None)
    if trainer.run_dir is None:
        if ranks is None or ranks.rank == 0:
            raise StateError("resuming needs the run_dir the run was written to")
        return _follow_rank_0(trainer, resume, train_data)
    if trainer.run_config is not None:
        write_config(trainer.run_dir, trainer.run_config)
    writer = TraceWriter(trainer.run_dir / "trace.jsonl", keep_lines=int(resume["trace_lines"]))
    best = apply_resume(trainer, resume, train_data, read_trace(trainer.run_dir / "trace.jsonl"))
    if ranks is not None:
        ranks.share({"policy": trainer.policy.state_dict(),
                     "schedule": trainer.schedule.state_dict() if trainer.schedule is not None else None,
                     "best": best.to_payload() if best is not None else None})
    return ResumeState(trace=writer, best=best, start_epoch=int(resume["epoch"]) + 1,
                       elapsed_seconds=float(resume.get("elapsed_seconds", 0.0)))


def _follow_rank_0(trainer: EarlyStoppingTrainer, resume: Mapping[str, Any], train_data: Any) -> ResumeState:
    """A rank other than 0: rank 0's policy, schedule and best snapshot, this rank's own random state."""
    assert trainer.ranks_ is not None
    shared = trainer.ranks_.share(None)
    trainer.policy.load_state_dict(shared["policy"])
    if trainer.schedule is not None and shared["schedule"] is not None:
        trainer.schedule.load_state_dict(shared["schedule"])
    best = checkpoint.BestSnapshot.from_payload(shared["best"]) if shared["best"] is not None else None
    checkpoint.restore_rank_state(checkpoint.own_rank_state(resume, trainer.ranks_.rank), train_data)
    return ResumeState(trace=None, best=best, start_epoch=int(resume["epoch"]) + 1,
                       elapsed_seconds=float(resume.get("elapsed_seconds", 0.0)))


def apply_resume(trainer: EarlyStoppingTrainer, data: Mapping[str, Any], train_data: Any,
                 trace: Any) -> checkpoint.BestSnapshot | None:
    """Policy, schedule, RNG and data order exactly as they were after ``data['epoch']``; returns the best snapshot.

    With the policy settings the checkpoint was saved with, the saved policy state is loaded. With other
    settings (``--resume RUN --config new_policy.yaml``) the new policy is replayed over the recorded
    evaluations instead, and the trace header is rewritten to name both policies.
    """
    header = dict(trace.header)
    policy_now = jsonable(trainer.policy.settings_mapping())
    schedule_now = trainer.schedule.settings if trainer.schedule is not None else None
    substituted: dict[str, int] | None = None
    if saved_policy_settings(data, header) == policy_now:
        trainer.policy.load_state_dict(data["policy"])
    else:
        scores, notes = per_user_source(trainer.policy, trace)
        for note in notes:
            trainer.logger.warning(note)
        substituted = _restorable_best(trainer, data, replay_policy(trainer.policy, trace.records, scores))
    if trainer.schedule is not None and data.get("lr_schedule") is not None \
            and saved_schedule_settings(data, header) == schedule_now:
        trainer.schedule.load_state_dict(data["lr_schedule"])
    elif trainer.schedule is not None:
        trainer.schedule.reset()
    config_now = jsonable(trainer.run_config) if trainer.run_config is not None else header.get("config")
    before = (header.get("policy"), header.get("lr_schedule"), header.get("config"), header.get("epochs"))
    if before != (policy_now, schedule_now, config_now, trainer.epochs):
        changes = list(header.get("resumed_with_changes", []))
        changes.append({"from_epoch": int(data["epoch"]) + 1, "previous_policy": before[0],
                        "previous_lr_schedule": before[1], "previous_config": before[2],
                        "previous_epochs": before[3], **({"best_without_weights": substituted}
                                                         if substituted else {})})
        header.update(policy=policy_now, lr_schedule=schedule_now, config=config_now, epochs=trainer.epochs,
                      resumed_with_changes=changes)
        rewrite_header(trainer.run_dir / "trace.jsonl", header)
        if before[:2] != (policy_now, schedule_now):
            trainer.logger.info(f"resumed under a changed policy/schedule: replayed {len(trace.records)} recorded "
                                "evaluations through the new policy")
    best, last = data.get("best"), int(data["epoch"])
    snapshot = None
    if best is not None and (trainer.policy.best_epoch in (int(best["epoch"]), None)
                             or trainer.policy.best_epoch != last):
        snapshot = checkpoint.BestSnapshot.from_payload(best)
    elif trainer.policy.best_epoch == last:  # the replayed best is the last saved epoch: the model holds it now
        record = trace.records[-1]
        snapshot = checkpoint.BestSnapshot.take(trainer.model, last, record.get("valid"), trainer.policy.best_score,
                                                record.get("test"))
    if trainer.averager is not None:
        trainer.averager.load_state_dict(data["averaging"])
    ranks = getattr(trainer, "ranks_", None)
    rank = ranks.rank if ranks is not None else 0
    checkpoint.restore_rank_state(checkpoint.own_rank_state(data, rank), train_data)
    return snapshot


def _restorable_best(trainer: EarlyStoppingTrainer, data: Mapping[str, Any],
                     decisions: list[Decision]) -> dict[str, int] | None:
    """A replayed policy may pick a best epoch whose weights were never kept (the run was recorded under another
    policy, which snapshotted other epochs). Only the saved best snapshot and the last epoch have weights: the
    policy then restores the saved snapshot instead, and this says so (returned for the trace header)."""
    wanted, last = trainer.policy.best_epoch, int(data["epoch"])
    kept = (data.get("best") or {}).get("epoch")
    if wanted is None or wanted == last or kept is None or wanted == int(kept):
        return None
    stand_in = next(d for d in decisions if d.epoch == int(kept))
    trainer.policy.restore_instead(stand_in)
    trainer.logger.warning(f"resumed under another policy: it would restore epoch {wanted}, whose weights this run "
                           f"never kept (it snapshotted epoch {kept}); epoch {kept} is restored instead unless a "
                           "later epoch beats it")
    return {"wanted": wanted, "restored": int(kept)}
