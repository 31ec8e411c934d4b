"""The README and the pages under docs/ stay true: the generated key table, the runnable examples, the links.

A fenced block right after an HTML comment marker is checked:

    <!-- runnable -->          shell commands (every line of a bash block, or the `$ ` lines of a console block):
                               each is parsed by the command's own argument parser (argparse, stopped before it
                               does anything), `make` targets with `make -n`, and every repository path it names
                               (properties/, docs/, tests/, ...) must exist
    <!-- runnable: output -->  console block: each `$ ` command runs (rec-es in this process, cat, echo $?) in a
                               scratch directory that links to the repository's folders, and prints what the block
                               shows; a line `...` stands for any number of lines
    <!-- runnable: python -->  Python block: runs from the repository root; a following `<!-- output -->` block is
                               what it must print
    <!-- runnable: config -->  YAML block: loads after properties/gru4rec_ml100k.yaml as a property file
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import pytest

from rec_es.policy.schema import KEYS, MARKERS, main, reference_table, with_table

from conftest import REPO

README = REPO / "README.md"
KEYS_PAGE = REPO / "docs" / "properties.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
#: Pages the README links that other work is writing; until they land, a link to them may dangle.
SLOTS: set[Path] = set()  # pages linked before they are written
#: Top-level folders whose paths a runnable command may name: each such path must exist.
REPO_DIRS = ("properties/", "datasets/", "docs/", "tests/", "scripts/", "rec_es/")
MARKER = re.compile(r"^<!-- (runnable(?:: (?P<kind>output|python|config))?|output) -->$")


@dataclass
class Block:
    """One checked fenced block: where it is, its marker kind, its lines, and the output block that follows it."""

    page: Path
    line: int
    kind: str  # "commands", "output", "python", "config"
    lines: list[str]
    expected: list[str] | None = None
    where: str = field(init=False)

    def __post_init__(self) -> None:
        name = self.page.relative_to(REPO) if REPO in self.page.parents else self.page.name
        self.where = f"{name}:{self.line}"


def marked_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page`` right after a marker; an `output` block is attached to the block before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i].strip())
        if not m:
            i += 1
            continue
        assert i + 1 < len(lines) and lines[i + 1].startswith("```"), \
            f"{page.relative_to(REPO)}:{i + 1}: a marker must be followed directly by a fenced block"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        body = lines[i + 2:end]
        if m.group(1) == "output":
            assert blocks and blocks[-1].kind == "python" and blocks[-1].expected is None, \
                f"{page.relative_to(REPO)}:{i + 1}: an output block must follow a runnable python block"
            blocks[-1].expected = body
        else:
            blocks.append(Block(page, i + 2, {"output": "output", "python": "python", "config": "config"}
                                .get(m.group("kind") or "", "commands"), body))
        i = end + 1
    return blocks


BLOCKS = [b for page in PAGES for b in marked_blocks(page)]


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command, the output lines shown after it) for a console block (`$ ` lines), or every line of a bash block;
    a trailing backslash continues a command on the next line."""
    console = any(line.startswith("$ ") for line in block.lines)
    out: list[tuple[str, list[str]]] = []
    pending = ""
    for line in block.lines:
        if pending:
            pending += " " + line.strip()
        elif console and line.startswith("$ "):
            pending = line[2:]
        elif console:
            if out:
                out[-1][1].append(line)
            continue
        elif line.strip() and not line.lstrip().startswith("#"):
            pending = line
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        out.append((pending, []))
        pending = ""
    assert not pending, f"{block.where}: the last command ends in a backslash"
    return out


class _Parsed(BaseException):
    """Raised by the patched ``ArgumentParser.parse_args`` once the arguments parsed: the command stops there."""


@contextlib.contextmanager
def _parse_only() -> Iterator[io.StringIO]:
    real = argparse.ArgumentParser.parse_args

    def parse_args(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        real(self, args, namespace)
        raise _Parsed

    err = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_args), contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        yield err


@contextlib.contextmanager
def _in_dir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def expand(words: list[str]) -> list[str]:
    """The shell's glob expansion, relative to the repository root."""
    out: list[str] = []
    for word in words:
        matches = sorted(str(p.relative_to(REPO)) for p in REPO.glob(word)) if "*" in word else []
        out.extend(matches or [word])
    return out


def missing_paths(words: list[str]) -> list[str]:
    """Repository paths a command names (also as ``--opt=PATH`` or ``VAR=PATH``) that do not exist."""
    values = [w.split("=", 1)[1] if "=" in w and not w.startswith(REPO_DIRS) else w for w in words]
    return [v for v in values if v.startswith(REPO_DIRS)
            and not (list(REPO.glob(v)) if "*" in v else (REPO / v).exists())]


def check_command(command: str) -> str | None:
    """None if ``command`` would start as written, else what is wrong with it."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]  # environment assignments such as OMP_NUM_THREADS=1
    if not words:
        return "no command"
    if missing := missing_paths(words):
        return f"names {', '.join(missing)}, which does not exist"
    program, args = words[0], expand(words[1:])
    if program == "make":
        done = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True)
        return None if done.returncode == 0 else f"make -n failed: {done.stderr.strip()}"
    if program in ("cat", "echo", "source"):
        return None
    if program == "bash":
        return None if args and (REPO / args[0]).is_file() else f"bash: no script {args[:1]}"
    with _parse_only() as err:
        try:
            if program in ("rec-es", ".venv/bin/rec-es"):
                from rec_es.cli import main as cli_main

                cli_main(args)
            elif program in ("python", "python3", ".venv/bin/python") and args[:1] == ["-m"] and len(args) > 1:
                with mock.patch.object(sys, "argv", [args[1], *args[2:]]), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": it was imported
                    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
            elif program in ("python", "python3", ".venv/bin/python") and args and args[0].endswith(".py"):
                with mock.patch.object(sys, "argv", args):
                    runpy.run_path(str(REPO / args[0]), run_name="__main__")
            else:
                return f"{program!r}: not a command this check knows how to parse"
        except _Parsed:
            return None
        except SystemExit as exc:
            return f"exit {exc.code}: {err.getvalue().strip()}"
    return "returned without parsing its arguments (unknown subcommand?)"


def output_matches(expected: list[str], actual: str) -> bool:
    """Whether ``actual`` is what ``expected`` shows, a line `...` standing for any number of lines."""
    def trim(lines: list[str]) -> list[str]:
        while lines and not lines[-1].strip():
            lines = lines[:-1]
        return lines

    pattern = "".join(r"(?:.*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in trim(expected))
    return re.fullmatch(pattern, "".join(line + "\n" for line in trim(actual.splitlines()))) is not None


def run_console(block: Block, scratch: Path) -> list[str]:
    """Run every command of an output block in ``scratch``; the differences from what the block shows."""
    for entry in REPO.iterdir():
        if entry.name in ("datasets", "docs", "properties", "scripts", "tests"):
            (scratch / entry.name).symlink_to(entry)
    problems, status = [], 0
    with _in_dir(scratch):
        for command, expected in commands(block):
            words = shlex.split(command)
            printed = io.StringIO()
            if words[0] == "rec-es":
                from rec_es.cli import main as cli_main

                with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                    status = cli_main(words[1:])
            elif words[0] == "cat":
                printed.write(Path(words[1]).read_text(encoding="utf-8"))
            elif words == ["echo", "$?"]:
                printed.write(f"{status}\n")
            else:
                problems.append(f"{command}: cannot be run by this check")
                continue
            if not output_matches(expected, printed.getvalue()):
                problems.append(f"$ {command}\n--- shown:\n" + "\n".join(expected)
                                + "\n--- printed:\n" + printed.getvalue())
    return problems


# --- the key table ---------------------------------------------------------------------------------------------

def test_reference_table_lists_every_key_with_type_and_default() -> None:
    """Each early_stopping key has a docs/properties.md row `| key | type | default | ...` that matches the schema."""
    text = KEYS_PAGE.read_text()
    for key, spec in KEYS.items():
        default = "null" if spec.default is None else (spec.default if isinstance(spec.default, str) else json.dumps(spec.default))
        row = f"| `{key}` | {spec.type.replace('|', chr(92) + '|')} | `{default}` |"
        assert row in text, f"docs/properties.md lacks the reference row for {key!r}: {row}"


def test_reference_table_is_the_generated_one() -> None:
    """The table between the keys-table markers is exactly what the registry's declarations generate."""
    text = KEYS_PAGE.read_text()
    start, end = MARKERS
    assert text.split(start, 1)[1].split(end, 1)[0] == f"\n{reference_table()}\n"
    assert with_table(text) == text
    assert main(["--check", str(KEYS_PAGE)]) == 0
    assert all(start not in page.read_text() for page in PAGES if page != KEYS_PAGE)  # one table, one place


def test_table_regenerates_from_a_stale_copy(tmp_path: Path) -> None:
    """`python -m rec_es.policy.schema --write FILE` replaces a stale table and --check then passes."""
    stale = tmp_path / "properties.md"
    start, end = MARKERS
    stale.write_text(f"intro\n{start}\n| old | table |\n{end}\noutro\n")
    assert main(["--check", str(stale)]) == 1
    assert main(["--write", str(stale)]) == 0
    assert stale.read_text() == f"intro\n{start}\n{reference_table()}\n{end}\noutro\n"
    assert main(["--check", str(stale)]) == 0


# --- the README as a landing page ------------------------------------------------------------------------------

def test_readme_starts_with_the_two_commands() -> None:
    """The first code block holds exactly `make run` and `make test`."""
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make run", "make test"]


def test_readme_is_a_landing_page_that_links_every_docs_page() -> None:
    """At most 200 lines (a user's page; the evidence lives in docs/), and every page under docs/ (and each slot for a page being written) is linked from it."""
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    linked = {(README.parent / target).resolve() for target, _ in links(README)}
    pages = {p.resolve() for p in PAGES if p != README} | SLOTS
    assert not pages - linked, f"README does not link {sorted(str(p.relative_to(REPO)) for p in pages - linked)}"


# --- runnable blocks -------------------------------------------------------------------------------------------

def test_every_kind_of_runnable_block_is_present() -> None:
    """The checks below have something to check: each marker kind occurs, and every block yields a command."""
    kinds = {b.kind for b in BLOCKS}
    assert kinds == {"commands", "output", "python", "config"}, kinds
    assert {b.page for b in BLOCKS} >= {README, KEYS_PAGE, REPO / "docs" / "run.md", REPO / "docs" / "benchmarks.md"}
    assert all(commands(b) for b in BLOCKS if b.kind in ("commands", "output"))
    assert all(b.expected for b in BLOCKS if b.kind == "python")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "commands"], ids=lambda b: b.where)
def test_runnable_commands_parse(block: Block) -> None:
    """Every command of a runnable block is accepted by its own argument parser and names existing paths."""
    problems = [f"{cmd}: {why}" for cmd, _ in commands(block) if (why := check_command(cmd))]
    assert not problems, f"{block.where}:\n" + "\n".join(problems)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "output"], ids=lambda b: b.where)
def test_shown_output_is_what_the_command_prints(block: Block, tmp_path: Path) -> None:
    """Console blocks marked `runnable: output` show exactly what their commands print today."""
    problems = run_console(block, tmp_path)
    assert not problems, f"{block.where}:\n" + "\n".join(problems)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "python"], ids=lambda b: b.where)
def test_python_examples_run_and_print_what_is_shown(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runnable Python example runs from the repository root and prints its output block."""
    monkeypatch.chdir(REPO)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile("\n".join(block.lines), block.where, "exec"), {"__name__": "__doc_example__"})
    assert block.expected is not None and output_matches(block.expected, printed.getvalue()), printed.getvalue()


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "config"], ids=lambda b: b.where)
def test_yaml_examples_are_valid_property_files(block: Block, tmp_path: Path) -> None:
    """A runnable YAML example is a valid rec_es property file after make run's config (policy and schedule)."""
    from rec_es.config.properties import load_config

    example = tmp_path / "example.yaml"
    example.write_text("\n".join(block.lines) + "\n")
    cfg = load_config([REPO / "properties" / "gru4rec_ml100k.yaml", example])
    cfg.build_policy()
    assert cfg.sources.get("early_stopping") == str(example)


def test_the_command_check_catches_wrong_options_paths_and_output(tmp_path: Path) -> None:
    """The checker itself: a misspelt option, an unknown subcommand or script, a missing path and a changed output
    are each reported; the right forms pass."""
    assert check_command("rec-es run --config properties/gru4rec_ml100k.yaml --set epochs=5") is None
    assert "unrecognized arguments: --confg" in (check_command("rec-es run --confg properties/gru4rec_ml100k.yaml") or "")
    assert "unknown subcommand" in (check_command("rec-es train --config x.yaml") or "")
    assert "does not exist" in (check_command("rec-es check properties/nope.yaml") or "")
    assert "does not exist" in (check_command("python scripts/compare.py --help") or "")
    assert "invalid choice" in (check_command("python scripts/bench_instructions.py --workload big") or "")
    assert check_command("OMP_NUM_THREADS=1 python -m rec_es.policy.schema --check docs/properties.md") is None
    assert "make -n failed" in (check_command("make rnu") or "")
    assert "not a command" in (check_command("pip install rec_es") or "")
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable: output -->\n```text\n$ rec-es check docs/examples/my_gru4rec_fixed.yaml\n"
                    "docs/examples/my_gru4rec_fixed.yaml: stopping_step: note: ...\n...\n$ echo $?\n1\n```\n")
    problems = run_console(Block(page, 2, "output", page.read_text().splitlines()[2:-1]), tmp_path)
    assert len(problems) == 2 and "--- printed:\n0" in problems[1]  # the shown note line and status are wrong
    assert output_matches(["a", "...", "c"], "a\nb\nb\nc\n") and not output_matches(["a", "c"], "a\nb\nc\n")


# --- links -----------------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def links(page: Path) -> list[tuple[str, str]]:
    """(path, anchor) of every relative link of ``page`` outside code blocks and code spans."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    out = []
    for target in LINK.findall(text):
        if not re.match(r"[a-z]+:", target):
            path, _, anchor = target.partition("#")
            out.append((path or page.name, anchor))
    return out


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a markdown page (lower case, punctuation dropped, spaces to hyphens)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", plain.strip().lower()).replace(" ", "-")
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(page: Path) -> None:
    """Every relative link and image of a page points to a file in the repository, and its #anchor to a heading."""
    broken = []
    for path, anchor in links(page):
        target = (page.parent / path).resolve()
        if target in SLOTS and not target.exists():
            continue
        if not target.exists() or REPO.resolve() not in target.parents:
            broken.append(f"{path}: no such file in the repository")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{path}#{anchor}: no such heading")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


#: Paths the docs name on purpose although they do not exist: adding_a_rule.md's template and worked example.
NAMED_NOT_PRESENT = {"rec_es/policy/rules/NAME.py", "rec_es/policy/rules/max_misses.py", "tests/policy/test_NAME.py",
                     "tests/policy/test_max_misses.py"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_source_paths_exist(page: Path) -> None:
    """Every rec_es/, scripts/ or tests/ file a page names in its text exists (no stale module paths)."""
    named = set(re.findall(r"(?<![\w/.])((?:rec_es|scripts|tests)/[\w/]+\.(?:py|yaml|log|txt|md))", page.read_text()))
    stale = sorted(p for p in named - NAMED_NOT_PRESENT if not (REPO / p).exists())
    assert not stale, f"{page.relative_to(REPO)} names files that do not exist: {stale}"


def _table_after(text: str, heading: str) -> str:
    """The markdown table (its ``|`` lines) that follows ``heading`` in ``text``."""
    lines = text.split("\n")
    i = lines.index(heading) + 1
    while not lines[i].startswith("|"):
        i += 1
    j = i
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    return "\n".join(lines[i:j])


def test_policy_tables_are_copies_of_the_generated_one() -> None:
    """choosing_a_policy.md's by-regime, pooled and per-run oracle tables are the sections of
    docs/results/policy_table.md (scripts/policy_table.py) they copy, and the pooled cells the README quotes for the
    policies it names are that by-regime table's: regenerating the results without updating the pages fails here."""
    from policy_table import BY_REGIME_POLICIES, BY_REGIME_SECTION

    generated = (REPO / "docs" / "results" / "policy_table.md").read_text(encoding="utf-8")
    by_regime = _table_after(generated, BY_REGIME_SECTION)
    choosing = (REPO / "docs" / "choosing_a_policy.md").read_text(encoding="utf-8")
    assert by_regime.count("\n") >= 11 and by_regime in choosing
    for heading in ("## All runs", "## Oracle and hindsight per run"):
        assert _table_after(generated, heading) in choosing, heading
    header, *_, pooled = by_regime.splitlines()
    row = lambda line: [c.strip() for c in line.strip().strip("|").split(" | ")]  # noqa: E731
    cells = dict(zip(row(header), row(pooled)))
    assert pooled.startswith("| all ") and len(cells) == len(BY_REGIME_POLICIES) + 1
    readme = README.read_text(encoding="utf-8")
    for name in ("recommended", "prechelt_gl", "recbole_legacy"):
        cell = cells[BY_REGIME_POLICIES[name]]
        assert f"({cell})" in readme or f": {cell})" in readme, f"README does not quote {name}'s pooled cell {cell}"
