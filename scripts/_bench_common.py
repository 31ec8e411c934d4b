"""Shared set-up of the RecBole benchmarks: config, dataset and model built the way ``rec-es run`` builds them."""
from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from rec_es.config.properties import RunConfig, load_config, parse_set_args

DEFAULT_CONFIG = "properties/gru4rec_ml100k.yaml"


@dataclass
class Setup:
    """A RecBole config with its data loaders, ready to build fresh models."""

    run_config: RunConfig
    config: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model_class: type

    def fresh_model(self) -> Any:
        """A new model initialised from the config's seed (same weights every call)."""
        from recbole.utils import init_seed

        init_seed(self.config["seed"], self.config["reproducibility"])
        return self.model_class(self.config, self.train_data._dataset).to(self.config["device"])


def load(files: Sequence[str], sets: Sequence[str], **extra: Any) -> Setup:
    """Merge property files and ``--set`` values, then build RecBole's config, dataset and loaders (quietly).

    Call it in the directory relative paths in the files refer to; then ``use_dir`` a scratch directory.
    """
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    import rec_es.training.trainer  # noqa: F401  (its compat fixes, anomaly detection off among them, before RecBole's models load)
    from rec_es.config import datasets
    from rec_es.training.compat import quiet_recbole_warnings

    quiet_recbole_warnings()
    overrides = parse_set_args(sets)
    overrides.update(extra)
    cfg = load_config(files, overrides)
    location = datasets.resolve(cfg.recbole, cfg.sources)
    keys = dict(cfg.recbole)
    keys["state"] = "WARNING"
    model_class = get_model(keys["model"])
    argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config reads `--key=value` words of sys.argv
    try:
        config = Config(model=model_class, dataset=keys["dataset"], config_dict=keys)
    finally:
        sys.argv = argv
    datasets.apply_data_path(config, location)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return Setup(cfg, config, train_data, valid_data, test_data, model_class)


@contextlib.contextmanager
def scratch_cwd(setup: Setup) -> Iterator[Path]:
    """Run inside a temporary directory that also holds RecBole's checkpoint_dir (RecBole writes
    log_tensorboard/ relative to the working directory); removed afterwards."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="rec_es_bench_") as tmp:
        os.chdir(tmp)
        setup.config.final_config_dict["checkpoint_dir"] = str(Path(tmp) / "saved")
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def threads_line() -> str:
    import torch

    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
