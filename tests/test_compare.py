"""compare: policy loading, replay/live split, cache keys and integrity, table, CSV, plot and bad input.

Training is replaced by ``synthetic_train``, which writes the trace and summary a run of the given config
would leave (a fixed curve per seed), so these tests check compare's own logic in well under a second per
test. tests/integration/test_replay_vs_live.py runs the same code with real RecBole.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rec_es
from rec_es import build_policy
from rec_es.cli.compare import main
from rec_es.compare import (CacheError, TraceCache, cache_fields, cache_key, compare, markdown, plot, rows,
                            write_runs_csv, write_table_csv)
from rec_es.compare.cache import PACKAGE_DIR, TRAINING_MODULES, source_hash
from rec_es.config.properties import RunConfig, load_config
from rec_es.policy.errors import ConfigError, RecEsError
from rec_es.rundir.trace import TraceWriter

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "data_path": str(REPO / "datasets"), "dataset": "ml-100k-tiny", "model": "GRU4Rec", "embedding_size": 16,
    "hidden_size": 16, "MAX_ITEM_LIST_LENGTH": 20, "loss_type": "CE", "train_neg_sample_args": None,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
    "metrics": ["Recall", "NDCG", "MRR"], "topk": [10], "valid_metric": "NDCG@10", "use_gpu": False,
    "show_progress": False, "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "epochs": 12,
}
# valid NDCG@10 per epoch for seed 2020; seed 2021 peaks later. Test NDCG = 0.9 x valid.
CURVES = {
    2020: [0.10, 0.20, 0.25, 0.30, 0.29, 0.28, 0.27, 0.26, 0.25, 0.24, 0.23, 0.22],
    2021: [0.10, 0.15, 0.20, 0.22, 0.21, 0.20, 0.24, 0.26, 0.25, 0.24, 0.23, 0.22],
}
POLICIES = {
    "patience2.yaml": "early_stopping:\n  monitor: ndcg@10\n  patience: 2\n",
    "legacy.yaml": "early_stopping:\n  preset: recbole_legacy\n  monitor: mrr@10\n  stopping_step: 10\n",
    "plateau.yaml": ("early_stopping:\n  monitor: ndcg@10\n  patience: 2\n"
                     "lr_schedule:\n  reduce_on_plateau:\n    factor: 0.5\n    max_reductions: 1\n"),
}


def write_yaml(path: Path, mapping: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return path


class SyntheticTrain:
    """Writes what a run of ``cfg`` would leave: the seed's curve, cut where the run's policy stops.

    A run with an lr_schedule gains 0.05 from epoch 5 on (its training differs from the recording). Valid MRR@10
    is NDCG / 2, or the seed's curve in ``mrr`` when given.
    """

    def __init__(self, mrr: dict[int, list[float]] | None = None) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.mrr = mrr or {}

    def __call__(self, cfg: RunConfig, run_dir: Path, record_test: bool) -> None:
        seed, epochs = cfg.recbole["seed"], cfg.recbole["epochs"]
        self.calls.append((seed, record_test))
        run_dir.mkdir(parents=True)
        policy = cfg.build_policy()
        w = TraceWriter(run_dir / "trace.jsonl")
        w.header(config=cfg.to_dict(), policy=cfg.early_stopping, versions={}, model="GRU4Rec", dataset="ml-100k-tiny",
                 seed=seed, epochs=epochs, eval_step=1, record_test=record_test)
        best_test = None
        stop_epoch, reason = epochs - 1, "max_epochs"
        for epoch in range(epochs):
            v = CURVES[seed][epoch] + (0.05 if cfg.lr_schedule and epoch >= 5 else 0.0)
            mrr = self.mrr[seed][epoch] if seed in self.mrr else v / 2
            valid = {"recall@10": 2 * v, "ndcg@10": v, "mrr@10": mrr}
            test = {"recall@10": 1.8 * v, "ndcg@10": 0.9 * v, "mrr@10": 0.45 * v}
            d = policy.update(epoch, valid, 1.0, float(epoch + 1))
            if d.new_best:
                best_test = test
            rec = {"epoch": epoch, "train_loss": 1.0, "lr": 0.001, "valid": valid, "elapsed_seconds": float(epoch + 1),
                   "train_seconds": 0.75, "eval_seconds": 0.25, "decision": d.to_dict()}
            if record_test:
                rec["test"] = test
            w.record(**rec)
            if d.stop:
                stop_epoch, reason = epoch, d.reason.value
                break
        w.footer(stop_epoch=stop_epoch, stop_reason=reason, message="synthetic", best_epoch=policy.best_epoch,
                 epochs_trained=stop_epoch + 1, wall_seconds=float(stop_epoch + 1))
        summary = {"best_epoch": policy.best_epoch, "best_valid_result": None, "test_result": best_test}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        (run_dir / "best.pth").write_bytes(b"weights")


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    config = write_yaml(tmp_path / "tiny.yaml", TINY)
    pol = {}
    for name, text in POLICIES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        pol[name.split(".")[0]] = str(tmp_path / name)
    return {"config": str(config), "policies": pol, "cache": tmp_path / "cache", "tmp": tmp_path}


def run_compare(setup: dict[str, Any], train: SyntheticTrain, names: tuple[str, ...] = ("patience2", "legacy", "plateau"),
                **kw: Any) -> Any:
    return compare([setup["config"]], [setup["policies"][n] for n in names], seeds=2, cache_dir=setup["cache"],
                   progress=False, train=train, log=kw.pop("log", lambda m: None), **kw)


def test_replayed_and_live_rows(setup: dict[str, Any]) -> None:
    """Replayable policies are replayed on the recorded traces; the LR-schedule policy is trained live per seed."""
    train = SyntheticTrain()
    c = run_compare(setup, train)
    assert sorted(train.calls) == [(2020, False), (2020, True), (2021, False), (2021, True)]
    assert [s.name for s in c.policies if s.live] == ["plateau"]
    p2 = c.results["patience2"]
    assert [(r.stop_epoch, r.best_epoch) for r in p2] == [(5, 3), (5, 3)]
    assert p2[0].metric("ndcg@10") == pytest.approx(0.9 * 0.30)
    # Live: seed 2021 gains 0.05 from epoch 5 on, so it keeps improving past the replayed stop.
    assert [(r.stop_epoch, r.best_epoch) for r in c.results["plateau"]] == [(7, 5), (9, 7)]
    assert [o.best_epoch for o in c.oracle] == [3, 7]
    assert c.results["legacy"][0].epochs_trained == 12  # stopping_step 10 never fires within 12 epochs


def test_table_rows(setup: dict[str, Any]) -> None:
    """Oracle first; epochs saved, ratio to the oracle and premature stops per policy over seeds."""
    c = run_compare(setup, SyntheticTrain())
    table = {r.policy: r for r in rows(c)}
    assert list(table) == ["oracle", "patience2", "legacy", "plateau"]
    assert table["oracle"].ratio.mean == pytest.approx(1.0)
    p2 = table["patience2"]
    assert (p2.epochs.mean, p2.saved.mean, p2.premature, p2.n) == (6.0, 6.0, 1, 2)  # seed 2021 stops at 5 < 7
    assert p2.ratio.mean == pytest.approx((1.0 + 0.22 / 0.26) / 2)
    assert p2.wall.mean == pytest.approx(6.0)  # 6 epochs x (0.75 + 0.25) s
    assert table["plateau"].how == "live" and table["legacy"].note == "RecBole's own rule"
    md = markdown(rows(c))
    assert md.splitlines()[0].startswith("| policy | how | epochs trained")
    assert "| patience2 | replay | 6.0 ± 0.0 | 6.0 ± 0.0 | 3.0 ± 0.0 |" in md


def test_csv_and_plot_outputs(setup: dict[str, Any]) -> None:
    """table.csv has one row per policy with mean/std columns; runs.csv one per policy and seed."""
    c = run_compare(setup, SyntheticTrain())
    out = setup["tmp"]
    write_table_csv(rows(c), out / "table.csv")
    write_runs_csv(c, out / "runs.csv")
    with open(out / "table.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["policy"] for r in table] == ["oracle", "patience2", "legacy", "plateau"]
    assert float(table[1]["epochs_saved_mean"]) == 6.0 and table[1]["premature"] == "1"
    with open(out / "runs.csv") as fh:
        runs = list(csv.DictReader(fh))
    assert len(runs) == 2 * 4 and runs[0]["valid_ndcg@10"] == "0.3"


def test_plot_draws_curves_lanes_and_the_quality_panel(setup: dict[str, Any], saved_figures: list[Any]) -> None:
    """Per seed: the recorded curve, the live curve, the oracle epoch and one lane per policy (x = stop,
    o = restored); right: each policy at (mean epochs trained, mean test NDCG@10); written as a PNG."""
    c = run_compare(setup, SyntheticTrain())
    png = plot(c, setup["tmp"] / "compare.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [(fig, path)] = saved_figures
    assert path == png
    curves = [ax for ax in fig.axes if ax.get_ylabel() == "valid ndcg@10"]
    lanes = [ax for ax in fig.axes if [t.get_text() for t in ax.get_yticklabels()] == ["plateau", "legacy", "patience2"]]
    [quality] = [ax for ax in fig.axes if ax.get_xlabel().startswith("epochs trained")]
    assert len(curves) == len(lanes) == 2
    # (stop, restored) per policy and seed, worked out by hand from CURVES (see test_replayed_and_live_rows);
    # legacy (stopping_step 10 on MRR = NDCG / 2) never stops within 12 epochs and restores NDCG's peak.
    runs = {"patience2": [(5, 3), (5, 3)], "legacy": [(11, 3), (11, 7)], "plateau": [(7, 5), (9, 7)]}
    lane_y = {"patience2": 2, "legacy": 1, "plateau": 0}
    for i, seed in enumerate((2020, 2021)):
        lines = [(list(line.get_xdata()), list(line.get_ydata()), line.get_linestyle()) for line in curves[i].get_lines()]
        assert (list(range(12)), CURVES[seed], "-") in lines
        stop = runs["plateau"][i][0]
        live = [CURVES[seed][e] + (0.05 if e >= 5 else 0.0) for e in range(stop + 1)]
        assert any(x == list(range(stop + 1)) and y == pytest.approx(live) and style == "--" for x, y, style in lines)
        oracle_epoch = [3, 7][i]
        assert ([oracle_epoch] * 2, ":") in [(list(line.get_xdata()), line.get_linestyle()) for line in lanes[i].get_lines()]
        marks = [[tuple(xy) for xy in coll.get_offsets()] for coll in lanes[i].collections]
        for name, y in lane_y.items():
            stop_epoch, best_epoch = runs[name][i]
            assert ([0, stop_epoch], [y, y]) in [(list(line.get_xdata()), list(line.get_ydata()))
                                                 for line in lanes[i].get_lines()]
            assert [(stop_epoch, y)] in marks and [(best_epoch, y)] in marks
    # mean epochs trained and mean test NDCG@10 (0.9 x valid at the restored epoch) over the two seeds
    expected = {"oracle": (12.0, 0.9 * (0.30 + 0.26) / 2), "patience2": (6.0, 0.9 * (0.30 + 0.22) / 2),
                "legacy": (12.0, 0.9 * (0.30 + 0.26) / 2), "plateau": (9.0, 0.9 * (0.33 + 0.31) / 2)}
    points = sorted((round(float(line.get_xdata()[0]), 9), round(float(line.get_ydata()[0]), 9))
                    for line in quality.get_lines() if line.get_marker() == "o")
    assert points == sorted((x, round(y, 9)) for x, y in expected.values())


def test_rerun_uses_cache_and_trains_nothing(setup: dict[str, Any]) -> None:
    """A second comparison over the same config and seeds reuses every recorded and live run."""
    run_compare(setup, SyntheticTrain())
    again = SyntheticTrain()
    c = run_compare(setup, again)
    assert again.calls == []
    assert [r.stop_epoch for r in c.results["patience2"]] == [5, 5]
    assert not any(p.name.endswith(".pth") for p in setup["cache"].rglob("*"))  # checkpoints are not cached


@pytest.mark.parametrize("change, same", [
    ({"learning_rate": 0.01}, False),
    ({"embedding_size": 32}, False),
    ({"state": "WARNING"}, True),        # logging only
    ({"show_progress": True}, True),
])
def test_cache_key_follows_training_keys(setup: dict[str, Any], change: dict[str, Any], same: bool) -> None:
    """Keys that change training change the cache key; logging keys do not."""
    base = load_config([setup["config"]])
    other = load_config([setup["config"]], change)
    k1 = cache_key(cache_fields(base, 2020, 12, live=False, record_test=True))
    k2 = cache_key(cache_fields(other, 2020, 12, live=False, record_test=True))
    assert (k1 == k2) is same


def test_cache_key_follows_seed_budget_and_policy_for_live(setup: dict[str, Any]) -> None:
    """Seed and budget always count; early_stopping counts for live runs only (recordings disable it)."""
    cfg = load_config([setup["config"]])
    cfg2 = load_config([setup["config"], setup["policies"]["patience2"]])
    key = lambda c, s=2020, e=12, live=False: cache_key(cache_fields(c, s, e, live=live, record_test=not live))  # noqa: E731
    assert len({key(cfg), key(cfg, s=2021), key(cfg, e=13)}) == 3
    assert key(cfg) == key(cfg2)
    assert key(cfg, live=True) != key(cfg2, live=True)


# Runs one comparison (seed 2020, patience2 replayed, SyntheticTrain) with the rec_es package found first on
# PYTHONPATH, and prints the seeds SyntheticTrain trained.
COPY_COMPARE = """
import json, sys
from pathlib import Path
import rec_es
assert Path(rec_es.__file__).resolve().parent == Path(sys.argv[1]).resolve(), rec_es.__file__
sys.path.append(sys.argv[2])
from test_compare import SyntheticTrain
from rec_es.compare import compare
train = SyntheticTrain()
compare([sys.argv[3]], [sys.argv[4]], seeds=1, cache_dir=sys.argv[5], progress=False, train=train, log=lambda m: None)
print(json.dumps(train.calls))
"""


def copy_package(tmp_path: Path) -> Path:
    """A copy of the installed rec_es package under tmp_path/pkg (without bytecode caches)."""
    copy = tmp_path / "pkg" / "rec_es"
    shutil.copytree(Path(rec_es.__file__).resolve().parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_source_hash_follows_every_training_module(tmp_path: Path) -> None:
    """An untouched copy of rec_es hashes like the package; a one-comment edit to any hashed module changes it."""
    package = Path(rec_es.__file__).resolve().parent
    copy = copy_package(tmp_path)
    assert source_hash(copy) == source_hash(package) == source_hash()
    assert "training/trainer.py" in TRAINING_MODULES
    for name in TRAINING_MODULES:
        path = copy / name
        text = path.read_bytes()
        path.write_bytes(text + b"\n# an edit\n")
        assert source_hash(copy) != source_hash(package), f"editing {name} must change the source hash"
        path.write_bytes(text)
    assert source_hash(copy) == source_hash(package)


def test_code_edit_invalidates_the_cache(setup: dict[str, Any], tmp_path: Path) -> None:
    """Compare run from a copy of rec_es: cached on the second run, recorded again after an edit to trainer.py."""
    copy = copy_package(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(copy.parent)}
    args = [str(copy), str(REPO / "tests"), setup["config"], setup["policies"]["patience2"], str(setup["cache"])]

    def trained() -> list[list[Any]]:
        done = subprocess.run([sys.executable, "-c", COPY_COMPARE, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert trained() == [[2020, True]]
    assert trained() == []  # same code: the recording is reused
    trainer = copy / "training" / "trainer.py"
    trainer.write_text(trainer.read_text() + "\n# an edit that changes no behaviour\n")
    assert trained() == [[2020, True]]  # edited training code: recorded again
    assert trained() == []


def _first_entry(cache: Path) -> Path:
    return sorted(d for d in cache.iterdir() if d.is_dir())[0]


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "trace.jsonl").write_text((d / "trace.jsonl").read_text().replace('"train_loss":1.0', '"train_loss":0.5', 1)),
     "trace.jsonl: content changed since it was recorded"),
    (lambda d: (d / "summary.json").unlink(), "summary.json: missing from the cache entry"),
    (lambda d: (d / "cache.json").unlink(), "has no cache.json"),
    (lambda d: (d / "cache.json").write_text("{not json"), "cache.json: unreadable"),
    (lambda d: (d / "cache.json").write_text(json.dumps({**json.loads((d / "cache.json").read_text()), "key": "x"})),
     "records key 'x'"),
])
def test_corrupted_cache_entry_is_an_error(setup: dict[str, Any], damage: Any, message: str) -> None:
    """An edited, truncated or foreign cache entry stops the comparison with the file named; it is never used."""
    run_compare(setup, SyntheticTrain(), names=("patience2",))
    entry = _first_entry(setup["cache"])
    damage(entry)
    with pytest.raises(CacheError, match=message) as info:
        run_compare(setup, SyntheticTrain(), names=("patience2",))
    assert str(entry) in str(info.value) and "--refresh-cache" in str(info.value)


def test_refresh_cache_rerecords_a_corrupted_entry(setup: dict[str, Any]) -> None:
    """With refresh_cache the corrupted entry is moved aside, re-recorded, and the log says so."""
    run_compare(setup, SyntheticTrain(), names=("patience2",))
    entry = _first_entry(setup["cache"])
    (entry / "trace.jsonl").write_text("garbage\n")
    train, said = SyntheticTrain(), []
    c = run_compare(setup, train, names=("patience2",), refresh_cache=True, log=said.append)
    assert len(train.calls) == 1 and len(said) == 1 and said[0].startswith("re-recording:")
    assert "content changed" in said[0] and [r.stop_epoch for r in c.results["patience2"]] == [5, 5]
    assert any(".corrupt-" in p.name for p in setup["cache"].iterdir())


def test_cache_verify_checks_fields(tmp_path: Path) -> None:
    """An entry whose stored fields do not belong to the key asked for is refused."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "trace.jsonl").write_text("x\n")
    (run / "summary.json").write_text("{}")
    cache = TraceCache(tmp_path / "cache")
    cache.root.mkdir()
    cache.store(run, "k1", {"a": 1})
    with pytest.raises(CacheError, match="do not hash to key k1"):
        cache.lookup("k1", {"a": 2})


def test_source_hash_refuses_a_missing_module(tmp_path: Path) -> None:
    """A module the cache key hashes but that does not exist is an error naming it, never hashed as empty."""
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("")
    assert source_hash(tmp_path, ("a.py", "b.py")) != source_hash(tmp_path, ("a.py",))
    with pytest.raises(RecEsError, match=r"gone\.py: missing.*TRAINING_MODULES"):
        source_hash(tmp_path, ("a.py", "gone.py"))
    assert all((PACKAGE_DIR / name).is_file() for name in TRAINING_MODULES)
    assert source_hash() == source_hash(PACKAGE_DIR, TRAINING_MODULES)


def test_replay_only_refuses_live_policy(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """--replay-only with a policy that changes training fails before training, naming the file and why."""
    train = SyntheticTrain()
    with pytest.raises(ConfigError, match=r"plateau\.yaml \(its lr_schedule\.reduce_on_plateau"):
        run_compare(setup, train, replay_only=True)
    assert train.calls == []
    code = main(["--config", setup["config"], "--policies", setup["policies"]["plateau"], "--replay-only",
                 "--cache-dir", str(setup["cache"]), "--no-progress"])
    assert code == 2 and "plateau.yaml" in capsys.readouterr().err


def test_unknown_policy_file(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """A missing policy file is a clear error (exit 2) naming it, before anything trains."""
    code = main(["--config", setup["config"], "--policies", str(setup["tmp"] / "nope.yaml"), "--no-progress",
                 "--cache-dir", str(setup["cache"])])
    err = capsys.readouterr().err
    assert code == 2 and "nope.yaml: policy file not found" in err
    assert not setup["cache"].exists()


def test_invalid_policy_file_names_file_and_key(setup: dict[str, Any]) -> None:
    """A policy file with a bad key fails with the file and key named."""
    bad = setup["tmp"] / "bad.yaml"
    bad.write_text("early_stopping:\n  patiance: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*patiance"):
        compare([setup["config"]], [str(bad)], cache_dir=setup["cache"], progress=False, train=SyntheticTrain())


def test_duplicate_policy_names_refused(setup: dict[str, Any]) -> None:
    """Two files with one stem would make two rows with one name: refused."""
    other = setup["tmp"] / "sub"
    other.mkdir()
    (other / "patience2.yaml").write_text(POLICIES["patience2.yaml"])
    with pytest.raises(ConfigError, match="already taken"):
        compare([setup["config"]], [setup["policies"]["patience2"], str(other / "patience2.yaml")],
                cache_dir=setup["cache"], progress=False, train=SyntheticTrain())


def test_metrics_without_ndcg_refused(setup: dict[str, Any]) -> None:
    """The table needs test NDCG@10 and Recall@10; a config that does not compute them is refused."""
    cfg = write_yaml(setup["tmp"] / "mrr.yaml", {**TINY, "metrics": ["MRR"], "valid_metric": "MRR@10"})
    with pytest.raises(ConfigError, match="ndcg@10, recall@10"):
        compare([str(cfg)], [setup["policies"]["legacy"]], cache_dir=setup["cache"], progress=False,
                train=SyntheticTrain())


def test_oracle_monitor_option(setup: dict[str, Any], tmp_path: Path) -> None:
    """--oracle-monitor picks the metric of the oracle's best epoch: MRR@10 peaking at 8 and 1, NDCG@10 at 3 and 7."""
    mrr = {2020: [0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13, 0.12, 0.11, 0.10],
           2021: [0.05, 0.14, 0.10, 0.09, 0.08, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13]}
    c = run_compare(setup, SyntheticTrain(mrr), names=("patience2",), oracle_monitor="mrr@10")
    assert c.monitor == "mrr@10" and [o.best_epoch for o in c.oracle] == [8, 1]
    by_ndcg = compare([setup["config"]], [setup["policies"]["patience2"]], seeds=2, cache_dir=tmp_path / "other",
                      progress=False, train=SyntheticTrain(mrr), log=lambda m: None)
    assert by_ndcg.monitor == "ndcg@10" and [o.best_epoch for o in by_ndcg.oracle] == [3, 7]  # valid_metric
    assert build_policy({"monitor": "mrr@10", "enabled": False}).monitor_name == c.monitor


def test_parallel_jobs_give_the_same_comparison(setup: dict[str, Any], tmp_path: Path) -> None:
    """n_jobs=2 trains in worker processes and yields exactly the sequential comparison."""
    seq = run_compare(setup, SyntheticTrain())
    par = compare([setup["config"]], [setup["policies"][n] for n in ("patience2", "legacy", "plateau")], seeds=2,
                  cache_dir=tmp_path / "cache2", progress=False, train=SyntheticTrain(), n_jobs=2)
    assert markdown(rows(par)).replace(str(tmp_path / "cache2"), "") == markdown(rows(seq))
    assert len([d for d in (tmp_path / "cache2").iterdir() if not d.name.startswith(".")]) == 4
