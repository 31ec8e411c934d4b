#!/usr/bin/env python
"""List every global that stock RecBole 1.2.1 checkpoints reference: the data behind the restricted loader's list.

    python scripts/recbole_checkpoint_globals.py [--models GRU4Rec SASRec ...] [--keep DIR]

Trains each model for one epoch with stock RecBole (``get_trainer(...).fit(saved=True)``) on datasets/ml-100k-tiny
(one thread), opens the ``data.pkl`` record inside each saved ``.pth`` zip and walks its opcodes with
``pickletools.genops``, resolving ``GLOBAL`` and ``STACK_GLOBAL`` (whose module and name strings may come from the
memo). Prints, per global, the models whose checkpoint holds it, then the globals that
``rec_es.rundir.recbole_checkpoint`` does not admit (there should be none). About 15 s on one core.
``--keep DIR`` copies the checkpoints there (e.g. to inspect them).
"""
from __future__ import annotations

import argparse
import logging
import os
import pickletools
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"

#: One model per RecBole family the standard Trainer serves, each with the keys it needs on the tiny slice.
MODELS: dict[str, dict[str, Any]] = {
    "GRU4Rec": {"loss_type": "CE", "train_neg_sample_args": None},
    "SASRec": {"loss_type": "CE", "train_neg_sample_args": None, "n_layers": 1, "n_heads": 1,
               "inner_size": 16},
    "GRU4Rec-BPR": {"model": "GRU4Rec", "loss_type": "BPR"},
    "BPR": {},
    "LightGCN": {"n_layers": 1},
    "NeuMF": {"mlp_hidden_size": [16]},
    "FM": {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, "threshold": {"rating": 4},
           "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "mode": "labeled"},
           "metrics": ["AUC", "LogLoss"], "valid_metric": "AUC", "train_neg_sample_args": None},
    # RecBole's TraditionalTrainer models: numpy arrays and scipy matrices in other_parameter
    "Pop": {"train_neg_sample_args": None},
    "ItemKNN": {"train_neg_sample_args": None, "k": 10},
    "EASE": {"train_neg_sample_args": None},
}


def keys_for(name: str, checkpoint_dir: Path) -> dict[str, Any]:
    """RecBole keys: the tiny slice, small sizes, one epoch, saved into ``checkpoint_dir``."""
    keys: dict[str, Any] = {
        "data_path": str(DATASETS), "dataset": "ml-100k-tiny", "model": name,
        "embedding_size": 16, "hidden_size": 16, "MAX_ITEM_LIST_LENGTH": 20,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "use_gpu": False, "show_progress": False, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "epochs": 1, "seed": 2020, "checkpoint_dir": str(checkpoint_dir),
    }
    keys.update(MODELS[name])
    return keys


def train_one(name: str, checkpoint_dir: Path) -> Path:
    """Stock RecBole: one epoch of ``name`` with ``saved=True``; the checkpoint it wrote."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from rec_es.training.compat import recbole_config

    keys = keys_for(name, checkpoint_dir)
    config = recbole_config(keys["model"], keys["dataset"], keys)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train, valid, saved=True, verbose=False)
    return Path(trainer.saved_model_file)


def pickle_record(path: Path) -> bytes:
    """The bytes of the one ``*/data.pkl`` record of a torch zip checkpoint."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise SystemExit(f"{path}: expected one data.pkl record, found {names}")
        return zf.read(names[0])


def pickle_globals(data: bytes) -> set[str]:
    """Every ``module.name`` a pickle's GLOBAL / STACK_GLOBAL opcodes reference, by walking its opcodes."""
    found: set[str] = set()
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # what the last opcodes pushed (strings by value, anything else as None)
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            recent.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = recent[-1] if recent else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            recent.append(memo.get(arg))
        elif op.name in ("GLOBAL", "INST"):
            found.add(arg.replace(" ", "."))
            recent.append(None)
        elif op.name == "STACK_GLOBAL":
            module, name = recent[-2], recent[-1]
            if not (isinstance(module, str) and isinstance(name, str)):
                raise SystemExit("STACK_GLOBAL whose module or name is not a literal string: inspect by hand")
            found.add(f"{module}.{name}")
            recent.append(None)
        else:
            recent.append(None)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--keep", type=Path, help="copy the checkpoints into this directory")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    logging.disable(logging.INFO)
    from rec_es.rundir.recbole_checkpoint import admitted

    by_global: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # RecBole writes log/ and log_tensorboard/ into the working directory
        try:
            for name in args.models:
                start = time.perf_counter()
                path = train_one(name, Path(tmp) / "saved")
                for g in pickle_globals(pickle_record(path)):
                    by_global.setdefault(g, []).append(name)
                size = path.stat().st_size
                print(f"{name}: {path.name}, {size:,} bytes, {time.perf_counter() - start:.1f} s", file=sys.stderr)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, args.keep / f"{name}.pth")
        finally:
            os.chdir(cwd)
    for g in sorted(by_global):
        print(f"{g:55} {' '.join(by_global[g])}")
    refused = sorted(g for g in by_global if not admitted(*g.rsplit(".", 1)))
    print(f"\nnot admitted by rec_es.rundir.recbole_checkpoint: {refused or 'none'}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
