"""The restricted loader reads real checkpoints that stock RecBole 1.2.1 writes (GRU4Rec, SASRec, BPR, one epoch
each on the tiny ml-100k slice) exactly as an unrestricted ``torch.load`` does, and every global they reference is
on its list (read the way scripts/recbole_checkpoint_globals.py reads them)."""
from __future__ import annotations

import logging
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
import yaml

from rec_es.rundir import recbole_checkpoint
from rec_es.rundir.recbole_checkpoint import ADMITTED, RecBoleCheckpoint

from conftest import load_script

MODELS = ("GRU4Rec", "SASRec", "BPR")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Model name -> the checkpoint stock RecBole's Trainer.fit(saved=True) wrote after one epoch (one thread)."""
    script = load_script("recbole_checkpoint_globals")
    tmp = tmp_path_factory.mktemp("recbole_saved")
    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(tmp)  # RecBole writes log/ into the working directory
    torch.set_num_threads(1)
    logging.disable(logging.INFO)
    try:
        yield {name: script.train_one(name, tmp / "saved") for name in MODELS}
    finally:
        logging.disable(logging.NOTSET)
        torch.set_num_threads(threads)
        os.chdir(cwd)


def unrestricted(path: Path) -> dict[str, Any]:
    """What ``torch.load(weights_only=False)`` gives (our own freshly written file: trusted)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def same(a: Any, b: Any) -> bool:
    """Equal values, tensors compared by value."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("model", MODELS)
def test_stock_checkpoints_load_as_torch_load_would(written: dict[str, Path], model: str) -> None:
    """load_dict gives what torch.load(weights_only=False) gives: the Config, weights, optimizer and counters."""
    path = written[model]
    ours, theirs = recbole_checkpoint.load_dict(path, map_location="cpu"), unrestricted(path)

    assert ours.keys() == theirs.keys() == {"config", "epoch", "cur_step", "best_valid_score", "state_dict",
                                            "other_parameter", "optimizer"}
    assert type(ours["config"]) is type(theirs["config"])
    assert vars(ours["config"]).keys() == vars(theirs["config"]).keys()
    assert ours["config"].final_config_dict == theirs["config"].final_config_dict
    assert ours["config"]["model"] == model
    for key in ("epoch", "cur_step", "best_valid_score", "state_dict", "other_parameter", "optimizer"):
        assert same(ours[key], theirs[key]), key


@pytest.mark.parametrize("model", MODELS)
def test_the_typed_checkpoint_has_a_plain_config_and_the_weights(written: dict[str, Path], model: str) -> None:
    """load() -> RecBoleCheckpoint: names, counters, a YAML-safe config, the weights and optimizer state."""
    ck = recbole_checkpoint.load(written[model])
    raw = unrestricted(written[model])

    assert isinstance(ck, RecBoleCheckpoint)
    assert (ck.path, ck.model, ck.dataset, ck.epoch, ck.cur_step) == (str(written[model]), model, "ml-100k-tiny", 0, 0)
    assert ck.best_valid_score == float(raw["best_valid_score"]) and type(ck.best_valid_score) is float
    assert yaml.safe_load(yaml.safe_dump(ck.config)) == ck.config
    assert ck.config["device"] == "cpu" and ck.config["eval_type"] == "RANKING"
    assert ck.config["MODEL_TYPE"] == raw["config"]["MODEL_TYPE"].name
    assert ck.config["topk"] == [10] and ck.config["epochs"] == 1
    assert same(ck.state_dict, dict(raw["state_dict"])) and same(ck.optimizer, raw["optimizer"])


@pytest.mark.parametrize("model", MODELS)
def test_every_global_in_a_stock_checkpoint_is_admitted(written: dict[str, Path], model: str) -> None:
    """The globals the file's opcodes name (pickletools) are all admitted; the model's own class among them."""
    script = load_script("recbole_checkpoint_globals")
    found = script.pickle_globals(script.pickle_record(written[model]))

    assert {"recbole.config.configurator.Config", "yaml.loader.FullLoader", "torch._utils._rebuild_tensor_v2"} <= found
    assert any(g.endswith(f".{model}") and g.startswith("recbole.model.") for g in found)
    assert [g for g in sorted(found) if not recbole_checkpoint.admitted(*g.rsplit(".", 1))] == []


def test_every_admitted_name_exists_here() -> None:
    """Each listed global resolves to an object in this installation (no typo, no stale name)."""
    for name in ADMITTED:
        obj, use = recbole_checkpoint.resolve(*name.rsplit(".", 1))
        assert obj is not None and use is ADMITTED[name]


def test_the_pickle_record_is_protocol_4(written: dict[str, Path]) -> None:
    """RecBole writes pickle protocol 4 (FRAME opcodes), which torch's weights-only unpickler cannot read at all."""
    with zipfile.ZipFile(written["BPR"]) as zf:
        record = zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))
    assert record[:2] == b"\x80\x04"
    with pytest.raises(Exception, match="Unsupported operand 149"):
        torch.load(written["BPR"], weights_only=True)


def test_numpy_1_names_resolve_to_the_same_functions_without_a_warning() -> None:
    """A checkpoint written under numpy 1 names numpy.core.multiarray.scalar: it loads, with no deprecation shim."""
    data = pickle.dumps({"best": np.float64(0.25)}, protocol=3)  # GLOBAL opcodes: names as text
    assert b"numpy._core.multiarray" in data
    numpy1 = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = recbole_checkpoint.PICKLE_MODULE.loads(numpy1)
    assert loaded == {"best": 0.25} and type(loaded["best"]) is np.float64
