"""Resuming a run from ``RUN/last.pth``: read the checkpoint, apply its state to the trainer, rewrite the trace.

``EarlyStoppingTrainer.load_resume`` calls ``read_resume`` (model and optimizer restored at once); its ``fit``
then calls ``begin_resumed``, which keeps the trace lines the checkpoint counted and restores policy, schedule,
best snapshot, RNG and data order as they were after the saved epoch. Resumed with other settings, the new
policy is replayed over the recorded evaluations and the trace header names both (``resumed_with_changes``).
The ``last.pth`` payload itself is built by ``rec_es.checkpoint.last_payload``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from rec_es import checkpoint
from rec_es.controller import StopController
from rec_es.errors import StateError
from rec_es.policy.types import PerUser, Policy
from rec_es.replay import per_user_source
from rec_es.trace import TraceWriter, jsonable, read_trace, rewrite_header

if TYPE_CHECKING:
    from rec_es.trainer import EarlyStoppingTrainer


def read_resume(trainer: EarlyStoppingTrainer, run_dir: str | os.PathLike[str]) -> int:
    """Read ``RUN/last.pth`` and restore the trainer's model and optimizer now; ``fit`` applies the rest.

    Returns the epoch training continues from (0-based).
    """
    data = checkpoint.load(Path(run_dir) / "last.pth", kind="last")
    trainer.model.load_state_dict(data["model"])
    trainer.model.load_other_parameter(trainer._on_device(data.get("other_parameter")))
    trainer.optimizer.load_state_dict(data["optimizer"])
    trainer.start_epoch = int(data["epoch"]) + 1
    trainer._resume = data
    trainer.logger.info(f"resuming {run_dir} from epoch {trainer.start_epoch} "
                        f"(trace keeps its first {data['trace_lines']} lines)")
    return trainer.start_epoch


def begin_resumed(trainer: EarlyStoppingTrainer, resume: Mapping[str, Any], train_data: Any) -> None:
    """The start of a resumed ``fit``: keep the trace's first ``trace_lines`` lines, then ``apply_resume``."""
    if trainer.run_dir is None:
        raise StateError("resuming needs the run_dir the run was written to")
    trainer.trace_ = TraceWriter(trainer.run_dir / "trace.jsonl", keep_lines=int(resume["trace_lines"]))
    apply_resume(trainer, resume, train_data, read_trace(trainer.run_dir / "trace.jsonl"))


def apply_resume(trainer: EarlyStoppingTrainer, data: Mapping[str, Any], train_data: Any, trace: Any) -> None:
    """Policy, schedule, best snapshot, RNG and data order exactly as they were after ``data['epoch']``.

    With the same policy settings as the trace header, the saved policy state is loaded. With other
    settings (``--resume RUN --config new_policy.yaml``) the new policy is replayed over the recorded
    evaluations instead, and the trace header is rewritten to name both policies.
    """
    trainer._resume = None
    header = dict(trace.header)
    policy_now = jsonable(trainer.policy.settings_mapping())
    schedule_now = trainer.schedule.settings if trainer.schedule is not None else None
    if header.get("policy") == policy_now:
        trainer.policy.load_state_dict(data["policy"])
    else:
        scores, notes = per_user_source(trainer.policy, trace)
        for note in notes:
            trainer.logger.warning(note)
        replay_policy(trainer.policy, trace.records, scores)
    if trainer.schedule is not None and data.get("lr_schedule") is not None and header.get("lr_schedule") == schedule_now:
        trainer.schedule.load_state_dict(data["lr_schedule"])
    elif trainer.schedule is not None:
        trainer.schedule.reset()
    config_now = jsonable(trainer.run_config) if trainer.run_config is not None else header.get("config")
    before = (header.get("policy"), header.get("lr_schedule"), header.get("config"), header.get("epochs"))
    if before != (policy_now, schedule_now, config_now, trainer.epochs):
        changes = list(header.get("resumed_with_changes", []))
        changes.append({"from_epoch": int(data["epoch"]) + 1, "previous_policy": before[0],
                        "previous_lr_schedule": before[1], "previous_config": before[2],
                        "previous_epochs": before[3]})
        header.update(policy=policy_now, lr_schedule=schedule_now, config=config_now, epochs=trainer.epochs,
                      resumed_with_changes=changes)
        rewrite_header(trainer.run_dir / "trace.jsonl", header)
        if before[:2] != (policy_now, schedule_now):
            trainer.logger.info(f"resumed under a changed policy/schedule: replayed {len(trace.records)} recorded "
                                "evaluations through the new policy")
    best = data.get("best")
    if best is not None:
        trainer.best_state_ = best["state_dict"]
        trainer.best_other_ = best.get("other_parameter")
        trainer.best_epoch_ = int(best["epoch"])
        trainer.best_valid_result = best.get("valid_result")
        trainer.best_valid_score = best.get("score")
        trainer.best_test_result_ = best.get("test_result")
    trainer.elapsed_offset_ = float(data.get("elapsed_seconds", 0.0))
    trainer.epochs_trained_ = int(data["epoch"]) + 1
    checkpoint.restore_rng_state(data["rng"])
    gen = getattr(train_data, "generator", None)
    if gen is not None and data.get("train_data_rng") is not None:
        gen.set_state(data["train_data_rng"])
    trainer.start_epoch = int(data["epoch"]) + 1


def replay_policy(policy: Policy, records: list[dict[str, Any]],
                  per_user: Callable[[int], PerUser] | None = None) -> None:
    """Feed recorded evaluations (and their per-user scores, epoch -> scores) to a fresh policy (deferred stops
    granted again)."""
    policy.reset()
    StopController(policy).follow(records, per_user)
