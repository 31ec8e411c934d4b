"""explain's offer of a probe (its last line, its cost from the run's own epoch times) and the probe length it
advises, which must be the benchmark's (docs/results/bench_probe/summary.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rec_es.explain import explain, load_run, render_text
from rec_es.explain.probe import ADVISED_EPOCHS, offer_probe

from conftest import REPO, small_trace


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A patience-1 run that stopped at epoch 1 (2 epochs in 1.0 s), with a last.pth beside its trace."""
    run = tmp_path / "run"
    small_trace(run / "trace.jsonl")
    (run / "last.pth").write_bytes(b"")
    return run


@pytest.mark.parametrize("premature, offered", [
    ({"call": "cannot_tell"}, True),
    ({"call": "premature", "confidence": 0.71}, True),
    ({"call": "premature", "confidence": 0.9}, False),   # 90 % or more: no offer
    ({"call": "not_premature", "confidence": 0.78}, False),
])
def test_offer_follows_the_verdict(stopped: Path, premature: dict, offered: bool) -> None:
    """A probe is offered when the verdict cannot tell or calls the stop premature under 90 % confidence, with the
    advised N and its cost: N x the run's own seconds per epoch (wall_seconds / epochs_trained)."""
    offer = offer_probe(load_run(stopped), premature)
    assert (offer is not None) is offered
    if offer:
        assert offer["epochs"] == ADVISED_EPOCHS
        assert offer["seconds"] == pytest.approx(ADVISED_EPOCHS * 1.0 / 2)
        assert f"rec-es explain {stopped} --probe {ADVISED_EPOCHS}" in offer["sentence"]


def test_no_offer_without_a_checkpoint(stopped: Path) -> None:
    """A run that cannot be continued (no last.pth: an archived trace) is not offered a probe."""
    (stopped / "last.pth").unlink()
    assert offer_probe(load_run(stopped), {"call": "cannot_tell"}) is None


def test_offer_is_the_last_line(stopped: Path) -> None:
    """The rendered report ends with the offer (when there is one and no probe ran)."""
    report = explain(stopped)
    report["probe_offer"] = offer_probe(load_run(stopped), {"call": "cannot_tell"})
    assert render_text(report).splitlines()[-1] == report["probe_offer"]["sentence"]


def test_advised_probe_length_is_the_benchmarks() -> None:
    """ADVISED_EPOCHS is the smallest N the committed benchmark found to meet issue 33's goal, or, when none does,
    the N it advises (docs/results/bench_probe/summary.json)."""
    summary = json.loads((REPO / "docs" / "results" / "bench_probe" / "summary.json").read_text())
    assert ADVISED_EPOCHS == summary["advised"]["advice"]
