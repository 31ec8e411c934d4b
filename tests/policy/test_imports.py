"""The pure core's modules import each other without cycles (module-level imports, module to module)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = [*sorted((ROOT / "rec_es/policy").rglob("*.py")), ROOT / "rec_es/validate.py", ROOT / "rec_es/controller.py",
        ROOT / "rec_es/schedule.py", ROOT / "rec_es/errors.py"]


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_name(p): p for p in CORE}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            edges[name] |= {t for t in targets if t in modules and t != name}
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(edges[node]):
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            if nxt not in done:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        done.add(node)
        return None

    for start in sorted(edges):
        found = None if start in done else visit(start, [start])
        if found:
            return found
    return None


def test_core_imports_have_no_cycle() -> None:
    """No chain of module-level imports among the policy core, validate, controller and schedule loops back."""
    edges = _graph()
    assert "rec_es.policy.rules.prechelt" in edges["rec_es.policy.rules"]  # the graph is really read
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or [])


def test_cycle_finder_finds_a_cycle() -> None:
    """The finder reports a loop when there is one."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
