#!/usr/bin/env python
"""Every RecBole model and what `rec-es run` does with it, generated from RecBole's model registry.

    python scripts/models_table.py                    # print the table
    python scripts/models_table.py --write docs/run.md  # rewrite rec_es/config/recbole_models.py and the table
    python scripts/models_table.py --check docs/run.md  # exit 1 if either is stale (tests/test_models.py)
    python scripts/models_table.py --probe [MODEL ...]  # pre-flight each model on ml-100k-tiny with the settings
                                                        # the table names (about 2 s a model; not in the tests)

The registry: every model class in ``recbole.model.{general,sequential,context_aware,knowledge_aware,
exlib}_recommender`` (exlib's classes read from its source: they import xgboost / lightgbm), its trainer from
``recbole.utils.get_trainer``, whether its ``calculate_loss`` reads sampled negative items or the label field, and
RecBole's own defaults for it (``Config._load_internal_config_dict``: overall.yaml, the model's yaml, the
quick-start files) of the keys ``rec-es check``'s model rules read. That data is ``rec_es/config/recbole_models.py``
(read by ``rec_es.config.models`` without importing RecBole); each model's status is ``models.status``.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pprint
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from benchlib import REPO, tiny_recbole_config
from rec_es.config import models  # no RecBole import

DATA_MODULE = REPO / "rec_es" / "config" / "recbole_models.py"
FAMILIES = ("general", "sequential", "context_aware", "knowledge_aware", "exlib")
START, END = "<!-- models-table:start -->", "<!-- models-table:end -->"
#: A dataset name without RecBole property or quick-start files of its own.
GENERIC_DATASET = "your-dataset"
#: The columns of a row of ``rec_es.config.recbole_models.ROWS``.
FIELDS = ("family", "type", "input", "trainer", "negatives", "label", "defaults", "ml-100k")


def registry(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Model name -> facts (family, type, input, trainer, negatives, label, defaults, ml-100k), from RecBole's
    classes; ``defaults`` are the differences from ``base`` (``baseline()``)."""
    from recbole.model.abstract_recommender import AbstractRecommender
    from recbole.utils import ModelType, get_trainer

    out: dict[str, dict[str, Any]] = {}
    for family in FAMILIES:
        module = f"recbole.model.{family}_recommender"
        try:
            classes = {name: obj for name, obj in vars(importlib.import_module(module)).items()
                       if inspect.isclass(obj) and issubclass(obj, AbstractRecommender)
                       and obj.__module__.startswith(module)}
        except ImportError:  # exlib: xgboost / lightgbm are not RecBole dependencies
            classes = {name: None for name in _class_names(module)}
        for name, cls in sorted(classes.items()):
            if cls is None:
                out[name] = {"family": family, "type": "DECISIONTREE", "input": "POINTWISE",
                             "trainer": get_trainer(ModelType.DECISIONTREE, name).__name__,
                             "negatives": "never", "label": True, "defaults": {}, "ml-100k": {}}
                continue
            source = inspect.getsource(cls.calculate_loss)
            negatives = "never"
            if "NEG_ITEM_ID" in source:
                negatives = "loss_type BPR" if "loss_type" in source else "always"
            input_type = getattr(cls, "input_type", None)
            generic, ml100k = _defaults(name, cls, GENERIC_DATASET), _defaults(name, cls, "ml-100k")
            out[name] = {"family": family, "type": cls.type.name, "input": input_type.name if input_type else None,
                         "trainer": get_trainer(cls.type, name).__name__, "negatives": negatives,
                         "label": "LABEL" in source,
                         "defaults": {k: v for k, v in generic.items() if v != base.get(k, _MISSING)},
                         "ml-100k": {k: v for k, v in ml100k.items() if generic.get(k, _MISSING) != v}}
    return out


_MISSING = object()


def _defaults(name: str, cls: type, dataset: str) -> dict[str, Any]:
    """RecBole's internal defaults for ``name`` on ``dataset`` (its own ``_load_internal_config_dict``), of the
    rule keys only."""
    from recbole.config import Config

    config = Config.__new__(Config)
    config._init_parameters_category()
    config.yaml_loader = config._build_yaml_loader()
    config._load_internal_config_dict(name, cls, dataset)
    return {k: config.internal_config_dict[k] for k in models.RULE_KEYS if k in config.internal_config_dict}


def baseline() -> dict[str, Any]:
    """RecBole's defaults for a model without a yaml file of its own on a generic dataset (overall.yaml and
    dataset/sample.yaml): what ``defaults`` entries are the difference from."""
    from rec_es.training.compat import apply_recbole_fixes

    apply_recbole_fixes()
    from recbole.model.general_recommender import BPR

    return _defaults("__none__", BPR, GENERIC_DATASET)


def _class_names(module: str) -> list[str]:
    import recbole

    folder = Path(recbole.__file__).parent / "model" / module.rsplit(".", 1)[1]
    return sorted(node.name for f in folder.glob("*.py") for node in ast.parse(f.read_text()).body
                  if isinstance(node, ast.ClassDef))


def data_module(facts: dict[str, dict[str, Any]], base: dict[str, Any]) -> str:
    """The text of rec_es/config/recbole_models.py: one row per model, RecBole's defaults stored once per distinct
    set (``PROFILES``) and referred to by index."""
    import recbole

    profiles: list[dict[str, Any]] = [{}]
    for name in sorted(facts, key=str.lower):
        for part in ("defaults", "ml-100k"):
            if facts[name][part] not in profiles:
                profiles.append(facts[name][part])
    docstring = textwrap.fill(
        f"Generated by scripts/models_table.py --write docs/run.md from RecBole {recbole.__version__}; do not edit "
        "(tests/test_models.py checks it is current). ``BASELINE``: RecBole's defaults of the keys the model rules "
        "read, for a model without a yaml file on a dataset without property files. ``ROWS``: per model, the "
        "``FIELDS``: its family (recbole.model package), type, input type, trainer, whether ``calculate_loss`` reads "
        "sampled negatives (``always`` / ``loss_type BPR`` / ``never``) and the label field, and the ``PROFILES`` "
        "entries holding where RecBole's own defaults for it differ from ``BASELINE``, and on ml-100k from those. "
        "``rec_es.config.models.MODELS`` is the same as one mapping per model.", width=115)
    baseline_text = pprint.pformat(base, width=92, sort_dicts=True).replace("\n", "\n" + " " * 27)
    lines = ['"""RecBole\'s model registry as data, for `rec-es check` (no RecBole import).', "", docstring, '"""',
             "from typing import Any",
             "",
             f"RECBOLE_VERSION = {recbole.__version__!r}",
             "FIELDS = " + repr(tuple(FIELDS)),
             "BASELINE: dict[str, Any] = " + baseline_text,
             "PROFILES: list[dict[str, Any]] = ["]
    for profile in profiles:
        lines.append("    " + pprint.pformat(profile, width=114, sort_dicts=True).replace("\n", "\n    ") + ",")
    lines += ["]", "ROWS: dict[str, tuple[Any, ...]] = {"]
    for name in sorted(facts, key=str.lower):
        f = facts[name]
        row = tuple(f[k] for k in FIELDS[:6]) + (profiles.index(f["defaults"]), profiles.index(f["ml-100k"]))
        lines.append(f"    {name!r}: {row!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def table(facts: dict[str, dict[str, Any]]) -> str:
    """The markdown table: every model, its family, RecBole's trainer, its status under rec-es run and why."""
    rows = ["| model | family | RecBole trainer | `rec-es run` | what it needs / why |",
            "| --- | --- | --- | --- | --- |"]
    for name in sorted(facts, key=lambda n: (FAMILIES.index(facts[n]["family"]), n.lower())):
        f = facts[name]
        trains, why = models.status(name, f)
        rows.append(f"| {name} | {f['family'].replace('_', '-')} | {f['trainer']} | "
                    f"{'trains' if trains else '**refused**'} | {why} |")
    n_ok = sum(models.status(n, facts[n])[0] for n in facts)
    return "\n".join(rows) + (f"\n\n{n_ok} of {len(facts)} models train with `rec-es run`, given the settings and "
                              "data of the last column; the others are refused before anything is written.")


def with_table(text: str, facts: dict[str, dict[str, Any]]) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"the markers {START} ... {END} are missing")
    return f"{head}{START}\n{table(facts)}\n{END}{tail}"


def probe(names: list[str], facts: dict[str, dict[str, Any]]) -> int:
    """Run the pre-flight of each model that trains, on ml-100k-tiny with the settings ``models.probe_settings``
    gives it; print one line per model. Returns the number that failed."""
    from rec_es.config import datasets
    from rec_es.policy.errors import ConfigError
    from rec_es.training import preflight
    from rec_es.training.run import model_and_trainer_class

    failed = 0
    for name in names or sorted(facts, key=str.lower):
        if not models.status(name, facts[name])[0]:
            continue
        keys = tiny_recbole_config(model=name, epochs=1, state="ERROR",
                                   load_col={"inter": ["user_id", "item_id", "rating", "timestamp"]})
        for key in ("loss_type", "train_neg_sample_args", "eval_args", "metrics", "valid_metric", "embedding_size",
                    "hidden_size"):
            keys.pop(key)  # RecBole's defaults for the model decide these
        keys.update(models.probe_settings(name, facts[name]))
        t0 = time.time()
        try:
            model_class, _ = model_and_trainer_class(keys, {})
            built = preflight.build(model_class, keys, datasets.resolve(keys, {}), verbose=False)
            print(f"{name:12s} ok       {time.time() - t0:5.1f} s  (pre-flight batches: training "
                  f"{built.train_seconds:.2f} s, evaluation {built.eval_seconds:.2f} s)", flush=True)
        except ConfigError as exc:
            failed += 1
            print(f"{name:12s} REFUSED  {time.time() - t0:5.1f} s  {exc}", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="rewrite the data module and the table in FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 if the data module or the table in FILE is stale")
    group.add_argument("--probe", nargs="*", metavar="MODEL", help="pre-flight models on ml-100k-tiny")
    args = parser.parse_args(argv)
    base = baseline()
    facts = registry(base)
    if args.probe is not None:
        return 1 if probe(args.probe, facts) else 0
    if args.write is None and args.check is None:
        print(table(facts))
        return 0
    module = data_module(facts, base)
    path = Path(args.write or args.check)
    text = path.read_text(encoding="utf-8")
    if args.check is not None:
        stale = [str(p) for p, same in ((DATA_MODULE, DATA_MODULE.is_file() and DATA_MODULE.read_text() == module),
                                        (path, with_table(text, facts) == text)) if not same]
        print(f"stale: {', '.join(stale)}; run scripts/models_table.py --write {path}" if stale
              else f"{DATA_MODULE.name} and the table in {path} are up to date")
        return 1 if stale else 0
    DATA_MODULE.write_text(module, encoding="utf-8")
    path.write_text(with_table(text, facts), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
