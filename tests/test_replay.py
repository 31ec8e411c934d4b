"""Replay on synthetic traces: stop epoch, restored epoch and its metrics, budgets, timings, errors."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from rec_es import build_policy
from rec_es.policy.errors import StateError
from rec_es.replay import (BUDGET_REASON, TRUNCATED_REASON, ReplayError, check_same_run, oracle, replay,
                           replay_many, why_not_replayable)
from rec_es.rundir.trace import TraceWriter, read_trace

# NDCG@10 per epoch: rises to 0.30 at epoch 4, a tie at 5, then falls (epochs 0..11).
CURVE = [0.10, 0.20, 0.25, 0.28, 0.30, 0.30, 0.29, 0.28, 0.27, 0.31, 0.26, 0.25]


def write_trace(path: Path, valid: Sequence[float | None], *, epochs: int | None = None, eval_step: int = 1,
                test: bool = True, footer: bool = True, seed: int = 1, timings: bool = True,
                losses: Sequence[float] | None = None) -> Path:
    """A trace like a recording run's: stopping disabled, one record per evaluation, test = valid / 2,
    train loss ``losses[i]`` (default 5.0 - 0.1 i)."""
    budget = epochs if epochs is not None else len(valid) * eval_step
    w = TraceWriter(path)
    w.header(config={"model": "GRU4Rec"}, policy={"enabled": False}, versions={}, model="GRU4Rec",
             dataset="synthetic", seed=seed, epochs=budget, eval_step=eval_step, record_test=test)
    elapsed = 0.0
    for i, v in enumerate(valid):
        epoch = (i + 1) * eval_step - 1
        loss = losses[i] if losses is not None else 5.0 - 0.1 * i
        rec = {"epoch": epoch, "train_loss": loss, "lr": 0.001,
               "valid": {"ndcg@10": v, "recall@10": None if v is None else 2 * v}, "decision": {"epoch": epoch}}
        if test:
            rec["test"] = {"ndcg@10": None if v is None else v / 2, "recall@10": None if v is None else v}
        if timings:
            elapsed += 1.5
            rec.update(train_seconds=1.0, eval_seconds=0.5, elapsed_seconds=elapsed)
        w.record(**rec)
    if footer:
        last = (len(valid)) * eval_step - 1
        w.footer(stop_epoch=last, stop_reason=BUDGET_REASON, message="budget", best_epoch=None,
                 epochs_trained=budget, wall_seconds=elapsed)
    return path


@pytest.fixture
def curve_trace(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "trace.jsonl", CURVE)


@pytest.mark.parametrize(
    "mapping, stop_epoch, best_epoch, reason",
    [
        # patience 2: best 0.30 at 4; 5 (tie, no improvement) wait 1, 6 wait 2 -> stop at 6.
        ({"monitor": "ndcg@10", "patience": 2}, 6, 4, "patience"),
        # ties_improve: the tie at 5 resets the wait and becomes the restored epoch; stop at 7.
        ({"monitor": "ndcg@10", "patience": 2, "ties_improve": True}, 7, 5, "patience"),
        # recbole_legacy stopping_step 1 = patience 2 with ties counting.
        ({"preset": "recbole_legacy", "monitor": "ndcg@10", "stopping_step": 1}, 7, 5, "patience"),
        # patience 4 survives the dip and finds 0.31 at epoch 9, then runs out of epochs.
        ({"monitor": "ndcg@10", "patience": 5}, 11, 9, BUDGET_REASON),
        # warmup 8 defers the patience stop until epoch 8 (condition still holds there).
        ({"monitor": "ndcg@10", "patience": 2, "warmup": 8}, 8, 4, "patience"),
        # stopping disabled: the whole budget, best by raw value.
        ({"monitor": "ndcg@10", "enabled": False}, 11, 9, BUDGET_REASON),
        # max_epochs budget of the policy: stops after 3 epochs whatever the metric.
        ({"monitor": "ndcg@10", "patience": 50, "max_epochs": 3}, 2, 2, "max_epochs"),
        # composite monitor on recall (2 x ndcg here): same shape as ndcg.
        ({"monitor": {"ndcg@10": 0.5, "recall@10": 0.5}, "patience": 2}, 6, 4, "patience"),
    ],
)
def test_replay_stop_and_best(curve_trace: Path, mapping: dict, stop_epoch: int, best_epoch: int, reason: str) -> None:
    """Replay returns the stop epoch, restored epoch and reason the policy gives on the recorded curve."""
    r = replay(build_policy(mapping), curve_trace, name="p")
    assert (r.stop_epoch, r.best_epoch, r.reason) == (stop_epoch, best_epoch, reason)
    assert r.stopped == (r.epochs_trained < len(CURVE))
    assert r.best_valid == {"ndcg@10": CURVE[best_epoch], "recall@10": 2 * CURVE[best_epoch]}
    assert r.best_test == {"ndcg@10": CURVE[best_epoch] / 2, "recall@10": CURVE[best_epoch]}
    assert r.metric("NDCG@10") == CURVE[best_epoch] / 2


def test_replay_matches_step_by_step_updates(curve_trace: Path) -> None:
    """Replay feeds exactly the recorded inputs: its decisions equal calling update() by hand."""
    mapping = {"monitor": "ndcg@10", "smoothing": "ema", "ema_alpha": 0.5, "patience": 3}
    r = replay(build_policy(mapping), curve_trace, keep_decisions=True)
    by_hand = build_policy(mapping)
    expected = []
    for rec in read_trace(curve_trace).records:
        d = by_hand.update(rec["epoch"], rec["valid"], rec["train_loss"], rec["elapsed_seconds"])
        expected.append(d)
        if d.stop:
            break
    assert list(r.decisions) == expected
    assert r.best_epoch == by_hand.best_epoch and r.stop_epoch == expected[-1].epoch


def test_epochs_and_wall_time(curve_trace: Path) -> None:
    """Epochs trained is stop+1 (or the whole budget), wall time sums train+valid seconds up to the stop."""
    stopped = replay(build_policy({"monitor": "ndcg@10", "patience": 2}), curve_trace)
    assert (stopped.epochs_trained, stopped.evaluations) == (7, 7)
    assert stopped.wall_seconds == pytest.approx(7 * 1.5)
    full = replay(build_policy({"monitor": "ndcg@10", "enabled": False}), curve_trace)
    assert (full.epochs_trained, full.wall_seconds) == (12, pytest.approx(12 * 1.5))


def test_no_timings_gives_no_wall_time(tmp_path: Path) -> None:
    """A trace without per-epoch timings estimates no wall time (None, not 0)."""
    r = replay(build_policy({"monitor": "ndcg@10", "patience": 2}), write_trace(tmp_path / "t.jsonl", CURVE, timings=False))
    assert r.wall_seconds is None and r.stop_epoch == 6


def test_eval_step_counts_epochs(tmp_path: Path) -> None:
    """With eval_step 2 records sit at epochs 1, 3, ..., 11; a stop counts epochs, not evaluations, and a
    budget that ends between evaluations (13 epochs) is trained in full when the policy never stops."""
    path = write_trace(tmp_path / "t.jsonl", CURVE[:6], eval_step=2, epochs=13)
    r = replay(build_policy({"monitor": "ndcg@10", "patience": 1}), path)  # the tie at epoch 11 is a miss
    assert (r.stop_epoch, r.best_epoch, r.epochs_trained, r.evaluations, r.reason) == (11, 9, 12, 6, "patience")
    full = replay(build_policy({"monitor": "ndcg@10", "enabled": False}), path)
    assert (full.stop_epoch, full.epochs_trained, full.reason, full.truncated) == (11, 13, BUDGET_REASON, False)


def test_unfinished_trace_is_marked_truncated(tmp_path: Path) -> None:
    """A trace without footer (crashed run) that ends before the policy stops is flagged, not passed off as the budget."""
    path = write_trace(tmp_path / "t.jsonl", CURVE[:5], epochs=50, footer=False)
    r = replay(build_policy({"monitor": "ndcg@10", "patience": 3}), path)
    assert (r.truncated, r.reason, r.stopped, r.epochs_trained) == (True, TRUNCATED_REASON, False, 5)
    assert "cut short" in r.message


def test_nan_is_never_restored(tmp_path: Path) -> None:
    """A NaN evaluation (null in the trace) never becomes the restored epoch; with check_finite stop it stops."""
    path = write_trace(tmp_path / "t.jsonl", [0.1, 0.2, None, 0.15, 0.12])
    r = replay(build_policy({"monitor": "ndcg@10", "patience": 2, "check_finite": "miss"}), path)
    assert (r.best_epoch, r.stop_epoch) == (1, 3)
    r2 = replay(build_policy({"monitor": "ndcg@10", "patience": 2}), path)
    assert (r2.best_epoch, r2.stop_epoch, r2.reason) == (1, 2, "non_finite")


def test_policy_object_is_reset_between_replays(curve_trace: Path, tmp_path: Path) -> None:
    """One policy object replayed on two traces gives each trace's own answer (state does not leak)."""
    rising = write_trace(tmp_path / "rising.jsonl", [0.1, 0.2, 0.3, 0.4])
    policy = build_policy({"monitor": "ndcg@10", "patience": 2})
    first = replay(policy, curve_trace)
    second = replay(policy, rising)
    assert (first.stop_epoch, first.best_epoch) == (6, 4)
    assert (second.stop_epoch, second.best_epoch, second.reason) == (3, 3, BUDGET_REASON)
    assert replay(policy, curve_trace) == first


def test_time_budget_uses_recorded_elapsed(curve_trace: Path) -> None:
    """max_minutes fires at the first evaluation whose recorded elapsed time reaches the budget (1.5 s/epoch)."""
    r = replay(build_policy({"monitor": "ndcg@10", "patience": None, "max_minutes": 6 / 60}), curve_trace)
    assert (r.stop_epoch, r.reason) == (3, "time_budget")


def test_prechelt_pq_gets_recorded_train_loss(curve_trace: Path, tmp_path: Path) -> None:
    """PQ decides on the recorded train loss: it stops at epoch 11 on the falling loss, at 7 on a constant one."""
    policy = build_policy({"monitor": "ndcg@10", "patience": None,
                           "prechelt": {"criterion": "PQ", "alpha": 0.5, "strip": 2}})
    # Strips end at epochs 1, 3, 5, 7, 9, 11; error E = 1 - ndcg; GL = 100 (E / E_opt - 1); the loss is 5.0 - 0.1 i.
    # Epoch 7: GL = 100 (0.72 / 0.70 - 1) = 2.857, P = 1000 ((4.4 + 4.3) / (2 x 4.3) - 1) = 11.63: PQ 0.246 <= 0.5.
    # Epoch 9: 0.31 is a new best, GL = 0. Epoch 11: GL = 100 (0.75 / 0.69 - 1) = 8.696,
    # P = 1000 ((4.0 + 3.9) / (2 x 3.9) - 1) = 12.82: PQ 0.678 > 0.5 -> stop, restoring epoch 9.
    r = replay(policy, curve_trace)
    assert (r.stop_epoch, r.best_epoch, r.reason, r.stopped) == (11, 9, "prechelt_pq", True)
    # A constant loss makes no training progress (P = 0), so any GL > 0 stops: the first is epoch 7's.
    flat = replay(policy, write_trace(tmp_path / "flat.jsonl", CURVE, losses=[2.0] * len(CURVE)))
    assert (flat.stop_epoch, flat.best_epoch, flat.reason) == (7, 4, "prechelt_pq")


def test_oracle_is_best_valid_epoch_of_whole_trace(curve_trace: Path) -> None:
    """The oracle restores the best validation epoch over the full budget; an enabled policy is refused."""
    o = oracle(curve_trace, build_policy({"monitor": "ndcg@10", "enabled": False}))
    assert (o.best_epoch, o.epochs_trained, o.policy) == (9, 12, "oracle")
    with pytest.raises(ValueError, match="enabled: false"):
        oracle(curve_trace, build_policy({"monitor": "ndcg@10"}))


def test_replay_many_orders_trace_then_policy(tmp_path: Path) -> None:
    """replay_many gives one result per (trace, policy), trace by trace."""
    a = write_trace(tmp_path / "a.jsonl", CURVE, seed=1)
    b = write_trace(tmp_path / "b.jsonl", CURVE[:4], seed=2)
    out = replay_many({"p2": build_policy({"monitor": "ndcg@10", "patience": 2}),
                       "off": build_policy({"monitor": "ndcg@10", "enabled": False})}, [a, b])
    assert [(r.seed, r.policy) for r in out] == [(1, "p2"), (1, "off"), (2, "p2"), (2, "off")]


def test_missing_metric_names_trace_epoch_and_policy(curve_trace: Path) -> None:
    """A policy monitoring a metric the trace lacks fails with the trace path, epoch and policy name."""
    with pytest.raises(ReplayError, match=r"trace.jsonl: epoch 0: policy 'mrr': monitor needs mrr@10"):
        replay(build_policy({"monitor": "mrr@10"}), curve_trace, name="mrr")


def test_need_test_refuses_trace_without_test_metrics(tmp_path: Path) -> None:
    """Comparing test quality on a trace recorded without record_test is refused with how to fix it."""
    path = write_trace(tmp_path / "t.jsonl", CURVE, test=False)
    with pytest.raises(ReplayError, match="record_test=True"):
        replay(build_policy({"monitor": "ndcg@10"}), path, need_test=True)
    assert replay(build_policy({"monitor": "ndcg@10", "patience": 2}), path).best_test is None


def test_empty_trace_is_refused(tmp_path: Path) -> None:
    """A trace with a header and no records cannot be replayed."""
    path = write_trace(tmp_path / "t.jsonl", [], footer=False)
    with pytest.raises(ReplayError, match="no evaluation records"):
        replay(build_policy({"monitor": "ndcg@10"}), path)


@pytest.mark.parametrize(
    "lr, recorded, keys, fragment",
    [
        (None, None, None, None),
        ({"decay": "none", "reduce_on_plateau": None}, {"decay": "none", "reduce_on_plateau": None}, None, None),
        ({"decay": "none", "reduce_on_plateau": {"factor": 0.3}}, None, None, "reduce_on_plateau"),
        ({"decay": "exponential", "gamma": 0.9, "reduce_on_plateau": None}, None, None, "differs"),
        (None, None, {"learning_rate": 0.01}, "learning_rate"),
    ],
)
def test_why_not_replayable(lr: dict | None, recorded: dict | None, keys: dict | None, fragment: str | None) -> None:
    """Only a policy that trains exactly like the recording is replayable; the reason names what differs."""
    why = why_not_replayable(lr, recorded, keys)
    if fragment is None:
        assert why is None
    else:
        assert why is not None and fragment in why


def test_check_same_run_refuses_mixed_setups(tmp_path: Path) -> None:
    """Traces with different budgets are not seeds of one setup."""
    a = read_trace(write_trace(tmp_path / "a.jsonl", CURVE))
    b = read_trace(write_trace(tmp_path / "b.jsonl", CURVE, epochs=40))
    check_same_run([a, a])
    with pytest.raises(StateError, match="epochs 40 differs"):
        check_same_run([a, b])


def test_bench_replay_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/bench_replay.py runs at minimal size and reports throughput and memory (no timing asserted)."""
    from conftest import load_script

    module = load_script("bench_replay")
    assert module.main(["--policies", "3", "--seeds", "2", "--epochs", "30", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 policies x 2 traces" in out and "evaluations/s" in out and "peak Python memory" in out


# --- per-user scores from the sidecar, and the result as plain data (survivors of mutation testing) -------------
def test_per_user_source_reads_the_sidecar_beside_the_trace(tmp_path: Path) -> None:
    """A policy reading per-user scores gets, per epoch, the sidecar's float32 values of its keys as lists; a policy
    reading none gets nothing; a key the sidecar lacks, a damaged sidecar and no sidecar are each said."""
    from test_per_user import values, write_run

    from rec_es.replay import per_user_source

    run = tmp_path / "run"
    write_run(run, [0, 1, 2, 3])
    tr = read_trace(run)
    significant = build_policy({"monitor": "ndcg@10", "patience": 1, "improvement": "significant"})
    at, notes = per_user_source(significant, tr, "p")
    assert notes == () and at is not None
    assert at(2) == {"ndcg@10": values(2)["ndcg@10"].tolist()}
    assert per_user_source(build_policy({"monitor": "ndcg@10"}), tr) == (None, ())
    with pytest.raises(ReplayError) as info:
        per_user_source(build_policy({"monitor": "mrr@10", "improvement": "significant"}), tr, "q")
    assert str(info.value) == (f"{run / 'per_user' / 'valid.bin'}: records per-user ndcg@10, recall@10, but policy "
                               "'q' needs mrr@10; record them (per_user_metrics) or monitor a recorded metric")
    (run / "per_user" / "valid.bin").write_bytes(b"")
    with pytest.raises(ReplayError, match=r"^policy 'p' reads per-user scores: .*valid\.bin: truncated: 0 complete "
                                          r"records, the trace has 4 evaluations$"):
        per_user_source(significant, tr, "p")
    (tmp_path / "bare").mkdir()
    bare = write_trace(tmp_path / "bare" / "trace.jsonl", CURVE)
    at, notes = per_user_source(significant, read_trace(bare), "p")
    assert at is None and notes == (
        f"{bare}: no per-user validation scores recorded, so ndcg@10 per user were not available: min_delta: auto "
        "and improvement: significant used the curve's noise instead (1.4826·MAD of first differences; a z-test for "
        "significance), not what a live run decides",)


def test_replay_with_the_sidecar_decides_as_the_live_run_would(tmp_path: Path) -> None:
    """Replaying a significance policy over a run with a sidecar: no notes, and each decision is update() fed the
    sidecar's per-user scores by hand."""
    from test_per_user import write_run

    run = tmp_path / "run"
    write_run(run, [0, 1, 2, 3])
    mapping = {"monitor": "ndcg@10", "patience": 1, "improvement": "significant"}
    r = replay(build_policy(mapping), run, name="p", keep_decisions=True)
    assert r.notes == ()
    by_hand = build_policy(mapping)
    from rec_es import read_per_user

    sidecar = read_per_user(run)
    expected = [by_hand.update(rec["epoch"], rec["valid"], per_user=sidecar.for_policy(rec["epoch"]))
                for rec in read_trace(run).records]
    assert list(r.decisions) == expected[:len(r.decisions)]


def test_result_as_plain_data(curve_trace: Path) -> None:
    """to_dict holds every field under its name, notes only when there are some."""
    r = replay(build_policy({"monitor": "ndcg@10", "patience": 2}), curve_trace, name="p2")
    assert r.to_dict() == {
        "policy": "p2", "trace": str(curve_trace), "seed": 1, "stop_epoch": 6, "stopped": True, "reason": "patience",
        "message": r.message, "best_epoch": 4, "best_valid": {"ndcg@10": 0.30, "recall@10": 0.60},
        "best_test": {"ndcg@10": 0.15, "recall@10": 0.30}, "epochs_trained": 7, "evaluations": 7,
        "wall_seconds": 10.5, "truncated": False}
    noted = replay(build_policy({"monitor": "ndcg@10", "patience": 2, "improvement": "significant"}), curve_trace)
    assert noted.to_dict()["notes"] == list(noted.notes) and len(noted.notes) == 1


def _ended_trace(path: Path, n: int, epochs: int | None, epochs_trained: int | None) -> Path:
    """A finished trace of ``n`` evaluations of CURVE (no stop recorded) with the header's budget ``epochs`` and the
    footer's ``epochs_trained`` as given."""
    w = TraceWriter(path)
    w.header(config={"model": "GRU4Rec"}, policy={"enabled": False}, versions={}, model="GRU4Rec",
             dataset="synthetic", seed=1, epochs=epochs, eval_step=1, record_test=False)
    for e in range(n):
        w.record(epoch=e, train_loss=1.0, lr=0.001, valid={"ndcg@10": CURVE[e]}, decision={"epoch": e})
    w.footer(stop_epoch=n - 1, stop_reason="patience", message="", best_epoch=None, epochs_trained=epochs_trained)
    return path


@pytest.mark.parametrize("n, epochs, trained, truncated, epochs_trained, message", [
    (5, None, None, False, 5, "did not stop within the budget of 5 epochs"),          # no budget known: it ended
    (5, 5, None, False, 5, "did not stop within the budget of 5 epochs"),             # the last epoch is the budget's
    (5, 9, 9, False, 9, "did not stop within the budget of 9 epochs"),                # the footer says all 9 ran
    (5, 9, 5, True, 5, "did not stop before the trace ended at epoch 4 (the recorded run was cut short)"),
    (5, 6, 5, True, 5, "did not stop before the trace ended at epoch 4 (the recorded run was cut short)"),
])
def test_a_policy_that_never_stops_ends_with_the_budget_or_the_trace(tmp_path: Path, n: int, epochs: int | None,
                                                                     trained: int | None, truncated: bool,
                                                                     epochs_trained: int, message: str) -> None:
    """Not stopping: the budget was reached when the trace covers it (or names none, or its footer says all epochs
    ran); otherwise the recording stopped early and the replay is truncated at its last evaluation."""
    r = replay(build_policy({"monitor": "ndcg@10", "patience": None}), _ended_trace(tmp_path / "t.jsonl", n, epochs,
                                                                                   trained))
    assert (r.stopped, r.truncated, r.epochs_trained, r.message) == (False, truncated, epochs_trained, message)
    assert r.reason == (TRUNCATED_REASON if truncated else BUDGET_REASON)


@pytest.mark.parametrize("key, value", [("model", "SASRec"), ("dataset", "ml-1m")])
def test_check_same_run_names_the_differing_key(tmp_path: Path, key: str, value: str) -> None:
    """Another model or dataset: refused naming the key, both values and both files."""
    a = read_trace(write_trace(tmp_path / "a.jsonl", CURVE))
    b = read_trace(write_trace(tmp_path / "b.jsonl", CURVE))
    b.header[key] = value
    with pytest.raises(StateError) as info:
        check_same_run([a, b])
    assert str(info.value) == (f"{b.path}: {key} {value!r} differs from {a.path}'s {a.header[key]!r}; compare traces "
                               "of one setup only")


def test_replay_many_checks_test_metrics_only_when_asked(tmp_path: Path) -> None:
    """need_test defaults to False; with True a trace without test metrics is refused."""
    path = write_trace(tmp_path / "t.jsonl", CURVE, test=False)
    policies = {"p": build_policy({"monitor": "ndcg@10", "patience": 2})}
    assert [r.stop_epoch for r in replay_many(policies, [path])] == [6]
    with pytest.raises(ReplayError, match="trace has no test metrics"):
        replay_many(policies, [path], need_test=True)


def test_messages_and_lookups_whole(curve_trace: Path, tmp_path: Path) -> None:
    """oracle's refusal, why_not_replayable's three reasons, metric() on the valid split, an all-null run's best."""
    with pytest.raises(ValueError, match=r"^oracle\(\) needs a policy built with enabled: false \(it would otherwise "
                                         r"stop early\)$"):
        oracle(curve_trace, build_policy({"monitor": "ndcg@10"}))
    assert why_not_replayable(None, None, {"seed": 3, "learning_rate": 0.01}) == (
        "it sets training keys (learning_rate, seed) that the recorded runs did not use")
    assert why_not_replayable({"reduce_on_plateau": {"factor": 0.3}}, None) == (
        "its lr_schedule.reduce_on_plateau changes the learning rate when the monitor stalls")
    assert why_not_replayable({"decay": "exponential"}, None) == (
        "its lr_schedule differs from the one the recorded runs trained with")
    r = replay(build_policy({"monitor": "ndcg@10", "patience": 2}), curve_trace)
    assert (r.metric("recall@10", "valid"), r.metric("recall@10")) == (0.60, 0.30)
    nulls = replay(build_policy({"monitor": "ndcg@10", "check_finite": "miss", "patience": 5}),
                   write_trace(tmp_path / "n.jsonl", [None, None, None]))
    assert (nulls.best_epoch, nulls.best_valid, nulls.best_test) == (None, None, None)


def _test_trace(path: Path, record_test: bool, with_test: list[bool]) -> Path:
    """A finished trace whose header says ``record_test`` and whose i-th record has test metrics iff with_test[i]."""
    w = TraceWriter(path)
    w.header(config={}, policy={}, versions={}, model="GRU4Rec", dataset="synthetic", seed=1, epochs=len(with_test),
             eval_step=1, record_test=record_test)
    for e, has in enumerate(with_test):
        rec = {"epoch": e, "valid": {"ndcg@10": CURVE[e]}, "decision": {}}
        if has:
            rec["test"] = {"ndcg@10": CURVE[e] / 2}
        w.record(**rec)
    w.footer(stop_epoch=len(with_test) - 1, stop_reason="max_epochs", message="", best_epoch=None)
    return path


@pytest.mark.parametrize("record_test, with_test, refused", [
    (True, [False, True], False),    # the header says test metrics were recorded
    (False, [True, False], False),   # the first record has them
    (False, [False, True], True),    # neither
])
def test_need_test_reads_the_header_and_the_first_record(tmp_path: Path, record_test: bool, with_test: list[bool],
                                                         refused: bool) -> None:
    """need_test refuses a trace only when neither its header nor its first record shows test metrics."""
    path = _test_trace(tmp_path / "t.jsonl", record_test, with_test)
    policy = build_policy({"monitor": "ndcg@10", "patience": None})
    if refused:
        with pytest.raises(ReplayError) as info:
            replay(policy, path, need_test=True)
        assert str(info.value) == (f"{path}: trace has no test metrics (recorded without record_test); record it "
                                   "with record_test=True to compare test quality")
    else:
        assert replay(policy, path, need_test=True).stop_epoch == 1


def test_replay_defaults_and_what_it_leaves_on_the_policy(curve_trace: Path) -> None:
    """Decisions are not kept by default; the policy is left with the trace's epoch budget (what rules that look
    ahead read)."""
    policy = build_policy({"monitor": "ndcg@10", "patience": 2})
    r = replay(policy, curve_trace)
    assert r.decisions == () and policy.budget == 12


def test_per_user_messages_name_the_policy_and_every_key(tmp_path: Path) -> None:
    """The replay's name (or 'policy') in a damaged sidecar's message; every key in the notes and the lacking list;
    only a run directory's trace.jsonl looks for a sidecar beside it."""
    import shutil

    from test_per_user import write_run

    from rec_es.replay import per_user_source

    run = tmp_path / "run"
    write_run(run, [0, 1, 2])
    both = build_policy({"monitor": {"ndcg@10": 0.5, "mrr@10": 0.5}, "improvement": "significant"})
    with pytest.raises(ReplayError, match=r"needs mrr@10; record them"):
        per_user_source(both, read_trace(run), "b")
    lacking = build_policy({"monitor": {"mrr@10": 0.5, "hit@10": 0.5}, "improvement": "significant"})
    with pytest.raises(ReplayError, match=r"but policy 'policy' needs mrr@10, hit@10; record them"):
        per_user_source(lacking, read_trace(run))
    shutil.copy(run / "trace.jsonl", run / "other.jsonl")  # beside the sidecar, but not the run's trace.jsonl
    at, notes = per_user_source(both, read_trace(run / "other.jsonl"))
    assert at is None and notes[0].startswith(f"{run / 'other.jsonl'}: no per-user validation scores recorded, so "
                                              "ndcg@10, mrr@10 per user were not available")
    (run / "per_user" / "valid.bin").write_bytes(b"")
    significant = build_policy({"monitor": "ndcg@10", "improvement": "significant"})
    with pytest.raises(ReplayError, match=r"^policy 'sig' reads per-user scores: "):
        replay(significant, run, name="sig")
    with pytest.raises(ReplayError, match=r"^policy 'policy' reads per-user scores: "):
        per_user_source(significant, read_trace(run))


def test_an_averaging_restore_is_replayed_as_the_best_epoch_and_says_so(tmp_path: Path) -> None:
    """restore: {average: ...} decides as restore: best (same stop, same best epoch), flagged and noted."""
    from conftest import small_trace

    trace = small_trace(tmp_path / "run" / "trace.jsonl", scores=(0.1, 0.3, 0.2, 0.25, 0.1), patience=2)
    plain = replay(build_policy({"monitor": "ndcg@10", "patience": 2}), trace)
    averaged = replay(build_policy({"monitor": "ndcg@10", "patience": 2,
                                    "restore": {"average": "best_k", "k": 2}}), trace, name="avg")
    assert (averaged.stop_epoch, averaged.best_epoch, averaged.best_valid) == (
        plain.stop_epoch, plain.best_epoch, plain.best_valid)
    assert averaged.average_not_replayed and not plain.average_not_replayed and not plain.notes
    assert averaged.notes == ("policy 'avg' restores an average of weights (restore: best_k, k 2), which a trace "
                              "cannot replay (it holds metrics, not weights): its stop is replayed exactly, but the "
                              "restored epoch and metrics are the single best evaluation's, as restore: best would give",)
    assert averaged.to_dict()["average_not_replayed"] is True and "average_not_replayed" not in plain.to_dict()
