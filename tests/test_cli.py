"""The `rec-es` entry point: dispatch, and behaviour in a shell pipeline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "tests/fixtures/recbole_logs/noisy_stopped.log"


def test_output_piped_into_head_ends_quietly() -> None:
    """`rec-es explain LOG | head -1` prints one line and no BrokenPipeError traceback."""
    cmd = f"{sys.executable} -m rec_es.cli explain {LOG} | head -1"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.startswith("Run: ") and out.stdout.count("\n") == 1
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_unknown_command_lists_the_commands() -> None:
    """An unknown subcommand exits 2 and names the ones that exist."""
    out = subprocess.run([sys.executable, "-m", "rec_es.cli", "explian"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "unknown command 'explian'; choose one of run, compare, explain, check" in out.stderr
