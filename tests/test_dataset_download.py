"""Datasets RecBole can download (its url.yaml): rec_es lets RecBole's downloader run before training, and an
offline failure is a clear error that says where it looked and that the download failed.

No test depends on the network: the URL of RecBole's url.yaml is read from the installed recbole, and the
downloads go to a local HTTP server (serving a real zip) or to a local port nothing listens on.
"""
from __future__ import annotations

import functools
import http.server
import socket
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from rec_es.config import datasets
from rec_es.policy.errors import ConfigError
from rec_es.cli.run import main

from conftest import DATASETS, tiny_recbole_config


def closed_port_url(name: str) -> str:
    """A URL on a local port nothing listens on: connecting fails at once, online or not."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}.zip"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server with ``tiny.zip`` (the tiny dataset's .inter file as ``tiny.inter``) and ``broken.zip``
    (not a zip); yields the URL of tiny.zip."""
    root = tmp_path / "www"
    root.mkdir()
    with zipfile.ZipFile(root / "tiny.zip", "w") as z:
        z.write(DATASETS / "ml-100k-tiny" / "ml-100k-tiny.inter", "tiny.inter")
    (root / "broken.zip").write_bytes(b"this is not a zip archive\n" * 10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tiny.zip"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_recbole_url_list_is_read_from_the_installed_recbole() -> None:
    """ml-1m is in RecBole 1.2.1's url.yaml; a dataset of one's own is not."""
    assert datasets.recbole_url("ml-1m") == "https://recbole.s3-accelerate.amazonaws.com/ProcessedDatasets/MovieLens/ml-1m.zip"
    assert datasets.recbole_url("my-own-data") is None


def test_offline_download_of_ml_1m_fails_with_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ml-1m with a data_path in tmp, the download refused by the network: ConfigError naming path, URL, failure;
    no directory is left behind."""
    monkeypatch.setattr(datasets, "recbole_url", lambda name: closed_port_url(name))
    data = tmp_path / "data"
    with pytest.raises(ConfigError) as info:
        datasets.resolve({"dataset": "ml-1m", "data_path": str(data)}, {"data_path": "mine.yaml"})
    message = str(info.value)
    assert message.startswith("mine.yaml: dataset 'ml-1m' not found: looked for " + str(data / "ml-1m" / "ml-1m.inter"))
    assert "rec_es tried RecBole's download from http://127.0.0.1:" in message and "the download failed" in message
    assert "Connection refused" in message
    assert not data.exists()


def test_run_refuses_before_training_when_the_download_fails(in_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """rec-es run with ml-1m offline: exit 2, the download failure named, no run directory and no data directory."""
    monkeypatch.setattr(datasets, "recbole_url", lambda name: closed_port_url(name))
    cfg = in_tmp / "ml1m.yaml"
    cfg.write_text(yaml.safe_dump(tiny_recbole_config(dataset="ml-1m", data_path=str(in_tmp / "data"))))
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dataset 'ml-1m' not found: looked for" in err and "the download failed" in err
    assert "Traceback" not in err
    assert not (in_tmp / "run").exists() and not (in_tmp / "data").exists()


def test_a_listed_dataset_is_downloaded_with_recboles_downloader(tmp_path: Path, served: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A listed dataset that is not on disk is downloaded, unzipped and renamed to <dataset>.inter, zip removed."""
    monkeypatch.setattr(datasets, "recbole_url", lambda name: served if name == "mydata" else None)
    loc = datasets.resolve({"dataset": "mydata", "data_path": str(tmp_path / "data")})
    assert loc.inter_file == (tmp_path / "data" / "mydata" / "mydata.inter").resolve()
    assert loc.inter_file.read_bytes() == (DATASETS / "ml-100k-tiny" / "ml-100k-tiny.inter").read_bytes()
    assert sorted(p.name for p in loc.directory.iterdir()) == ["mydata.inter"]


def test_a_broken_download_is_removed_again(tmp_path: Path, served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A download that arrives but is no zip: ConfigError naming the failure, and the directories it made are gone."""
    monkeypatch.setattr(datasets, "recbole_url", lambda name: served.replace("tiny.zip", "broken.zip"))
    with pytest.raises(ConfigError, match=r"the download failed \(BadZipFile"):
        datasets.resolve({"dataset": "ml-1m", "data_path": str(tmp_path / "data" / "deeper")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["www"]


def test_an_existing_dataset_directory_is_never_downloaded_into(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-empty <data_path>/<dataset>/ without the .inter file: refused as before, nothing fetched or changed."""
    monkeypatch.setattr(datasets, "download", lambda *a: pytest.fail("no download may be attempted"))
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "notes.txt").write_text("mine\n")
    with pytest.raises(ConfigError, match="Put the RecBole atomic files"):
        datasets.resolve({"dataset": "ml-1m", "data_path": str(tmp_path)})
    assert [p.name for p in (tmp_path / "ml-1m").iterdir()] == ["notes.txt"]
