"""A run directory from someone else must not run code: its checkpoints load weights-only and RecBole's pickle
caches are never read from it.

Each planted file is a real pickle whose unpickling would create a marker file; the tests assert that no
marker appears, that the run still resumes or is refused with a clear message, and that check/run warn when
a config turns RecBole's own pickle loading on. A planted ``last.pth``/``best.pth`` is written with
``torch.save`` (the zip format ``torch.load`` reads), so only ``weights_only=True`` stands between it and the code.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from rec_es.cli.run import main
from rec_es.config.lint import lint_files
from rec_es.policy.errors import StateError
from rec_es.rundir import checkpoint

from conftest import tiny_recbole_config


class _Payload:
    """Unpickling this calls ``os.mkdir(marker)``: the marker's existence proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


def plant(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_Payload(marker)))


def plant_checkpoint(path: Path, marker: Path) -> None:
    """A ``torch.save`` file shaped like a rec_es checkpoint whose ``state_dict`` unpickles to ``os.mkdir(marker)``."""
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "kind": path.stem, "epoch": 0,
                "state_dict": _Payload(marker)}, path)


def write_config(path: Path, **overrides: object) -> Path:
    path.write_text(yaml.safe_dump(tiny_recbole_config(**overrides)))
    return path


def test_resume_never_unpickles_recbole_caches_planted_in_the_run_directory(in_tmp: Path) -> None:
    """Planted `<dataset>-SequentialDataset.pth` and `-dataloader.pth` in a run dir: resume runs, no code runs."""
    cfg = write_config(in_tmp / "tiny.yaml", epochs=2)
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 0
    marker = in_tmp / "PWNED"
    plant(in_tmp / "run" / "ml-100k-tiny-SequentialDataset.pth", marker)
    plant(in_tmp / "run" / "ml-100k-tiny-for-GRU4Rec-dataloader.pth", marker)


    status = main(["--resume", "run", "--set", "epochs=3", "--no-progress", "--quiet"])

    assert not marker.exists(), "a planted pickle was loaded: code ran on --resume"
    assert status == 0


def test_pickle_path_recorded_in_a_received_run_is_refused_on_resume(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """config.yaml of a run dir naming dataset_save_path: resume refuses (exit 2), unpickles nothing, says how."""
    cfg = write_config(in_tmp / "tiny.yaml", epochs=2)
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 0
    marker = in_tmp / "PWNED"
    plant(in_tmp / "evil.pth", marker)
    recorded = yaml.safe_load((in_tmp / "run" / "config.yaml").read_text())
    recorded["dataset_save_path"] = str(in_tmp / "evil.pth")
    (in_tmp / "run" / "config.yaml").write_text(yaml.safe_dump(recorded))
    capsys.readouterr()

    status = main(["--resume", "run", "--set", "epochs=3", "--no-progress", "--quiet"])

    err = capsys.readouterr().err
    assert status == 2
    assert not marker.exists()
    assert "dataset_save_path" in err and "pickle.load" in err and "--set dataset_save_path=" in err
    assert str(in_tmp / "run" / "config.yaml") in err or "run/config.yaml" in err


@pytest.mark.parametrize("key, value, needle", [
    ("dataset_save_path", "cache/ds.pth", "pickle.load"),
    ("dataloaders_save_path", "cache/dl.pth", "pickle.load"),
    ("save_dataset", True, "never reused"),
    ("save_dataloaders", True, "never reused"),
    ("checkpoint_dir", "saved", "not used by rec-es run"),
])
def test_check_warns_about_recbole_pickle_caches(tmp_path: Path, key: str, value: object, needle: str) -> None:
    """rec-es check names the file and key of every setting that turns RecBole's pickle loading on."""
    cfg = write_config(tmp_path / "c.yaml", **{key: value})
    findings = [f for f in lint_files([cfg]) if f.key == key]
    assert len(findings) == 1
    assert findings[0].level == "warning"
    assert needle in findings[0].message
    assert str(cfg) in str(findings[0])


def test_run_warns_about_a_pickle_path_given_with_set(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The warning also covers --set (run's lint ignores --set keys otherwise)."""
    cfg = write_config(in_tmp / "tiny.yaml", epochs=1)
    marker = in_tmp / "PWNED"
    main(["--config", str(cfg), "--set", f"dataloaders_save_path={in_tmp / 'none.pth'}", "--output-dir", "r",
          "--no-progress", "--quiet"])
    err = capsys.readouterr().err
    assert "warning: --set: dataloaders_save_path" in err and "pickle.load" in err
    assert not marker.exists()


@pytest.mark.parametrize("name", ["last.pth", "best.pth"])
def test_checkpoint_load_refuses_a_planted_pickle(tmp_path: Path, name: str) -> None:
    """checkpoint.load on a torch.save'd last.pth/best.pth holding a pickled callable: StateError, no code runs."""
    marker = tmp_path / "PWNED"
    plant_checkpoint(tmp_path / name, marker)
    with pytest.raises(StateError, match=f"{name}: cannot be read as a weights-only checkpoint"):
        checkpoint.load(tmp_path / name, kind=name.removesuffix(".pth"))
    assert not marker.exists(), f"a planted {name} was unpickled: checkpoint.load ran its code"


def test_resume_refuses_a_planted_last_and_best_checkpoint(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rec-es run --resume RUN with last.pth and best.pth replaced by planted pickles: exit 2, no code runs."""
    cfg = write_config(in_tmp / "tiny.yaml", epochs=1)
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 0
    marker = in_tmp / "PWNED"
    plant_checkpoint(in_tmp / "run" / "last.pth", marker)
    plant_checkpoint(in_tmp / "run" / "best.pth", marker)
    capsys.readouterr()

    status = main(["--resume", "run", "--set", "epochs=2", "--no-progress", "--quiet"])

    err = capsys.readouterr().err
    assert not marker.exists(), "a planted checkpoint was unpickled: code ran on --resume"
    assert status == 2
    assert "last.pth" in err and "cannot be read as a weights-only checkpoint" in err


def test_evaluate_refuses_a_planted_model_file(in_tmp: Path) -> None:
    """EarlyStoppingTrainer.evaluate(model_file=planted best.pth): StateError before any weights change, no code runs."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    from rec_es import build_policy
    from rec_es.training.compat import recbole_config
    from rec_es.training.trainer import EarlyStoppingTrainer

    keys = tiny_recbole_config(epochs=1, checkpoint_dir=str(in_tmp / "saved"))
    config = recbole_config(keys["model"], keys["dataset"], keys)
    init_seed(config["seed"], config["reproducibility"])
    _, valid, _ = data_preparation(config, dataset := create_dataset(config))
    model = get_model(config["model"])(config, dataset).to(config["device"])
    trainer = EarlyStoppingTrainer(config, model, build_policy({"monitor": "ndcg@10"}), run_dir=in_tmp / "run")
    marker = in_tmp / "PWNED"
    plant_checkpoint(in_tmp / "best.pth", marker)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(StateError, match="cannot be read as a weights-only checkpoint"):
        trainer.evaluate(valid, load_best_model=True, model_file=str(in_tmp / "best.pth"))

    assert not marker.exists(), "a planted model_file was unpickled: evaluate ran its code"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
