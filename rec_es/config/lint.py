"""``rec-es check CONFIG...``: lint RecBole + rec_es property files before any training.

Files are merged in order, as RecBole merges them (later files override earlier ones key by key). Every
finding names the file and the key. Exit status: 1 if any error, 0 with warnings and notes only, 2 on bad
command-line usage. The ``early_stopping:`` / ``lr_schedule:`` mappings are validated by
``rec_es.config.properties.load_config`` (its ConfigError becomes one error here, nothing is validated twice).

Checks:
  * unknown top-level keys (neither RecBole nor rec_es reads them), with a did-you-mean
    (a near match is an error: RecBole silently ignores a misspelt key; no match at all is a warning,
    since a custom model may read its own keys);
  * ``valid_metric`` / ``early_stopping.monitor`` that RecBole will not compute from ``metrics`` x ``topk``;
  * ``valid_metric_bigger`` set by the user (RecBole overwrites it from the metric);
  * effective patience in epochs and the earliest epoch the run can stop, vs ``epochs``;
  * ``min_delta`` below the metric rounding (``10**-metric_decimal_place``);
  * ``eval_step`` larger than ``epochs`` (or <= 0); ``warmup`` / ``start_from_epoch`` past the budget;
  * ``stopping_step`` set alongside an ``early_stopping:`` policy that does not use it.
"""
from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from rec_es.rundir import yamlio
from rec_es.config.properties import RECBOLE_DEFAULTS, REC_ES_KEYS, RunConfig, config_errors, merge_files
from rec_es.policy.controller import StopController
from rec_es.policy.errors import ConfigError, bounded
from rec_es.policy import StoppingPolicy, rules
from rec_es.policy.schema import PolicySettings
from rec_es.config import models
from rec_es.config.shadowing import shadowed_settings
from rec_es.policy.monitor import TOPK_METRICS, VALUE_METRICS, computed_metric_keys, metric_base, metric_mode
from rec_es.policy.restore import check_budget
from rec_es.policy.schedule import LRSchedule
from rec_es.policy.validate import did_you_mean, integer, is_int, is_number, message

__all__ = ["Finding", "format_report", "lint_files", "recbole_known_keys"]

LEVELS = ("error", "warning", "note")
#: RecBole's EvaluatorType.VALUE metrics (LossMetric subclasses); every other metric is a ranking metric.
_VALUE_TYPE = frozenset({"auc", "mae", "rmse", "logloss"})
#: Keys RecBole's Config and quick-start accept that appear in no property file.
_RECBOLE_EXTRA_KEYS = frozenset({
    "model", "dataset", "config_files", "config_file", "nproc", "world_size", "ip", "port", "offset",
    "local_rank", "single_spec", "device", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type",
    "valid_neg_sample_args", "test_neg_sample_args",
})
#: A top-level key this close to a RecBole key is a typo (an error); RecBole knows hundreds of keys, so the
#: cut-off is stricter than the early_stopping schema's, or a custom model's own key would be flagged.
_KEY_CUTOFF = 0.8
#: Keys users write expecting a switch RecBole does not have, with what to write instead.
_MISLEADING = {
    "early_stop": "RecBole has no early_stop switch (it ignores this key). To turn stopping off use "
                  "`early_stopping: {enabled: false}` with rec_es, or a stopping_step larger than epochs with stock RecBole",
    "early_stopping_patience": "RecBole ignores this key; use stopping_step (stock) or early_stopping: {patience: N} (rec_es)",
    "patience": "RecBole ignores a top-level patience; use stopping_step (stock) or early_stopping: {patience: N} (rec_es)",
    "min_delta": "RecBole ignores a top-level min_delta; put it inside the early_stopping: mapping (rec_es)",
}


@dataclass(frozen=True)
class Finding:
    """One lint result: ``level`` is error | warning | note; ``file`` and ``key`` say where."""

    level: str
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.level}: {self.message}"


# ----- what RecBole knows ------------------------------------------------------------------------------
def _recbole_dir() -> Path | None:
    spec = importlib.util.find_spec("recbole")  # locates the package without importing torch
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def recbole_known_keys() -> frozenset[str]:
    """Every key RecBole 1.2.1 knows: its properties/*.yaml (overall, model, dataset, quick_start_config),
    ``recbole.utils.argument_list`` and the ``config["..."]`` keys its code reads."""
    root = _recbole_dir()
    keys: set[str] = set(_RECBOLE_EXTRA_KEYS) | set(RECBOLE_DEFAULTS)
    if root is None:
        return frozenset(keys)
    for path in (root / "properties").rglob("*.yaml"):
        try:
            data = yamlio.load_file(path, "a RecBole property file").data
        except ConfigError:
            continue
        if isinstance(data, dict):
            keys.update(str(k) for k in data)
    arguments = root / "utils" / "argument_list.py"
    if arguments.is_file():
        for node in ast.walk(ast.parse(arguments.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                keys.add(node.value)
    pattern = re.compile(r"""config\[\s*['"]([A-Za-z_][A-Za-z_0-9]*)['"]\s*\]""")
    for path in root.rglob("*.py"):
        keys.update(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(keys)


# ----- the linter --------------------------------------------------------------------------------------
class _Lint:
    def __init__(self, files: Sequence[str], overrides: Mapping[str, Any] | None = None) -> None:
        self.files = [str(f) for f in files]
        self.overrides = dict(overrides or {})
        self.findings: list[Finding] = []
        self.merged: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def add(self, level: str, key: str, message: str, file: str | None = None) -> None:
        where = file or self.sources.get(key.split(".")[0], "RecBole's defaults")
        self.findings.append(Finding(level, where, key, message))

    def get(self, key: str) -> Any:
        return self.merged.get(key, RECBOLE_DEFAULTS.get(key))

    def run(self) -> list[Finding]:
        try:
            self.merged, self.sources = merge_files(self.files, self.overrides)
        except ConfigError as exc:
            self.findings.append(Finding("error", exc.source or "--config", exc.key or "-", _bare(exc)))
            return self.findings
        self.unknown_keys()
        self.pickle_caches()
        metric_ok = self.metrics() and self.valid_metric()
        self.valid_metric_bigger()
        run_config = self.rec_es_config(skip_legacy_monitor=not metric_ok)
        self.eval_step()
        if run_config is not None:
            self.patience(run_config)
            self.min_delta(run_config)
            self.warmup(run_config)
            self.restore(run_config)
            self.unused_stopping_step(run_config)
        self.findings += [Finding(*row) for row in shadowed_settings(self.files, self.merged, self.sources, run_config)]
        self.findings += [Finding(*row) for row in models.findings(self.merged, self.sources)]
        return self.findings

    # -- keys
    def unknown_keys(self) -> None:
        recbole = recbole_known_keys()
        known = sorted(recbole | set(REC_ES_KEYS))
        for key in self.merged:
            if key in recbole or key in REC_ES_KEYS:
                continue
            if key in _MISLEADING:
                self.add("error", key, _MISLEADING[key])
                continue
            near = did_you_mean(key, known, cutoff=_KEY_CUTOFF)
            if near:
                self.add("error", key, f"unknown key{near} RecBole silently ignores "
                         f"'{key}', so the setting you meant keeps its default")
            else:
                self.add("warning", key, "neither RecBole nor rec_es reads this key (fine only if your own model "
                         "class reads it)")

    # -- metrics
    def pickle_caches(self) -> None:
        for key, message in pickle_cache_warnings(self.merged):
            self.add("warning", key, message)

    def computed(self) -> list[str]:
        return computed_metric_keys(self.get("metrics"), self.get("topk"))

    def metrics_origin(self) -> str:
        metrics, topk = self.get("metrics"), self.get("topk")
        return (f"metrics {metrics} (from {self.sources.get('metrics', 'RecBole defaults')}) × "
                f"topk {topk} (from {self.sources.get('topk', 'RecBole defaults')})")

    def metrics(self) -> bool:
        """Names RecBole knows, and no mix of ranking and value metrics (RecBole refuses both at once)."""
        metrics = self.get("metrics")
        names = [metrics] if isinstance(metrics, str) else metrics
        if not isinstance(names, list) or not names:
            self.add("error", "metrics", message(None, "a metric name or a list of them, e.g. [Recall, NDCG]", metrics))
            return False
        known = sorted(TOPK_METRICS | VALUE_METRICS)
        unknown = [str(m) for m in names if str(m).lower() not in known]
        for name in unknown:
            hint = did_you_mean(name.lower(), known)
            self.add("error", "metrics", f"RecBole has no metric named {name!r}{hint} (it raises NotImplementedError "
                     f"before training); known: {', '.join(known)}")
        kinds = {"value" if str(m).lower() in _VALUE_TYPE else "ranking" for m in names if str(m).lower() in known}
        if len(kinds) > 1:
            value = [str(m) for m in names if str(m).lower() in _VALUE_TYPE]
            self.add("error", "metrics", f"RecBole cannot compute ranking and value metrics together (value metrics "
                     f"here: {', '.join(value)}); it raises RuntimeError before training. Keep one kind")
        return not unknown and len(kinds) == 1

    def valid_metric(self) -> bool:
        metric = self.get("valid_metric")
        if not isinstance(metric, str):
            self.add("error", "valid_metric", message(None, "a metric key such as NDCG@10", metric))
            return False
        computed = self.computed()
        if metric.lower() in computed:
            return True
        base = metric_base(metric)
        hint = ""
        if base in VALUE_METRICS and "@" in metric:
            hint = f" {base.upper()} is a value metric and has no @k: write valid_metric: {base.upper()}."
        elif base not in VALUE_METRICS and "@" not in metric:
            hint = f" Ranking metrics need a cut-off, e.g. {metric}@{_first(self.get('topk'))}."
        self.add("error", "valid_metric",
                 f"RecBole will not compute {metric!r}: {self.metrics_origin()} computes "
                 f"{', '.join(computed) or 'nothing'}; training would fail with a KeyError at the first "
                 f"evaluation.{hint}")
        return False

    def valid_metric_bigger(self) -> None:
        if "valid_metric_bigger" not in self.merged:
            return
        metric = str(self.get("valid_metric"))
        actual = metric_mode(metric) == "max"
        given = self.merged["valid_metric_bigger"]
        same = "the same value" if given == actual else f"{actual}, not {given!r}"
        self.add("warning", "valid_metric_bigger",
                 f"RecBole overwrites valid_metric_bigger from valid_metric ({metric} → {actual}), so your "
                 f"setting has no effect (it becomes {same}); with rec_es set early_stopping.mode instead")

    # -- rec_es mappings (validated by load_config)
    def rec_es_config(self, skip_legacy_monitor: bool) -> RunConfig | None:
        """Every error of the early_stopping / lr_schedule mappings (``config_errors``), each one finding."""
        cfg, errors = config_errors(self.files, self.overrides)
        es = self.merged.get("early_stopping")
        for exc in errors:
            from_valid_metric = exc.key == "early_stopping.monitor" and not (isinstance(es, dict) and "monitor" in es)
            if not (from_valid_metric and skip_legacy_monitor):  # the monitor is valid_metric: already reported
                self.findings.append(Finding("error", exc.source or "-", exc.key or "early_stopping", _bare(exc)))
        return cfg

    # -- budget and patience
    def epochs(self) -> int | None:
        epochs = self.get("epochs")
        return epochs if is_int(epochs) else None

    def eval_step_value(self) -> int:
        """RecBole's effective eval_step: min(eval_step, epochs)."""
        step, epochs = self.get("eval_step"), self.epochs()
        if not is_int(step) or step <= 0:
            return 0
        return min(step, epochs) if epochs else step

    def eval_step(self) -> None:
        step, epochs = self.get("eval_step"), self.epochs()
        if epochs is None or epochs <= 0:
            self.add("error", "epochs", message(None, integer(1).allowed, self.get("epochs")))
            return
        if not is_int(step):
            self.add("error", "eval_step", message(None, "an integer", step))
        elif step <= 0:
            self.add("warning", "eval_step", f"eval_step: {step} means RecBole never evaluates: no early stopping, "
                     "and the model of the last epoch is saved and tested, not the best one")
        elif step > epochs:
            self.add("warning", "eval_step", f"eval_step {step} is larger than epochs {epochs}: RecBole uses "
                     f"min(eval_step, epochs) = {epochs}, so it evaluates once, after the last epoch, and early "
                     "stopping can never fire")

    def patience(self, cfg: RunConfig) -> None:
        epochs, step = self.epochs(), self.eval_step_value()
        if not epochs or step <= 0:
            return
        s = cfg.settings
        es_file = self.sources.get("early_stopping")
        if not s.enabled:
            self.add("note", "early_stopping.enabled", f"stopping is off: every one of the {epochs} epochs runs "
                     "(the best evaluation is still restored)", file=es_file)
            return
        key, wait = self._wait_text(s, step)
        plateau = (cfg.lr_schedule or {}).get("reduce_on_plateau")
        if plateau:
            wait += (f", and lr_schedule.reduce_on_plateau defers the stop up to {plateau['max_reductions']} times "
                     "with a fresh window")
        lr = self.get("learning_rate")
        earliest = earliest_stop(s, epochs, step, cfg.lr_schedule,
                                 lr if is_number(lr) and lr > 0 else 0.001)
        if earliest is not None:
            self.add("note", key, f"{wait}; your run can stop as early as epoch {earliest} (0-based, as RecBole "
                     f"logs it: after {earliest + 1} of {epochs} epochs)")
        elif max(s.warmup, s.start_from_epoch) >= min(epochs, s.max_epochs or epochs):
            self.add("note", key, f"{wait}; no stop can happen before the budget ends (see the warmup warning)")
        else:
            self.add("warning", key, f"{wait}; with epochs {epochs} that wait never ends in time: no stop can "
                     f"happen and the run always trains all {epochs} epochs")

    def _wait_text(self, s: PolicySettings, step: int) -> tuple[str, str]:
        """(key, sentence) saying how long the policy waits, in evaluations and epochs."""
        if s.is_legacy:
            evals = s.patience  # stopping_step + 1
            stock = "early_stopping" not in self.merged
            key = "stopping_step" if stock else "early_stopping.stopping_step"
            who = "stock stopping_step" if stock else "early_stopping.stopping_step (recbole_legacy)"
            return key, (f"{who} {s.stopping_step} with eval_step {step} waits {evals * step} epochs ({evals} "
                         f"evaluations × {step} epoch{'s' * (step != 1)}) without reaching the best")
        return rules.describe_wait(s, step)

    def min_delta(self, cfg: RunConfig) -> None:
        s = cfg.settings
        places = self.get("metric_decimal_place")
        if isinstance(s.min_delta, str) or s.min_delta <= 0 or s.min_delta_mode != "abs" \
                or not isinstance(places, int):  # min_delta: auto is measured, never below the noise
            return
        rounding = 10.0 ** -places
        if s.min_delta < rounding:
            self.add("warning", "early_stopping.min_delta",
                     f"min_delta {s.min_delta:g} is below the metric rounding: RecBole rounds metrics to "
                     f"metric_decimal_place {places} decimals ({rounding:g}), so any change is at least {rounding:g} "
                     f"and min_delta {s.min_delta:g} acts like 0; use min_delta ≥ {rounding:g} or raise "
                     "metric_decimal_place", file=self.sources.get("early_stopping"))

    def warmup(self, cfg: RunConfig) -> None:
        s, epochs = cfg.settings, self.epochs()
        if not epochs or s.is_legacy:
            return
        budget = min(epochs, s.max_epochs or epochs)
        for key, value in (("warmup", s.warmup), ("start_from_epoch", s.start_from_epoch)):
            if value >= budget:
                self.add("warning", f"early_stopping.{key}",
                         f"{key} {value} is not before the last epoch of the budget (epochs {epochs}"
                         + (f", early_stopping.max_epochs {s.max_epochs}" if s.max_epochs else "")
                         + f": last epoch {budget - 1}), so no metric rule can ever stop the run",
                         file=self.sources.get("early_stopping"))

    def restore(self, cfg: RunConfig) -> None:
        """An averaging ``restore`` asking for more evaluations than the budget makes is an error."""
        epochs, s = self.epochs(), cfg.settings
        if not epochs or s.is_legacy:
            return
        try:
            check_budget(s.restore, epochs, self.eval_step_value(), s.max_epochs)
        except ConfigError as exc:
            self.add("error", exc.key or "early_stopping.restore", _bare(exc), file=self.sources.get("early_stopping"))

    def unused_stopping_step(self, cfg: RunConfig) -> None:
        if "stopping_step" in self.merged and "early_stopping" in self.merged and not cfg.settings.is_legacy:
            self.add("warning", "stopping_step",
                     f"stopping_step {self.merged['stopping_step']} is not used: the early_stopping mapping "
                     f"in {self.sources.get('early_stopping')} decides when to stop (its patience is "
                     f"{cfg.settings.patience} {cfg.settings.patience_unit})")


#: RecBole keys that make it ``pickle.load`` a file (code execution if the file is not your own).
PICKLE_PATH_KEYS = ("dataset_save_path", "dataloaders_save_path")
#: Every key ``pickle_cache_warnings`` may warn about.
PICKLE_WARNING_KEYS = (*PICKLE_PATH_KEYS, "save_dataset", "save_dataloaders", "checkpoint_dir")


def pickle_cache_warnings(merged: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for every setting that turns on RecBole's pickle caches, or that rec-es run ignores."""
    out = []
    for key in PICKLE_PATH_KEYS:
        if merged.get(key) is not None:
            out.append((key, f"RecBole loads {merged[key]!r} with pickle.load, which runs any code stored in it: "
                             "use only a file you wrote yourself on this machine (rec_es itself never unpickles)"))
    for key in ("save_dataset", "save_dataloaders"):
        if merged.get(key) is True:
            out.append((key, f"{key}: RecBole writes its cache to checkpoint_dir, which rec-es run replaces by a fresh "
                             "private scratch directory removed after the run, so the cache is never reused "
                             "(set dataset_save_path/dataloaders_save_path to keep one, at your own risk)"))
    if merged.get("checkpoint_dir") is not None:
        out.append(("checkpoint_dir", "checkpoint_dir is not used by rec-es run: the run's checkpoints are "
                                      "best.pth and last.pth in the run directory (--output-dir)"))
    return out


def earliest_stop(settings: PolicySettings, epochs: int, eval_step: int,
                  lr_schedule: Mapping[str, Any] | None = None, learning_rate: float = 0.001) -> int | None:
    """The first epoch (0-based) at which the policy could stop, or None if it cannot within ``epochs``.

    Replays the policy on the worst case for waiting: the first evaluation is the best and every later one is
    worse. Rules that depend on the values a run reaches (thresholds, time) are left out. An
    ``lr_schedule.reduce_on_plateau`` defers patience stops exactly as the trainer does (``StopController``).
    """
    policy = StoppingPolicy(rules.worst_case(settings))
    controller = StopController(policy, LRSchedule(lr_schedule, learning_rate) if lr_schedule else None)
    terms = policy.settings.monitor.terms
    weight = sum(w for _, w in terms) or 1.0
    worse = (-1.0 if policy.mode == "max" else 1.0) * (1.0 if weight > 0 else -1.0)
    for n, epoch in enumerate(range(eval_step - 1, epochs, eval_step)):
        value = 0.5 + worse * 1e-3 * n
        if controller.update(epoch, {k: value for k in policy.monitor_keys}, train_loss=1.0 + 1e-3 * n).stop:
            return epoch
    return None


def _first(topk: Any) -> Any:
    return topk[0] if isinstance(topk, list) and topk else topk


def _bare(exc: ConfigError) -> str:
    """The ConfigError message without the ``source: `` and ``key: `` prefixes (the finding names both)."""
    text = str(exc)
    for prefix in (f"{exc.source}: " if exc.source else None, f"{exc.key}: " if exc.key else None):
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
    return text


def lint_files(files: Sequence[str | Path], overrides: Mapping[str, Any] | None = None) -> list[Finding]:
    """Lint the merged property files with ``overrides`` (``--set`` values, ``parse_set_args``) applied last;
    every finding of every check, in the order of the checks. A finding about a value from ``--set`` names
    ``--set`` as its file."""
    return [replace(f, message=bounded(f.message)) for f in _Lint([str(f) for f in files], overrides).run()]


def format_report(findings: Sequence[Finding], files: Sequence[str]) -> str:
    """Findings one per line (``FILE: KEY: level: message``) and a summary line."""
    order = {level: i for i, level in enumerate(LEVELS)}
    lines = [str(f) for f in sorted(findings, key=lambda f: order[f.level])]
    counts = {level: sum(f.level == level for f in findings) for level in LEVELS}
    summary = ", ".join(f"{n} {level}{'s' * (n != 1)}" for level, n in counts.items())
    lines.append(f"checked {', '.join(files)}: {summary}")
    return "\n".join(lines)
