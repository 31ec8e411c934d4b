"""The model's own ranked lists: the ``RUN/ranked/<split>.bin`` sidecar and the label-free signals read from them.

At every evaluation RecBole ranks every item for every validation user; ``rec-es run --ranked K`` keeps each
user's top ``K`` item ids (``EarlyStoppingTrainer(ranked_k=K)``). Layout, one pair of files per split::

    RUN/ranked/valid.json   index, written once before the first record: format, version, k, n_items, user_ids
    RUN/ranked/valid.bin    one fixed-size little-endian record per evaluation, appended and fsync'ed:
                            epoch <i4 | crc32 <u4 | items <i4[n_users][k]

Row ``j`` is the user ``user_ids[j]`` (RecBole's internal ids, the per-user sidecar's order), its ``k`` items best
first. The crc32 covers the epoch and the items. A record is written before its trace line; the reader keeps the
records of the trace's evaluations (a killed run may leave one more), ``--resume`` cuts the file back to them.
An archived run may hold ``<split>.bin.gz`` (gzip of the same bytes); the reader takes either.
Size: ``8 + 4 k n_users`` bytes per evaluation (38 KB for ml-100k's 943 users at k = 10).

``signals(previous, current, n_items)`` is what the trace records under ``"ranked"`` at each evaluation:
``churn`` (1 - mean Jaccard of each user's list with the previous evaluation's; None at the first),
``coverage`` (distinct items in all lists / catalogue size), ``overlap`` (mean share of the list two users
share, over all pairs) and ``gini`` (Gini coefficient of how often each catalogue item is listed).

numpy and the standard library only; nothing is unpickled.
"""
from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rec_es.policy.errors import StateError
from rec_es.rundir.paths import atomic_write
from rec_es.rundir.textio import TextInputError, read_text

FORMAT = "rec_es.ranked"
VERSION = 1
LAYOUT = "epoch <i4 | crc32 <u4 | items <i4[n_users][k]"


def paths(run_dir: str | os.PathLike[str], split: str = "valid") -> tuple[Path, Path]:
    """``(RUN/ranked/<split>.json, RUN/ranked/<split>.bin)``."""
    base = Path(run_dir) / "ranked"
    return base / f"{split}.json", base / f"{split}.bin"


def record_dtype(n_users: int, k: int) -> np.dtype:
    """One record: ``8 + 4 k n_users`` bytes."""
    return np.dtype([("epoch", "<i4"), ("crc", "<u4"), ("items", "<i4", (n_users, k))])


def _crc(epoch: int, items: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(items, "<i4").tobytes(), zlib.crc32(np.int32(epoch).tobytes()))


def signals(previous: np.ndarray | None, current: np.ndarray, n_items: int) -> dict[str, float | None]:
    """The label-free signals of one evaluation's lists ``current`` (``[n_users, k]`` item ids).

    ``previous``: the last evaluation's lists of the same users (None at the first: ``churn`` is None).
    ``n_items``: the catalogue size (RecBole's ``item_num``, padding id 0 included). Example::

        >>> signals(np.array([[1, 2]]), np.array([[2, 3]]), 4)["churn"]
        0.6666666666666667
    """
    n_users, k = current.shape
    counts = np.bincount(current.ravel(), minlength=n_items).astype(np.float64)
    pairs = n_users * (n_users - 1)
    overlap = float((counts * (counts - 1)).sum() / (pairs * k)) if pairs else None
    churn = None
    if previous is not None:
        shared = (current[:, :, None] == previous[:, None, :]).any(axis=2).sum(axis=1)
        churn = float(1.0 - (shared / (2 * k - shared)).mean())
    return {"churn": churn, "coverage": float((counts > 0).sum() / n_items), "overlap": overlap,
            "gini": _gini(counts)}


def _gini(counts: np.ndarray) -> float:
    """Gini coefficient of ``counts`` (0: every item listed equally often; towards 1: a few items everywhere)."""
    x = np.sort(counts)
    total = x.sum()
    if total == 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * total))


class RankedWriter:
    """Appends one split's top-k lists; ``create`` starts a sidecar, ``resume`` continues one."""

    def __init__(self, run_dir: str | os.PathLike[str], split: str, k: int, n_items: int) -> None:
        self.index_path, self.path = paths(run_dir, split)
        self.split, self.k, self.n_items = split, int(k), int(n_items)
        self.user_ids: np.ndarray | None = None
        self.previous: np.ndarray | None = None

    @classmethod
    def create(cls, run_dir: str | os.PathLike[str], split: str, k: int, n_items: int) -> "RankedWriter":
        """A writer for a new run; existing lists are never overwritten (``StateError``)."""
        w = cls(run_dir, split, k, n_items)
        for p in (w.index_path, w.path):
            if p.exists() and p.stat().st_size > 0:
                raise StateError(f"{p}: ranked lists already exist here; they are never overwritten")
        return w

    @classmethod
    def resume(cls, run_dir: str | os.PathLike[str], split: str, keep_epochs: Sequence[int]) -> "RankedWriter | None":
        """Continue a sidecar cut back to the records of ``keep_epochs``; None when the run recorded none."""
        index_path, path = paths(run_dir, split)
        if not index_path.exists():
            return None
        lists = _read(index_path, path, keep_epochs)
        w = cls(run_dir, split, lists.k, lists.n_items)
        w.user_ids = lists.user_ids
        w.previous = lists.items[-1] if len(lists.epochs) else None
        size = record_dtype(len(lists.user_ids), lists.k).itemsize
        atomic_write(path, path.read_bytes()[:len(keep_epochs) * size])
        return w

    def append(self, epoch: int, user_ids: np.ndarray, items: np.ndarray) -> dict[str, float | None]:
        """Write one evaluation's lists (``[n_users, k]`` over ``user_ids``), fsync'ed; return its ``signals``."""
        items = np.asarray(items, dtype="<i4")
        if self.user_ids is None:
            self.user_ids = np.asarray(user_ids, dtype=np.int64)
            self._write_index()
        elif not np.array_equal(self.user_ids, user_ids):
            raise StateError(f"{self.index_path}: epoch {epoch} ranked other users than the index names; the dataset "
                             "or its split changed since these lists were recorded")
        rec = np.zeros(1, dtype=record_dtype(len(self.user_ids), self.k))
        rec["epoch"], rec["items"][0], rec["crc"] = epoch, items, _crc(epoch, items)
        with open(self.path, "ab") as fh:
            fh.write(rec.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        out = signals(self.previous, items, self.n_items)
        self.previous = items
        return out

    def _write_index(self) -> None:
        assert self.user_ids is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        index = {"format": FORMAT, "version": VERSION, "split": self.split, "k": self.k, "n_items": self.n_items,
                 "layout": LAYOUT, "user_ids": self.user_ids.tolist()}
        atomic_write(self.index_path, (json.dumps(index, separators=(",", ":")) + "\n").encode("utf-8"))
        atomic_write(self.path, b"")


@dataclass(frozen=True, eq=False)
class RankedLists:
    """One split's lists aligned with the trace: ``items[i]`` (``[n_users, k]`` int32) is evaluation ``epochs[i]``."""

    path: Path
    epochs: tuple[int, ...]
    user_ids: np.ndarray
    k: int
    n_items: int
    items: np.ndarray


def read_ranked(run_dir: str | os.PathLike[str], split: str = "valid", *, trace: Any = None) -> RankedLists:
    """Read ``RUN/ranked/<split>.{json,bin}`` for the evaluations of ``RUN/trace.jsonl`` (or ``trace``).

    ``StateError`` naming the file when it is missing, of another format, truncated, of other epochs, or fails its
    checksum.
    """
    from rec_es.rundir.trace import read_trace

    if trace is None:
        trace = read_trace(run_dir)
    index_path, path = paths(run_dir, split)
    if not index_path.is_file():
        raise StateError(f"{index_path}: missing; the run kept no ranked lists (rec-es run --ranked K keeps them)")
    return _read(index_path, path, [r["epoch"] for r in trace.records])


def _read(index_path: Path, path: Path, epochs: Sequence[int]) -> RankedLists:
    try:
        index = json.loads(read_text(index_path, "a ranked-list index (JSON, UTF-8)"))
    except (TextInputError, ValueError, RecursionError) as exc:
        raise StateError(f"{index_path}: not a readable JSON index ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("version") != VERSION \
            or index.get("layout") != LAYOUT or not isinstance(index.get("k"), int) \
            or not isinstance(index.get("n_items"), int) or not isinstance(index.get("user_ids"), list):
        raise StateError(f"{index_path}: not a {FORMAT} version {VERSION} index")
    user_ids = np.asarray(index["user_ids"], dtype=np.int64)
    dtype = record_dtype(len(user_ids), index["k"])
    packed = path.with_name(path.name + ".gz")
    if path.is_file():
        data = path.read_bytes()
    elif packed.is_file():  # an archived run: gzip of the same bytes
        try:
            data = gzip.decompress(packed.read_bytes())
        except (OSError, EOFError, zlib.error) as exc:
            raise StateError(f"{packed}: not a readable gzip file ({exc})") from exc
    else:
        data = b""
    if len(data) < len(epochs) * dtype.itemsize:
        raise StateError(f"{path}: truncated: {len(data) // dtype.itemsize} complete records, the trace has "
                         f"{len(epochs)} evaluations")
    records = np.frombuffer(data, dtype=dtype, count=len(epochs))
    for i, rec in enumerate(records):
        if int(rec["crc"]) != _crc(int(rec["epoch"]), rec["items"]):
            raise StateError(f"{path}: record {i} (epoch {int(rec['epoch'])}) fails its checksum; the file is damaged")
    if [int(e) for e in records["epoch"]] != list(epochs):
        raise StateError(f"{path}: records epochs {[int(e) for e in records['epoch']]}, the trace's evaluations are "
                         f"at {list(epochs)}")
    return RankedLists(path, tuple(int(e) for e in records["epoch"]), user_ids, index["k"], index["n_items"],
                       records["items"].copy())
