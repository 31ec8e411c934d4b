"""Ray, with real RecBole 1.2.1 on the tiny ml-100k slice: `compare --ray` and `rec-es tune`.

One local Ray instance (``ray.init(num_cpus=2)``) is started for the whole module and shut down after it;
every run is a few epochs of the tiny GRU4Rec.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from conftest import tiny_recbole_config
from rec_es.cli.compare import main
from rec_es.compare import compare, markdown, rows

BUDGET = 3
RECBOLE = tiny_recbole_config(epochs=BUDGET, learning_rate=0.01, seed=2020)


@pytest.fixture(scope="module")
def ray_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temp working dir with the tiny config and a plateau (live) policy, and a local 2-CPU Ray instance."""
    import ray
    import torch

    tmp = tmp_path_factory.mktemp("ray")
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(RECBOLE))
    (tmp / "patience1.yaml").write_text("early_stopping:\n  monitor: ndcg@10\n  patience: 1\n")
    (tmp / "plateau.yaml").write_text("early_stopping:\n  monitor: ndcg@10\n  patience: 1\n"
                                      "lr_schedule:\n  reduce_on_plateau:\n    factor: 0.1\n    max_reductions: 1\n")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)  # as each of the 1-CPU Ray tasks of `--jobs 2` does
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield tmp
        finally:
            ray.shutdown()
            torch.set_num_threads(threads)


def _without_wall(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if not k.startswith("wall")} for r in csv.DictReader(fh)]


def test_compare_on_ray_gives_the_local_table(ray_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Recording and live runs trained as Ray tasks give the same runs and table as a local compare."""
    base = ["--config", str(ray_dir / "tiny.yaml"), "--policies", str(ray_dir / "patience1.yaml"),
            str(ray_dir / "plateau.yaml"), "--seeds", "1", "--max-epochs", str(BUDGET), "--no-progress"]
    assert main([*base, "--output", "local", "--cache-dir", "cache-local"]) == 0
    assert main([*base, "--output", "onray", "--cache-dir", "cache-ray", "--ray", "--jobs", "2"]) == 0
    capsys.readouterr()
    local, onray = _without_wall(ray_dir / "local/runs.csv"), _without_wall(ray_dir / "onray/runs.csv")
    assert [r["policy"] for r in onray] == ["oracle", "patience1", "plateau"]
    assert onray == local
    assert _without_wall(ray_dir / "onray/table.csv") == _without_wall(ray_dir / "local/table.csv")
    entries = [p for p in (ray_dir / "cache-ray").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 2  # the recording and the live run, stored by the driver from the tasks' bytes
    for e in entries:
        assert {"trace.jsonl", "summary.json", "config.yaml", "cache.json"} <= {p.name for p in e.iterdir()}
        assert not (e / "best.pth").exists()

    stamps = {p: (p / "trace.jsonl").stat().st_mtime_ns for p in entries}
    c = compare([str(ray_dir / "tiny.yaml")], [str(ray_dir / "plateau.yaml")], seeds=1, max_epochs=BUDGET,
                cache_dir=ray_dir / "cache-ray", progress=False, ray_address="local", log=lambda m: None)
    assert {p: (p / "trace.jsonl").stat().st_mtime_ns for p in entries} == stamps  # cached: no task ran
    assert "| plateau | live |" in markdown(rows(c))


def test_unreachable_ray_address_fails_at_once(ray_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--ray at a port where no cluster listens exits 2 within seconds, naming the address, and trains nothing."""
    started = time.monotonic()
    code = main(["--config", str(ray_dir / "tiny.yaml"), "--policies", str(ray_dir / "patience1.yaml"),
                 "--seeds", "1", "--max-epochs", str(BUDGET), "--no-progress", "--cache-dir", "cache-none",
                 "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 10
    assert "--ray 127.0.0.1:1: cannot reach a Ray cluster" in err and "ray start --head" in err
    assert not (ray_dir / "cache-none").exists() or not any((ray_dir / "cache-none").iterdir())


def _trials(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_tune_three_learning_rates_picks_the_best_on_validation(ray_dir: Path) -> None:
    """A grid over three learning rates writes three finished trials; best.json is the highest best_valid_score
    (read back from each trial's own summary.json), with that trial's test result; explain reads every trial."""
    from rec_es.cli.explain import main as explain
    from rec_es.cli.tune import main as tune_main

    (ray_dir / "lr.space").write_text("# three rates\nlearning_rate choice [0.001, 0.01, 0.05]\n")
    out = ray_dir / "tune-lr"
    assert tune_main(["--config", str(ray_dir / "tiny.yaml"), "--space", str(ray_dir / "lr.space"),
                      "--scheduler", "none", "--jobs", "2", "--output", str(out)]) == 0
    table = _trials(out / "trials.csv")
    assert sorted(float(r["learning_rate"]) for r in table) == [0.001, 0.01, 0.05]
    assert {r["stopped_by"] for r in table} <= {"budget", "policy"}
    summaries = {r["trial"]: json.loads((Path(r["run_dir"]) / "summary.json").read_text()) for r in table}
    for r in table:
        assert float(r["best_valid_score"]) == pytest.approx(summaries[r["trial"]]["best_valid_score"], rel=1e-5)
    best = json.loads((out / "best.json").read_text())
    want = max(summaries, key=lambda t: summaries[t]["best_valid_score"])
    assert best["trial"] == want and best["test_result"] == summaries[want]["test_result"]
    assert best["params"]["learning_rate"] == float(next(r["learning_rate"] for r in table if r["trial"] == want))
    for r in table:
        assert explain([r["run_dir"]]) == 0


def test_asha_stops_the_bad_trial_early(ray_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One trial at a time, a good rate first: ASHA cuts a later trial with a rate too small to learn at its
    first rung, its trace gets a `scheduler` footer, and the good trial runs to the end of its budget."""
    from rec_es.rundir.trace import read_trace
    from rec_es.cli.tune import main as tune_main

    (ray_dir / "bad.space").write_text("learning_rate choice [0.01,0.0000001,0.0000001]\n")
    out = ray_dir / "tune-asha"
    assert tune_main(["--config", str(ray_dir / "tiny.yaml"), "--space", str(ray_dir / "bad.space"),
                      "--scheduler", "asha", "--grace-period", "1", "--reduction-factor", "2", "--jobs", "1",
                      "--output", str(out)]) == 0
    table = _trials(out / "trials.csv")
    assert len(table) == 3
    good = [r for r in table if float(r["learning_rate"]) == 0.01]
    cut = [r for r in table if r["stopped_by"] == "scheduler"]
    assert good[0]["stopped_by"] == "budget" and good[0]["stop_epoch"] == str(BUDGET - 1)
    assert cut and all(int(r["stop_epoch"]) < BUDGET - 1 and float(r["learning_rate"]) < 1e-6 for r in cut)
    footer = read_trace(Path(cut[0]["run_dir"]) / "trace.jsonl").footer
    assert footer is not None and footer["stop_reason"] == "scheduler"
    from rec_es.cli.explain import main as explain

    assert explain([cut[0]["run_dir"]]) == 0
    assert "ASHA" in capsys.readouterr().out
    assert json.loads((out / "best.json").read_text())["trial"] == good[0]["trial"]


def test_tune_records_a_crashing_trial_and_goes_on(ray_dir: Path) -> None:
    """A value that breaks training (a negative learning rate) fails its trial with the reason; the other trains."""
    from rec_es.cli.tune import main as tune_main

    (ray_dir / "crash.space").write_text("learning_rate choice [-1.0,0.01]\n")
    out = ray_dir / "tune-crash"
    assert tune_main(["--config", str(ray_dir / "tiny.yaml"), "--space", str(ray_dir / "crash.space"),
                      "--scheduler", "none", "--jobs", "2", "--output", str(out)]) == 0
    by_lr = {float(r["learning_rate"]): r for r in _trials(out / "trials.csv")}
    assert by_lr[-1.0]["stopped_by"] == "failed" and "learning_rate" in by_lr[-1.0]["message"]
    assert by_lr[0.01]["stopped_by"] == "budget"


@pytest.mark.parametrize("line, message", [
    ("learning_rate choice __import__('os')", "expressions are not evaluated"),
    ("learning_rate uniform 0.1", "uniform takes 2 numbers"),
    ("learning_rate normal 0,1", "unknown type 'normal'; allowed: choice, uniform, quniform, loguniform"),
    ("learning_rate", "expected NAME TYPE VALUE"),
])
def test_bad_space_line_is_an_error_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str,
                                               message: str) -> None:
    """A malformed space line exits 2 naming file:line, without starting Ray or creating --output."""
    import ray

    from rec_es.cli.tune import main as tune_main

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(RECBOLE))
    (tmp_path / "bad.space").write_text(f"embedding_size choice [16]\n{line}\n")
    was_running = ray.is_initialized()
    code = tune_main(["--config", str(tmp_path / "tiny.yaml"), "--space", str(tmp_path / "bad.space"),
                      "--output", str(tmp_path / "out"), "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'bad.space'}:2" in err and message in err
    assert ray.is_initialized() == was_running and not (tmp_path / "out").exists()
