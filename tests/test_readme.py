"""The README's property-file reference is the schema's: every key, its type and default."""
from __future__ import annotations

import json
from pathlib import Path

from rec_es.policy.schema import KEYS, MARKERS, main, reference_table, with_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_reference_table_lists_every_key_with_type_and_default() -> None:
    """Each early_stopping key has a README row `| key | type | default | ...` that matches the schema."""
    text = README.read_text()
    for key, spec in KEYS.items():
        default = "null" if spec.default is None else (spec.default if isinstance(spec.default, str) else json.dumps(spec.default))
        row = f"| `{key}` | {spec.type.replace('|', chr(92) + '|')} | `{default}` |"
        assert row in text, f"README lacks the reference row for {key!r}: {row}"


def test_reference_table_is_the_generated_one() -> None:
    """The table between the keys-table markers is exactly what the registry's declarations generate."""
    text = README.read_text()
    start, end = MARKERS
    assert text.split(start, 1)[1].split(end, 1)[0] == f"\n{reference_table()}\n"
    assert with_table(text) == text
    assert main(["--check", str(README)]) == 0


def test_table_regenerates_from_a_stale_copy(tmp_path: Path) -> None:
    """`python -m rec_es.policy.schema --write FILE` replaces a stale table and --check then passes."""
    stale = tmp_path / "README.md"
    start, end = MARKERS
    stale.write_text(f"intro\n{start}\n| old | table |\n{end}\noutro\n")
    assert main(["--check", str(stale)]) == 1
    assert main(["--write", str(stale)]) == 0
    assert stale.read_text() == f"intro\n{start}\n{reference_table()}\n{end}\noutro\n"
    assert main(["--check", str(stale)]) == 0


def test_readme_starts_with_the_two_commands() -> None:
    """The first code block holds exactly `make run` and `make test`."""
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make run", "make test"]
