"""Settings that look as if they decide something but are overridden, for ``rec-es check`` (and ``rec-es run``).

* a key given twice in one file: RecBole and PyYAML keep the last one without a word, so a duplicated
  ``early_stopping:`` hides a whole policy (both lines are named);
* RecBole's ``stopping_step`` / ``valid_metric`` set while an ``early_stopping:`` mapping sets its own
  ``stopping_step`` / ``monitor``: the mapping decides, whichever file comes later (both files are named);
* a monitor weight whose sign contradicts its metric's direction (a positive weight on a bigger-is-better
  metric in a monitor that is minimised, or a negative one in a monitor that is maximised, and the reverse for
  smaller-is-better metrics): the run then prefers a worse value of that metric.

``shadowed_settings`` returns ``(level, file, key, message)`` tuples; ``rec_es.config.lint`` makes them findings.
Pure Python (no torch, no recbole).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from rec_es.rundir import yamlio
from rec_es.config.properties import PROPERTY_FILE, REC_ES_KEYS
from rec_es.policy.errors import ConfigError
from rec_es.policy.monitor import metric_mode

Row = tuple[str, str, str, str]


def shadowed_settings(files: Sequence[str], merged: Mapping[str, Any], sources: Mapping[str, str],
                      run_config: Any = None) -> list[Row]:
    """Every warning of this module for ``files`` merged into ``merged`` (``run_config``: their RunConfig, or
    None when it did not validate: then only the duplicate keys are checked)."""
    rows = duplicate_keys(files)
    if run_config is not None:
        rows += shadowed_recbole_keys(merged, sources, run_config, files)
        rows += contradicting_weights(run_config, sources.get("early_stopping", "RecBole's defaults"))
    return rows


def duplicate_keys(files: Sequence[str]) -> list[Row]:
    """A warning for each key given twice in one mapping of a file, naming both lines and the one that counts."""
    rows: list[Row] = []
    for f in files:
        try:
            duplicates = yamlio.load_file(f, PROPERTY_FILE).duplicates
        except ConfigError:  # unreadable files are reported by the merge already
            continue
        for d in duplicates:
            top = d.key.split(".")[0]
            whole = (f"; the whole {top}: mapping at line {d.first_line} is ignored, not merged with the later one"
                     if top in REC_ES_KEYS and d.key == top else "")
            rows.append(("warning", str(f), d.key,
                         f"given twice in this file, at lines {d.first_line} and {d.line}: RecBole and PyYAML keep "
                         f"the last one (line {d.line}), so the value at line {d.first_line} has no effect{whole}; "
                         "delete one of them"))
    return rows


def shadowed_recbole_keys(merged: Mapping[str, Any], sources: Mapping[str, str], run_config: Any,
                          files: Sequence[str] = ()) -> list[Row]:
    """RecBole's stopping_step / valid_metric, given in the early_stopping mapping's file or a later one, while
    the mapping sets its own: the mapping decides. (In an earlier file, a later policy file overriding them is
    RecBole's own "later wins", and not warned about.)"""
    es = merged.get("early_stopping")
    if not isinstance(es, Mapping):
        return []
    es_file = sources.get("early_stopping", "?")
    rows: list[Row] = []
    s = run_config.settings
    if s.is_legacy and "stopping_step" in es and "stopping_step" in merged \
            and merged["stopping_step"] != es["stopping_step"] and _placed(files, sources, "stopping_step"):
        rows.append(("warning", sources.get("stopping_step", "?"), "stopping_step",
                     f"stopping_step {merged['stopping_step']} (in {sources.get('stopping_step')}) is not used: the "
                     f"early_stopping mapping in {es_file} sets its own stopping_step {es['stopping_step']}, and that "
                     f"one decides when to stop{_placed(files, sources, 'stopping_step')}; set it in one place"))
    metric = merged.get("valid_metric")
    if "monitor" in es and isinstance(metric, str) and metric.strip().lower() != s.monitor.name \
            and _placed(files, sources, "valid_metric"):
        rows.append(("warning", sources.get("valid_metric", "?"), "valid_metric",
                     f"valid_metric {metric} (in {sources.get('valid_metric')}) does not choose when to stop nor the "
                     f"epoch whose weights are restored: early_stopping.monitor {s.monitor.name} in {es_file} decides "
                     f"both{_placed(files, sources, 'valid_metric')}; set early_stopping.monitor to the metric you "
                     "mean"))
    return rows


def _placed(files: Sequence[str], sources: Mapping[str, str], key: str) -> str:
    """Where ``key``'s file stands against the early_stopping mapping's: ', even though ... comes later' (later),
    ' (both are in that file)' (same file), or '' (earlier, or not from a listed file: no warning)."""
    order = [str(f) for f in files]
    mine, es = sources.get(key), sources.get("early_stopping")
    if mine not in order or es not in order:
        return ""
    if mine == es:
        return " (both are in that file)"
    return f", even though {mine} comes later in the file list" if order.index(mine) > order.index(es) else ""


def contradicting_weights(run_config: Any, es_file: str) -> list[Row]:
    """A warning per monitor term whose weight's sign works against its metric's direction under the mode."""
    monitor = run_config.settings.monitor
    rows: list[Row] = []
    for key, weight in monitor.terms:
        bigger = metric_mode(key) == "max"
        if (metric_mode(key) == monitor.mode) == (weight > 0):
            continue
        better = "higher" if bigger else "lower"
        worse = "lower" if bigger else "higher"
        rows.append(("warning", es_file, "early_stopping.monitor",
                     f"weight {weight:g} on {key} works against it: {key} is better when {better}, and the monitor "
                     f"{monitor.name} is {'maximised' if monitor.mode == 'max' else 'minimised'} (mode "
                     f"{monitor.mode}), so the run prefers epochs with a {worse} {key}; flip the sign of the weight "
                     "(or the mode) if that is not what you mean"))
    return rows
