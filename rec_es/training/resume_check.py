"""Validating a run directory before ``--resume`` writes a byte to it.

``check_resume(run_dir, cfg)`` reads everything a resume depends on and writes nothing:

1. the directory: ``config.yaml``, ``last.pth`` and ``trace.jsonl`` are regular files, the directory is writable;
2. ``last.pth``: a weights-only rec_es ``last`` checkpoint with every field a resume reads, of the right type;
3. ``trace.jsonl``: every line (UTF-8, JSON, header first, epochs increasing, nothing after a footer); only a
   cut-off last line (a kill while writing) and lines after the ones ``last.pth`` counted are dropped on resume;
4. trace against checkpoint: the evaluation records ``last.pth`` counted are byte for byte the ones it was
   saved with (it keeps a digest of each); an edited record is refused, naming its line and epoch;
5. the new config (``RUN/config.yaml`` + ``--config`` + ``--set``): same model and dataset, an ``epochs`` budget
   not below what was trained, a change if the run has finished, and a policy / LR-schedule state that loads
   (or, for a changed policy, replays over the records);
6. sidecar files (``check_sidecars``: where per-evaluation side files such as per-user scores are checked).

Every refusal is a ``ConfigError`` (exit status 2) naming the file. The writes come afterwards, in
``rec_es.training.resume.begin_resumed``, once the model and optimizer state have also loaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from rec_es.policy.controller import StopController
from rec_es.policy.errors import ConfigError, RecEsError, StateError, brief
from rec_es.policy.types import Decision, PerUser, Policy
from rec_es.rundir.textio import decode
from rec_es.rundir.trace import TRACE_TEXT, Trace, jsonable, line_digest, parse_trace

#: Files a resumable run directory holds.
RESUME_FILES = ("config.yaml", "last.pth", "trace.jsonl")
#: last.pth fields a resume reads, with the types they must have (``None`` allowed where listed).
_PAYLOAD_TYPES: dict[str, tuple[type, ...]] = {
    "epoch": (int,), "model": (dict,), "optimizer": (dict,), "policy": (dict,), "rng": (dict,),
    "trace_lines": (int,), "elapsed_seconds": (int, float), "best": (dict, type(None)),
    "lr_schedule": (dict, type(None)),
}


@dataclass(frozen=True)
class ResumePlan:
    """What ``check_resume`` read: the ``checkpoint`` payload, the ``trace`` lines it counted, and flags."""

    run_dir: Path
    checkpoint: dict[str, Any]
    trace: Trace
    finished: bool
    record_test: bool

    @property
    def next_epoch(self) -> int:
        """The epoch training continues from (0-based)."""
        return int(self.checkpoint["epoch"]) + 1


def refuse(message: str, where: Path | str) -> ConfigError:
    """The error of a refused resume: names the file, says nothing was changed."""
    return ConfigError(f"cannot resume: {message}; nothing in the run directory was changed", source=str(where))


def check_run_dir(run_dir: Path, writable: bool = True) -> None:
    """The run directory holds the three files as regular files and (``writable``) can be written."""
    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is not a directory"
        raise ConfigError(f"cannot resume: {run_dir} {what} (--resume takes a run directory written by rec-es run)",
                          source="--resume")
    if unfinished_before_first_epoch(run_dir):
        raise ConfigError(f"cannot resume: {run_dir / 'last.pth'} is missing: {nothing_to_resume(run_dir)}",
                          source="--resume")
    for name in RESUME_FILES:
        if not (run_dir / name).is_file():
            raise ConfigError(f"cannot resume: {run_dir / name} is missing (a run directory written by rec-es run "
                              "with saving on holds config.yaml, last.pth and trace.jsonl)", source="--resume")
    if writable and not os.access(run_dir, os.W_OK | os.X_OK):
        raise refuse("the directory is not writable, and a resume writes trace.jsonl, last.pth, best.pth and "
                     "summary.json into it", run_dir)


def unfinished_before_first_epoch(run_dir: Path) -> bool:
    """``run_dir`` holds what ``rec-es run`` writes before its first epoch ends (config.yaml, trace.jsonl) but no
    ``last.pth``: a run killed before it saved anything ``--resume`` could continue (a failure that Python sees
    removes such a directory itself: ``rec_es.training.run.after_failure``)."""
    return (run_dir / "config.yaml").is_file() and (run_dir / "trace.jsonl").is_file() \
        and not (run_dir / "last.pth").exists()


def nothing_to_resume(run_dir: Path) -> str:
    """The sentence for a directory ``unfinished_before_first_epoch`` recognises: what to delete."""
    return (f"the run in {run_dir} ended before its first epoch was saved, so nothing in it can be continued; delete "
            f"it (rm -r {run_dir}) and start the run again")


def read_checkpoint(run_dir: Path) -> dict[str, Any]:
    """``RUN/last.pth`` loaded weights-only, with every field a resume reads present and well typed."""
    from rec_es.rundir import checkpoint

    path = run_dir / "last.pth"
    try:
        data = checkpoint.load(path, kind="last")
    except StateError as exc:
        raise refuse(str(exc).removeprefix(f"{path}: "), path) from None
    for key, types in _PAYLOAD_TYPES.items():
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise refuse(f"field {key!r} must be {names} (got {brief(value)}): the checkpoint is damaged", path)
    if data["epoch"] < 0 or data["trace_lines"] < 1:
        raise refuse(f"epoch {data['epoch']} / trace_lines {data['trace_lines']} are out of range", path)
    if not {"python", "numpy", "torch"} <= set(data["rng"]):
        raise refuse("its RNG state lacks python, numpy or torch", path)
    best = data["best"]
    if best is not None and (not isinstance(best.get("epoch"), int) or not isinstance(best.get("state_dict"), dict)):
        raise refuse("its best snapshot lacks an epoch or state_dict", path)
    states = data.get("rank_states")
    if states is not None:
        if not isinstance(states, list) or data.get("world_size") != len(states) or len(states) < 2:
            raise refuse(f"its rank_states (one per process) do not match its world_size {brief(data.get('world_size'))}"
                         ": the checkpoint is damaged", path)
        for rank, state in enumerate(states):
            if not isinstance(state, dict) or not isinstance(state.get("rng"), dict) \
                    or not {"python", "numpy", "torch"} <= set(state["rng"]):
                raise refuse(f"the random state of rank {rank} lacks python, numpy or torch", path)
    return data


def recorded_world_size(plan: ResumePlan) -> int:
    """The number of processes the run was trained by: ``last.pth``'s ``world_size``, else the trace header's,
    else 1."""
    world = plan.checkpoint.get("world_size", plan.trace.header.get("world_size", 1))
    return world if isinstance(world, int) and not isinstance(world, bool) and world >= 1 else 1


def check_world_size(plan: ResumePlan, world_size: int) -> None:
    """A run is resumed by as many processes as trained it (each rank restores its own random state and data order
    from ``last.pth``'s ``rank_states``); ConfigError naming the recorded world size and the option that matches
    it. A distributed ``last.pth`` without ``rank_states`` (rank 0's random state only) is refused."""
    recorded = recorded_world_size(plan)
    path = plan.run_dir / "last.pth"
    if recorded != world_size:
        fix = f"resume it with --nproc {recorded}" if recorded > 1 else "resume it without --nproc"
        raise refuse(f"{plan.run_dir} was trained by {recorded} process{'es' * (recorded != 1)} (world size "
                     f"{recorded}) and would be resumed by {world_size}; every process restores its own random "
                     f"state and data order, so a resume keeps the world size: {fix}", path)
    if recorded > 1 and plan.checkpoint.get("rank_states") is None:
        raise refuse(f"{plan.run_dir} was trained by {recorded} processes, but its last.pth holds rank 0's random "
                     "state only (written before rec_es kept every rank's), so a resumed run would not repeat the "
                     "uninterrupted one. Its best.pth and trace are complete up to the last epoch; start a new run "
                     "to train further", path)


def read_kept_trace(run_dir: Path, trace_lines: int) -> tuple[Trace, bool]:
    """(the first ``trace_lines`` lines as a Trace, whether the whole file ends with a footer); every line checked."""
    path = run_dir / "trace.jsonl"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise refuse(f"cannot read the trace ({exc.strerror or exc})", path) from None
    text = decode(data, path, TRACE_TEXT)
    lines = text.split("\n")
    complete = lines[:-1]  # lines[-1] is "" or a line cut off by a kill: dropped on resume
    numbered = [(no, line + "\n") for no, line in enumerate(complete, start=1)]
    try:
        whole = parse_trace(numbered, path)
    except StateError as exc:
        raise refuse(str(exc), path) from None
    if len(complete) < trace_lines:
        raise refuse(f"it has {len(complete)} complete lines, but last.pth counted {trace_lines}: lines were "
                     "removed after the checkpoint was written", path)
    for no, line in numbered[:trace_lines]:
        if not line.strip():
            raise refuse(f"line {no} is empty, within the {trace_lines} lines last.pth counted", path)
    kept = parse_trace(numbered[:trace_lines], path)
    if kept.footer is not None:
        raise refuse(f"a footer lies within the {trace_lines} lines last.pth counted", path)
    return kept, whole.complete


def check_trace_matches(ckpt: Mapping[str, Any], trace: Trace, run_dir: Path) -> None:
    """The kept records are the ones ``last.pth`` was saved with (digests, else its best snapshot's metrics)."""
    path = run_dir / "trace.jsonl"
    epoch = int(ckpt["epoch"])
    if trace.records and trace.records[-1]["epoch"] > epoch:
        raise refuse(f"its record of epoch {trace.records[-1]['epoch']} lies within the lines last.pth counted, "
                     f"but last.pth was saved after epoch {epoch}", path)
    digests = ckpt.get("trace_digests")
    if isinstance(digests, list):
        lines = path.read_bytes().split(b"\n")[1:int(ckpt["trace_lines"])]
        for no, (line, digest) in enumerate(zip(lines, digests), start=2):
            if line_digest(line) != digest:
                record = trace.records[no - 2]
                raise refuse(_edited(f"line {no} (the record of epoch {record['epoch']})"), path)
        if len(digests) != len(lines):
            raise refuse(_edited(f"{len(lines)} records where last.pth counted {len(digests)}"), path)
        return
    best = ckpt.get("best")  # a checkpoint from before digests were kept: compare what it has
    if best is not None:
        record = next((r for r in trace.records if r["epoch"] == best["epoch"]), None)
        if record is None or not _same_metrics(record["valid"], best.get("valid_result") or {}):
            got = "no record" if record is None else f"valid {brief(record['valid'])}"
            raise refuse(_edited(f"epoch {best['epoch']}, the best epoch in last.pth with valid "
                                 f"{brief(best.get('valid_result'))}, has {got}"), path)


def _edited(what: str) -> str:
    return (f"{what} is not what last.pth was saved with: the trace was edited or replaced after the checkpoint. "
            "A resume continues from the policy state and best snapshot in last.pth, which were computed from the "
            "original records, so rec_es does not resume a run whose trace disagrees with its checkpoint. Put back "
            "the original trace.jsonl, or start a new run (rec-es explain and replay read the trace as it is)")


def _same_metrics(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same metrics, keys compared case-folded, values as the trace writes them (NaN and inf as None)."""
    def norm(m: Mapping[str, Any]) -> dict[str, Any]:
        return {str(k).lower(): jsonable(v) for k, v in m.items()}
    return norm(a) == norm(b)


def check_config(plan: ResumePlan, cfg: Any) -> None:
    """The new config fits the run: same model and dataset, enough epochs, a change if finished, states load."""
    header, ckpt, config_path = plan.trace.header, plan.checkpoint, plan.run_dir / "config.yaml"
    for key in ("model", "dataset"):
        if header.get(key) != cfg.recbole.get(key):
            raise refuse(f"the run trained {key} {brief(header.get(key))}, the config now names "
                         f"{brief(cfg.recbole.get(key))} (from {cfg.source_of(key)}); a resume continues the same "
                         f"{key}, start a new run for another", config_path)
    epochs = cfg.get("epochs")
    trained = plan.next_epoch
    if isinstance(epochs, int) and epochs < trained:
        raise refuse(f"epochs {epochs} (from {cfg.source_of('epochs')}) is below the {trained} epochs last.pth has "
                     f"already trained; pass --set epochs=N with N > {trained}", config_path)
    policy = cfg.build_policy()
    policy_now = jsonable(policy.settings_mapping())
    after = (policy_now, cfg.lr_schedule, jsonable(cfg.to_dict()), epochs)
    before = (header.get("policy"), header.get("lr_schedule"), header.get("config"), header.get("epochs"))
    if plan.finished and (after == before or (isinstance(epochs, int) and epochs <= trained)):
        raise refuse(f"the run has finished ({trained} epochs trained) and this resume would train nothing more; "
                     f"raise the budget (--set epochs=N with N > {trained}) or give another policy "
                     "(--config new_policy.yaml)", plan.run_dir / "trace.jsonl")
    _check_states(plan, cfg, policy, policy_now)


def _check_states(plan: ResumePlan, cfg: Any, policy: Any, policy_now: Any) -> None:
    """Load the saved policy / schedule state into fresh objects (or replay a changed policy), as the resume will."""
    from rec_es.policy.schedule import LRSchedule

    ckpt, path = plan.checkpoint, plan.run_dir / "last.pth"
    try:
        if saved_policy_settings(ckpt, plan.trace.header) == policy_now:
            policy.load_state_dict(ckpt["policy"])
        else:
            replay_policy(policy, plan.trace.records)
    except (RecEsError, KeyError, TypeError, ValueError) as exc:
        raise refuse(f"the policy state cannot be restored ({brief(exc)})", path) from None
    if cfg.lr_schedule is not None and ckpt.get("lr_schedule") is not None \
            and saved_schedule_settings(ckpt, plan.trace.header) == cfg.lr_schedule:
        lr = cfg.recbole.get("learning_rate", 0.001)
        try:
            LRSchedule(cfg.lr_schedule, base_lr=float(lr)).load_state_dict(ckpt["lr_schedule"])
        except (RecEsError, KeyError, TypeError, ValueError) as exc:
            raise refuse(f"the lr_schedule state cannot be restored ({brief(exc)})", path) from None


def check_sidecars(plan: ResumePlan, cfg: Any = None) -> None:
    """The run's per-evaluation side files (``RUN/per_user/``, ``rec_es.rundir.per_user``), before any write.

    ``per_user`` must be a directory of regular files (no links: a resume rewrites them); each split's sidecar
    the resume continues (valid, and test when the run recorded test metrics) must hold at least the kept
    evaluations, of the same epochs, with intact checksums (``per_user.check_resumable``), and its metrics must
    still be computed by the new config (``cfg``) when given. Further sidecar formats add their check here.
    """
    side = plan.run_dir / "per_user"
    if not side.exists() and not side.is_symlink():
        return
    if side.is_symlink() or not side.is_dir():
        raise refuse("per_user must be a directory of the run's own score files", side)
    for entry in side.iterdir():
        if entry.is_symlink() or not entry.is_file():
            raise refuse("per_user holds something other than regular files", entry)
    from rec_es.rundir import per_user
    from rec_es.policy.monitor import per_user_keys
    from rec_es.config.protocol import unavailable

    keep = [r["epoch"] for r in plan.trace.records]
    for split in ("valid", "test") if plan.record_test else ("valid",):
        try:
            checked = per_user.check_resumable(plan.run_dir, split, keep)
        except StateError as exc:
            raise refuse(str(exc), side) from None
        if checked is None or cfg is None:
            continue
        computed = per_user_keys(cfg.get("metrics"), cfg.get("topk"), unavailable(cfg.get("eval_args")) is None)
        missing = [m for m in checked[0]["metrics"] if m not in computed]
        if missing:
            raise refuse(f"the run records per-user {', '.join(missing)}, which the config no longer computes "
                         f"(metrics {brief(cfg.get('metrics'))}, topk {brief(cfg.get('topk'))}); add them back to "
                         "resume", side)


def check_resume(run_dir: str | os.PathLike[str], cfg: Any = None, writable: bool = True) -> ResumePlan:
    """Validate everything a resume of ``run_dir`` reads (with the new ``cfg``, a RunConfig, when given).

    ``writable=False``: the run is only read (a probe continues a copy of it), so it may be read-only."""
    run = Path(run_dir)
    check_run_dir(run, writable)
    ckpt = read_checkpoint(run)
    trace, finished = read_kept_trace(run, int(ckpt["trace_lines"]))
    check_trace_matches(ckpt, trace, run)
    plan = ResumePlan(run_dir=run, checkpoint=ckpt, trace=trace, finished=finished,
                      record_test=bool(trace.header.get("record_test", False)))
    if cfg is not None:
        check_config(plan, cfg)
    check_sidecars(plan, cfg)
    return plan


def saved_policy_settings(data: Mapping[str, Any], header: Mapping[str, Any]) -> Any:
    """The policy settings ``last.pth``'s policy state belongs to (older checkpoints: the trace header's)."""
    return data["policy_settings"] if "policy_settings" in data else header.get("policy")


def saved_schedule_settings(data: Mapping[str, Any], header: Mapping[str, Any]) -> Any:
    """The lr_schedule settings ``last.pth``'s schedule state belongs to (older checkpoints: the header's)."""
    return data["schedule_settings"] if "schedule_settings" in data else header.get("lr_schedule")


def replay_policy(policy: Policy, records: list[dict[str, Any]],
                  per_user: Callable[[int], PerUser] | None = None) -> list[Decision]:
    """Feed recorded evaluations (and their per-user scores, epoch -> scores) to a fresh policy (deferred stops
    granted again); returns its decisions."""
    policy.reset()
    return StopController(policy).follow(records, per_user)
