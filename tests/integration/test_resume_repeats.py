"""A resumed run continues exactly where its checkpoint left it: in one process, a finished 3-epoch run resumed
with ``--set epochs=6`` repeats a 6-epoch run trained without a break (both stop at epoch 4, after the resume
point): trace, per-user sidecars, summary, best.pth, under a policy with state in every part a resume restores (EMA smoothing, patience, an LR schedule with warmup and
reduce-on-plateau, a noise margin from per-user scores) and ``--record-test``.

Both runs are trained once per module, or copied from a mutation run's cache (``conftest.trained_once``: a
mutant of the resume code pays one resume, not three trainings); the tests read one resumed copy.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from rec_es import read_per_user
from rec_es.cli.run import main
from rec_es.rundir.trace import read_trace

from conftest import one_thread_in, tiny_recbole_config, trained_once

QUIET = ["--no-progress", "--quiet"]
TIMING = ("elapsed_seconds", "train_seconds", "eval_seconds", "test_seconds")
POLICY = {
    "early_stopping": {"monitor": "ndcg@10", "patience": 4, "smoothing": "ema", "ema_alpha": 0.5,
                       "min_delta": "auto"},
    "lr_schedule": {"warmup_epochs": 2, "reduce_on_plateau": {"factor": 0.5, "patience": 1, "max_reductions": 2}},
}


def _train(root: Path, name: str, epochs: int) -> None:
    (root / "tiny.yaml").write_text(yaml.safe_dump(tiny_recbole_config(epochs=epochs)))
    (root / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    assert main(["--config", "tiny.yaml", "policy.yaml", "--record-test", "--output-dir", name, *QUIET]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``short`` (3 epochs, finished) and ``full`` (6 epochs, the same seed) under one root."""
    root = tmp_path_factory.mktemp("repeats")

    def train() -> None:
        _train(root, "short", 3)
        _train(root, "full", 6)

    trained_once("resume_repeats", root, train)
    return root


@pytest.fixture(scope="module")
def resumed(runs: Path) -> Path:
    """A copy of the short run, resumed in this process to 6 epochs (once for the module; tests only read it)."""
    run = Path(shutil.copytree(runs / "short", runs / "resumed", symlinks=True))
    with one_thread_in(runs):
        assert main(["--resume", str(run), "--set", "epochs=6", *QUIET]) == 0
    return run


def _records(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_trace(run).records]


def test_the_resumed_run_repeats_the_uninterrupted_one(runs: Path, resumed: Path) -> None:
    """Every evaluation record (metrics, decision, learning rate, noise margin) and the summary's outcome are the
    uninterrupted run's; the trace's header names the one change (the budget) and the footer counts every epoch."""
    full = runs / "full"
    expected = _records(full)
    # the policy's stop (epoch 4) falls after the resume point (epoch 3): the resumed part decides on its own
    assert [r["epoch"] for r in expected] == [0, 1, 2, 3, 4] and expected[-1]["decision"]["stop"]
    assert _records(resumed) == expected
    trace = read_trace(resumed)
    assert trace.complete and trace.footer is not None and trace.footer["epochs_trained"] == 5
    change = trace.header["resumed_with_changes"]  # the budget changed, the policy did not (its state was loaded)
    assert [(c["from_epoch"], c["previous_epochs"]) for c in change] == [(3, 3)]
    assert change[0]["previous_policy"] == trace.header["policy"]
    a, b = (json.loads((r / "summary.json").read_text()) for r in (full, resumed))
    for key in ("stop_epoch", "best_epoch", "stop_reason", "message", "best_valid_result", "test_result",
                "epochs_trained"):
        assert a[key] == b[key], key


def test_the_resumed_run_restores_the_same_best_weights(runs: Path, resumed: Path) -> None:
    full = torch.load(runs / "full" / "best.pth", weights_only=True)
    again = torch.load(resumed / "best.pth", weights_only=True)
    assert full["epoch"] == again["epoch"]
    assert full["state_dict"].keys() == again["state_dict"].keys()
    for name, tensor in full["state_dict"].items():
        assert torch.equal(tensor, again["state_dict"][name]), name


def test_the_resumed_sidecars_hold_the_uninterrupted_scores(runs: Path, resumed: Path) -> None:
    for split in ("valid", "test"):
        a, b = read_per_user(runs / "full", split), read_per_user(resumed, split)
        assert b.epochs == a.epochs == tuple(range(5))
        assert np.array_equal(a.user_ids, b.user_ids)
        np.testing.assert_array_equal(a.array, b.array)


def test_the_resumed_run_writes_the_new_budget_into_config_yaml(resumed: Path) -> None:
    assert yaml.safe_load((resumed / "config.yaml").read_text())["epochs"] == 6
