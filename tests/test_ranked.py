"""The ranked-list sidecar (rec_es.rundir.ranked): signals at hand-checked values, append/read/resume, damage."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rec_es.policy.errors import StateError
from rec_es.rundir.ranked import RankedWriter, paths, read_ranked, signals

from conftest import small_trace

LISTS = [np.array([[1, 2], [3, 4], [1, 3]]), np.array([[2, 1], [4, 5], [6, 7]]), np.array([[2, 5], [4, 5], [6, 7]])]


def test_signals_at_hand_computed_values() -> None:
    """Churn is 1 - mean Jaccard; coverage, overlap and gini read the item counts of one evaluation."""
    cur, prev = LISTS[1], LISTS[0]
    s = signals(prev, cur, 8)
    # Jaccard per user: {1,2}/{1,2} = 1; {3,4}/{4,5} = 1/3; {1,3}/{6,7} = 0
    assert s["churn"] == pytest.approx(1 - (1 + 1 / 3 + 0) / 3)
    assert s["coverage"] == pytest.approx(6 / 8)  # items 1,2,4,5,6,7 of 8 ids
    # counts: 1 each for six items: no pair of users shares an item
    assert s["overlap"] == 0.0
    same = signals(None, np.array([[1, 2], [1, 2]]), 4)
    assert same["churn"] is None and same["overlap"] == 1.0 and same["coverage"] == 0.5
    # counts [0, 2, 2, 0]: gini = sum((2i - n - 1) x_(i)) / (n sum x) with x sorted = (0, 0, 2, 2)
    assert same["gini"] == pytest.approx(((2 * 3 - 5) * 2 + (2 * 4 - 5) * 2) / (4 * 4))
    assert signals(None, np.array([[1]]), 3)["overlap"] is None  # one user: no pairs


def _write(run: Path, n: int) -> RankedWriter:
    w = RankedWriter.create(run, "valid", 2, 8)
    for e in range(n):
        w.append(e, np.array([10, 11, 12]), LISTS[e])
    return w


def _trace(run: Path, epochs: list[int]) -> None:
    small_trace(run / "trace.jsonl", scores=tuple(0.1 for _ in epochs), patience=len(epochs) + 1)


def test_append_read_and_resume_cut_back(tmp_path: Path) -> None:
    """What is appended reads back for the trace's evaluations; resume keeps the kept ones and the last lists."""
    _write(tmp_path, 3)
    _trace(tmp_path, [0, 1])  # a killed run: one record more than the trace
    got = read_ranked(tmp_path)
    assert got.epochs == (0, 1) and got.k == 2 and got.n_items == 8 and got.user_ids.tolist() == [10, 11, 12]
    assert np.array_equal(got.items, np.stack(LISTS[:2]))
    w = RankedWriter.resume(tmp_path, "valid", [0, 1])
    assert w is not None and np.array_equal(w.previous, LISTS[1])
    assert paths(tmp_path)[1].stat().st_size == 2 * (8 + 4 * 3 * 2)
    assert w.append(2, np.array([10, 11, 12]), LISTS[2])["churn"] == pytest.approx(signals(LISTS[1], LISTS[2], 8)["churn"])
    with pytest.raises(StateError, match="other users"):
        w.append(3, np.array([10, 12, 11]), LISTS[2])
    assert RankedWriter.resume(tmp_path / "none", "valid", []) is None
    with pytest.raises(StateError, match="never overwritten"):
        RankedWriter.create(tmp_path, "valid", 2, 8)


def test_damage_is_named(tmp_path: Path) -> None:
    """A flipped byte fails the checksum, a short file is truncated, another format is refused: each names the file."""
    _write(tmp_path, 2)
    _trace(tmp_path, [0, 1])
    index, data = paths(tmp_path)
    raw = bytearray(data.read_bytes())
    raw[12] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(StateError, match=r"valid\.bin: record 0 \(epoch 0\) fails its checksum"):
        read_ranked(tmp_path)
    data.write_bytes(bytes(raw[:20]))
    with pytest.raises(StateError, match=r"valid\.bin: truncated: 0 complete records"):
        read_ranked(tmp_path)
    index.write_text(json.dumps({"format": "other"}))
    with pytest.raises(StateError, match=r"valid\.json: not a rec_es\.ranked version 1 index"):
        read_ranked(tmp_path)
