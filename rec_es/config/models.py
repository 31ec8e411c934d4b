"""What rec_es knows about RecBole's models, and the rules `rec-es check` applies with it.

Which trainer a model needs, which models train on sampled pairs (BPR-style losses read a negative item), which
on a 0/1 label (context-aware / CTR models, NeuMF, ...), which are sequential, and RecBole's own defaults for each:
RecBole's facts as data in ``rec_es.config.recbole_models`` (generated from RecBole's model registry by
``scripts/models_table.py``, checked current by a test), so nothing here imports RecBole.

``findings(merged, sources)`` are the rules, for ``rec-es check``: a model RecBole does not have, a model whose
trainer is not RecBole's base ``Trainer``, pairs without negative sampling, a label-trained model with no label, a
``threshold`` on a column ``load_col`` leaves out, a sequential model not ordered by time, negative sampling with
a cross-entropy sequential loss, value metrics on a full ranking. Each rule fires only where RecBole is certain
to fail. The ``*_message`` functions word the fixes; the pre-flight (``rec_es.training.preflight``) uses the same
sentences when RecBole raises. ``status`` says, per model, whether ``rec-es run`` trains it (docs/run.md's table).
"""
from __future__ import annotations

from difflib import get_close_matches
from typing import Any, Mapping

from rec_es.config.recbole_models import BASELINE, FIELDS, PROFILES, RECBOLE_VERSION, ROWS
from rec_es.policy.monitor import PAIR_METRICS

__all__ = ["RULE_KEYS", "additional_features_message", "ce_takes_no_negatives_message", "effective", "findings",
           "item_features_message", "label_key", "missing_field_finding", "needs_label_message",
           "needs_negatives_message", "own_trainer_message", "probe_settings", "sequential_order_message", "status",
           "unknown_model_message", "value_metrics_full_message"]

#: The RecBole keys the rules read (their defaults per model are in ``recbole_models``).
RULE_KEYS = ("loss_type", "train_neg_sample_args", "eval_args", "metrics", "threshold", "load_col", "selected_features",
             "additional_feat_suffix")
SAMPLE_ONE = "train_neg_sample_args: {distribution: uniform, sample_num: 1}"
#: Why a RecBole trainer other than the base ``Trainer`` cannot be driven by rec_es's ``EarlyStoppingTrainer``.
OWN_TRAINERS = {
    "TraditionalTrainer": "fits in one pass (epochs is 1 whatever the config): nothing to stop",
    "KGTrainer": "alternates recommendation and knowledge-graph epochs on a knowledge-aware data loader",
    "KGATTrainer": "runs a recommendation pass, a knowledge-graph pass and an attention update in every epoch",
    "MKRTrainer": "alternates recommendation and knowledge-graph-embedding steps",
    "NCLTrainer": "runs its own fit() with prototype clustering (an E-step) between epochs",
    "RaCTTrainer": "pre-trains its actor and critic in stages (train_stage)",
    "RecVAETrainer": "alternates encoder and decoder passes, with two optimizers, within each epoch",
    "S3RecTrainer": "pre-trains on self-supervised tasks first (train_stage)",
    "XGBoostTrainer": "fits gradient-boosted trees with xgboost (not installed with RecBole), no epochs",
    "LightGBMTrainer": "fits gradient-boosted trees with lightgbm (not installed with RecBole), no epochs",
}

Row = tuple[str, str, str, str]  # (level, file, key, message), as lint's Finding
#: Per RecBole model: family, type, input, trainer, negatives, label, defaults, ml-100k (``recbole_models``' rows).
MODELS: dict[str, dict[str, Any]] = {
    name: {**dict(zip(FIELDS[:6], row[:6])), FIELDS[6]: PROFILES[row[6]], FIELDS[7]: PROFILES[row[7]]}
    for name, row in ROWS.items()}


def effective(key: str, merged: Mapping[str, Any], model: str) -> Any:
    """The value RecBole will use for ``key``: the user's, else RecBole's default for this model and dataset."""
    if key in merged:
        return merged[key]
    info = MODELS.get(model, {})
    for layer in (info.get("ml-100k", {}) if merged.get("dataset") == "ml-100k" else {}, info.get("defaults", {}),
                  BASELINE):
        if key in layer:
            return layer[key]
    return None


def samples_negatives(value: Any) -> bool:
    """``train_neg_sample_args`` makes RecBole sample negative items (RecBole fills missing sub-keys: uniform, 1)."""
    if not isinstance(value, Mapping):
        return False
    return str(value.get("distribution", "uniform")).lower() not in ("none", "") and \
        str(value.get("sample_num", 1)).lower() != "none"


def eval_setting(sub: str, merged: Mapping[str, Any], model: str) -> Any:
    """``eval_args.<sub>`` as RecBole completes it: a given ``eval_args`` is merged over RecBole's code defaults
    (split RS, order RO, group_by user, mode full), not over the model's quick-start values."""
    code_defaults = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"}
    given = merged.get("eval_args")
    value = effective("eval_args", merged, model) if not isinstance(given, Mapping) else given
    return (value or {}).get(sub, code_defaults[sub]) if isinstance(value, Mapping) else code_defaults[sub]


# ----- the sentences ------------------------------------------------------------------------------------
def needs_negatives_message(model: str, keys: Mapping[str, Any]) -> str:
    """Why ``model`` needs negative sampling and what to set."""
    if MODELS.get(model, {}).get("negatives") == "loss_type BPR":
        return (f"{model} with loss_type BPR trains on pairs (each interaction against a sampled negative item), "
                f"so RecBole must sample one: set {SAMPLE_ONE}, or loss_type: CE (scores every item, no sampling)")
    return (f"{model} trains on pairs (each interaction against a sampled negative item), so RecBole must sample "
            f"one: set {SAMPLE_ONE}" + _given("train_neg_sample_args", keys))


def label_key(model: str) -> str:
    """The key a missing label is reported on: ``threshold`` for click-through-rate models (their protocol labels
    by threshold), ``train_neg_sample_args`` for the other pointwise models (sampling gives them labels)."""
    return "threshold" if _ctr(MODELS.get(model, {})) else "train_neg_sample_args"


def _ctr(info: Mapping[str, Any]) -> bool:
    """A click-through-rate model: context-aware, gradient-boosted trees, or sequential on a label (DIN, DIEN)."""
    return info.get("family") in ("context_aware", "exlib") or (info.get("type") == "SEQUENTIAL" and info.get("label"))


def needs_label_message(model: str, keys: Mapping[str, Any]) -> str:
    """Why ``model`` has no label to train on and the two ways to give it one."""
    field = str(keys.get("RATING_FIELD", "rating"))
    threshold = (f"derive a 0/1 label from the ratings with threshold: {{{field}: 4}} (load the {field} column: "
                 f"load_col: {{inter: [user_id, item_id, {field}, timestamp]}})")
    sample = f"set {SAMPLE_ONE} (each interaction is label 1, each sampled item label 0)"
    if _ctr(MODELS.get(model, {})):
        return (f"{model} is a click-through-rate model trained on a 0/1 label, and this config gives it none: "
                f"{threshold}, RecBole's CTR protocol (which evaluates with eval_args.mode: labeled and metrics "
                f"[AUC, LogLoss]); or {sample} to keep a ranking evaluation")
    return f"{model} trains on a 0/1 label (pointwise), and this config gives it none: {sample}; or {threshold}"


def missing_field_finding(model: str, keys: Mapping[str, Any], field: str) -> tuple[str, str]:
    """(key, message) for RecBole's ``Field [field] not in inter_feat``."""
    threshold = effective("threshold", keys, model)
    if isinstance(threshold, Mapping) and field in threshold:
        origin = "" if "threshold" in keys else (f" (RecBole's own defaults for {model} on {keys.get('dataset')} "
                                                 f"set threshold: {dict(threshold)})")
        return "load_col", (f"threshold labels interactions by their {field}{origin}, but load_col does not load "
                            f"the {field} column: add it, e.g. load_col: {{inter: [user_id, item_id, {field}, "
                            "timestamp]}, or set threshold: ~ and give the label another way")
    return "load_col", (f"{model} with this config reads the column {field!r}, which load_col does not load (or the "
                        f".inter file does not have): add it to load_col.inter, or drop the setting that names it")


def sequential_order_message(model: str, keys: Mapping[str, Any]) -> str:
    """Why a sequential ``model`` needs eval_args.order TO."""
    given = keys.get("eval_args")
    order = eval_setting("order", keys, model)
    why = (" (RecBole's default when eval_args names no order: a given eval_args replaces RecBole's own whole)"
           if isinstance(given, Mapping) and "order" not in given else "")
    return (f"{model} is a sequential model: it predicts each user's next item from the ones before, so RecBole needs "
            f"eval_args.order: TO (by time), got {order}{why}; e.g. eval_args: {{split: {{LS: valid_and_test}}, "
            "order: TO, mode: full}")


def ce_takes_no_negatives_message(model: str, keys: Mapping[str, Any]) -> str:
    """Why a sequential ``model`` with a cross-entropy loss refuses sampled negatives."""
    return (f"{model} with loss_type CE scores every item and takes no sampled negatives, and RecBole refuses "
            f"train_neg_sample_args {keys.get('train_neg_sample_args')!r} with it: set train_neg_sample_args: ~ "
            "(or loss_type: BPR to train on sampled pairs)")


def value_metrics_full_message(model: str, keys: Mapping[str, Any]) -> str:
    """Why value metrics (AUC, LogLoss, ...) cannot run on a full ranking."""
    metrics = effective("metrics", keys, model)
    origin = "" if "metrics" in keys else f" (RecBole's default metrics for {model})"
    return (f"metrics {metrics}{origin} are value metrics, which RecBole computes on labeled or sampled "
            f"candidates, not on a full ranking: set eval_args.mode: labeled (with a label: threshold) or uni100, "
            "or rank with metrics such as [Recall, NDCG]")


def item_features_message(model: str, keys: Mapping[str, Any], field: str) -> str:
    """Why a feature-aware ``model`` (GRU4RecF, SASRecF, FDSA) misses the item feature ``field``."""
    selected = effective("selected_features", keys, model)
    origin = "" if "selected_features" in keys else f" (RecBole's default for {model})"
    return (f"{model} embeds the item features selected_features: {selected}{origin}, read from the dataset's .item "
            f"file, and {field!r} is not loaded: load it (load_col: {{item: [item_id, {field}]}}, with a .item file "
            "holding that column), or set selected_features to item columns you load")


def additional_features_message(model: str, keys: Mapping[str, Any], path: str) -> str:
    """Why ``model`` (GRU4RecKG, KSR) misses its pretrained-embedding file ``path``."""
    suffix = effective("additional_feat_suffix", keys, model)
    return (f"{model} reads pretrained entity embeddings from {path} (additional_feat_suffix: {suffix}), which does "
            f"not exist: provide that file (RecBole's own ml-100k has none), or train a model that does not need it")


def own_trainer_message(model: str, trainer: str) -> str:
    """Why ``model``, trained by RecBole's ``trainer``, is refused, and what to use instead."""
    why = OWN_TRAINERS.get(trainer, "has its own fit()")
    return (f"{model} trains with RecBole's {trainer}, which {why}; rec_es drives models that use the base Trainer "
            f"(GRU4Rec, SASRec, BPR, LightGCN, NeuMF, FM, ...). Train {model} with stock RecBole (run_recbole) "
            "instead; rec-es explain reads its log")


def unknown_model_message(name: Any) -> str:
    """``name`` is no RecBole model; the nearest name (case-insensitive) if one is close."""
    near = get_close_matches(str(name).lower(), [m.lower() for m in MODELS], n=1, cutoff=0.75)
    hint = ""
    if near:
        hint = " - did you mean " + next(m for m in MODELS if m.lower() == near[0]) + "?"
    return (f"{name!r} is not a RecBole {RECBOLE_VERSION} model{hint} (names are case-sensitive; docs/run.md "
            "lists every model RecBole has)")


def _given(key: str, keys: Mapping[str, Any]) -> str:
    return f" (got {keys[key]!r})" if key in keys and keys[key] is not None else (
        " (it is ~ here)" if key in keys else "")


# ----- the rules ------------------------------------------------------------------------------------------
def findings(merged: Mapping[str, Any], sources: Mapping[str, str]) -> list[Row]:
    """What RecBole would fail on with this model and these settings, before any data is read."""
    model = merged.get("model")
    if not isinstance(model, str):
        return []

    def at(key: str) -> str:  # the file (or --set) that gave the key; RecBole's defaults come with the model
        return sources.get(key, sources.get(key.split(".")[0], sources.get("model", "RecBole's defaults")))

    info = MODELS.get(model)
    if info is None:
        return [("error", at("model"), "model", unknown_model_message(model))]
    if info["trainer"] != "Trainer":
        return [("error", at("model"), "model", own_trainer_message(model, info["trainer"]))]
    out: list[Row] = []
    neg = effective("train_neg_sample_args", merged, model)
    loss_type = effective("loss_type", merged, model)
    pairs = info["negatives"] == "always" or (info["negatives"] == "loss_type BPR" and loss_type == "BPR")
    if pairs and not samples_negatives(neg):
        out.append(("error", at("train_neg_sample_args"), "train_neg_sample_args",
                    needs_negatives_message(model, merged)))
    if info["type"] == "SEQUENTIAL" and info["input"] is None and loss_type == "CE" and neg is not None:
        out.append(("error", at("train_neg_sample_args"), "train_neg_sample_args",
                    ce_takes_no_negatives_message(model, merged)))
    out += _label_rules(model, info, merged, at)
    if info["type"] == "SEQUENTIAL" and eval_setting("order", merged, model) != "TO":
        out.append(("error", at("eval_args"), "eval_args.order", sequential_order_message(model, merged)))
    metrics = effective("metrics", merged, model)
    names = [metrics] if isinstance(metrics, str) else metrics if isinstance(metrics, list) else []
    mode = eval_setting("mode", merged, model)
    modes = list(mode.values()) if isinstance(mode, Mapping) else [mode]
    if names and all(str(m).lower() in PAIR_METRICS for m in names) and "full" in modes:
        out.append(("error", at("eval_args"), "eval_args.mode", value_metrics_full_message(model, merged)))
    return out


def _label_rules(model: str, info: Mapping[str, Any], merged: Mapping[str, Any], at: Any) -> list[Row]:
    """A label-trained model with no label source; a threshold on a column load_col leaves out."""
    out: list[Row] = []
    load_col = effective("load_col", merged, model)
    inter = load_col.get("inter") if isinstance(load_col, Mapping) else None
    loaded = [str(c) for c in inter] if isinstance(inter, list) else None  # None: every column is loaded
    threshold = effective("threshold", merged, model)
    if isinstance(threshold, Mapping) and threshold and loaded is not None:
        for field in threshold:
            if str(field) not in loaded:
                key, message = missing_field_finding(model, merged, str(field))
                out.append(("error", at(key), key, message))
    label = str(merged.get("LABEL_FIELD", "label"))
    has_label = (samples_negatives(effective("train_neg_sample_args", merged, model))
                 or (isinstance(threshold, Mapping) and bool(threshold)) or loaded is None or label in loaded)
    if info["label"] and not has_label:
        key = label_key(model)
        out.append(("error", at(key), key, needs_label_message(model, merged)))
    return out


# ----- the table -------------------------------------------------------------------------------------------
def status(model: str, info: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """(whether ``rec-es run`` trains ``model``, what it needs beyond RecBole's defaults / why it is refused)."""
    info = info if info is not None else MODELS[model]
    if info["trainer"] != "Trainer":
        return False, f"{info['trainer']} {OWN_TRAINERS.get(info['trainer'], 'has its own fit()')}"
    defaults = info.get("defaults", {})
    needs = []
    samples = samples_negatives({**BASELINE, **defaults}.get("train_neg_sample_args"))
    if info["negatives"] == "always":
        needs.append("sampled negatives: `train_neg_sample_args` must sample (RecBole's default does; `~` fails)")
    elif info["type"] == "SEQUENTIAL" and info["input"] is None and defaults.get("loss_type") == "CE":
        needs.append("`train_neg_sample_args: ~` with `loss_type: CE` (its default; RecBole's default samples, which "
                     "CE refuses)" + (", a sampling one with `loss_type: BPR`" if info["negatives"] != "never" else ""))
    elif info["negatives"] == "loss_type BPR":
        needs.append("with `loss_type: BPR`, a sampling `train_neg_sample_args`")
    if info["label"] and samples:
        needs.append("a 0/1 label: sampled negatives give one (`train_neg_sample_args`, RecBole's default for it), "
                     "or `threshold`")
    elif info["label"]:
        ml100k = " (RecBole's defaults set `threshold: {rating: 4}` on ml-100k)" if info["ml-100k"].get("threshold") \
            else ""
        needs.append(f"a 0/1 label: `threshold` on a loaded column{ml100k}, as RecBole's CTR protocol, or sampled "
                     "negatives (`train_neg_sample_args`)")
    if info["type"] == "SEQUENTIAL":
        needs.append("`eval_args.order: TO`")
    if "selected_features" in defaults:
        needs.append(f"item features from a `.item` file: `selected_features` (default {defaults['selected_features']})"
                     " loaded with `load_col.item`")
    if "additional_feat_suffix" in defaults:
        needs.append(f"pretrained embeddings from a `.{defaults['additional_feat_suffix']}` file "
                     "(`additional_feat_suffix`)")
    return True, "; ".join(needs) if needs else "nothing beyond RecBole's defaults"


def probe_settings(model: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """The RecBole keys ``scripts/models_table.py --probe`` adds to RecBole's defaults for ``model`` on
    ml-100k-tiny: what ``status`` says it needs (a label from ``threshold``), nothing else."""
    keys: dict[str, Any] = {}
    if info["label"] and not samples_negatives(effective("train_neg_sample_args", {}, model)):
        keys["threshold"] = {"rating": 4}
    if info["type"] == "SEQUENTIAL" and info["input"] is None and effective("loss_type", {}, model) == "CE":
        keys["train_neg_sample_args"] = None
    return keys
