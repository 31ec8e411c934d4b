"""The `rec-es` entry point: dispatch, and behaviour in a shell pipeline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "tests/fixtures/recbole_logs/noisy_stopped.log"


@pytest.mark.parametrize("command", ["-m rec_es explain", "scripts/explain_stop.py"])
def test_reader_leaving_the_pipe_ends_quietly(command: str) -> None:
    """`rec-es explain LOG | true` (the reader leaves before reading): no BrokenPipeError traceback, exit 0."""
    cmd = f"set -o pipefail; {sys.executable} {command} {LOG} | true"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr
    assert out.returncode == 0


def test_unknown_command_lists_the_commands() -> None:
    """An unknown subcommand exits 2 and names the ones that exist."""
    out = subprocess.run([sys.executable, "-m", "rec_es", "explian"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "unknown command 'explian'; choose one of run, compare, explain, check" in out.stderr
