"""Where a run's data comes from, checked (and, for RecBole's catalogue, downloaded) before any training.

* ``dataset: ml-100k`` with no ``data_path`` of the user's: the copy inside the recbole wheel
  (``recbole/dataset_example/ml-100k``), so ``make run`` needs no download.
* Anything else: RecBole's atomic layout ``<data_path>/<dataset>/<dataset>.inter`` (``data_path`` relative
  to the working directory, RecBole's default ``dataset/``).
* A dataset that is not on disk but is listed in RecBole's ``properties/dataset/url.yaml`` (ml-1m, amazon-books,
  ...) is downloaded into ``<data_path>/<dataset>/`` with RecBole's own downloader (``recbole.utils.url``), as
  RecBole would, but before anything is written or trained; RecBole 1.2.1's own ``Dataset._download`` ends in
  a ``torch.distributed.barrier()`` that fails outside distributed training. A failed download (offline) is a
  ``ConfigError`` saying where rec_es looked, the URL and why it failed; a partial download is removed.
* Any other missing dataset is a ``ConfigError`` that says where it looked.

RecBole 1.2.1 itself always reads ml-100k from the wheel, even when ``data_path`` is set; rec_es honours a
user's ``data_path`` for ml-100k too (``apply_data_path``).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rec_es.rundir import yamlio
from rec_es.policy.errors import ConfigError

RECBOLE_DEFAULT_DATA_PATH = "dataset/"
EMBEDDED = "ml-100k"
#: Seconds a download may wait on the network before it counts as failed.
DOWNLOAD_TIMEOUT = 60.0


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


def resolve(recbole_keys: Mapping[str, Any], sources: Mapping[str, str] | None = None, *,
            download_missing: bool = True) -> DataLocation:
    """Find the dataset directory for a merged config; raise ``ConfigError`` naming where it looked.

    ``download_missing=False``: a dataset of RecBole's catalogue that is not on disk is refused like any other
    instead of downloaded (a probe continues a run on the data it trained on, and writes nothing before training).
    """
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
        missing = f"dataset {dataset!r} not found: looked for {loc.inter_file} ({origin})"
        url = (recbole_url(dataset) if download_missing and not loc.embedded and _absent_or_empty(loc.directory)
               else None)
        if url is not None:
            download(loc, url, missing, where, "data_path" if data_path is not None else "dataset")
            if loc.inter_file.is_file():
                return loc
            raise ConfigError(f"{missing}: RecBole's download from {url} held no {dataset}.inter",
                              source=where, key="dataset")
        raise ConfigError(
            f"{missing}. Put the RecBole atomic files "
            f"at <data_path>/{dataset}/{dataset}.inter or set data_path to the folder that holds {dataset}/; "
            f"dataset: ml-100k without data_path uses the copy inside recbole",
            source=where, key="data_path" if data_path is not None else "dataset")
    return loc


def recbole_url(dataset: str) -> str | None:
    """The download URL RecBole's ``properties/dataset/url.yaml`` lists for ``dataset``, or None."""
    spec = importlib.util.find_spec("recbole")  # locates the package without importing torch
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "properties" / "dataset" / "url.yaml"
    try:
        urls = yamlio.load_file(path, "RecBole's dataset URL list").data
    except ConfigError:
        return None
    url = urls.get(dataset) if isinstance(urls, dict) else None
    return url if isinstance(url, str) else None


def _absent_or_empty(directory: Path) -> bool:
    return not directory.exists() or (directory.is_dir() and not any(directory.iterdir()))


def _first_missing(directory: Path) -> Path | None:
    """The outermost of ``directory`` and its parents that does not exist yet (what a mkdir -p creates first)."""
    missing = None
    for p in (directory, *directory.parents):
        if p.exists():
            break
        missing = p
    return missing


def download(loc: DataLocation, url: str, missing: str, source: str | None, key: str) -> None:
    """RecBole's download of ``url`` into ``loc.directory`` (the steps of its ``Dataset._download``).

    On failure the directory is left as it was (removed if this created it) and a ConfigError says why.
    """
    import logging
    import socket
    import zipfile

    from recbole.utils.url import decide_download, download_url, extract_zip, rename_atomic_files

    logging.getLogger(__name__).warning(f"{missing}; downloading it from {url} (RecBole's url.yaml)")
    created = _first_missing(loc.directory)
    timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # RecBole's urlopen has none: a dead network would hang
    try:
        proceed = decide_download(url)  # RecBole asks before more than 1 GB
        if proceed:
            loc.directory.mkdir(parents=True, exist_ok=True)
            path = download_url(url, str(loc.directory))
            extract_zip(path, str(loc.directory))
            os.unlink(path)
            rename_atomic_files(str(loc.directory), os.path.splitext(os.path.basename(path))[0], loc.dataset)
    except (OSError, RuntimeError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        _undo(created, loc.directory)
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"{missing}. It is in RecBole's url.yaml, so rec_es tried RecBole's download from {url}, and the "
            f"download failed ({type(exc).__name__}: {reason}). Connect to the internet and run again, or download "
            f"{url} yourself and unzip its atomic files into {loc.directory}/ (as {loc.dataset}.inter, ...)",
            source=source, key=key) from None
    finally:
        socket.setdefaulttimeout(timeout)
    if not proceed:
        raise ConfigError(f"{missing}: the download of {url} (over 1 GB) was declined", source=source, key=key)


def _undo(created: Path | None, directory: Path) -> None:
    """Remove what a failed download left: the directories it created, or the files in one that was empty."""
    import shutil

    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for entry in directory.iterdir() if directory.is_dir() else ():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def apply_data_path(config: Any, location: DataLocation) -> None:
    """Point a RecBole ``Config`` at ``location`` (overrides RecBole's fixed ml-100k path)."""
    config.final_config_dict["data_path"] = str(location.directory)
