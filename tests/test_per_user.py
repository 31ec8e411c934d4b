"""Per-user sidecar writer and reader: round trip, crash tails, resume truncation, foreign and damaged files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rec_es import StateError, read_per_user
from rec_es.rundir.per_user import PerUserWriter, paths, record_dtype
from rec_es.rundir.trace import TraceWriter, read_trace

METRICS = ("ndcg@10", "recall@10")
USERS = np.array([7, 3, 11, 5], dtype=np.int64)


def values(epoch: int) -> dict[str, np.ndarray]:
    """Deterministic per-user values of one evaluation (distinct per epoch and metric)."""
    base = np.array([0.0, 0.25, 0.5, 1.0], dtype=np.float32)
    return {"ndcg@10": (base + 0.01 * epoch) / 2, "recall@10": (base[::-1] + 0.02 * epoch) / 2}


def write_run(run: Path, epochs: list[int], *, sidecar_epochs: list[int] | None = None, footer: bool = True,
              decimals: int = 4) -> PerUserWriter:
    """A run directory whose trace averages what the sidecar holds (rounded as RecBole rounds)."""
    run.mkdir(parents=True, exist_ok=True)
    trace = TraceWriter(run / "trace.jsonl")
    trace.header(config={"metric_decimal_place": decimals}, policy={}, versions={}, model="GRU4Rec", dataset="x")
    writer = PerUserWriter.create(run, "valid", METRICS)
    for e in sidecar_epochs if sidecar_epochs is not None else epochs:
        writer.append(e, USERS, values(e))
    for e in epochs:
        means = {m: round(float(np.mean(v, dtype=np.float64)), decimals) for m, v in values(e).items()}
        trace.record(epoch=e, valid={k.upper(): v for k, v in means.items()}, decision={})
    if footer:
        trace.footer(stop_epoch=epochs[-1], stop_reason="max_epochs", message="", best_epoch=0)
    return writer


def test_round_trip(tmp_path: Path) -> None:
    """What the writer appends, the reader returns: epochs, user ids, float32 values per metric, policy lists."""
    write_run(tmp_path, [0, 2, 4])
    s = read_per_user(tmp_path, "valid")
    assert s.epochs == (0, 2, 4) and s.metrics == METRICS
    assert s.user_ids.tolist() == [7, 3, 11, 5]
    assert s.values("NDCG@10").shape == (3, 4) and s.values("ndcg@10").dtype == np.float32
    np.testing.assert_array_equal(s.values("recall@10")[1], values(2)["recall@10"])
    assert s.for_policy(4) == {m: v.tolist() for m, v in values(4).items()}
    assert paths(tmp_path, "valid")[1].stat().st_size == 3 * (8 + 4 * 2 * 4)
    with pytest.raises(KeyError, match="recorded: ndcg@10, recall@10"):
        s.values("mrr@10")


def test_gzipped_sidecar_reads_the_same(tmp_path: Path) -> None:
    """An archived run's <split>.bin.gz reads exactly like the .bin it was packed from; a damaged one is named."""
    import gzip

    write_run(tmp_path, [0, 1])
    plain = read_per_user(tmp_path)
    _, bin_path = paths(tmp_path, "valid")
    packed = bin_path.with_name("valid.bin.gz")
    packed.write_bytes(gzip.compress(bin_path.read_bytes()))
    bin_path.unlink()
    np.testing.assert_array_equal(read_per_user(tmp_path).array, plain.array)
    packed.write_bytes(packed.read_bytes()[:20])
    with pytest.raises(StateError, match=rf"{packed}: not a readable gzip file"):
        read_per_user(tmp_path)


def test_killed_run_tail_is_ignored_until_resume_cuts_it(tmp_path: Path) -> None:
    """A killed run: one record more than its trace and a torn one; reading ignores both, resume cuts them."""
    write_run(tmp_path, [0, 1], sidecar_epochs=[0, 1, 2], footer=False)
    _, bin_path = paths(tmp_path, "valid")
    with open(bin_path, "ab") as fh:
        fh.write(b"\x01" * 13)  # killed mid-write
    assert read_per_user(tmp_path).epochs == (0, 1)
    w = PerUserWriter.resume(tmp_path, "valid", [0, 1])
    assert w is not None and w.records == 2 and w.metrics == METRICS
    assert bin_path.stat().st_size == 2 * record_dtype(2, 4).itemsize
    w.append(2, USERS, values(2))
    assert bin_path.stat().st_size == 3 * record_dtype(2, 4).itemsize


def test_truncated_sidecar_is_refused(tmp_path: Path) -> None:
    """Fewer complete records than the trace has evaluations is a StateError naming the file."""
    write_run(tmp_path, [0, 1, 2])
    _, bin_path = paths(tmp_path, "valid")
    data = bin_path.read_bytes()
    bin_path.write_bytes(data[: len(data) - 10])
    with pytest.raises(StateError, match=rf"{bin_path}: truncated: 2 complete records and a torn record"):
        read_per_user(tmp_path)
    with pytest.raises(StateError, match="truncated"):
        PerUserWriter.resume(tmp_path, "valid", [0, 1, 2])


def test_extra_bytes_after_a_finished_run_are_refused(tmp_path: Path) -> None:
    """A finished trace fixes the sidecar's size; anything appended later is reported."""
    write_run(tmp_path, [0, 1])
    _, bin_path = paths(tmp_path, "valid")
    with open(bin_path, "ab") as fh:
        fh.write(b"\x00" * 4)
    with pytest.raises(StateError, match="changed after the run"):
        read_per_user(tmp_path)


def test_index_with_another_user_order_fails_the_checksum(tmp_path: Path) -> None:
    """Reordering the index's user ids (the values no longer belong to them) is detected by every record's crc."""
    write_run(tmp_path, [0, 1])
    index_path, bin_path = paths(tmp_path, "valid")
    index = json.loads(index_path.read_text())
    index["user_ids"] = index["user_ids"][::-1]
    index_path.write_text(json.dumps(index))
    with pytest.raises(StateError, match=rf"{bin_path}: record 0 \(epoch 0\) fails its checksum: .*another user order"):
        read_per_user(tmp_path)


def test_sidecar_of_another_run_is_refused(tmp_path: Path) -> None:
    """A sidecar copied from another run (other values, same epochs) disagrees with this trace's averages."""
    write_run(tmp_path / "a", [0, 1])
    write_run(tmp_path / "b", [0, 1], sidecar_epochs=[5, 6])
    for name in ("valid.json", "valid.bin"):
        (tmp_path / "a" / "per_user" / name).write_bytes((tmp_path / "b" / "per_user" / name).read_bytes())
    with pytest.raises(StateError, match=r"records epochs \[5, 6\], the trace's evaluations are at \[0, 1\]"):
        read_per_user(tmp_path / "a")
    write_run(tmp_path / "c", [5, 6])  # same epochs as b, other values
    trace_b = (tmp_path / "b" / "trace.jsonl").read_text()
    trace_b = trace_b.replace('"epoch":0', '"epoch":5').replace('"epoch":1', '"epoch":6')
    (tmp_path / "c" / "trace.jsonl").write_text(trace_b)
    with pytest.raises(StateError, match=r"epoch 5: the per-user mean of ndcg@10 is .* another run"):
        read_per_user(tmp_path / "c")


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: d.unlink(), "missing; the run recorded no per-user valid scores"),
    (lambda d: d.write_text("{not json"), "not a readable JSON index"),
    (lambda d: d.write_text(json.dumps({"format": "x", "version": 1})), "not a rec_es.per_user version 1 index"),
    (lambda d: d.write_text(json.dumps({**json.loads(d.read_text()), "n_users": 5})), "inconsistent index"),
])
def test_bad_index_is_a_state_error_naming_it(tmp_path: Path, damage: Any, fragment: str) -> None:
    """A missing, unreadable, foreign or inconsistent index is a StateError naming the index file."""
    write_run(tmp_path, [0])
    index_path, _ = paths(tmp_path, "valid")
    damage(index_path)
    with pytest.raises(StateError, match=f"{index_path}: {fragment}"):
        read_per_user(tmp_path)


def test_resume_refuses_a_sidecar_of_other_epochs(tmp_path: Path) -> None:
    """Resume cuts to the trace's kept evaluations only if the sidecar recorded those same epochs."""
    write_run(tmp_path, [0, 1, 2])
    with pytest.raises(StateError, match=r"records epochs \[0, 1\], but the trace keeps .* \[0, 2\]"):
        PerUserWriter.resume(tmp_path, "valid", [0, 2])
    assert PerUserWriter.resume(tmp_path, "test", [0, 1]) is None  # no test sidecar recorded


def test_writer_refuses_another_user_order_and_overwriting(tmp_path: Path) -> None:
    """Appending rows of other users, or creating a sidecar where one exists, is a StateError naming the index."""
    w = write_run(tmp_path, [0])
    index_path, _ = paths(tmp_path, "valid")
    with pytest.raises(StateError, match=rf"{index_path}: epoch 1 scored user 3 in row 0 where the index has user 7"):
        w.append(1, USERS[[1, 0, 2, 3]], values(1))
    with pytest.raises(StateError, match="5 rows where the index has 4"):
        w.append(1, np.arange(5), values(1))
    with pytest.raises(StateError, match="never overwritten"):
        PerUserWriter.create(tmp_path, "valid", METRICS)


def test_reader_unpickles_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading runs without pickle: a sidecar whose bytes are a pickle is just refused, never loaded."""
    import pickle

    write_run(tmp_path, [0])
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    assert read_per_user(tmp_path).epochs == (0,)
    _, bin_path = paths(tmp_path, "valid")
    bin_path.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(StateError):
        read_per_user(tmp_path)


def test_record_runs_regimes_train_their_whole_budget() -> None:
    """Every regime of scripts/record_runs.py builds a policy that never stops, with the regime's model, LR and budget."""
    from conftest import load_script

    record_runs = load_script("record_runs")
    for regime, keys in record_runs.REGIMES.items():
        cfg = record_runs.run_config(regime, 2021, None)
        assert {k: cfg.recbole[k] for k in keys} == keys and cfg.recbole["seed"] == 2021
        policy = cfg.build_policy()
        falling = [policy.update(e, {"ndcg@10": 1.0 - e / 1000}) for e in range(keys["epochs"])]
        assert not any(d.stop for d in falling) and policy.best_epoch == 0, regime


def test_record_runs_archive_keeps_what_replay_needs(tmp_path: Path) -> None:
    """Archiving a finished run deletes its checkpoints and gzips the sidecars, which read back unchanged."""
    from conftest import load_script

    record_runs = load_script("record_runs")
    write_run(tmp_path, [0, 1, 2])
    before = read_per_user(tmp_path).array
    for name in ("best.pth", "last.pth", "summary.json"):
        (tmp_path / name).write_text("{}")
    assert record_runs.state(tmp_path) == "partial"
    record_runs.archive(tmp_path)
    assert record_runs.state(tmp_path) == "done"
    assert sorted(p.name for p in (tmp_path / "per_user").iterdir()) == ["valid.bin.gz", "valid.json"]
    assert not list(tmp_path.glob("*.pth"))
    np.testing.assert_array_equal(read_per_user(tmp_path).array, before)



def by_user(user_ids: np.ndarray, scale: float) -> np.ndarray:
    """One distinct value per user, a function of the user id alone (exact in float32): row j must hold user_ids[j]'s
    value."""
    return ((np.asarray(user_ids) + 1000 * scale) / 1024).astype(np.float32)


def write_by_user(run: Path, users: np.ndarray, epochs: list[int]) -> None:
    """A finished run whose sidecar holds by_user values in ``users``' order, and a trace with their means."""
    trace = TraceWriter(run / "trace.jsonl")
    trace.header(config={"metric_decimal_place": 4}, policy={}, versions={}, model="GRU4Rec", dataset="x")
    writer = PerUserWriter.create(run, "valid", METRICS)
    for e in epochs:
        vals = {"ndcg@10": by_user(users, 1 + e), "recall@10": by_user(users, 3 + e)}
        writer.append(e, users, vals)
        trace.record(epoch=e, valid={m: round(float(np.mean(v, dtype=np.float64)), 4) for m, v in vals.items()},
                     decision={})
    trace.footer(stop_epoch=epochs[-1], stop_reason="max_epochs", message="", best_epoch=0)


def test_row_j_is_user_ids_j_after_a_write_and_read(tmp_path: Path) -> None:
    """Values written in a known user order read back with row j holding user user_ids[j]'s value, every epoch
    (a reordering of the values with the user ids kept keeps every mean and would pass any averaged check)."""
    users = np.array([42, 7, 19, 3, 88], dtype=np.int64)
    write_by_user(tmp_path, users, [0, 1, 2])
    s = read_per_user(tmp_path, "valid")
    assert s.user_ids.tolist() == [42, 7, 19, 3, 88]
    for i, epoch in enumerate(s.epochs):
        for j, user in enumerate(s.user_ids):
            assert s.values("ndcg@10")[i, j] == (user + 1000 * (1 + epoch)) / 1024, (epoch, j, user)
            assert s.values("recall@10")[i, j] == (user + 1000 * (3 + epoch)) / 1024, (epoch, j, user)
        assert s.for_policy(epoch)["ndcg@10"] == by_user(users, 1 + epoch).tolist()


class _Metric:
    """RecBole's TopkMetric seen from the capture: topk_result(name, [n_rows, max_k] values) averages them."""

    def topk_result(self, metric: str, value: np.ndarray) -> dict[str, float]:
        return {f"{metric}@{k}": float(value[:, k - 1].mean()) for k in (1, 2)}


class _Evaluator:
    """RecBole's Evaluator seen from the capture: each metric's topk_result gets the rows in the batches' order."""

    def __init__(self, rows: dict[str, np.ndarray]) -> None:
        self.metric_class = {name: _Metric() for name in rows}
        self.rows = rows

    def evaluate(self, struct: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, metric in self.metric_class.items():
            out.update(metric.topk_result(name, self.rows[name]))
        return out


class _Collector:
    def eval_batch_collect(self, scores: Any, interaction: Any, positive_u: Any, positive_i: Any) -> None:
        pass


def test_captured_row_j_is_the_user_of_row_j_through_the_sidecar(tmp_path: Path) -> None:
    """RecBole's per-row values, in the order its batches named the users, reach the sidecar with row j = user_ids[j]:
    two batches (users 42, 7 then 19, 3, 88), each user's value a function of its id, read back from the files."""
    import torch

    from rec_es.training.capture import PerUserRecorder

    users = np.array([42, 7, 19, 3, 88], dtype=np.int64)
    rows = {"ndcg": np.stack([by_user(users, 1), by_user(users, 2)], axis=1),
            "recall": np.stack([by_user(users, 3), by_user(users, 4)], axis=1)}
    trainer = type("Trainer", (), {})()
    trainer.config = {"USER_ID_FIELD": "user_id", "metrics": ["NDCG", "Recall"], "topk": [1, 2],
                      "eval_args": {"mode": "full"}}
    trainer.evaluator, trainer.eval_collector = _Evaluator(rows), _Collector()
    recorder = PerUserRecorder(trainer, ["ndcg@2", "recall@1"], ["ndcg@2"])
    recorder.begin(tmp_path, resumed=False, record_test=False)
    trace = TraceWriter(tmp_path / "trace.jsonl")
    trace.header(config={"metric_decimal_place": 4}, policy={}, versions={}, model="GRU4Rec", dataset="x")
    for batch in (users[:2], users[2:]):
        trainer.eval_collector.eval_batch_collect(torch.zeros(len(batch), 3), {"user_id": torch.tensor(batch)},
                                                  None, None)
    result = trainer.evaluator.evaluate({"rec.topk": torch.zeros(len(users), 3)})
    scores = recorder.record("valid", 0)
    trace.record(epoch=0, valid={k: round(v, 4) for k, v in result.items()}, decision={})
    trace.footer(stop_epoch=0, stop_reason="max_epochs", message="", best_epoch=0)

    assert scores is not None and scores.user_ids.tolist() == users.tolist()
    s = read_per_user(tmp_path, "valid")
    assert s.metrics == ("ndcg@2", "recall@1") and s.user_ids.tolist() == users.tolist()
    for j, user in enumerate(s.user_ids):
        assert s.values("ndcg@2")[0, j] == (user + 2000) / 1024, (j, user)
        assert s.values("recall@1")[0, j] == (user + 3000) / 1024, (j, user)


#: the crc32 of each record and the SHA-256 of valid.bin in test_sidecar_bytes_are_the_documented_format
CRCS = [3996589427, 331262942]
SHA256 = "de9b5eedb2954c21bf8b573e29d264b7d9db5e92d311b27d7f3654fe448ac57d"


# --- the sidecar's format, checks and messages, one by one (each guards a mutant mutmut found alive) -----------
def test_sidecar_bytes_are_the_documented_format(tmp_path: Path) -> None:
    """A sidecar written today has these exact bytes (compact UTF-8 JSON index; records with their crc32 of the
    users, metrics, epoch and values): a reader of the next version reads it, so the checksums are format too."""
    import hashlib

    users = [42, 7, 19]
    writer = PerUserWriter.create(tmp_path, "valid", METRICS)
    for e in (0, 2):
        writer.append(e, users, {"ndcg@10": by_user(np.array(users), 1 + e), "recall@10": by_user(np.array(users), 3)})
    index_path, bin_path = paths(tmp_path, "valid")
    assert index_path.read_bytes() == (
        b'{"format":"rec_es.per_user","version":1,"split":"valid","metrics":["ndcg@10","recall@10"],"n_users":3,'
        b'"layout":"epoch <i4 | crc32 <u4 | values <f4[n_metrics][n_users]","record_bytes":32,'
        b'"user_ids":[42,7,19]}\n')
    records = np.frombuffer(bin_path.read_bytes(), dtype=record_dtype(2, 3))
    assert [int(r["crc"]) for r in records] == CRCS
    assert hashlib.sha256(bin_path.read_bytes()).hexdigest() == SHA256
    assert writer.records == 2


def test_means_are_checked_at_the_runs_metric_decimal_place(tmp_path: Path) -> None:
    """With metric_decimal_place 2 the trace's averages are rounded to 2 decimals and still match; a mean 0.6 units
    of the last decimal off is another run's."""
    users = np.array([1, 2, 3, 4], dtype=np.int64)
    vals = {"ndcg@10": np.array([0.1, 0.2, 0.3, 0.5], np.float32), "recall@10": np.array([0.5] * 4, np.float32)}

    def write(run: Path, recorded: float) -> None:
        run.mkdir()
        trace = TraceWriter(run / "trace.jsonl")
        trace.header(config={"metric_decimal_place": 2}, policy={}, versions={}, model="GRU4Rec", dataset="x")
        PerUserWriter.create(run, "valid", METRICS).append(0, users, vals)
        trace.record(epoch=0, valid={"ndcg@10": recorded, "recall@10": 0.5}, decision={})
        trace.footer(stop_epoch=0, stop_reason="max_epochs", message="", best_epoch=0)

    write(tmp_path / "a", 0.28)  # mean 0.275 rounded to 2 decimals
    assert read_per_user(tmp_path / "a").epochs == (0,)
    trace = read_trace(tmp_path / "a")
    trace.header["config"] = {}  # a trace that does not say: RecBole's default, 4 decimals
    with pytest.raises(StateError, match="the per-user mean of ndcg@10 is 0.275000, the trace records 0.28;"):
        read_per_user(tmp_path / "a", trace=trace)
    trace.records[0]["valid"]["ndcg@10"] = 0.2750
    assert read_per_user(tmp_path / "a", trace=trace).epochs == (0,)
    write(tmp_path / "b", 0.269)  # 0.006 off: more than half of 0.01
    with pytest.raises(StateError, match=r"epoch 0: the per-user mean of ndcg@10 is 0\.275000, the trace records "
                                         r"0\.269; these are the per-user scores of another run$"):
        read_per_user(tmp_path / "b")


def _edit_index(run: Path, **changes: Any) -> None:
    index_path, _ = paths(run, "valid")
    index = json.loads(index_path.read_text())
    for key, value in changes.items():
        if value is ...:
            del index[key]
        else:
            index[key] = value
    index_path.write_text(json.dumps(index))


@pytest.mark.parametrize("changes, message", [
    ({"format": "other"}, r"not a rec_es\.per_user version 1 index \(got \('other', 1\)\)$"),
    ({"version": 2}, r"not a rec_es\.per_user version 1 index \(got \('rec_es\.per_user', 2\)\)$"),
    ({"user_ids": ..., "layout": ...}, r"index lacks user_ids, layout$"),
    ({"metrics": "ndcg@10"}, "index fields of the wrong type"),
    ({"metrics": ["ndcg@10", 3]}, "index fields of the wrong type"),
    ({"user_ids": {"7": 0}}, "index fields of the wrong type"),
    ({"user_ids": [7, 3, True, 5]}, "index fields of the wrong type"),
    ({"n_users": "4"}, r"index fields of the wrong type \(metrics: names, user_ids: integers, n_users and "
                       r"record_bytes: integers\)$"),
    ({"record_bytes": 40.0}, "index fields of the wrong type"),
    ({"split": "test"}, r"inconsistent index \(split 'test', n_users 4 for 4 user ids, record_bytes 40, "
                        r"layout 'epoch <i4 \| crc32 <u4 \| values <f4\[n_metrics\]\[n_users\]'\)$"),
    ({"n_users": 5}, "inconsistent index"),
    ({"layout": "epoch <i8"}, "inconsistent index"),
    ({"record_bytes": 41}, "inconsistent index"),
])
def test_a_damaged_index_is_refused_naming_what_is_wrong(tmp_path: Path, changes: dict, message: str) -> None:
    """Every check of the index: format and version, the keys, their types, their consistency with each other."""
    write_run(tmp_path, [0, 1])
    _edit_index(tmp_path, **changes)
    index_path, _ = paths(tmp_path, "valid")
    with pytest.raises(StateError, match=rf"^{index_path}: {message}"):
        read_per_user(tmp_path)


def test_an_index_that_is_not_a_mapping_or_not_utf8_is_refused(tmp_path: Path) -> None:
    """A JSON list names its type; bytes that are not UTF-8 name what the file should be."""
    write_run(tmp_path, [0])
    index_path, _ = paths(tmp_path, "valid")
    index_path.write_text("[1, 2]")
    with pytest.raises(StateError, match=r"not a rec_es\.per_user version 1 index \(got 'list'\)$"):
        read_per_user(tmp_path)
    index_path.write_bytes(b'{"format": "caf\xe9"}')
    with pytest.raises(StateError, match=r"byte 0xe9 is not UTF-8 text; expected a per-user score index \(JSON, "
                                         r"UTF-8\)\. Save the file"):
        read_per_user(tmp_path)


def test_a_flipped_value_byte_fails_the_checksum(tmp_path: Path) -> None:
    """One changed byte in a record's values: that record fails its crc32, named with the whole reason."""
    write_run(tmp_path, [0, 1])
    _, bin_path = paths(tmp_path, "valid")
    data = bytearray(bin_path.read_bytes())
    data[-1] ^= 0x01
    bin_path.write_bytes(bytes(data))
    with pytest.raises(StateError, match=rf"^{bin_path}: record 1 \(epoch 1\) fails its checksum: it was written for "
                                         r"another user order or metric list than the index names, or the file is "
                                         r"damaged$"):
        read_per_user(tmp_path)
    with pytest.raises(StateError, match=rf"^{bin_path}: record 1 \(epoch 1\) fails its checksum"):
        PerUserWriter.resume(tmp_path, "valid", [0, 1])


def test_cut_at_a_record_boundary_reports_no_torn_record(tmp_path: Path) -> None:
    """A sidecar cut after its first record: '1 complete records' and no torn record in the message."""
    write_run(tmp_path, [0, 1])
    _, bin_path = paths(tmp_path, "valid")
    bin_path.write_bytes(bin_path.read_bytes()[:record_dtype(2, 4).itemsize])
    with pytest.raises(StateError, match=rf"^{bin_path}: truncated: 1 complete records, the trace has 2 evaluations$"):
        read_per_user(tmp_path)
    with pytest.raises(StateError, match=rf"^{bin_path}: truncated: 1 complete records, the trace has 2 evaluations$"):
        PerUserWriter.resume(tmp_path, "valid", [0, 1])


def test_missing_records_file_names_its_index(tmp_path: Path) -> None:
    """valid.bin removed (and no .gz): refused naming the file and its index."""
    write_run(tmp_path, [0])
    index_path, bin_path = paths(tmp_path, "valid")
    bin_path.unlink()
    with pytest.raises(StateError, match=rf"^{bin_path}: missing \(its index valid\.json is there\)$"):
        read_per_user(tmp_path)


def test_resume_of_an_archived_sidecar_asks_for_gunzip(tmp_path: Path) -> None:
    """Only valid.bin.gz there: a resume (which appends) asks to gunzip it; with valid.bin beside it, it resumes."""
    import gzip

    write_run(tmp_path, [0, 1])
    _, bin_path = paths(tmp_path, "valid")
    packed = bin_path.with_name("valid.bin.gz")
    packed.write_bytes(gzip.compress(bin_path.read_bytes()))
    w = PerUserWriter.resume(tmp_path, "valid", [0, 1])
    assert w is not None and w.records == 2
    bin_path.unlink()
    with pytest.raises(StateError, match=rf"^{bin_path}: only the archived valid\.bin\.gz is there; a resume appends "
                                         r"to valid\.bin: gunzip it first$"):
        PerUserWriter.resume(tmp_path, "valid", [0, 1])


def test_resume_with_the_records_file_gone_resumes_an_empty_sidecar_only(tmp_path: Path) -> None:
    """No valid.bin at all (an index written before the first record): no epochs kept resumes; kept ones do not."""
    write_run(tmp_path, [0])
    _, bin_path = paths(tmp_path, "valid")
    bin_path.unlink()
    w = PerUserWriter.resume(tmp_path, "valid", [])
    assert w is not None and w.records == 0 and bin_path.read_bytes() == b""
    bin_path.unlink()
    with pytest.raises(StateError, match=rf"^{bin_path}: truncated: 0 complete records, the trace has 1 evaluations$"):
        PerUserWriter.resume(tmp_path, "valid", [0])


def test_scores_read_are_read_only_and_name_their_file(tmp_path: Path) -> None:
    """The array cannot be written; path and split are the file's; an epoch not evaluated is a KeyError saying so."""
    write_run(tmp_path, [0, 2])
    s = read_per_user(tmp_path)
    assert not s.array.flags.writeable
    with pytest.raises(ValueError):
        s.array[0, 0, 0] = 1.0
    assert (s.path, s.split) == (paths(tmp_path, "valid")[1], "valid")
    with pytest.raises(KeyError, match=r"valid\.bin: no evaluation at epoch 1"):
        s.at(1)


def test_for_policy_gives_the_float32_values_the_sidecar_stores() -> None:
    """0.1 as float64 comes out as float32's 0.1 (what a replay from the sidecar passes), not Python's 0.1."""
    from rec_es.rundir.per_user import for_policy

    assert for_policy({"m": np.array([0.1, 0.5])}) == {"m": [float(np.float32(0.1)), 0.5]}
    assert for_policy({"m": np.array([0.1])})["m"][0] != 0.1


def test_paths_refuses_an_unknown_split(tmp_path: Path) -> None:
    """Only valid and test have sidecars."""
    with pytest.raises(ValueError, match=r"^split must be in \('valid', 'test'\) \(got 'train'\)$"):
        paths(tmp_path, "train")


def test_writers_of_both_splits_in_a_new_directory(tmp_path: Path) -> None:
    """A run directory not made yet gets per_user/ with both splits (the second finds the directory there); an empty
    records file left by an index written before its first record does not count as existing scores, one byte does."""
    run = tmp_path / "new" / "run"
    for split in ("valid", "test"):
        w = PerUserWriter.create(run, split, METRICS)
        assert w.records == 0
        w.append(0, USERS, values(0))
        w.append(1, USERS, values(1))
        assert w.records == 2
    _, bin_path = paths(tmp_path / "other", "valid")
    bin_path.parent.mkdir(parents=True)
    bin_path.write_bytes(b"")
    assert PerUserWriter.create(tmp_path / "other", "valid", METRICS).records == 0
    bin_path.write_bytes(b"\x00")
    with pytest.raises(StateError, match=r"valid\.bin: per-user scores already exist here; they are never overwritten"):
        PerUserWriter.create(tmp_path / "other", "valid", METRICS)


def test_appending_another_user_order_is_refused_with_the_first_difference(tmp_path: Path) -> None:
    """An evaluation over the users in another order: StateError naming the row, both users and the likely cause."""
    w = PerUserWriter.create(tmp_path, "valid", METRICS)
    w.append(0, USERS, values(0))
    with pytest.raises(StateError, match=r"epoch 1 scored user 3 in row 0 where the index has user 7 \(users in "
                                         r"another order\); the dataset or its split changed since these scores were "
                                         r"recorded$"):
        w.append(1, USERS[[1, 0, 2, 3]], values(1))
