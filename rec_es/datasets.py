"""Where a run's data comes from, checked before any training.

* ``dataset: ml-100k`` with no ``data_path`` of the user's: the copy inside the recbole wheel
  (``recbole/dataset_example/ml-100k``), so ``make run`` needs no download.
* Anything else: RecBole's atomic layout ``<data_path>/<dataset>/<dataset>.inter`` (``data_path`` relative
  to the working directory, RecBole's default ``dataset/``). A missing file is a ``ConfigError`` that says
  where it looked, instead of RecBole trying to download it.

RecBole 1.2.1 itself always reads ml-100k from the wheel, even when ``data_path`` is set; rec_es honours a
user's ``data_path`` for ml-100k too (``apply_data_path``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rec_es.errors import ConfigError

RECBOLE_DEFAULT_DATA_PATH = "dataset/"
EMBEDDED = "ml-100k"


def embedded_dir() -> Path:
    """The ml-100k directory shipped inside the recbole wheel."""
    import recbole

    return Path(recbole.__file__).resolve().parent / "dataset_example" / EMBEDDED


@dataclass(frozen=True)
class DataLocation:
    """The directory holding ``<dataset>.inter`` and whether it is the copy embedded in recbole."""

    dataset: str
    directory: Path
    embedded: bool

    @property
    def inter_file(self) -> Path:
        return self.directory / f"{self.dataset}.inter"


def resolve(recbole_keys: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> DataLocation:
    """Find the dataset directory for a merged config; raise ``ConfigError`` naming where it looked."""
    sources = sources or {}
    dataset = recbole_keys.get("dataset")
    if not isinstance(dataset, str) or not dataset.strip():
        raise ConfigError(f"dataset: must name a RecBole dataset, e.g. dataset: ml-100k (got {dataset!r})",
                          source=", ".join(sorted(set(sources.values()))) or None, key="dataset")
    data_path = recbole_keys.get("data_path")
    if dataset == EMBEDDED and data_path is None:
        loc = DataLocation(dataset, embedded_dir(), embedded=True)
    else:
        base = Path(data_path if data_path is not None else RECBOLE_DEFAULT_DATA_PATH).expanduser()
        loc = DataLocation(dataset, (base / dataset).resolve(), embedded=False)
    if not loc.inter_file.is_file():
        where = sources.get("data_path") or sources.get("dataset")
        origin = (f"data_path: {data_path!r}" if data_path is not None
                  else f"no data_path, so RecBole's default {RECBOLE_DEFAULT_DATA_PATH!r} relative to {Path.cwd()}")
        raise ConfigError(
            f"dataset {dataset!r} not found: looked for {loc.inter_file} ({origin}). Put the RecBole atomic files "
            f"at <data_path>/{dataset}/{dataset}.inter or set data_path to the folder that holds {dataset}/; "
            f"dataset: ml-100k without data_path uses the copy inside recbole",
            source=where, key="data_path" if data_path is not None else "dataset")
    return loc


def apply_data_path(config: Any, location: DataLocation) -> None:
    """Point a RecBole ``Config`` at ``location`` (overrides RecBole's fixed ml-100k path)."""
    config.final_config_dict["data_path"] = str(location.directory)
