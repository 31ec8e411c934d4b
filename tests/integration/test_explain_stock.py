"""`rec-es explain` on logs written by stock RecBole 1.2.1 and on a real rec_es run, both produced here.

Stock RecBole runs in subprocesses (its logger can be set up once per process) inside a temporary directory,
with GRU4Rec on datasets/ml-100k-tiny:
  * "stopped": epochs 500, stopping_step 3, learning_rate 0.01 — the "I set epochs: 500 and it stopped at
    epoch N" situation. saved=True, so under torch>=2.6 the test step after fit may crash in torch.load; the
    log up to there is real and the crash is part of what the parser must handle.
  * "evalstep": epochs 10, eval_step 2, stopping_step 0, topk [5, 10, 20], saved=False (the test step runs, so
    the log is complete); RecBole stops on the first evaluation that does not reach the best.
  * "cut": epochs 10, stopping_step 1, learning_rate 0.01, saved=True, beside a rec_es recording of the same
    config with stopping disabled and test metrics (``scripts/bench_explain.py`` cuts such recordings into stock
    logs; the stock log must read the same).
Expected values are read from the raw log text with regular expressions, independently of rec_es's parser.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rec_es.cli import main as cli_main
from rec_es.cli.explain import main
from rec_es.explain import explain, load_run
from rec_es.recbole_log import parse_recbole_log

from conftest import REPO, one_thread_in, tiny_recbole_config

STOCK = """
import json, sys
from rec_es.training.compat import use_numpy2_aliases; use_numpy2_aliases()  # else stock RecBole fails on numpy 2
from recbole.quick_start import run_recbole
cfg = json.loads(sys.argv[1])
run_recbole(model=cfg["model"], dataset=cfg["dataset"], config_dict=cfg, saved=sys.argv[2] == "saved")
"""


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _start_stock(workdir: Path, saved: bool, **overrides: Any) -> subprocess.Popen[str]:
    workdir.mkdir(parents=True)
    cfg = tiny_recbole_config(checkpoint_dir=str(workdir / "saved"), **overrides)
    return subprocess.Popen([sys.executable, "-c", STOCK, json.dumps(cfg), "saved" if saved else "unsaved"],
                            cwd=workdir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], workdir: Path) -> dict[str, Any]:
    out, err = proc.communicate(timeout=600)
    logs = sorted((workdir / "log" / "GRU4Rec").glob("GRU4Rec-ml-100k-tiny-*.log"))
    assert len(logs) == 1, f"stock RecBole wrote no log (exit {proc.returncode}):\n{err[-3000:]}"
    return {"log": logs[0], "returncode": proc.returncode, "stderr": err}


@pytest.fixture(scope="module")
def stock_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Two real stock RecBole runs, started together (two cores)."""
    root = tmp_path_factory.mktemp("stock")
    procs = {
        "stopped": _start_stock(root / "stopped", True, epochs=500, stopping_step=3, learning_rate=0.01),
        "evalstep": _start_stock(root / "evalstep", False, epochs=10, eval_step=2, topk=[5, 10, 20],
                                 stopping_step=0, learning_rate=0.01),
        "cut": _start_stock(root / "cut", True, **CUT),
    }
    recording = _start_recording(root / "recording", **CUT)
    runs = {name: _finish(proc, root / name) for name, proc in procs.items()}
    out, err = recording.communicate(timeout=600)
    assert recording.returncode == 0, err[-3000:]
    runs["recording"] = {"run": root / "recording" / "run"}
    return runs


CUT = {"epochs": 10, "stopping_step": 1, "learning_rate": 0.01}


def _start_recording(workdir: Path, **overrides: Any) -> subprocess.Popen[str]:
    """`rec-es run` of the tiny config with stopping disabled and test metrics at every epoch."""
    workdir.mkdir(parents=True)
    cfg = tiny_recbole_config(**{k: v for k, v in overrides.items() if k != "stopping_step"})
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.Popen([sys.executable, "-m", "rec_es", "run", "--config", "tiny.yaml",
                             str(REPO / "properties" / "policies" / "disabled.yaml"), "--record-test", "--output-dir",
                             str(workdir / "run"), "--no-progress", "--quiet"], cwd=workdir, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_epochs_500_stopped_early_is_explained_with_recbole_semantics(stock_runs: dict[str, dict[str, Any]]) -> None:
    """The explanation names stopping_step 3, 4 misses and the best epoch RecBole itself logged."""
    path = stock_runs["stopped"]["log"]
    text = path.read_text()
    finished = re.search(r"Finished training, best eval result in epoch (\d+)", text)
    assert finished, "stock RecBole must stop early on this config for the test to mean anything"
    logged_best = int(finished.group(1))
    last_eval = max(int(e) for e in re.findall(r"epoch (\d+) evaluating", text))
    stopping_step = int(re.search(r"^stopping_step = (\d+)$", text, flags=re.M).group(1))
    assert stopping_step == 3 and last_eval < 499

    report = explain(path)
    stop = report["stop"]
    assert stop["ending"] == "early_stopped"
    assert stop["setting"] == {"key": "stopping_step", "value": 3}
    assert stop["stop_epoch"] == last_eval and stop["epochs_trained"] == last_eval + 1
    assert stop["evaluations_without_improvement"] == stopping_step + 1
    assert stop["best_epoch"] == logged_best == last_eval - (stopping_step + 1)
    assert (f"at epoch {last_eval} ({last_eval + 1} of 500 epochs trained)" in stop["sentence"]
            and f"at epoch {logged_best}) for 4 evaluations (4 epochs), one more than stopping_step: 3 allows"
            in stop["sentence"])
    assert not [w for w in report["warnings"] if "replaying" in w or "replay of" in w]


def test_recbole_saves_exactly_where_the_replayed_rule_improves(stock_runs: dict[str, dict[str, Any]]) -> None:
    """RecBole's 'Saving current' lines (its update_flag) match recbole_legacy's improved flags, ties included."""
    log = parse_recbole_log(stock_runs["stopped"]["log"])
    observed = load_run(stock_runs["stopped"]["log"])
    assert [e.saved for e in log.evaluations] == [d["improved"] for d in observed.decisions]
    assert any(e.saved for e in log.evaluations[1:])


def test_crashed_test_step_is_reported_not_fatal(stock_runs: dict[str, dict[str, Any]]) -> None:
    """If the test step crashed after fit (torch>=2.6), the log has no test result and a warning says so."""
    run = stock_runs["stopped"]
    log = parse_recbole_log(run["log"])
    if run["returncode"] != 0:
        assert log.test_result is None
        assert any("no 'test result' line" in w for w in log.warnings)
    else:
        assert log.test_result is not None


def test_eval_step_and_topk_log_end_to_end(stock_runs: dict[str, dict[str, Any]], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], saved_figures: list[Any]) -> None:
    """eval_step 2 with three cut-offs: every evaluation is read, the stop is counted in evaluations of 2 epochs,
    and the CLI gives JSON and a PNG of the logged valid_scores."""
    run = stock_runs["evalstep"]
    assert run["returncode"] == 0, run["stderr"][-3000:]
    text = run["log"].read_text()
    logged_epochs = [int(e) for e in re.findall(r"epoch (\d+) evaluating", text)]
    log = parse_recbole_log(run["log"])
    assert [e.epoch for e in log.evaluations] == logged_epochs and all(e % 2 == 1 for e in logged_epochs)
    assert all(len(e.valid) == 9 for e in log.evaluations)
    assert log.test_result is not None and log.warnings == []
    png = tmp_path / "explain.png"
    assert main([str(run["log"]), "--json", "--plot", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["eval_step"] == 2 and [e["epoch"] for e in data["evaluations"]] == logged_epochs
    assert png.stat().st_size > 10_000
    [(fig, saved)] = saved_figures
    observed = next(line for line in fig.axes[0].get_lines() if line.get_label().endswith("(observed)"))
    scores = [float(v) for v in re.findall(r"valid_score: ([\d.]+)", text)]
    assert saved == png and list(observed.get_xdata()) == logged_epochs and list(observed.get_ydata()) == scores
    finished = re.search(r"Finished training, best eval result in epoch (\d+)", text)
    assert finished, "stock RecBole must stop early on this config for the eval_step check to mean anything"
    stop = data["stop"]
    assert stop["ending"] == "early_stopped" and stop["best_epoch"] == int(finished.group(1))
    assert (stop["evaluations_without_improvement"], stop["epochs_without_improvement"]) == (1, 2)
    assert "stopping_step: 0 allows" in stop["sentence"]
    assert "(eval_step 2, so 1 miss spans 2 epochs)" in stop["sentence"]


def test_log_cut_from_a_recording_reads_like_the_stock_log(stock_runs: dict[str, dict[str, Any]],
                                                            tmp_path: Path) -> None:
    """Stock RecBole with stopping_step 1, and the log rec_es writes by cutting a stopping-disabled recording of the
    same config where RecBole's rule stops: same evaluations, valid results, saves, losses, stop and verdict."""
    from rec_es.recbole_log.write import stock_log_text
    from rec_es.rundir.trace import read_trace

    real_path = stock_runs["cut"]["log"]
    assert re.search(r"Finished training, best eval result in epoch \d+", real_path.read_text()), \
        "stock RecBole must stop early on this config for the comparison to mean anything"
    cut_path = tmp_path / real_path.name
    cut_path.write_text(stock_log_text(read_trace(stock_runs["recording"]["run"]), "NDCG@10", CUT["stopping_step"]))
    real, cut = parse_recbole_log(real_path), parse_recbole_log(cut_path)
    assert [(e.epoch, e.valid_score, e.valid, e.saved) for e in real.evaluations] == [
        (e.epoch, e.valid_score, e.valid, e.saved) for e in cut.evaluations]
    assert real.train_losses == cut.train_losses
    assert (real.ending, real.finished_best_epoch, real.stopping_step, real.epochs) == (
        cut.ending, cut.finished_best_epoch, cut.stopping_step, cut.epochs)
    assert explain(real_path)["premature"]["verdict"] == explain(cut_path)["premature"]["verdict"]


@pytest.fixture(scope="module")
def rec_es_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `rec-es run` (EarlyStoppingTrainer) with patience 3 on the tiny config."""
    root = tmp_path_factory.mktemp("rec_es_run")
    cfg = tiny_recbole_config(checkpoint_dir=str(root / "saved"), epochs=500, learning_rate=0.01,
                              early_stopping={"patience": 3})
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    with one_thread_in(root):  # in this process: a process start costs more than the run
        assert cli_main(["run", "--config", "tiny.yaml", "--output-dir", str(root / "run"), "--no-progress",
                         "--quiet"]) == 0
    return root / "run"


def test_real_rec_es_run_is_explained_from_its_trace(rec_es_run: Path) -> None:
    """Stop epoch, best epoch and rule come out as summary.json recorded them."""
    summary = json.loads((rec_es_run / "summary.json").read_text())
    report = explain(rec_es_run)
    stop = report["stop"]
    assert report["kind"] == "rec_es"
    assert (stop["stop_epoch"], stop["best_epoch"], stop["reason"]) == (
        summary["stop_epoch"], summary["best_epoch"], summary["stop_reason"])
    if summary["stop_reason"] == "patience":
        assert stop["evaluations_without_improvement"] == 3
        assert stop["setting"] == {"key": "early_stopping.patience", "value": 3}
    observed = report["counterfactuals"][0]
    assert (observed["stop_epoch"], observed["best_epoch"]) == (summary["stop_epoch"], summary["best_epoch"])
