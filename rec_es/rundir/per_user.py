"""Per-user scores of every evaluation: the ``RUN/per_user/<split>.bin`` sidecar of a trace, its writer and reader.

RecBole computes each top-k metric for every evaluated row (one per user under leave-one-out) before it
averages them; ``EarlyStoppingTrainer`` keeps those rows for the metrics it is asked to (by default the
monitor's). Layout, one pair of files per split (``valid``, and ``test`` with ``record_test``)::

    RUN/per_user/valid.json   index, written once (atomically) before the first record: metrics, user ids, layout
    RUN/per_user/valid.bin    one fixed-size little-endian record per evaluation, appended and fsync'ed:
                              epoch <i4 | crc32 <u4 | values <f4[n_metrics][n_users]

Row ``j`` of every record is the user ``user_ids[j]`` of the index (RecBole's internal ids; the loaders
do not shuffle, so the order is the same at every evaluation, and the writer checks it). The crc32
covers the epoch, the values and the index's user ids and metrics, so a record read under another
index is detected. A record is written before its trace line, so a killed run leaves at most one
record more than its trace and perhaps a torn one: the reader ignores what the trace does not record
(only in an unfinished run), and ``--resume`` cuts the sidecar back to the evaluations the trace keeps.
An archived run may hold ``<split>.bin.gz`` (gzip of the same bytes) instead; the reader takes either.

numpy and the standard library only; nothing is unpickled (``np.frombuffer`` on a fixed dtype).
"""
from __future__ import annotations

import gzip
import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rec_es.policy.errors import StateError
from rec_es.rundir.paths import atomic_write
from rec_es.rundir.textio import TextInputError, read_text

FORMAT = "rec_es.per_user"
VERSION = 1
SPLITS = ("valid", "test")
LAYOUT = "epoch <i4 | crc32 <u4 | values <f4[n_metrics][n_users]"
INDEX_KEYS = ("format", "version", "split", "metrics", "n_users", "user_ids", "layout", "record_bytes")
DEFAULT_DECIMALS = 4  # RecBole's metric_decimal_place: the trace's averages are rounded to it


def paths(run_dir: str | os.PathLike[str], split: str) -> tuple[Path, Path]:
    """``(RUN/per_user/<split>.json, RUN/per_user/<split>.bin)``."""
    if split not in SPLITS:
        raise ValueError(f"split must be in {SPLITS!r} (got {split!r})")
    base = Path(run_dir) / "per_user"
    return base / f"{split}.json", base / f"{split}.bin"


def record_dtype(n_metrics: int, n_users: int) -> np.dtype:
    """The numpy dtype of one record (no padding: 8 + 4 x n_metrics x n_users bytes)."""
    return np.dtype([("epoch", "<i4"), ("crc", "<u4"), ("values", "<f4", (n_metrics, n_users))])


def _users_crc(user_ids: np.ndarray, metrics: Sequence[str]) -> int:
    return zlib.crc32(",".join(metrics).encode(), zlib.crc32(np.ascontiguousarray(user_ids, "<i8").tobytes()))


def _record_crc(seed: int, epoch: int, values: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(values, "<f4").tobytes(), zlib.crc32(np.int32(epoch).tobytes(), seed))


def for_policy(values: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    """Per-user values as ``StoppingPolicy.update(per_user=...)`` takes them: metric -> list of floats.

    The floats are the float32 values the sidecar stores, so a replay from the sidecar passes the same numbers.
    """
    return {m: np.asarray(v, dtype=np.float32).tolist() for m, v in values.items()}


# ----- writing ---------------------------------------------------------------------------------------------
class PerUserWriter:
    """Appends one split's records. ``create`` starts a sidecar, ``resume`` continues one; the index is written
    at the first ``append`` (the user order is known once RecBole has evaluated)."""

    def __init__(self, run_dir: str | os.PathLike[str], split: str, metrics: Sequence[str]) -> None:
        self.index_path, self.path = paths(run_dir, split)
        self.split = split
        self.metrics = tuple(metrics)
        self.user_ids: np.ndarray | None = None
        self.records = 0
        self._seed = 0

    @classmethod
    def create(cls, run_dir: str | os.PathLike[str], split: str, metrics: Sequence[str]) -> "PerUserWriter":
        """A writer for a new run; an existing sidecar is never overwritten (``StateError``)."""
        w = cls(run_dir, split, metrics)
        for p in (w.index_path, w.path):
            if p.exists() and p.stat().st_size > 0:
                raise StateError(f"{p}: per-user scores already exist here; they are never overwritten")
        return w

    @classmethod
    def resume(cls, run_dir: str | os.PathLike[str], split: str, keep_epochs: Sequence[int]) -> "PerUserWriter | None":
        """Continue a sidecar with its recorded metrics, cut back to the records of ``keep_epochs`` (the
        evaluations the resumed trace keeps; a torn or unrecorded tail goes). None when the run recorded
        no sidecar for ``split`` (then none is written: its first evaluations would be missing)."""
        checked = check_resumable(run_dir, split, keep_epochs)
        if checked is None:
            return None
        index, data = checked
        w = cls(run_dir, split, index["metrics"])
        w._start(np.asarray(index["user_ids"], dtype=np.int64))
        atomic_write(w.path, data[:len(keep_epochs) * index["record_bytes"]])  # a new file: never cut in place
        w.records = len(keep_epochs)
        return w

    def _start(self, user_ids: np.ndarray) -> None:
        self.user_ids = user_ids
        self._seed = _users_crc(user_ids, self.metrics)

    def append(self, epoch: int, user_ids: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """Write one evaluation's values (metric -> float32 array over ``user_ids``), fsync'ed."""
        if self.user_ids is None:
            self._start(np.asarray(user_ids, dtype=np.int64))
            self._write_index()
        elif not np.array_equal(self.user_ids, user_ids):
            raise StateError(f"{self.index_path}: epoch {epoch} scored {_first_difference(self.user_ids, user_ids)}; "
                             "the dataset or its split changed since these scores were recorded")
        block = np.stack([np.asarray(values[m], dtype="<f4") for m in self.metrics])
        rec = np.zeros(1, dtype=record_dtype(len(self.metrics), len(self.user_ids)))
        rec["epoch"], rec["values"][0] = epoch, block
        rec["crc"] = _record_crc(self._seed, epoch, block)
        with open(self.path, "ab") as fh:
            fh.write(rec.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        self.records += 1

    def _write_index(self) -> None:
        assert self.user_ids is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        index = {"format": FORMAT, "version": VERSION, "split": self.split, "metrics": list(self.metrics),
                 "n_users": len(self.user_ids), "layout": LAYOUT,
                 "record_bytes": record_dtype(len(self.metrics), len(self.user_ids)).itemsize,
                 "user_ids": self.user_ids.tolist()}
        atomic_write(self.index_path, (json.dumps(index, separators=(",", ":")) + "\n").encode("utf-8"))
        atomic_write(self.path, b"")


def check_resumable(run_dir: str | os.PathLike[str], split: str,
                    keep_epochs: Sequence[int]) -> tuple[dict[str, Any], bytes] | None:
    """(index, bytes of ``<split>.bin``) when one split's sidecar can continue the trace's kept evaluations
    ``keep_epochs``; None when the run recorded none. Writes nothing (``rec_es.training.resume_check`` calls it before a
    resume writes anything); StateError naming the file when it is unreadable, short, or of other epochs."""
    index_path, path = paths(run_dir, split)
    if not index_path.exists():
        return None
    index = _read_index(index_path, split)
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        raise StateError(f"{path}: only the archived {path.name}.gz is there; a resume appends to {path.name}: "
                         f"gunzip it first")
    data = path.read_bytes() if path.exists() else b""
    seed = _users_crc(np.asarray(index["user_ids"], dtype=np.int64), index["metrics"])
    epochs = _epochs(_records(path, data, index, len(keep_epochs)), path, seed)
    if list(epochs) != list(keep_epochs):
        raise StateError(f"{path}: records epochs {[int(e) for e in epochs]}, but the trace keeps evaluations of "
                         f"epochs {list(keep_epochs)}; it does not belong to this trace")
    return index, data


def _first_difference(recorded: np.ndarray, now: np.ndarray) -> str:
    if len(recorded) != len(now):
        return f"{len(now)} rows where the index has {len(recorded)}"
    j = int(np.flatnonzero(recorded != now)[0])
    return f"user {int(now[j])} in row {j} where the index has user {int(recorded[j])} (users in another order)"


# ----- reading ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PerUserScores:
    """One split's per-user scores, aligned with the trace: ``epochs[i]`` is the trace's i-th evaluation.

    ``user_ids``: RecBole's internal id of each row (``dataset.id2token(uid_field, ids)`` gives the tokens);
    ``metrics``: lower-case keys; ``array``: float32 ``[n_evals, n_metrics, n_users]`` (read-only).
    """

    path: Path
    split: str
    epochs: tuple[int, ...]
    user_ids: np.ndarray
    metrics: tuple[str, ...]
    array: np.ndarray

    def values(self, metric: str) -> np.ndarray:
        """``[n_evals, n_users]`` float32 values of ``metric`` (any case)."""
        key = metric.lower()
        if key not in self.metrics:
            raise KeyError(f"{self.path}: no per-user values of {metric!r}; recorded: {', '.join(self.metrics)}")
        return self.array[:, self.metrics.index(key), :]

    def at(self, epoch: int) -> dict[str, np.ndarray]:
        """metric -> ``[n_users]`` values of the evaluation at ``epoch``."""
        if epoch not in self.epochs:
            raise KeyError(f"{self.path}: no evaluation at epoch {epoch}")
        row = self.array[self.epochs.index(epoch)]
        return {m: row[i] for i, m in enumerate(self.metrics)}

    def for_policy(self, epoch: int) -> dict[str, list[float]]:
        """The ``per_user`` argument the live run passed to ``policy.update`` at ``epoch``."""
        return for_policy(self.at(epoch))


def read_per_user(run_dir: str | os.PathLike[str], split: str = "valid", *, trace: Any = None) -> PerUserScores:
    """Read and check ``RUN/per_user/<split>.{json,bin}`` against ``RUN/trace.jsonl`` (or ``trace``, a read Trace).

    Raises ``StateError`` naming the file when the sidecar is missing, not of this format/version, holds fewer
    records than the trace has evaluations (truncated), records other epochs, fails its checksum (another
    user order than the index names, or a damaged file), holds more than the trace in a finished run, or when
    its per-user means are not the trace's metrics (the sidecar of another run).
    """
    from rec_es.rundir.trace import read_trace

    index_path, path = paths(run_dir, split)
    if trace is None:
        trace = read_trace(run_dir)
    if not index_path.is_file():
        raise StateError(f"{index_path}: missing; the run recorded no per-user {split} scores")
    index = _read_index(index_path, split)
    path, data = _read_records_file(path, index_path)
    n = len(trace.records)
    user_ids = np.asarray(index["user_ids"], dtype=np.int64)
    seed = _users_crc(user_ids, index["metrics"])
    records = _records(path, data, index, n)
    if trace.complete and len(data) != n * index["record_bytes"]:
        raise StateError(f"{path}: {len(data)} bytes, but the finished trace has {n} evaluations of "
                         f"{index['record_bytes']} bytes each; the file was changed after the run")
    epochs = _epochs(records, path, seed)
    want = [r["epoch"] for r in trace.records]
    if list(epochs) != want:
        raise StateError(f"{path}: records epochs {[int(e) for e in epochs]}, the trace's evaluations are at {want}")
    array = records["values"].copy()
    array.setflags(write=False)
    scores = PerUserScores(path, split, tuple(int(e) for e in epochs), user_ids, tuple(index["metrics"]), array)
    _check_means(scores, trace, split)
    return scores


def _read_records_file(path: Path, index_path: Path) -> tuple[Path, bytes]:
    """``<split>.bin``, or ``<split>.bin.gz`` (an archived run: gzip of the same bytes)."""
    if path.is_file():
        return path, path.read_bytes()
    packed = path.with_name(path.name + ".gz")
    if packed.is_file():
        try:
            return packed, gzip.decompress(packed.read_bytes())
        except (OSError, EOFError, zlib.error) as exc:
            raise StateError(f"{packed}: not a readable gzip file ({exc})") from exc
    raise StateError(f"{path}: missing (its index {index_path.name} is there)")


def _read_index(index_path: Path, split: str) -> dict[str, Any]:
    try:
        index = json.loads(read_text(index_path, "a per-user score index (JSON, UTF-8)"))
    except (TextInputError, ValueError, RecursionError) as exc:
        raise StateError(f"{index_path}: not a readable JSON index ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("version") != VERSION:
        got = (index.get("format"), index.get("version")) if isinstance(index, dict) else type(index).__name__
        raise StateError(f"{index_path}: not a {FORMAT} version {VERSION} index (got {got!r})")
    missing = [k for k in INDEX_KEYS if k not in index]
    if missing:
        raise StateError(f"{index_path}: index lacks {', '.join(missing)}")
    metrics, users = index["metrics"], index["user_ids"]
    if not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)
            and isinstance(users, list) and all(isinstance(u, int) and not isinstance(u, bool) for u in users)
            and all(isinstance(index[k], int) for k in ("n_users", "record_bytes"))):
        raise StateError(f"{index_path}: index fields of the wrong type (metrics: names, user_ids: integers, "
                         "n_users and record_bytes: integers)")
    n_metrics, n_users = len(index["metrics"]), len(index["user_ids"])
    if index["split"] != split or index["n_users"] != n_users or index["layout"] != LAYOUT \
            or index["record_bytes"] != record_dtype(n_metrics, n_users).itemsize:
        raise StateError(f"{index_path}: inconsistent index (split {index['split']!r}, n_users {index['n_users']} for "
                         f"{n_users} user ids, record_bytes {index['record_bytes']}, layout {index['layout']!r})")
    return index


def _records(path: Path, data: bytes, index: Mapping[str, Any], need: int) -> np.ndarray:
    """The first ``need`` complete records of ``data``; StateError if there are fewer (truncated)."""
    size = index["record_bytes"]
    have, torn = divmod(len(data), size)
    if have < need:
        tail = f" and a torn record of {torn} bytes" if torn else ""
        raise StateError(f"{path}: truncated: {have} complete records{tail}, the trace has {need} evaluations")
    dtype = record_dtype(len(index["metrics"]), len(index["user_ids"]))
    return np.frombuffer(data, dtype=dtype, count=need)


def _epochs(records: np.ndarray, path: Path, seed: int) -> np.ndarray:
    for i, rec in enumerate(records):
        if int(rec["crc"]) != _record_crc(seed, int(rec["epoch"]), rec["values"]):
            raise StateError(f"{path}: record {i} (epoch {int(rec['epoch'])}) fails its checksum: it was written "
                             "for another user order or metric list than the index names, or the file is damaged")
    return records["epoch"].astype(np.int64)


def _check_means(scores: PerUserScores, trace: Any, split: str) -> None:
    """Each evaluation's per-user mean must be the trace's average (rounded to metric_decimal_place)."""
    decimals = (trace.header.get("config") or {}).get("metric_decimal_place", DEFAULT_DECIMALS)
    tol = 0.5 * 10.0 ** -int(decimals) + 1e-6
    for m_i, metric in enumerate(scores.metrics):
        means = scores.array[:, m_i, :].astype(np.float64).mean(axis=1)
        for i, (r, mean) in enumerate(zip(trace.records, means)):
            recorded = {k.lower(): v for k, v in (r.get(split) or {}).items()}.get(metric)
            if recorded is not None and math.isfinite(mean) and abs(mean - recorded) > tol:
                raise StateError(f"{scores.path}: epoch {r['epoch']}: the per-user mean of {metric} is {mean:.6f}, the "
                                 f"trace records {recorded}; these are the per-user scores of another run")
