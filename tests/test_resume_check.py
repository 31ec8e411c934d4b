"""``rec_es.training.resume_check`` called directly on small hand-built run directories (no training).

Each test builds what one check reads (a ``last.pth`` payload, a few trace lines, a per-user sidecar, a config
file) and asserts the decision and the refusal it promises: the whole message and the file it names (a refusal's
``ConfigError.source``), so a user reading ``rec-es run --resume``'s error sees which file to look at.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import rec_es
from rec_es.config.properties import RunConfig, load_config
from rec_es.policy.errors import ConfigError
from rec_es.rundir.per_user import PerUserWriter
from rec_es.rundir.trace import Trace, line_digest, read_trace
from rec_es.training.resume_check import (
    ResumePlan,
    _check_states,
    _same_metrics,
    check_config,
    check_resume,
    check_run_dir,
    check_sidecars,
    check_trace_matches,
    check_world_size,
    read_checkpoint,
    read_kept_trace,
    recorded_world_size,
    replay_policy,
    saved_policy_settings,
    saved_schedule_settings,
)

from conftest import trace_header, write_trace_lines

NOTHING_CHANGED = "; nothing in the run directory was changed"
#: _edited's explanation, after "<what> " (the whole sentence a user reads for an edited trace)
EDITED = ("is not what last.pth was saved with: the trace was edited or replaced after the checkpoint. A resume "
          "continues from the policy state and best snapshot in last.pth, which were computed from the original "
          "records, so rec_es does not resume a run whose trace disagrees with its checkpoint. Put back the original "
          "trace.jsonl, or start a new run (rec-es explain and replay read the trace as it is)")


# ----- building blocks ------------------------------------------------------------------------------------------
def record(epoch: int, mrr: float, **fields: Any) -> dict[str, Any]:
    """An evaluation record of mrr@10."""
    return {"type": "eval", "epoch": epoch, "valid": {"mrr@10": mrr}, "decision": {}, **fields}


def digests(run: Path) -> list[str]:
    """The digest of every trace line after the header, as last.pth keeps them."""
    return [line_digest(x) for x in (run / "trace.jsonl").read_bytes().split(b"\n")[1:-1]]


def plan(run: Path, checkpoint: dict[str, Any], trace: Trace | None = None, finished: bool = False,
         record_test: bool = False) -> ResumePlan:
    return ResumePlan(run_dir=run, checkpoint=checkpoint, trace=trace or Trace(path=run / "trace.jsonl",
                                                                                     header=trace_header()),
                      finished=finished, record_test=record_test)


def payload(**changes: Any) -> dict[str, Any]:
    """A well-formed ``last`` checkpoint payload (after epoch 1, three trace lines) with ``changes``."""
    data: dict[str, Any] = {"format": "rec_es.checkpoint", "version": 1, "kind": "last", "epoch": 1, "model": {},
                            "optimizer": {}, "policy": {}, "rng": {"python": 0, "numpy": 0, "torch": 0},
                            "trace_lines": 3, "elapsed_seconds": 1.5, "best": None, "lr_schedule": None}
    data.update(changes)
    return data


def config(tmp_path: Path, name: str = "new.yaml", **recbole: Any) -> RunConfig:
    """A RunConfig loaded from ``tmp_path/name`` (BPR on ml-100k, mrr@10 with patience 2, plus ``recbole``)."""
    values: dict[str, Any] = {"model": "BPR", "dataset": "ml-100k",
                              "early_stopping": {"monitor": "mrr@10", "patience": 2}, **recbole}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return load_config([path])


def refusal(excinfo: pytest.ExceptionInfo[ConfigError]) -> tuple[str, str | None]:
    """(message without the source, source) of a refusal."""
    return excinfo.value.message, excinfo.value.source


# ----- read_checkpoint ------------------------------------------------------------------------------------------
def test_read_checkpoint_refuses_another_kind_naming_last_pth_once(tmp_path: Path) -> None:
    """A best.pth copied over last.pth is refused as a 'best' checkpoint, the path named once (as the source)."""
    torch.save(payload(kind="best"), tmp_path / "last.pth")
    with pytest.raises(ConfigError) as excinfo:
        read_checkpoint(tmp_path)
    assert refusal(excinfo) == ("cannot resume: holds a 'best' checkpoint, expected 'last'" + NOTHING_CHANGED,
                                str(tmp_path / "last.pth"))


@pytest.mark.parametrize(("field", "value", "says"), [
    ("best", "x", "field 'best' must be dict or null (got 'x')"),
    ("elapsed_seconds", "1.5", "field 'elapsed_seconds' must be int or float (got '1.5')"),
    ("epoch", True, "field 'epoch' must be int (got True)"),
])
def test_read_checkpoint_names_the_types_a_field_may_have(tmp_path: Path, field: str, value: Any, says: str) -> None:
    """A field of the wrong type is refused naming the field, its allowed types (None as 'null') and the value."""
    torch.save(payload(**{field: value}), tmp_path / "last.pth")
    with pytest.raises(ConfigError) as excinfo:
        read_checkpoint(tmp_path)
    assert refusal(excinfo) == (f"cannot resume: {says}: the checkpoint is damaged" + NOTHING_CHANGED,
                                str(tmp_path / "last.pth"))


def test_read_checkpoint_returns_a_well_formed_payload(tmp_path: Path) -> None:
    """A well-formed last.pth loads as it was saved."""
    torch.save(payload(), tmp_path / "last.pth")
    assert read_checkpoint(tmp_path) == payload()


def refused_checkpoint(run: Path, **changes: Any) -> tuple[str, str | None]:
    """(message, source) of read_checkpoint's refusal of payload(**changes) saved as RUN/last.pth."""
    torch.save(payload(**changes), run / "last.pth")
    with pytest.raises(ConfigError) as excinfo:
        read_checkpoint(run)
    return refusal(excinfo)


@pytest.mark.parametrize(("epoch", "trace_lines"), [(0, 1), (0, 3), (5, 1)])
def test_read_checkpoint_accepts_epoch_0_and_one_trace_line(tmp_path: Path, epoch: int, trace_lines: int) -> None:
    """The smallest counts a resume can continue from are accepted: epoch 0 (the first epoch, 0-based) and
    trace_lines 1 (the header only)."""
    torch.save(payload(epoch=epoch, trace_lines=trace_lines), tmp_path / "last.pth")
    assert read_checkpoint(tmp_path) == payload(epoch=epoch, trace_lines=trace_lines)


@pytest.mark.parametrize(("epoch", "trace_lines"), [(-1, 3), (1, 0)])
def test_read_checkpoint_refuses_counts_out_of_range(tmp_path: Path, epoch: int, trace_lines: int) -> None:
    """An epoch below 0 or trace_lines below 1 is refused, naming both and last.pth."""
    assert refused_checkpoint(tmp_path, epoch=epoch, trace_lines=trace_lines) == (
        f"cannot resume: epoch {epoch} / trace_lines {trace_lines} are out of range" + NOTHING_CHANGED,
        str(tmp_path / "last.pth"))


def test_read_checkpoint_refuses_an_rng_state_without_torch(tmp_path: Path) -> None:
    """The RNG state must hold python, numpy and torch: one without torch is refused naming last.pth."""
    assert refused_checkpoint(tmp_path, rng={"python": 0, "numpy": 0}) == (
        "cannot resume: its RNG state lacks python, numpy or torch" + NOTHING_CHANGED, str(tmp_path / "last.pth"))


@pytest.mark.parametrize("best", [{"epoch": 1}, {"state_dict": {}}, {"epoch": "1", "state_dict": {}}])
def test_read_checkpoint_refuses_a_best_snapshot_without_epoch_or_state_dict(tmp_path: Path,
                                                                              best: dict[str, Any]) -> None:
    """A best snapshot needs both an int epoch and a state_dict dict; lacking either one is refused."""
    assert refused_checkpoint(tmp_path, best=best) == (
        "cannot resume: its best snapshot lacks an epoch or state_dict" + NOTHING_CHANGED, str(tmp_path / "last.pth"))


def test_read_checkpoint_accepts_a_best_snapshot(tmp_path: Path) -> None:
    """A best snapshot with an int epoch and a state_dict loads as saved."""
    best = {"epoch": 0, "state_dict": {}}
    torch.save(payload(best=best), tmp_path / "last.pth")
    assert read_checkpoint(tmp_path)["best"] == best


RNG = {"python": 0, "numpy": 0, "torch": 0}


def test_read_checkpoint_accepts_one_rng_state_per_rank(tmp_path: Path) -> None:
    """A two-process checkpoint (world_size 2) with two rank states, each with exactly python, numpy and torch
    random states, loads as saved."""
    states = [{"rng": dict(RNG)}, {"rng": dict(RNG)}]
    torch.save(payload(world_size=2, rank_states=states), tmp_path / "last.pth")
    assert read_checkpoint(tmp_path) == payload(world_size=2, rank_states=states)


@pytest.mark.parametrize(("world_size", "states", "shown"), [
    (3, [{"rng": RNG}, {"rng": RNG}], "3"),  # two states for three processes
    (1, [{"rng": RNG}], "1"),  # a single process keeps no rank_states
    (None, [{"rng": RNG}, {"rng": RNG}], "None"),  # no world_size
    (2, ({"rng": RNG}, {"rng": RNG}), "2"),  # not a list
])
def test_read_checkpoint_refuses_rank_states_that_do_not_match_the_world_size(
        tmp_path: Path, world_size: int | None, states: Any, shown: str) -> None:
    """rank_states must be a list of one state per process, of at least two processes: otherwise refused naming
    the recorded world_size."""
    assert refused_checkpoint(tmp_path, world_size=world_size, rank_states=states) == (
        f"cannot resume: its rank_states (one per process) do not match its world_size {shown}: the checkpoint is "
        "damaged" + NOTHING_CHANGED, str(tmp_path / "last.pth"))


@pytest.mark.parametrize("second", [5, {"rng": 5}, {"seed": RNG}, {"rng": {"python": 0, "numpy": 0}}])
def test_read_checkpoint_refuses_a_rank_without_its_random_state(tmp_path: Path, second: Any) -> None:
    """Rank 1's state is not a dict, its rng not a dict, missing, or without torch: refused naming rank 1."""
    assert refused_checkpoint(tmp_path, world_size=2, rank_states=[{"rng": RNG}, second]) == (
        "cannot resume: the random state of rank 1 lacks python, numpy or torch" + NOTHING_CHANGED,
        str(tmp_path / "last.pth"))


# ----- read_kept_trace ------------------------------------------------------------------------------------------
def test_read_kept_trace_keeps_the_counted_lines_and_sees_the_footer(tmp_path: Path) -> None:
    """The first trace_lines lines come back as a Trace of this file; ``complete`` says the whole file has a footer,
    and a line cut off by a kill at the end is dropped."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.31),
                                  {"type": "footer", "stop_epoch": 1, "stop_reason": "max_epochs", "message": None,
                                   "best_epoch": 1}])
    kept, complete = read_kept_trace(tmp_path, 2)
    assert kept.path == path and [r["epoch"] for r in kept.records] == [0] and kept.footer is None
    assert complete is True
    write_trace_lines(tmp_path, [trace_header(), record(0, 0.3)], tail='{"type":"ev')
    kept, complete = read_kept_trace(tmp_path, 2)
    assert [r["epoch"] for r in kept.records] == [0] and complete is False


def test_read_kept_trace_refuses_a_trace_it_cannot_read(tmp_path: Path) -> None:
    """A trace.jsonl that cannot be read (here a directory) is refused with the system's reason, naming the trace."""
    (tmp_path / "trace.jsonl").mkdir()
    with pytest.raises(ConfigError) as excinfo:
        read_kept_trace(tmp_path, 2)
    assert refusal(excinfo) == ("cannot resume: cannot read the trace (Is a directory)" + NOTHING_CHANGED,
                                str(tmp_path / "trace.jsonl"))


def test_read_kept_trace_says_what_a_trace_holds_for_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """A 0xff byte: the error names line and column and says the file should be a UTF-8 JSON-lines trace."""
    (tmp_path / "trace.jsonl").write_bytes(json.dumps(trace_header()).encode() + b"\n\xff\n")
    with pytest.raises(ConfigError) as excinfo:
        read_kept_trace(tmp_path, 2)
    assert excinfo.value.message == ("line 2, column 1: byte 0xff is not UTF-8 text; expected a rec_es trace: JSON "
                                     "lines, UTF-8. Save the file as UTF-8 (rec_es reads text files as UTF-8 only)")


def test_read_kept_trace_refuses_a_bad_line_naming_the_trace(tmp_path: Path) -> None:
    """A line that is not JSON anywhere in the file: refused with its line number, naming the trace."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3)], tail="{not json\n")
    with pytest.raises(ConfigError) as excinfo:
        read_kept_trace(tmp_path, 2)
    message, source = refusal(excinfo)
    assert message.startswith(f"cannot resume: {path}:3: not valid JSON (") and source == str(path)


def test_read_kept_trace_refuses_lines_removed_after_the_checkpoint(tmp_path: Path) -> None:
    """Fewer complete lines than last.pth counted: refused with both counts."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3)])
    with pytest.raises(ConfigError) as excinfo:
        read_kept_trace(tmp_path, 3)
    assert refusal(excinfo) == ("cannot resume: it has 2 complete lines, but last.pth counted 3: lines were removed "
                                "after the checkpoint was written" + NOTHING_CHANGED, str(path))


def test_read_kept_trace_refuses_an_empty_line_among_the_counted(tmp_path: Path) -> None:
    """An empty line within the counted lines (a line replaced by nothing) is refused naming its number."""
    path = write_trace_lines(tmp_path, [trace_header()], tail="\n" + json.dumps(record(0, 0.3)) + "\n")
    with pytest.raises(ConfigError) as excinfo:
        read_kept_trace(tmp_path, 3)
    assert refusal(excinfo) == ("cannot resume: line 2 is empty, within the 3 lines last.pth counted"
                                + NOTHING_CHANGED, str(path))


def test_read_kept_trace_refuses_a_footer_among_the_counted(tmp_path: Path) -> None:
    """A footer within the counted lines (last.pth is written before the footer) is refused."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3),
                                  {"type": "footer", "stop_epoch": 0, "stop_reason": "max_epochs", "message": None,
                                   "best_epoch": 0}])
    with pytest.raises(ConfigError) as excinfo:
        read_kept_trace(tmp_path, 3)
    assert refusal(excinfo) == ("cannot resume: a footer lies within the 3 lines last.pth counted" + NOTHING_CHANGED,
                                str(path))


# ----- check_trace_matches --------------------------------------------------------------------------------------
def test_a_record_after_the_checkpoint_epoch_is_refused(tmp_path: Path) -> None:
    """Counted lines ending with a record of an epoch after last.pth's (0, 1, 2 counted; saved after epoch 1):
    refused naming the last record's epoch."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.31), record(2, 0.32)])
    with pytest.raises(ConfigError) as excinfo:
        check_trace_matches(payload(epoch=1, trace_lines=4), read_trace(path), tmp_path)
    assert refusal(excinfo) == ("cannot resume: its record of epoch 2 lies within the lines last.pth counted, but "
                                "last.pth was saved after epoch 1" + NOTHING_CHANGED, str(path))


def test_an_edited_record_is_refused_by_its_digest(tmp_path: Path) -> None:
    """A record whose bytes differ from the digest last.pth kept: refused naming its line and epoch, and saying
    what to do."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.31)])
    kept = digests(tmp_path)
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.99)])
    with pytest.raises(ConfigError) as excinfo:
        check_trace_matches(payload(trace_digests=kept), read_trace(path), tmp_path)
    assert refusal(excinfo) == ("cannot resume: line 3 (the record of epoch 1) " + EDITED + NOTHING_CHANGED,
                                str(path))


def test_more_records_than_digests_are_refused(tmp_path: Path) -> None:
    """Three counted records where last.pth kept two digests (which match): refused with both counts."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.31), record(2, 0.32)])
    kept = digests(tmp_path)[:2]
    with pytest.raises(ConfigError) as excinfo:
        check_trace_matches(payload(epoch=2, trace_lines=4, trace_digests=kept), read_trace(path), tmp_path)
    assert refusal(excinfo) == ("cannot resume: 3 records where last.pth counted 2 " + EDITED + NOTHING_CHANGED,
                                str(path))


def test_matching_digests_pass(tmp_path: Path) -> None:
    """The records last.pth was saved with pass."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.31)])
    check_trace_matches(payload(trace_digests=digests(tmp_path)), read_trace(path), tmp_path)


def test_without_digests_the_best_record_is_compared_case_insensitively(tmp_path: Path) -> None:
    """An older last.pth (no digests): the best epoch's record must hold the snapshot's valid metrics; metric names
    compare in any case, and the other epochs' records are not compared."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), {**record(1, 0.0), "valid": {"MRR@10": 0.31}}])
    best = {"epoch": 1, "state_dict": {}, "valid_result": {"mrr@10": 0.31}}
    check_trace_matches(payload(best=best), read_trace(path), tmp_path)


def test_without_digests_a_best_epoch_without_record_is_refused(tmp_path: Path) -> None:
    """The snapshot's best epoch has no record among the counted ones: refused, saying so."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.31)])
    best = {"epoch": 5, "state_dict": {}, "valid_result": {"mrr@10": 0.4}}
    with pytest.raises(ConfigError) as excinfo:
        check_trace_matches(payload(epoch=5, best=best), read_trace(path), tmp_path)
    assert refusal(excinfo) == ("cannot resume: epoch 5, the best epoch in last.pth with valid {'mrr@10': 0.4}, has "
                                "no record " + EDITED + NOTHING_CHANGED, str(path))


def test_without_digests_an_edited_best_record_is_refused_with_both_values(tmp_path: Path) -> None:
    """The best epoch's record disagrees with the snapshot: refused showing the snapshot's and the record's."""
    path = write_trace_lines(tmp_path, [trace_header(), record(0, 0.3), record(1, 0.99)])
    best = {"epoch": 1, "state_dict": {}, "valid_result": {"mrr@10": 0.31}}
    with pytest.raises(ConfigError) as excinfo:
        check_trace_matches(payload(best=best), read_trace(path), tmp_path)
    assert refusal(excinfo) == ("cannot resume: epoch 1, the best epoch in last.pth with valid {'mrr@10': 0.31}, has "
                                "valid {'mrr@10': 0.99} " + EDITED + NOTHING_CHANGED, str(path))


def test_same_metrics_folds_case_but_keeps_distinct_names_apart() -> None:
    """Metric names compare lower-cased: 'MRR@10' is 'mrr@10', but 'ß' (lower-case already) is not 'ss' (which
    upper-casing would make of both)."""
    assert _same_metrics({"MRR@10": 0.31}, {"mrr@10": 0.31})
    assert not _same_metrics({"ß@10": 0.31}, {"ss@10": 0.31})


# ----- recorded_world_size / check_world_size -------------------------------------------------------------------
@pytest.mark.parametrize(("checkpoint", "head", "world"), [
    ({"world_size": 2}, {"world_size": 3}, 2),   # last.pth's wins
    ({}, {"world_size": 3}, 3),                  # else the trace header's
    ({}, {}, 1),                                 # else 1
    ({"world_size": 0}, {}, 1),                  # values that are not a count of processes: 1
    ({"world_size": True}, {}, 1),
    ({"world_size": 1.5}, {}, 1),
    ({"world_size": "2"}, {}, 1),
])
def test_recorded_world_size(tmp_path: Path, checkpoint: dict[str, Any], head: dict[str, Any],
                             world: int) -> None:
    """The world size comes from last.pth, else the trace header, else 1; a value that is not an int >= 1 is 1."""
    got = recorded_world_size(plan(tmp_path, checkpoint, Trace(path=tmp_path, header=trace_header(**head))))
    assert repr(got) == repr(world)


def test_a_single_process_run_resumed_by_two_is_refused(tmp_path: Path) -> None:
    """A run of one process resumed with --nproc 2: refused, in the singular, telling to drop --nproc."""
    with pytest.raises(ConfigError) as excinfo:
        check_world_size(plan(tmp_path, {}), 2)
    assert refusal(excinfo) == (f"cannot resume: {tmp_path} was trained by 1 process (world size 1) and would be "
                                "resumed by 2; every process restores its own random state and data order, so a resume "
                                "keeps the world size: resume it without --nproc" + NOTHING_CHANGED,
                                str(tmp_path / "last.pth"))


def test_a_two_process_run_resumed_by_one_is_refused(tmp_path: Path) -> None:
    """A run of two processes resumed by one: refused, in the plural, telling to pass --nproc 2."""
    with pytest.raises(ConfigError) as excinfo:
        check_world_size(plan(tmp_path, {"world_size": 2, "rank_states": [{}, {}]}), 1)
    assert refusal(excinfo) == (f"cannot resume: {tmp_path} was trained by 2 processes (world size 2) and would be "
                                "resumed by 1; every process restores its own random state and data order, so a resume "
                                "keeps the world size: resume it with --nproc 2" + NOTHING_CHANGED,
                                str(tmp_path / "last.pth"))


def test_a_distributed_run_with_every_ranks_state_resumes(tmp_path: Path) -> None:
    """Two processes, resumed by two, with rank_states: accepted (as is a single process resumed by one)."""
    check_world_size(plan(tmp_path, {"world_size": 2, "rank_states": [{}, {}]}), 2)
    check_world_size(plan(tmp_path, {}), 1)


def test_a_distributed_run_without_rank_states_is_refused(tmp_path: Path) -> None:
    """Two processes, resumed by two, but last.pth holds rank 0's random state only: refused, saying why."""
    with pytest.raises(ConfigError) as excinfo:
        check_world_size(plan(tmp_path, {"world_size": 2}), 2)
    assert refusal(excinfo) == (f"cannot resume: {tmp_path} was trained by 2 processes, but its last.pth holds rank "
                                "0's random state only (written before rec_es kept every rank's), so a resumed run "
                                "would not repeat the uninterrupted one. Its best.pth and trace are complete up to the "
                                "last epoch; start a new run to train further" + NOTHING_CHANGED,
                                str(tmp_path / "last.pth"))


# ----- saved settings, replay -----------------------------------------------------------------------------------
def test_saved_settings_come_from_last_pth_else_the_header() -> None:
    """The settings a saved state belongs to: last.pth's (even null), else the trace header's (older checkpoints)."""
    head = {"policy": {"patience": 5}, "lr_schedule": {"decay": "step"}}
    assert saved_policy_settings({"policy_settings": {"patience": 3}}, head) == {"patience": 3}
    assert saved_policy_settings({"policy_settings": None}, head) is None
    assert saved_policy_settings({}, head) == {"patience": 5}
    assert saved_schedule_settings({"schedule_settings": {"decay": "cosine"}}, head) == {"decay": "cosine"}
    assert saved_schedule_settings({"schedule_settings": None}, head) is None
    assert saved_schedule_settings({}, head) == {"decay": "step"}


def test_replay_passes_the_per_user_scores() -> None:
    """replay_policy feeds each record and its per-user scores to the reset policy: with min_delta auto, epoch 1's
    0.31 does not beat epoch 0's 0.30 by the paired standard error of the per-user differences (0.0144 > 0.01),
    where without per-user scores it would."""
    policy = rec_es.build_policy({"monitor": "mrr@10", "min_delta": "auto", "patience": 3})
    policy.update(0, {"mrr@10": 0.9})  # forgotten: a replay starts from a fresh policy
    scores = {0: {"mrr@10": [0.2, 0.4, 0.3, 0.3]}, 1: {"mrr@10": [0.25, 0.45, 0.3, 0.3]}}
    decisions = replay_policy(policy, [record(0, 0.30), record(1, 0.31)], scores.__getitem__)
    assert [(d.epoch, d.improved, d.best_epoch) for d in decisions] == [(0, True, 0), (1, False, 0)]
    assert policy.state_dict()["state"]["best_score"] == 0.30


# ----- _check_states --------------------------------------------------------------------------------------------
def states_plan(run: Path, cfg: RunConfig, **changes: Any) -> ResumePlan:
    """A run of ``cfg``'s policy and schedule after epochs 0 (0.30) and 1 (0.31); last.pth holds their state."""
    trained = cfg.build_policy()
    trained.update(0, {"mrr@10": 0.30})
    trained.update(1, {"mrr@10": 0.31})
    settings = trained.settings_mapping()
    ckpt = payload(policy=trained.state_dict(), policy_settings=settings, schedule_settings=cfg.lr_schedule,
                   lr_schedule={"version": 1, "scale": 0.5, "reductions": 1, "wait": 0})
    ckpt.update(changes)
    for key in [k for k, v in changes.items() if v is ...]:
        del ckpt[key]
    trace = Trace(path=run / "trace.jsonl", header=trace_header(policy=settings, lr_schedule=cfg.lr_schedule),
                  records=[record(0, 0.30), record(1, 0.31)])
    return plan(run, ckpt, trace)


def check_states(p: ResumePlan, cfg: RunConfig) -> Any:
    """Run _check_states as check_config does; return the policy it restored."""
    policy = cfg.build_policy()
    _check_states(p, cfg, policy, policy.settings_mapping())
    return policy


@pytest.mark.parametrize("own_settings", [True, False])
def test_the_saved_policy_state_is_loaded(tmp_path: Path, own_settings: bool) -> None:
    """The same policy: its saved state loads into the fresh policy (best 0.31 at epoch 1, 2 evaluations seen), from
    last.pth's policy_settings or, in an older last.pth without them, the trace header's."""
    cfg = config(tmp_path)
    p = states_plan(tmp_path, cfg, **({} if own_settings else {"policy_settings": ...}))
    state = check_states(p, cfg).state_dict()["state"]
    assert (state["evaluations"], state["best_score"], state["improved_epoch"]) == (2, 0.31, 1)


def test_a_changed_policy_is_replayed_over_the_records(tmp_path: Path) -> None:
    """Another policy than the saved state's: the saved state is not loaded (it is of other settings) but the
    records are replayed into the fresh policy."""
    cfg = config(tmp_path)
    p = states_plan(tmp_path, cfg, policy_settings={"patience": 9}, policy={"not": "a state"})
    state = check_states(p, cfg).state_dict()["state"]
    assert (state["evaluations"], state["best_score"], state["improved_epoch"]) == (2, 0.31, 1)


def test_a_policy_state_that_does_not_load_is_refused(tmp_path: Path) -> None:
    """The same policy with a damaged saved state: refused naming last.pth and the loader's reason."""
    cfg = config(tmp_path)
    p = states_plan(tmp_path, cfg, policy={"format": "nope"})
    with pytest.raises(ConfigError) as excinfo:
        check_states(p, cfg)
    assert refusal(excinfo) == ("cannot resume: the policy state cannot be restored (StateError(\"not a rec_es policy "
                                "state (expected format 'rec_es.policy_state')\"))" + NOTHING_CHANGED,
                                str(tmp_path / "last.pth"))


COSINE = {"decay": "cosine", "t_max": 10, "eta_min": 0.005}


@pytest.mark.parametrize(("lr", "eta_min"), [(0.01, 0.005), (None, 0.0005)])
def test_the_saved_schedule_state_loads_with_the_runs_learning_rate(tmp_path: Path, lr: float | None,
                                                                     eta_min: float) -> None:
    """The same cosine schedule: its state loads against the config's learning_rate (0.01 >= eta_min 0.005), or
    RecBole's default 0.001 when none is set (>= eta_min 0.0005)."""
    cfg = config(tmp_path, lr_schedule={**COSINE, "eta_min": eta_min},
                 **({} if lr is None else {"learning_rate": lr}))
    check_states(states_plan(tmp_path, cfg), cfg)


def test_the_schedule_is_checked_against_recboles_default_learning_rate(tmp_path: Path) -> None:
    """No learning_rate: the schedule is built with RecBole's 0.001, below eta_min 0.002, so it is refused."""
    cfg = config(tmp_path, lr_schedule={**COSINE, "eta_min": 0.002})
    with pytest.raises(ConfigError) as excinfo:
        check_states(states_plan(tmp_path, cfg), cfg)
    message, source = refusal(excinfo)
    assert message.startswith("cannot resume: the lr_schedule state cannot be restored (ConfigError(")
    assert "eta_min" in message and "0.001" in message and source == str(tmp_path / "last.pth")


@pytest.mark.parametrize("own_settings", [True, False])
def test_a_schedule_state_that_does_not_load_is_refused(tmp_path: Path, own_settings: bool) -> None:
    """The same schedule with a damaged state (settings from last.pth, or from the header in an older last.pth):
    refused naming last.pth and what the state lacks."""
    cfg = config(tmp_path, learning_rate=0.01, lr_schedule=COSINE)
    p = states_plan(tmp_path, cfg, lr_schedule={"version": 1},
                    **({} if own_settings else {"schedule_settings": ...}))
    with pytest.raises(ConfigError) as excinfo:
        check_states(p, cfg)
    assert refusal(excinfo) == ("cannot resume: the lr_schedule state cannot be restored (StateError(\"lr schedule "
                                "state lacks scale, reductions, wait (got keys ['version'])\"))" + NOTHING_CHANGED,
                                str(tmp_path / "last.pth"))


def test_a_schedule_state_is_loaded_only_when_there_is_one_of_the_same_schedule(tmp_path: Path) -> None:
    """No schedule state in last.pth, or a schedule of other settings: nothing of the schedule is loaded."""
    cfg = config(tmp_path, learning_rate=0.01, lr_schedule=COSINE)
    check_states(states_plan(tmp_path, cfg, lr_schedule=None), cfg)
    check_states(states_plan(tmp_path, cfg, lr_schedule={"version": 1}, schedule_settings={"decay": "step"}), cfg)


# ----- check_config ---------------------------------------------------------------------------------------------
def config_plan(run: Path, cfg: RunConfig, finished: bool = True, epoch: int = 2, **head: Any) -> ResumePlan:
    """The plan of a run of exactly ``cfg`` (its header records cfg's policy, schedule, config and epochs), saved
    after ``epoch``; ``head`` changes the header."""
    policy = cfg.build_policy()
    settings = policy.settings_mapping()
    fields = {"policy": settings, "lr_schedule": cfg.lr_schedule, "config": json.loads(json.dumps(cfg.to_dict())),
              "epochs": cfg.get("epochs"), **head}
    ckpt = payload(epoch=epoch, policy=policy.state_dict(), policy_settings=settings)
    return plan(run, ckpt, Trace(path=run / "trace.jsonl", header=trace_header(**fields)), finished=finished)


def test_another_dataset_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    """The new config names another dataset: refused with both names and the file that set it."""
    cfg = config(tmp_path, dataset="ml-1m", epochs=5)
    with pytest.raises(ConfigError) as excinfo:
        check_config(config_plan(tmp_path, cfg, dataset="ml-100k"), cfg)
    assert refusal(excinfo) == (f"cannot resume: the run trained dataset 'ml-100k', the config now names 'ml-1m' "
                                f"(from {tmp_path / 'new.yaml'}); a resume continues the same dataset, start a new run "
                                "for another" + NOTHING_CHANGED, str(tmp_path / "config.yaml"))


def test_a_budget_below_the_trained_epochs_is_refused(tmp_path: Path) -> None:
    """epochs 2 after 3 trained epochs (saved after epoch 2): refused naming config.yaml."""
    cfg = config(tmp_path, epochs=2)
    with pytest.raises(ConfigError) as excinfo:
        check_config(config_plan(tmp_path, cfg, finished=False), cfg)
    assert refusal(excinfo) == (f"cannot resume: epochs 2 (from {tmp_path / 'new.yaml'}) is below the 3 epochs last.pth "
                                "has already trained; pass --set epochs=N with N > 3" + NOTHING_CHANGED,
                                str(tmp_path / "config.yaml"))


def test_a_finished_run_resumed_unchanged_is_refused(tmp_path: Path) -> None:
    """A finished run (stopped at epoch 2 of 5) resumed with the very config it ran (policy, schedule, config,
    epochs 5): refused, since it would train nothing more; the message names the trace, which has the footer."""
    cfg = config(tmp_path, epochs=5, learning_rate=0.01, lr_schedule=COSINE)
    with pytest.raises(ConfigError) as excinfo:
        check_config(config_plan(tmp_path, cfg), cfg)
    assert refusal(excinfo) == ("cannot resume: the run has finished (3 epochs trained) and this resume would train "
                                "nothing more; raise the budget (--set epochs=N with N > 3) or give another policy "
                                "(--config new_policy.yaml)" + NOTHING_CHANGED, str(tmp_path / "trace.jsonl"))


@pytest.mark.parametrize("head", [{"policy": {"patience": 9}}, {"lr_schedule": {"decay": "none"}},
                                  {"config": {"epochs": 4}}, {"epochs": 4}])
def test_a_finished_run_resumes_with_any_change(tmp_path: Path, head: dict[str, Any]) -> None:
    """The same finished run, where the header shows one of policy, schedule, config or epochs was different: the
    resume trains on, so it is accepted."""
    cfg = config(tmp_path, epochs=5, learning_rate=0.01, lr_schedule=COSINE)
    check_config(config_plan(tmp_path, cfg, **head), cfg)


# ----- check_sidecars -------------------------------------------------------------------------------------------
def sidecar(run: Path, split: str, epochs: list[int], metrics: tuple[str, ...] = ("mrr@10",)) -> None:
    """RUN/per_user/<split>.* holding one evaluation of three users per epoch."""
    (run / "per_user").mkdir(exist_ok=True)
    writer = PerUserWriter.create(run, split, metrics)
    for epoch in epochs:
        writer.append(epoch, np.array([1, 2, 3]), {m: np.array([0.1, 0.2, 0.3]) for m in metrics})


def sidecar_plan(run: Path, record_test: bool = False) -> ResumePlan:
    """A plan keeping evaluations of epochs 0 and 1."""
    trace = Trace(path=run / "trace.jsonl", header=trace_header(), records=[record(0, 0.3), record(1, 0.31)])
    return plan(run, payload(), trace, record_test=record_test)


def test_a_run_without_sidecars_passes(tmp_path: Path) -> None:
    """No RUN/per_user: nothing to check."""
    check_sidecars(sidecar_plan(tmp_path), config(tmp_path))


def test_per_user_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    """RUN/per_user is a file: refused naming it."""
    (tmp_path / "per_user").write_text("x")
    with pytest.raises(ConfigError) as excinfo:
        check_sidecars(sidecar_plan(tmp_path))
    assert refusal(excinfo) == ("cannot resume: per_user must be a directory of the run's own score files"
                                + NOTHING_CHANGED, str(tmp_path / "per_user"))


def test_a_link_inside_per_user_is_refused_naming_it(tmp_path: Path) -> None:
    """A link among the sidecar files (a resume rewrites them): refused naming the link."""
    sidecar(tmp_path, "valid", [0, 1])
    os.symlink(tmp_path / "elsewhere", tmp_path / "per_user" / "test.bin")
    with pytest.raises(ConfigError) as excinfo:
        check_sidecars(sidecar_plan(tmp_path))
    assert refusal(excinfo) == ("cannot resume: per_user holds something other than regular files" + NOTHING_CHANGED,
                                str(tmp_path / "per_user" / "test.bin"))


@pytest.mark.parametrize("split", ["valid", "test"])
def test_a_sidecar_of_other_epochs_is_refused(tmp_path: Path, split: str) -> None:
    """A run recording test metrics: the valid and the test sidecar must both hold the kept epochs 0 and 1; one
    holding 0 and 2 is refused naming it (with or without a new config)."""
    sidecar(tmp_path, "valid", [0, 2] if split == "valid" else [0, 1])
    sidecar(tmp_path, "test", [0, 2] if split == "test" else [0, 1])
    with pytest.raises(ConfigError) as excinfo:
        check_sidecars(sidecar_plan(tmp_path, record_test=True))
    assert refusal(excinfo) == (f"cannot resume: {tmp_path / 'per_user' / f'{split}.bin'}: records epochs [0, 2], but "
                                "the trace keeps evaluations of epochs [0, 1]; it does not belong to this trace"
                                + NOTHING_CHANGED, str(tmp_path / "per_user"))


def test_the_test_sidecar_is_not_read_when_the_run_records_no_test_metrics(tmp_path: Path) -> None:
    """record_test false: only the valid sidecar is checked (a stray test sidecar is not)."""
    sidecar(tmp_path, "valid", [0, 1])
    sidecar(tmp_path, "test", [0, 2])
    check_sidecars(sidecar_plan(tmp_path), config(tmp_path))


def test_an_empty_per_user_directory_passes_with_a_config(tmp_path: Path) -> None:
    """RUN/per_user without sidecars (the run recorded none): nothing to compare with the new config."""
    (tmp_path / "per_user").mkdir()
    check_sidecars(sidecar_plan(tmp_path, record_test=True), config(tmp_path))


def test_per_user_metrics_the_config_no_longer_computes_are_refused(tmp_path: Path) -> None:
    """The sidecar records ndcg@10 and hit@10; the new config computes MRR@10 only: refused naming both and the
    config's metrics and topk."""
    sidecar(tmp_path, "valid", [0, 1], ("ndcg@10", "hit@10"))
    with pytest.raises(ConfigError) as excinfo:
        check_sidecars(sidecar_plan(tmp_path), config(tmp_path, metrics=["MRR"], topk=[10]))
    assert refusal(excinfo) == ("cannot resume: the run records per-user ndcg@10, hit@10, which the config no longer "
                                "computes (metrics ['MRR'], topk [10]); add them back to resume" + NOTHING_CHANGED,
                                str(tmp_path / "per_user"))


def test_per_user_metrics_the_config_computes_pass(tmp_path: Path) -> None:
    """The sidecar records mrr@10 and ndcg@10; the config computes both (and more): accepted."""
    sidecar(tmp_path, "valid", [0, 1], ("mrr@10", "ndcg@10"))
    check_sidecars(sidecar_plan(tmp_path), config(tmp_path, metrics=["MRR", "NDCG", "Hit"], topk=[5, 10]))


def test_per_user_target_ce_needs_full_ranking(tmp_path: Path) -> None:
    """A sidecar recording target_ce: accepted under full-ranking evaluation (RecBole's default), refused when the
    new config's eval_args.mode samples negatives (no target_ce is computed)."""
    sidecar(tmp_path, "valid", [0, 1], ("mrr@10", "target_ce"))
    check_sidecars(sidecar_plan(tmp_path), config(tmp_path, metrics=["MRR"], topk=[10]))
    sampled = config(tmp_path, metrics=["MRR"], topk=[10], eval_args={"mode": "uni100"})
    with pytest.raises(ConfigError) as excinfo:
        check_sidecars(sidecar_plan(tmp_path), sampled)
    assert excinfo.value.message.startswith("cannot resume: the run records per-user target_ce, which the config no "
                                            "longer computes")


# ----- check_run_dir, check_resume ----------------------------------------------------------------------------
ACCEPTS = " (--resume takes a run directory written by rec-es run)"
HOLDS = " is missing (a run directory written by rec-es run with saving on holds config.yaml, last.pth and trace.jsonl)"


def run_dir(run: Path, **changes: Any) -> Path:
    """A complete resumable run directory: config.yaml, last.pth after epoch 1 (payload(**changes)) and a trace of
    three lines (header, epochs 0 and 1)."""
    write_trace_lines(run, [trace_header(), record(0, 0.3), record(1, 0.31)])
    (run / "config.yaml").write_text("model: BPR\ndataset: ml-100k\n")
    torch.save(payload(**changes), run / "last.pth")
    return run


def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.access answers as for a directory that can be read and entered but not written (tests run as root, for
    whom every directory is writable)."""
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)


def refused_run_dir(run: Path, *args: Any) -> tuple[str, str | None]:
    """(message, source) of check_run_dir's refusal."""
    with pytest.raises(ConfigError) as excinfo:
        check_run_dir(run, *args)
    return refusal(excinfo)


def test_a_missing_run_directory_is_refused_naming_the_option(tmp_path: Path) -> None:
    """--resume naming nothing: 'does not exist', the option (--resume) as the source."""
    assert refused_run_dir(tmp_path / "gone") == (f"cannot resume: {tmp_path / 'gone'} does not exist" + ACCEPTS,
                                                  "--resume")


def test_a_file_given_as_run_directory_is_refused(tmp_path: Path) -> None:
    """--resume naming a file: 'is not a directory', the option as the source."""
    (tmp_path / "f").write_text("x")
    assert refused_run_dir(tmp_path / "f") == (f"cannot resume: {tmp_path / 'f'} is not a directory" + ACCEPTS,
                                               "--resume")


def test_a_run_killed_before_its_first_epoch_is_refused_saying_what_to_delete(tmp_path: Path) -> None:
    """config.yaml and trace.jsonl but no last.pth: the run ended before its first save; the refusal says so and
    how to start again (not the generic 'missing file' sentence)."""
    run = run_dir(tmp_path / "run")
    (run / "last.pth").unlink()
    says = (f"cannot resume: {run / 'last.pth'} is missing: the run in {run} ended before its first epoch was "
            f"saved, so nothing in it can be continued; delete it (rm -r {run}) and start the run again")
    assert refused_run_dir(run) == (says, "--resume")


@pytest.mark.parametrize("name", ["config.yaml", "trace.jsonl"])
def test_a_run_directory_missing_a_file_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    """last.pth present but config.yaml or trace.jsonl missing: the generic refusal naming the missing file."""
    run = run_dir(tmp_path / "run")
    (run / name).unlink()
    assert refused_run_dir(run) == (f"cannot resume: {run / name}" + HOLDS, "--resume")


def test_a_read_only_run_directory_is_refused_unless_only_read(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that cannot be written is refused by default (a resume writes into it), naming the directory;
    writable=False (a probe reads it only) accepts it."""
    run = run_dir(tmp_path / "run")
    read_only(monkeypatch)
    assert refused_run_dir(run) == (
        "cannot resume: the directory is not writable, and a resume writes trace.jsonl, last.pth, best.pth and "
        "summary.json into it" + NOTHING_CHANGED, str(run))
    check_run_dir(run, False)


def test_check_resume_refuses_a_read_only_run_unless_only_read(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """check_resume checks writability by default and not with writable=False, where it returns the plan: the
    checkpoint, the two kept records, not finished, and no test metrics (the header has no record_test)."""
    run = run_dir(tmp_path / "run")
    read_only(monkeypatch)
    with pytest.raises(ConfigError) as excinfo:
        check_resume(run)
    assert refusal(excinfo)[1] == str(run)
    got = check_resume(run, writable=False)
    assert (got.checkpoint, [r["epoch"] for r in got.trace.records], got.finished, got.record_test) == (
        payload(), [0, 1], False, False)


def test_check_resume_checks_sidecars_against_the_new_config(tmp_path: Path) -> None:
    """check_resume passes the new config on to the sidecar check: a sidecar of ndcg@10 under a config computing
    MRR@10 only is refused; the same run without a config is accepted."""
    run = run_dir(tmp_path / "run")
    sidecar(run, "valid", [0, 1], ("ndcg@10",))
    check_resume(run)
    with pytest.raises(ConfigError) as excinfo:
        check_resume(run, config(tmp_path, metrics=["MRR"], topk=[10]))
    assert refusal(excinfo) == ("cannot resume: the run records per-user ndcg@10, which the config no longer "
                                "computes (metrics ['MRR'], topk [10]); add them back to resume" + NOTHING_CHANGED,
                                str(run / "per_user"))
