"""A received run directory with links planted where rec_es writes: resuming it never writes through them.

rec_es writes a run's files as a new temporary file renamed over the old one. Links planted under the old
temporary names (``config.yaml.tmp``, ``summary.json.tmp``, ``.trace.jsonl.tmp``) or as the run's own files
(``summary.json``, ``best.pth``) point at a victim file outside the run; after a real resume the victim holds
every byte it held before.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from rec_es.rundir.paths import atomic_write
from rec_es.cli.run import main

from conftest import tiny_recbole_config

PLANTED = ("config.yaml.tmp", "summary.json.tmp", ".trace.jsonl.tmp", ".config.yaml.tmp", "summary.json", "best.pth")


def test_resume_never_writes_through_planted_links(in_tmp: Path) -> None:
    """Links to a victim under every name rec_es writes or once wrote through: the victim is unchanged."""
    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(tiny_recbole_config(epochs=2)))
    assert main(["--config", "tiny.yaml", "--output-dir", "run", "--no-progress", "--quiet"]) == 0
    victim = in_tmp / "victim.txt"
    victim.write_text("my own file\n")
    run = in_tmp / "run"
    for name in PLANTED:
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(victim)

    assert main(["--resume", "run", "--set", "epochs=3", "--no-progress", "--quiet"]) == 0

    assert victim.read_text() == "my own file\n"
    for name in ("summary.json", "best.pth", "config.yaml", "trace.jsonl"):
        assert (run / name).is_file() and not (run / name).is_symlink()


def test_atomic_write_replaces_a_link_and_leaves_its_target(tmp_path: Path) -> None:
    """atomic_write over a link: the link becomes a file with the new bytes; the target and no temp file remain."""
    target = tmp_path / "target"
    target.write_bytes(b"old")
    (tmp_path / "out").symlink_to(target)
    atomic_write(tmp_path / "out", b"new")
    assert target.read_bytes() == b"old" and (tmp_path / "out").read_bytes() == b"new"
    assert not (tmp_path / "out").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "target"]
