"""A stock RecBole run continued by rec_es: `rec-es explain LOG --probe N` from the checkpoint the log names (its
best epoch), and `rec-es run --from-recbole CHECKPOINT`; a planted pickle where the log says the checkpoint is runs
no code; every bad input is refused before training, exit 2, nothing written.

One real stock RecBole 1.2.1 run (GRU4Rec on datasets/ml-100k-tiny, stopping_step 0, saved=True, relative
checkpoint_dir: the log names ``saved/<file>.pth`` relative to where it ran) in a subprocess (its logger is set up
once per process)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rec_es.cli.explain import main as explain_main
from rec_es.cli.run import main as run_main
from rec_es.rundir import recbole_checkpoint
from rec_es.rundir.trace import read_trace

from conftest import REPO, tiny_recbole_config

STOCK = """
import json, sys
import rec_es.recbole_fix  # stock RecBole on numpy 2 / torch >= 2.6
from recbole.quick_start import run_recbole
cfg = json.loads(sys.argv[1])
run_recbole(model=cfg["model"], dataset=cfg["dataset"], config_dict=cfg, saved=True)
"""


class Mkdir:
    """Unpickling this calls ``os.mkdir(marker)``: the marker's existence proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stock run's directory, log, checkpoint and the epoch it saved last (its best)."""
    root = tmp_path_factory.mktemp("stock_probe")
    ran = root / "ran"
    ran.mkdir()
    cfg = tiny_recbole_config(epochs=6, stopping_step=0, learning_rate=0.05, checkpoint_dir="saved")
    proc = subprocess.run([sys.executable, "-c", STOCK, json.dumps(cfg)], cwd=ran, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}, timeout=600)
    logs = sorted((ran / "log" / "GRU4Rec").glob("*.log"))
    assert len(logs) == 1, proc.stderr[-3000:]
    text = logs[0].read_text()
    checkpoint = next((ran / "saved").glob("*.pth"))
    best = recbole_checkpoint.load(checkpoint).epoch
    assert "Saving current: saved/" in text and "Finished training, best eval result in epoch" in text  # stopped
    return {"root": root, "ran": ran, "log": logs[0], "checkpoint": checkpoint, "best": best}


def _run(main: Any, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    finally:
        torch.set_num_threads(threads)
    return status, out.getvalue(), err.getvalue()


def test_probe_of_a_stock_log(stock: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From another working directory, the probe finds the checkpoint the log names (relative to where RecBole
    ran), continues from its best epoch (saying so), re-evaluates it to the log's value first, and measures."""
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(explain_main, [str(stock["log"]), "--probe", "2", "--probe-dir", "p", "--json"])
    assert status == 0, err
    probe = json.loads(out)["probe"]
    best = stock["best"]
    assert probe["from_epoch"] == best + 1 and probe["epochs"] == 2 and probe["base_epoch"] == best
    assert "RecBole saved only its best epoch's weights and optimizer" in probe["sentences"][0]
    assert "as the log says" in probe["sentences"][0]
    assert probe["verdict"] in ("premature", "not premature", "cannot tell") and probe["p_value"] is not None
    trace = read_trace(tmp_path / "p")
    assert [r["epoch"] for r in trace.records] == [best, best + 1, best + 2]
    assert trace.header["from_recbole"]["epoch"] == best
    assert trace.header["from_recbole"]["sha256"] == hashlib.sha256(stock["checkpoint"].read_bytes()).hexdigest()
    own = next(r for r in probe["replay"] if r["policy"].startswith("observed: "))
    assert own["policy"] == "observed: stopping_step 0"


def test_run_from_recbole(stock: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rec-es run --from-recbole CHECKPOINT --config POLICY --set epochs=N` starts a run directory at the
    checkpoint's epoch (its weights evaluated first, as the log scored them) and continues under the policy; its
    config.yaml holds the RecBole keys the stock run was given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text("early_stopping: {patience: 5}\n")
    best = stock["best"]
    status, out, err = _run(run_main, ["--from-recbole", str(stock["checkpoint"]), "--config", "policy.yaml",
                                       "--set", f"epochs={best + 2}", "--output-dir", "run", "--no-progress",
                                       "--quiet"])
    assert status == 0, err
    trace = read_trace(tmp_path / "run")
    assert [r["epoch"] for r in trace.records] == [best, best + 1]
    assert trace.header["policy"]["patience"] == 5
    logged = re.search(rf"epoch {best} evaluating \[[^\]]*valid_score: ([0-9.]+)\]", stock["log"].read_text())
    assert logged is not None and round(trace.records[0]["valid"]["ndcg@10"], 4) == float(logged.group(1))
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (config["model"], config["learning_rate"], config["embedding_size"]) == ("GRU4Rec", 0.05, 16)


def _refused(root: Path, main: Any, argv: list[str], *needles: str) -> None:
    before = tree(root)
    status, _, err = _run(main, argv)
    assert status == 2 and all(n in err for n in needles), err
    assert tree(root) == before


def test_bad_stock_input_is_refused(stock: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log that saved nothing; a checkpoint that is not where the log says; a planted pickle there (it runs
    nothing: no marker); a checkpoint of another model, or of another epoch, or whose config names a pickle cache
    RecBole would load; a probe directory in use; the data not where the config says; --from-recbole of a planted
    file: exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    log, name = stock["log"], stock["checkpoint"].name
    unsaved = tmp_path / "unsaved.log"
    unsaved.write_text("".join(l for l in log.read_text().splitlines(keepends=True) if "Saving current" not in l))
    _refused(tmp_path, explain_main, [str(unsaved), "--probe", "2"], "names no checkpoint", "saved=False")
    elsewhere = tmp_path / "elsewhere" / "log" / "GRU4Rec"
    elsewhere.mkdir(parents=True)
    shutil.copy(log, elsewhere / log.name)
    _refused(tmp_path, explain_main, [str(elsewhere / log.name), "--probe", "2"], "is not there", "--checkpoint")
    marker = tmp_path / "pwned"
    planted = tmp_path / "elsewhere" / "saved" / name
    planted.parent.mkdir()
    torch.save({"config": Mkdir(marker), "epoch": stock["best"], "state_dict": {}}, planted)
    _refused(tmp_path, explain_main, [str(elsewhere / log.name), "--probe", "2"], str(planted), "posix.mkdir")
    assert not marker.exists()
    _refused(tmp_path, run_main, ["--from-recbole", str(planted), "--set", "epochs=9"], "posix.mkdir")
    assert not marker.exists()
    raw = recbole_checkpoint.load_dict(stock["checkpoint"])
    for needles, change in ((("model 'SASRec'", "another run's"),
                             lambda r: r["config"].final_config_dict.update(model="SASRec")),
                            ((f"saved at epoch {stock['best'] + 3}", "another run's"),
                             lambda r: r.update(epoch=r["epoch"] + 3)),
                            (("dataset_save_path", "pickle.load"),
                             lambda r: r["config"].final_config_dict.update(dataset_save_path="evil.pth"))):
        copy = recbole_checkpoint.load_dict(stock["checkpoint"])
        change(copy)
        torch.save(copy, planted, pickle_protocol=4)
        _refused(tmp_path, explain_main, [str(elsewhere / log.name), "--probe", "2"], *needles)
    assert raw["epoch"] == stock["best"]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    _refused(tmp_path, explain_main, [str(log), "--probe", "2", "--probe-dir", "busy"], "busy", "not empty")
    _refused(tmp_path, explain_main, [str(log), "--probe", "2", "--probe-dir", "p", "--set",
                                      f"data_path={tmp_path / 'nowhere'}"], "not found")


def test_offer_for_a_stock_log(stock: dict[str, Any], tmp_path: Path) -> None:
    """A stock log whose checkpoint is found is offered a probe from it; without the file, no offer."""
    from rec_es.explain import load_run
    from rec_es.explain.probe import ADVISED_EPOCHS, offer_probe

    offer = offer_probe(load_run(stock["log"]), {"call": "cannot_tell"})
    assert offer is not None and f"rec-es explain {stock['log']} --probe {ADVISED_EPOCHS}" in offer["sentence"]
    assert "RecBole's checkpoint of its best epoch" in offer["sentence"] and offer["seconds"] > 0
    moved = tmp_path / "log" / "GRU4Rec" / stock["log"].name
    moved.parent.mkdir(parents=True)
    shutil.copy(stock["log"], moved)
    assert offer_probe(load_run(moved), {"call": "cannot_tell"}) is None
