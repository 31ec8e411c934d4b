"""scripts/: every script shares code through ``benchlib`` alone, edits no ``sys.path`` and imports nothing from tests/."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
NAMES = sorted(p.stem for p in SCRIPTS.glob("*.py"))
#: what a script may import of scripts/: the shared module only
SHARED = "benchlib"


def imported_roots(tree: ast.AST) -> set[str]:
    """The top-level module of every absolute import in ``tree``, function-level ones included."""
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def path_edits(tree: ast.AST) -> list[int]:
    """Lines that touch ``sys.path`` (any use: a script has no reason to read it either)."""
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys"]


@pytest.mark.parametrize("name", NAMES)
def test_a_script_imports_only_the_shared_module_of_scripts(name: str) -> None:
    """No script imports another script, tests/ or conftest, and none edits sys.path (Python puts scripts/ there
    when a script runs, and tests/conftest.py when a test imports one)."""
    tree = ast.parse((SCRIPTS / f"{name}.py").read_text(encoding="utf-8"))
    siblings = set(NAMES) - {SHARED, name}
    assert imported_roots(tree) & (siblings | {"tests", "conftest"}) == set()
    assert path_edits(tree) == []
