"""The report as plain sentences and a table (what ``rec-es explain`` prints without ``--json``)."""
from __future__ import annotations

from typing import Any, Mapping

from rec_es.explain.fmt import _fmt, _plural
from rec_es.explain.lost import row_extrapolation_text


def _row_outcome(r: Mapping[str, Any], last_epoch: int) -> str:
    if "error" in r:
        return f"cannot replay: {r['error']}"
    if r["status"] == "stopped":
        return f"stops at epoch {r['stop_epoch']}"
    if r["status"] == "budget":
        return f"runs the whole budget (to epoch {r['stop_epoch']})"
    return f"would still be running at epoch {last_epoch} (data ends)"


def render_text(report: Mapping[str, Any]) -> str:
    """The report as plain sentences and a table."""
    stop, premature = report["stop"], report["premature"]
    kind = "stock RecBole log" if report["kind"] == "recbole_log" else "rec_es run"
    what = f"{report['model']} on {report['dataset']}" if report.get("model") else "model unknown"
    lines = [f"Run: {report['source']} ({kind}, {what})",
             f"Monitor: {report['monitor']} ({report['mode']}), budget epochs {report['epochs']}, "
             f"eval_step {report['eval_step']}, {_plural(stop['evaluations'], 'evaluation')} observed", "",
             "Why it stopped", f"  {stop['sentence']}", "", "Was it premature?"]
    lines += [f"  {s}" for s in premature["sentences"]]
    probe = report.get("probe")
    if probe:
        span = (f"epochs {probe['from_epoch']}-{probe['from_epoch'] + probe['epochs'] - 1}" if probe["epochs"]
                else "no epoch")
        lines += ["", f"Probe: measured by continuing the run {probe['epochs']} epochs ({span}, stopping off) into "
                      f"{probe['run_dir']}"]
        lines += [f"  {s}" for s in probe["sentences"]]
    if report.get("lost"):
        lines += ["", "What continuing would have brought (extrapolated)", f"  {report['lost']['sentence']}"]
    last = report["evaluations"][-1]["epoch"]
    lines += ["", f"What other settings would have done (replayed on the observed evaluations, data ends at epoch {last})"]
    table: list[tuple[str, ...]] = [(r["policy"], _row_outcome(r, last),
              "-" if r.get("best_epoch") is None else f"epoch {r['best_epoch']} ({_fmt(r.get('best_value'))})"
              + (" so far" if r.get("status") == "data_ends" else ""))
             for r in report["counterfactuals"]]
    header: tuple[str, ...] = ("policy", "outcome", f"restores ({report['monitor']})")
    if any(r.get("best_test") is not None for r in report["counterfactuals"]):  # traces recorded with record_test
        header += (f"test {report['monitor']} there",)
        table = [(*row, _fmt(r.get("best_test")) if r.get("best_test") is not None else "-")
                 for row, r in zip(table, report["counterfactuals"])]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    extrapolated = [t for t in (row_extrapolation_text(r, report["monitor"]) for r in report["counterfactuals"]) if t]
    if extrapolated:
        lines += ["", "Where the data ends, what the learning-curve fit expects (replayed on simulated continuations, not observed)"]
        lines += [f"  - {t}" for t in extrapolated]
    lines += ["", "Advice (shown by the replay above)"]
    lines += [f"  - {a}" for a in report["advice"]] or ["  - none: no replayed policy did better on the observed data."]
    if report["worth_trying"]:
        lines += ["", "Worth trying (the curve hints at it; the data cannot show the outcome)"]
        lines += [f"  - {a}" for a in report["worth_trying"]]
    if report["warnings"]:
        lines += ["", "Could not be read / caveats"] + [f"  - {w}" for w in report["warnings"]]
    offer = report.get("probe_offer")
    if offer and not probe:
        lines += ["", offer["sentence"]]
    return "\n".join(lines)
