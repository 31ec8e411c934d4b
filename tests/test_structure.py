"""The package's shape, read from its own imports (function-level imports included): no import cycle, no private
name taken from another package, and every arrow pointing down the layers of docs/architecture.md."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rec_es"
#: Each package's layer: a module may import from its own layer's package or from lower layers only.
LAYERS = {
    "rec_es.policy": 0,       # the pure core
    "rec_es.rundir": 1,       # what a run directory is
    "rec_es.config": 2,       # property files
    "rec_es.replay": 2,       # any policy over recorded traces
    "rec_es.recbole_log": 3,  # stock RecBole logs
    "rec_es.training": 3,     # the only code that drives RecBole
    "rec_es.tune": 4,         # Ray and the training workers
    "rec_es.recbole_fix": 4,  # `import rec_es.recbole_fix`: stock RecBole made to run (compat + the restricted loader)
    "rec_es.compare": 5,
    "rec_es.explain": 5,
    "rec_es.cli": 6,          # the commands
    "rec_es": 7,              # the top-level package's lazy exports
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import in the module, inside functions too, except
    under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.append((full, None) if full in known else (node.module, a.name))
    return [(m, n) for m, n in out if m == "rec_es" or m.startswith("rec_es.")]


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> modules it imports (a package's ``__init__`` importing its own submodules is not an edge)."""
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for target, _ in imports(name, path, known):
            while target not in known:
                target = target.rpartition(".")[0]
            is_init = path.name == "__init__.py"
            if target != name and not (is_init and target.startswith(name + ".")):
                edges[name].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(edges.get(node, ())):
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


def layer(module: str) -> tuple[str, int]:
    best = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)
    return best, LAYERS[best]


def home(module: str, known: dict[str, Path]) -> str:
    return module if known[module].name == "__init__.py" else module.rpartition(".")[0]


def test_no_import_cycle_anywhere_in_the_package() -> None:
    """No chain of imports between rec_es modules (inside functions too) loops back."""
    edges = graph(modules())
    assert "rec_es.policy.controller" in edges["rec_es.training.trainer"]  # the graph is really read
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_arrows_point_down_the_layers() -> None:
    """commands -> services -> the RecBole side -> config, logs, replay -> run directory -> pure core."""
    known = modules()
    wrong = [f"{m} ({layer(m)[0]}) imports {t} ({layer(t)[0]})" for m, targets in graph(known).items() for t in targets
             if layer(t)[1] > layer(m)[1] or (layer(t)[1] == layer(m)[1] and layer(t)[0] != layer(m)[0]
                                              and layer(m)[0] != "rec_es")]
    assert wrong == []


def test_no_private_name_taken_from_another_package() -> None:
    """What one package shares with another is public: ``from rec_es.x.y import _z`` only within rec_es.x."""
    known = modules()
    taken = []
    for name, path in known.items():
        for target, imported in imports(name, path, known):
            while target not in known:
                target = target.rpartition(".")[0]
            if imported and imported.startswith("_") and not imported.startswith("__") \
                    and home(name, known) != home(target, known):
                taken.append(f"{name} imports {imported} from {target}")
    assert taken == []


@pytest.mark.parametrize("kind", ["cycle", "layer", "private"])
def test_the_checks_fail_on_a_planted_fault(tmp_path: Path, kind: str) -> None:
    """Each check finds its fault in a planted package (so none of them passes by reading nothing)."""
    pkg = tmp_path / "rec_es"
    (pkg / "policy").mkdir(parents=True)
    (pkg / "cli").mkdir()
    for p in (pkg / "__init__.py", pkg / "policy/__init__.py", pkg / "cli/__init__.py"):
        p.write_text("")
    if kind == "cycle":
        (pkg / "policy/a.py").write_text("def f():\n    from rec_es.policy.b import g\n")
        (pkg / "policy/b.py").write_text("from rec_es.policy import a\n")
    elif kind == "layer":
        (pkg / "policy/a.py").write_text("def f():\n    import rec_es.cli.main\n")
        (pkg / "cli/main.py").write_text("")
    else:
        (pkg / "policy/a.py").write_text("_x = 1\n")
        (pkg / "cli/main.py").write_text("from rec_es.policy.a import _x\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        known = modules(pkg)
        if kind == "cycle":
            assert find_cycle(graph(known)) is not None
        elif kind == "layer":
            assert any(layer(t)[1] > layer(m)[1] for m, ts in graph(known).items() for t in ts)
        else:
            assert any(n and n.startswith("_") for m, p in known.items() for _, n in imports(m, p, known))
    finally:
        ROOT = saved
