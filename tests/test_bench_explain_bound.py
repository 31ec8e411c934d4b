"""scripts/bench_explain_bound.py: the bound on what any verdict from a log's evidence reaches, leave one regime
out."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]


def test_bound_is_the_widest_band_with_enough_right_calls() -> None:
    """Probabilities that separate the truth give every stop a call; probabilities that know nothing of it give
    almost none at >= 90 % right, however the band is chosen."""
    bound = load_script("bench_explain_bound")
    y = np.array([True] * 60 + [False] * 40)
    assert bound.bound(bound.operating_points(np.where(y, 0.8, 0.2), y)) == 1.0
    assert bound.everything_called(np.where(y, 0.8, 0.2), y) == 1.0
    noise = np.random.default_rng(0).random(len(y))
    assert bound.bound(bound.operating_points(noise, y)) < 0.3
    # one wrong call in ten: 90 % right on the whole, so the widest band is all of it
    p = np.where(y, 0.8, 0.2)
    p[:4] = 0.3  # four premature stops called not premature: 96 of 100 right
    assert bound.bound(bound.operating_points(p, y)) == 1.0
    # every call right: the four at 0.3 left undecided (lo = 0.3 calls only p < 0.3 "not premature")
    assert bound.bound(bound.operating_points(p, y), calls_right=1.0) == pytest.approx(0.96)


def test_left_out_models_never_see_the_regime_they_predict() -> None:
    """Each regime's truth is one value, and a feature names the regime: fitted on every regime the classifier
    is perfect (it memorises them), left out it can only guess, so its bound collapses. The bound measures
    what carries over to a regime not recorded, not what can be memorised."""
    bound = load_script("bench_explain_bound")
    regime = np.repeat([f"r{i}" for i in range(8)], 20)
    y = np.repeat([i % 2 == 0 for i in range(8)], 20)
    x = np.repeat(np.arange(8, dtype=float), 20)[:, None] + np.random.default_rng(1).normal(0, 0.01, (160, 1))
    make = bound.classifiers()["gradient boosting (100 trees, depth 2)"]
    inside = make().fit(x, y).predict_proba(x)[:, 1]
    assert bound.bound(bound.operating_points(inside, y)) == 1.0
    p = bound.left_out(make, x, y, regime)
    assert bound.bound(bound.operating_points(p, y)) < 0.5
    # a feature that carries the truth across regimes survives leaving them out
    x2 = np.hstack([x, y[:, None] + np.random.default_rng(2).normal(0, 0.1, (160, 1))])
    assert bound.bound(bound.operating_points(bound.left_out(make, x2, y, regime), y)) == 1.0


def test_features_read_only_what_the_cut_log_shows() -> None:
    """The features come from the trace up to the stop: records after it change nothing; an early stop has no
    curve summaries (the sentinel); the loss ratio is the second half's fall over the first half's."""
    bound = load_script("bench_explain_bound")
    scores = [0.1, 0.2, 0.25, 0.3, 0.31, 0.32, 0.33, 0.33, 0.34, 0.34, 0.35, 0.35, 0.2, 0.1]
    records = [{"epoch": e, "train_loss": 10.0 / (1 + e), "valid": {"ndcg@10": v, "recall@10": 2 * v}}
               for e, v in enumerate(scores)]
    row = {"stop_epoch": "10", "valid_metric": "ndcg@10", "trend_z": "1.5", "headroom": "0.2",
           "window_loss_fall": "0.03", "expected_gain": "0.01", "gain_lo": "-0.01", "gain_hi": "0.02", "budget": "20",
           "stopping_step": "3", "restored_epoch": "10"}
    got = bound.features(row, records)
    assert len(got) == 13 + 2 * bound.SHAPE
    assert got[:8] == pytest.approx([1.5, 0.2, 0.03, 0.01, -0.01, 0.02, 11 / 20, np.log(3)])
    assert got == bound.features(row, records[:11])  # what comes after the stop is not read
    loss = [10.0 / (1 + e) for e in range(11)]
    assert got[8] == pytest.approx((loss[5] - loss[10]) / (loss[0] - loss[5]))
    assert got[10] == pytest.approx(1.0)  # restored at the stop
    early = bound.features({**row, "stop_epoch": "4", "trend_z": "", "restored_epoch": "3"}, records)
    assert early[0] == bound.MISSING and early[8:13] == [bound.MISSING] * 5


def test_a_case_without_its_run_is_refused_by_name(tmp_path: Path) -> None:
    bound = load_script("bench_explain_bound")
    cases = tmp_path / "cases.csv"
    with open(REPO / "docs" / "results" / "bench_explain" / "cases.csv", encoding="utf-8") as fh:
        cases.write_text("".join(fh.readlines()[:3]), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"cases\.csv: no trace\.jsonl under .* for caser-lr0\.001/seed2020"):
        bound.load(cases, [tmp_path])


def test_committed_bound_states_the_shipped_rules_as_cases_csv_has_them() -> None:
    """The shipped rules' row of the committed bound.md is what the committed cases.csv gives."""
    bound = load_script("bench_explain_bound")
    with open(REPO / "docs" / "results" / "bench_explain" / "cases.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["truth"] in ("premature", "not premature")]
    cov, right = bound.rule_point([r["call"] for r in rows], [r["truth"] for r in rows])
    text = (REPO / "docs" / "results" / "bench_explain" / "bound.md").read_text(encoding="utf-8")
    assert f"{len(rows)} scored cut logs" in text
    row = re.search(r"^\| the shipped rules \|.*$", text, re.M)
    assert row and row.group(0).endswith(f"| {cov:.2f} (calls right {right:.2f}) |")
