"""Ray, with real RecBole 1.2.1 on the tiny ml-100k slice: `compare --ray` and `rec-es tune`.

One local Ray instance (``ray.init(num_cpus=2)``) is started for the whole module and shut down after it;
every run is a few epochs of the tiny GRU4Rec.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from conftest import tiny_recbole_config
from rec_es.compare import compare, main, markdown, rows

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
