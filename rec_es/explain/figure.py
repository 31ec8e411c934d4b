"""The report as a PNG (``rec-es explain RUN --plot PATH``)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

from rec_es.policy.smoothing import smooth


def plot(report: Mapping[str, Any], path: str | Path) -> Path:
    """PNG: monitor curve, smoothed curve, best and stop epochs, shaded patience window at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [e for e in report["evaluations"] if isinstance(e.get("value"), (int, float))]
    epochs = [e["epoch"] for e in evals]
    values = [e["value"] for e in evals]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(epochs, values, "o-", ms=3, lw=1, label=f"{report['monitor']} (observed)")
    smoothed, label = _smoothed_series(report, evals)
    ax.plot(epochs, smoothed, "-", lw=2, alpha=0.8, label=label)
    stop = report["stop"]
    premature = report["premature"]
    _continuation(ax, premature)
    _probe(ax, report.get("probe"), evals)
    if stop.get("best_epoch") is not None:
        ax.axvline(stop["best_epoch"], color="tab:green", ls="--", label=f"best epoch {stop['best_epoch']}")
    ax.axvline(stop["stop_epoch"], color="tab:red", ls="-", label=f"{'stop' if stop['ending'] == 'early_stopped' else 'last'} epoch {stop['stop_epoch']}")
    patience = premature.get("patience_evaluations")
    waited = stop.get("epochs_without_improvement") or 0
    if patience:
        start = stop["stop_epoch"] - waited
        ax.axvspan(start, start + patience * report["eval_step"], color="tab:orange", alpha=0.15,
                   label=f"patience window ({patience} evaluations)")
    ax.set_xlabel("epoch (0-based, as RecBole logs it)")
    ax.set_ylabel(report["monitor"])
    title = f"{report.get('model') or ''} {report.get('dataset') or ''}: {premature['verdict']}"
    if report.get("probe"):
        title += f" Probe: {report['probe']['verdict']} (measured)."
    ax.set_title(textwrap.fill(title, 100), fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _continuation(ax: Any, premature: Mapping[str, Any]) -> None:
    """The shared estimator's fitted learning curve to the budget's end and its band, when the verdict used it."""
    estimate = premature.get("estimate") or {}
    points = estimate.get("continuation") or []
    if not premature.get("extrapolated") or not points:
        return
    xs = [p["epoch"] for p in points]
    ax.fill_between(xs, [p["lo"] for p in points], [p["hi"] for p in points], color="tab:purple", alpha=0.15,
                    label=f"band of the fitted curve (one-sided {round(100 * estimate['level'])} % bounds)")
    ax.plot(xs, [p["mean"] for p in points], "--", color="tab:purple", lw=1.5,
            label=f"learning-curve fit extrapolated to epoch {xs[-1]}")


def _probe(ax: Any, probe: Mapping[str, Any] | None, evals: Sequence[Mapping[str, Any]]) -> None:
    """The probe's continuation after the stop, joined to the last observed evaluation, in its own colour, with
    its best evaluation marked."""
    points = (probe or {}).get("evaluations") or []
    if not points or probe is None:
        return
    joined = [*evals[-1:], *points]
    xs, ys = [p["epoch"] for p in joined], [p["value"] for p in joined]
    ax.plot(xs, ys, "o-", ms=3, lw=1, color="tab:cyan",
            label=f"probe: {probe['epochs']} more epochs, stopping off ({probe['verdict']}, measured)")
    if probe.get("best_epoch") is not None:
        ax.plot([probe["best_epoch"]], [probe["best_value"]], "*", ms=12, color="tab:cyan", mec="k",
                label=f"probe's best, epoch {probe['best_epoch']}")


def _smoothed_series(report: Mapping[str, Any], evals: Sequence[Mapping[str, Any]]) -> tuple[list[float], str]:
    policy = report["observed_policy"]
    if policy.get("smoothing", "none") != "none" and all(e.get("smoothed") is not None for e in evals):
        return [e["smoothed"] for e in evals], "smoothed (the run's own policy)"
    state: dict[str, Any] = {}
    out = []
    for e in evals:
        value, state = smooth("ema", 0.5, state, e["value"])
        out.append(value)
    return out, "EMA α=0.5 (for reading only)"
