"""The examples in the policy core's docstrings run and give what they show (docstrings state contracts)."""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WITH_EXAMPLES = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                       for p in (ROOT / "rec_es" / "policy").rglob("*.py") if ">>>" in p.read_text(encoding="utf-8"))


def test_the_policy_core_has_examples() -> None:
    """The presets and the patience rule show how they decide with an example."""
    assert {"rec_es.policy.presets", "rec_es.policy.rules.patience"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    """Every ``>>>`` example in the module gives the output its docstring shows."""
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
