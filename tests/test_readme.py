"""The README's property-file reference is the schema's: every key, its type and default."""
from __future__ import annotations

import json
from pathlib import Path

from rec_es.policy.schema import KEYS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_reference_table_lists_every_key_with_type_and_default() -> None:
    """Each early_stopping key has a README row `| key | type | default | ...` that matches the schema."""
    text = README.read_text()
    for key, spec in KEYS.items():
        default = "null" if spec.default is None else (spec.default if isinstance(spec.default, str) else json.dumps(spec.default))
        row = f"| `{key}` | {spec.type.replace('|', chr(92) + '|')} | `{default}` |"
        assert row in text, f"README lacks the reference row for {key!r}: {row}"


def test_readme_starts_with_the_two_commands() -> None:
    """The first code block holds exactly `make run` and `make test`."""
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make run", "make test"]
