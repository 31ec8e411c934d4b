"""`rec-es explain RUN --probe N` end to end on datasets/ml-100k-tiny: the probe continues a stopped run into a new
directory and equals the replay of the run's recorded future (deterministic resume); the original run's files stay
byte-identical; bad input is refused before any training, exit 2, nothing written."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rec_es.cli.explain import main as explain_main
from rec_es.cli.run import main as run_main
from rec_es.explain.probe import measure_probe
from rec_es.explain.probe_stats import probe_call
from rec_es.rundir.per_user import read_per_user
from rec_es.rundir.trace import read_trace

from conftest import one_thread_in, tiny_recbole_config

#: the stopped run trains epochs 0-2 (early_stopping.max_epochs: 3), the probe 2 more, the full recording 5
STOP, N, FULL = 2, 2, 5
TIMING = ("elapsed_seconds", "train_seconds", "eval_seconds", "test_seconds")


def tree(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` (relative path -> sha256, "" for a directory): what 'nothing
    written' and 'byte-identical' compare."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run stopped by its policy at epoch 2 (``--record-test``), its probe of 2 epochs through the command line
    (``--json --plot``), and the full recording of the same config with stopping disabled to epoch 4: the future
    the probe must reproduce. Hashes of the stopped run before and after."""
    root = tmp_path_factory.mktemp("probe")
    with one_thread_in(root):
        for name, policy in (("stopped", {"max_epochs": STOP + 1, "patience": 100}),
                             ("full", {"enabled": False})):
            (root / f"{name}.yaml").write_text(yaml.safe_dump({**tiny_recbole_config(epochs=FULL),
                                                               "early_stopping": policy}))
            assert run_main(["--config", f"{name}.yaml", "--output-dir", name, "--record-test",
                             "--no-progress", "--quiet"]) == 0
        before = tree(root / "stopped")
        out = io.StringIO()
        modes = {p: p.stat().st_mode for p in [root / "stopped", *(root / "stopped").rglob("*")]}
        for p in modes:  # the run is only read: a read-only run directory can be probed
            p.chmod(modes[p] & ~0o222)
        try:
            with contextlib.redirect_stdout(out):
                status = explain_main(["stopped", "--probe", str(N), "--json", "--plot", "probe.png"])
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
    return {"root": root, "status": status, "report": json.loads(out.getvalue()), "before": before,
            "after": tree(root / "stopped")}


def test_probe_leaves_the_run_byte_identical(probed: dict[str, Any]) -> None:
    """Every file of the probed (read-only) run has the same bytes afterwards, and no file was added to it."""
    assert probed["status"] == 0
    assert probed["after"] == probed["before"]


def test_probe_equals_the_recorded_future(probed: dict[str, Any]) -> None:
    """The probe's evaluations (valid and test metrics, training loss, LR) and its per-user scores are the full
    recording's at the same epochs, and its measured verdict is the replay of that recorded future
    (``measure_probe`` on the full run, as scripts/bench_probe.py scores it)."""
    root = probed["root"]
    probe_dir = root / f"stopped-probe{N}"
    probe, full = read_trace(probe_dir), read_trace(root / "full")
    keep = lambda r: {k: v for k, v in r.items() if k not in (*TIMING, "decision")}  # noqa: E731
    assert [keep(r) for r in probe.records] == [keep(r) for r in full.records[:STOP + 1 + N]]
    for split in ("valid", "test"):
        got, want = read_per_user(probe_dir, split), read_per_user(root / "full", split)
        assert got.epochs == want.epochs[:STOP + 1 + N]
        assert np.array_equal(got.array, want.array[:STOP + 1 + N])
    report = probed["report"]["probe"]
    replayed = measure_probe(read_per_user(root / "full", "valid"), (("ndcg@10", 1.0),), "max",
                             probed["report"]["stop"]["best_epoch"], STOP, N)
    assert replayed is not None
    assert report["test"] == json.loads(json.dumps(replayed.to_dict()))
    assert report["call"] == probe_call(replayed)


def test_probe_json_and_plot(probed: dict[str, Any]) -> None:
    """--json's "probe": the verdict, epochs, best epoch, gain, p-value and interval, seconds, its run directory;
    the original policy replayed on the extended curve stops where it did; the plot is written; the probe
    directory is a run directory explain reads (its table replays the original policy)."""
    probe = probed["report"]["probe"]
    root = probed["root"]
    assert probe["verdict"] in ("premature", "not premature", "cannot tell")
    assert probe["epochs"] == N and probe["from_epoch"] == STOP + 1
    assert STOP < probe["best_epoch"] <= STOP + N
    assert probe["interval"][0] <= probe["gain"] <= probe["interval"][1]
    assert 0 < probe["p_value"] <= 1 and probe["seconds"] > 0
    assert Path(probe["run_dir"]) == Path(f"stopped-probe{N}")
    own = next(r for r in probe["replay"] if r["policy"].startswith("original ("))
    assert (own["status"], own["stop_epoch"]) == ("stopped", STOP)
    assert [e["epoch"] for e in probe["evaluations"]] == list(range(STOP + 1, STOP + 1 + N))
    assert (root / "probe.png").stat().st_size > 0
    assert json.loads((root / f"stopped-probe{N}" / "probe.json").read_text())["verdict"] == probe["verdict"]
    from rec_es.explain import explain

    again = explain(root / f"stopped-probe{N}")
    assert any(r["policy"].startswith("original (epochs 0-2)") for r in again["counterfactuals"])


def _refused(root: Path, argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    """``rec-es explain argv`` exits 2 with an error naming ``needles`` and writes nothing under ``root``."""
    before = tree(root)
    assert explain_main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err and all(n in err for n in needles), err
    assert tree(root) == before


@pytest.mark.parametrize("n", ["0", "-3", "2.5", "two", ""])
def test_bad_n_is_refused(probed: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str], n: str) -> None:
    """N must be an integer >= 1."""
    shutil.copytree(probed["root"] / "stopped", tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    _refused(tmp_path, ["run", "--probe", n], capsys, "--probe", "integer")


def test_bad_targets_are_refused_before_training(probed: dict[str, Any], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """No checkpoint; a last.pth whose trace digests do not match (an edited trace); a damaged last.pth; a probe
    directory that exists and is not empty; data not where the config says; --probe-dir without --probe: exit 2,
    the file named, nothing written."""
    monkeypatch.chdir(tmp_path)
    src = probed["root"] / "stopped"
    for name in ("nockpt", "edited", "damaged", "good"):
        shutil.copytree(src, tmp_path / name)
    (tmp_path / "nockpt" / "last.pth").unlink()
    _refused(tmp_path, ["nockpt", "--probe", "2"], capsys, "last.pth")
    lines = (tmp_path / "edited" / "trace.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"train_loss":', '"train_loss":1.0,"was":', 1)
    (tmp_path / "edited" / "trace.jsonl").write_text("".join(lines))
    _refused(tmp_path, ["edited", "--probe", "2"], capsys, "trace.jsonl", "edited")
    (tmp_path / "damaged" / "last.pth").write_bytes(b"not a checkpoint")
    _refused(tmp_path, ["damaged", "--probe", "2"], capsys, "last.pth")
    (tmp_path / "good-probe2").mkdir()
    (tmp_path / "good-probe2" / "x").write_text("someone's")
    _refused(tmp_path, ["good", "--probe", "2"], capsys, "good-probe2", "--probe-dir")
    _refused(tmp_path, ["good", "--probe", "2", "--probe-dir", "good/inside"], capsys, "inside the run directory")
    _refused(tmp_path, ["good", "--probe", "2", "--probe-dir", "p", "--set", f"data_path={tmp_path / 'nowhere'}"],
             capsys, "ml-100k-tiny", "not found")
    _refused(tmp_path, ["good", "--probe-dir", "p"], capsys, "--probe-dir", "--probe N")
