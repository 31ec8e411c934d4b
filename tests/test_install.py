"""The install: the Makefile's interpreter check, the Ray that the uv overrides bring, and what RecBole needs of it.

docs/install.md explains the mechanism; these tests check that the installed environment is the one it describes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from conftest import REPO

PYPROJECT = (REPO / "pyproject.toml").read_text()
MAKEFILE = (REPO / "Makefile").read_text()
PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")


def requires_python() -> SpecifierSet:
    match = re.search(r'^requires-python = "([^"]+)"', PYPROJECT, re.M)
    assert match, "pyproject.toml has no requires-python"
    return SpecifierSet(match.group(1))


def uv_override(name: str) -> SpecifierSet:
    """The version range that pyproject.toml's [tool.uv] override-dependencies give ``name``."""
    block = PYPROJECT.split("\n[tool.uv]\n", 1)[1].split("\n[", 1)[0]  # the table, not a comment naming it
    match = re.search(rf'"{name}(?:\[[^\]]*\])?([^";]+)"', block)
    assert match, f"no override for {name} in [tool.uv]"
    return SpecifierSet(match.group(1))


def make(tmp_path: Path, target: str, python: str) -> subprocess.CompletedProcess[str]:
    """``make TARGET PYTHON=python`` in the repository, with the venv (if one were made) under tmp_path."""
    return subprocess.run(["make", "--no-print-directory", target, f"PYTHON={python}", f"VENV={tmp_path / 'venv'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def fake_python(tmp_path: Path, minor: str) -> str:
    """An executable that answers the Makefile's version question like Python ``minor`` would."""
    path = tmp_path / f"python{minor}"
    path.write_text(f"#!/bin/sh\necho {minor}\n")
    path.chmod(0o755)
    return str(path)


def test_makefile_supports_exactly_the_pythons_of_requires_python() -> None:
    """SUPPORTED_PYTHONS in the Makefile lists the 3.x that pyproject's requires-python admits (3.6-3.16 checked)."""
    match = re.search(r"^SUPPORTED_PYTHONS := (.+)$", MAKEFILE, re.M)
    assert match
    admitted = [f"3.{m}" for m in range(6, 17) if Version(f"3.{m}.0") in requires_python()]
    assert match.group(1).split() == admitted == ["3.10", "3.11", "3.12", "3.13"]


@pytest.mark.parametrize("minor", ["3.9", "3.14"])
def test_make_refuses_an_unsupported_python_before_creating_anything(tmp_path: Path, minor: str) -> None:
    """`make install` with PYTHON of an unsupported version fails, says what works and how to pick it, makes no venv."""
    out = make(tmp_path, "install", fake_python(tmp_path, minor))
    assert out.returncode != 0
    assert f"is Python {minor}; rec_es supports Python 3.10 3.11 3.12 3.13." in out.stderr
    assert "make run PYTHON=" in out.stderr
    assert not (tmp_path / "venv").exists()
    assert "-m venv" not in out.stdout and "pip install" not in out.stdout


@pytest.mark.skipif(not PY39.exists(), reason="no real Python 3.9 interpreter here")
def test_make_refuses_a_real_python39(tmp_path: Path) -> None:
    """The same refusal with a real Python 3.9 (pyenv's), which would otherwise fail deep inside pip."""
    out = make(tmp_path, "test", str(PY39))
    assert out.returncode != 0
    assert "is Python 3.9;" in out.stderr
    assert not (tmp_path / "venv").exists()


def test_make_refuses_a_missing_interpreter(tmp_path: Path) -> None:
    """A PYTHON that does not run is named as such (not as a version), and nothing is created."""
    out = make(tmp_path, "run", str(tmp_path / "no-such-python"))
    assert out.returncode != 0
    assert "is not a Python interpreter that runs here" in out.stderr
    assert not (tmp_path / "venv").exists()


def test_make_refuses_a_python_that_cannot_make_a_venv(tmp_path: Path) -> None:
    """A supported Python without venv/ensurepip (Debian's python3 before python3.X-venv) is refused with the fix."""
    path = tmp_path / "python3.12"
    path.write_text('#!/bin/sh\ncase "$*" in *ensurepip*) exit 1;; esac\necho 3.12\n')
    path.chmod(0o755)
    out = make(tmp_path, "install", str(path))
    assert out.returncode != 0
    assert "is Python 3.12 without venv/ensurepip" in out.stderr and "apt install python3.12-venv" in out.stderr
    assert not (tmp_path / "venv").exists()


def test_make_accepts_this_interpreter(tmp_path: Path) -> None:
    """The interpreter running the tests is supported: the check passes silently."""
    out = make(tmp_path, "check-python", sys.executable)
    assert (out.returncode, out.stderr) == (0, "")


def test_installed_ray_is_the_override_not_recboles_pin() -> None:
    """`make install` brought the Ray of [tool.uv] override-dependencies, not RecBole's ray<=2.6.3."""
    ray = Version(version("ray"))
    if ray <= Version("2.6.3"):
        pytest.skip(f"ray {ray}: installed by plain pip, which honours RecBole's pin (docs/install.md)")
    assert ray in uv_override("ray")
    assert Version(version("numpy")) in uv_override("numpy")


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (one torch/OMP thread, no Ray usage reporting); its stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_recbole_quick_start_imports_with_this_ray() -> None:
    """RecBole's only use of Ray, `from ray import tune` in recbole/quick_start/quick_start.py, works here."""
    out = run_python("from recbole.quick_start import run_recbole, objective_function\n"
                     "from ray import tune\nprint(callable(run_recbole), tune.__name__)")
    assert out.split() == ["True", "ray.tune"]


def test_ray_starts_a_local_instance() -> None:
    """ray.init(num_cpus=1) starts a local Ray with one CPU (what Ray features of rec_es will rely on)."""
    out = run_python("import ray\nray.init(num_cpus=1)\nprint('CPU', ray.cluster_resources().get('CPU'))\n"
                     "ray.shutdown()")
    assert out.strip().splitlines()[-1] == "CPU 1.0"


def test_recbole_flops_counter_imports() -> None:
    """RecBole's get_flops imports thop, which imports distutils: on Python >= 3.12 only setuptools provides it."""
    out = run_python("from thop.profile import register_hooks\nfrom recbole.utils import get_flops\n"
                     "print(len(register_hooks) > 0)")
    assert out.strip() == "True"


def test_torch_is_the_local_cpu_build_where_one_lies_on_disk() -> None:
    """Where a local CPU wheel of torch 2.13.0 exists for this Python, that build is installed (no CUDA download)."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = list(Path("/opt/wheels").glob(f"torch-2.13.0+cpu-{tag}-*.whl"))
    if not wheels:
        pytest.skip(f"no local CPU torch wheel for {tag}: torch comes from the registry (docs/install.md)")
    import torch

    assert torch.__version__ == "2.13.0+cpu"
    assert torch.version.cuda is None
