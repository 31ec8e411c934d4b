"""What rec_es knows about RecBole's models (rec_es.config.models): the generated registry data and docs/run.md's
table are current, and `rec-es check` finds the known incompatibilities without training."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rec_es.config import models
from rec_es.config.lint import lint_files

from conftest import REPO, load_script

SHIPPED = str(REPO / "properties" / "gru4rec_ml100k.yaml")


@pytest.fixture(scope="module")
def table_script() -> Any:
    return load_script("models_table")


@pytest.fixture(scope="module")
def registry(table_script: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(baseline, facts) read from RecBole's registry now."""
    base = table_script.baseline()
    return base, table_script.registry(base)


def test_registry_data_and_table_are_current(table_script: Any, registry: Any) -> None:
    """rec_es/config/recbole_models.py and docs/run.md's table are what RecBole's registry generates now."""
    base, facts = registry
    assert table_script.DATA_MODULE.read_text() == table_script.data_module(facts, base)
    text = (REPO / "docs" / "run.md").read_text()
    assert table_script.with_table(text, facts) == text


def test_a_stale_table_or_data_module_fails_the_check(table_script: Any, registry: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """--check exits 1 when a row of the table or the data module differs from the registry, 0 when both match."""
    base, facts = registry
    monkeypatch.setattr(table_script, "baseline", lambda: base)  # read once, by the fixture
    monkeypatch.setattr(table_script, "registry", lambda _: facts)
    doc = tmp_path / "run.md"
    text = (REPO / "docs" / "run.md").read_text()
    doc.write_text(text)
    data = tmp_path / "recbole_models.py"
    data.write_text(table_script.DATA_MODULE.read_text())
    monkeypatch.setattr(table_script, "DATA_MODULE", data)
    assert table_script.main(["--check", str(doc)]) == 0
    doc.write_text(text.replace("| BPR | general | Trainer | trains |", "| BPR | general | Trainer | **refused** |"))
    assert table_script.main(["--check", str(doc)]) == 1
    doc.write_text(text)
    data.write_text(data.read_text().replace("'NCLTrainer'", "'Trainer'"))
    assert table_script.main(["--check", str(doc)]) == 1


def test_every_model_has_a_status(registry: Any) -> None:
    """Each model trains or is refused with its trainer named; the families the base Trainer serves train."""
    _, facts = registry
    status = {name: models.status(name, info) for name, info in facts.items()}
    for name in ("GRU4Rec", "SASRec", "BPR", "LightGCN", "NeuMF", "FM", "DIN", "MultiVAE"):
        assert status[name][0], name
    for name, trainer in (("ItemKNN", "TraditionalTrainer"), ("Pop", "TraditionalTrainer"), ("NCL", "NCLTrainer"),
                          ("KGAT", "KGATTrainer"), ("CKE", "KGTrainer"), ("XGBoost", "XGBoostTrainer")):
        assert status[name] == (False, f"{trainer} {models.OWN_TRAINERS[trainer]}"), name


def test_check_reads_no_recbole() -> None:
    """The model rules read RecBole's facts as data: `rec-es check` imports neither RecBole nor torch."""
    code = ("import sys; import rec_es.config.lint, rec_es.config.models; "
            "print(sorted(m for m in ('recbole', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def model_findings(tmp_path: Path, keys: dict[str, Any], overrides: dict[str, Any] | None = None,
                   files: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(key, message) of the model rules' findings for ``files`` + a file of ``keys`` + ``overrides``."""
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(keys))
    merged_keys = set(models.RULE_KEYS) | {"model", "eval_args.order", "eval_args.mode"}
    rows = lint_files([*files, str(extra)], overrides)
    return [(f.key, f.message) for f in rows if f.level == "error" and f.key in merged_keys]


PAIRS = {"distribution": "uniform", "sample_num": 1}
CTR = {"model": "FM", "threshold": {"rating": 4}, "load_col": {"inter": ["user_id", "item_id", "rating"]},
       "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": None, "mode": "labeled"},
       "metrics": ["AUC", "LogLoss"], "valid_metric": "AUC", "dataset": "mine"}


@pytest.mark.parametrize("keys, expected", [
    # the shipped config as it is, and with the fixes the refusals name
    ({}, None),
    ({"model": "BPR", "train_neg_sample_args": PAIRS}, None),
    ({"loss_type": "BPR", "train_neg_sample_args": PAIRS}, None),
    ({"model": "NeuMF", "train_neg_sample_args": PAIRS}, None),
    ({"model": "FM", "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}}, None),
    # issue 27's reports
    ({"model": "BPR"}, ("train_neg_sample_args", "BPR trains on pairs")),
    ({"model": "LightGCN"}, ("train_neg_sample_args", "LightGCN trains on pairs")),
    ({"model": "NeuMF"}, ("train_neg_sample_args", "NeuMF trains on a 0/1 label")),
    ({"loss_type": "BPR"}, ("train_neg_sample_args", "GRU4Rec with loss_type BPR trains on pairs")),
    ({"model": "FM"}, ("load_col", "RecBole's own defaults for FM on ml-100k set threshold: {'rating': 4}")),
    ({"eval_args": {"mode": "uni100"}}, ("eval_args.order", "got RO (RecBole's default when eval_args names no order")),
    # more RecBole failures known before training
    ({"train_neg_sample_args": PAIRS}, ("train_neg_sample_args", "GRU4Rec with loss_type CE scores every item")),
    ({"model": "SASRec", "train_neg_sample_args": None, "loss_type": "CE"}, None),
    ({"model": "ItemKNN"}, ("model", "ItemKNN trains with RecBole's TraditionalTrainer, which fits in one pass")),
    ({"model": "gru4rec"}, ("model", "'gru4rec' is not a RecBole 1.2.1 model - did you mean GRU4Rec?")),
    ({**CTR, "dataset": "mine"}, None),
    ({**CTR, "threshold": None}, ("threshold", "FM is a click-through-rate model trained on a 0/1 label")),
    ({**CTR, "eval_args": {"mode": "full"}}, ("eval_args.mode", "are value metrics")),
    ({"model": "FM", "dataset": "mine", "train_neg_sample_args": PAIRS}, None),  # sampled items are label 0
    ({"model": "NeuMF", "dataset": "mine", "train_neg_sample_args": None, "load_col": None}, None),  # all columns
], ids=lambda v: str(v)[:60])
def test_model_rules(tmp_path: Path, keys: dict[str, Any], expected: tuple[str, str] | None) -> None:
    """On top of the shipped ml-100k config: each known incompatibility is one error naming the key; its fix passes."""
    found = model_findings(tmp_path, keys, files=(SHIPPED,))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0][0] == expected[0] and expected[1] in found[0][1], found


def test_a_set_value_is_reported_against_set(tmp_path: Path) -> None:
    """`rec-es check` with --set: the finding names --set where the value came from there."""
    extra = tmp_path / "e.yaml"
    extra.write_text("epochs: 5\n")
    rows = [f for f in lint_files([SHIPPED, str(extra)], {"model": "ItemKNN"}) if f.key == "model"]
    assert [(f.file, f.level) for f in rows] == [("--set", "error")]
