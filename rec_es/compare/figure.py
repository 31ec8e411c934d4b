"""``compare.png``: per seed, the recorded curve and one lane per policy; epochs vs test NDCG@10 beside it."""
from __future__ import annotations

import math
from pathlib import Path

from rec_es.compare.comparison import Comparison
from rec_es.compare.table import _plot_metric, rows
from rec_es.rundir.trace import Trace


def plot(c: Comparison, path: Path) -> Path:
    """PNG. Left, per seed: the recorded validation curve, and under it one lane per policy from epoch 0 to
    its stop (x) with its restored epoch (o); a dashed line marks the oracle's epoch; live policies also draw
    their own curve (dashed). Right: epochs trained vs test NDCG@10 per policy (mean, bars = std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in c.policies]
    cmap = plt.get_cmap("tab10")
    colour = {n: cmap(i % 10) for i, n in enumerate(["oracle"] + names)}
    n = len(c.seeds)
    lane_h = 0.22 * len(names) + 0.3
    fig = plt.figure(figsize=(16, n * (2.4 + lane_h) + 0.6))
    outer = fig.add_gridspec(n, 2, width_ratios=(1.5, 1.0), wspace=0.2)
    key = _plot_metric(c)
    for i, (seed, trace) in enumerate(zip(c.seeds, c.traces)):
        inner = outer[i, 0].subgridspec(2, 1, height_ratios=(2.4, lane_h), hspace=0.05)
        ax = fig.add_subplot(inner[0])
        lanes = fig.add_subplot(inner[1], sharex=ax)
        ax.plot([r["epoch"] for r in trace.records], _series(trace, key), color="0.3", lw=1.3,
                label=f"valid {key}, full {c.budget}-epoch run")
        for name, traces in c.live_traces.items():
            live = traces[i]
            ax.plot([r["epoch"] for r in live.records], _series(live, key), color=colour[name], lw=1.0, ls="--",
                    label=f"valid {key}, {name} (live)")
        best = c.oracle[i].best_epoch
        if best is not None:
            for a in (ax, lanes):
                a.axvline(best, color=colour["oracle"], ls=":", lw=1.2)
            ax.scatter([best], [_value_at(trace, key, best)], marker="o", s=50, facecolors="none",
                       edgecolors=colour["oracle"], linewidths=1.6, zorder=3, label="oracle epoch")
        for lane, name in enumerate(names):
            r = c.results[name][i]
            y = len(names) - 1 - lane
            lanes.plot([0, r.stop_epoch], [y, y], color=colour[name], lw=1.5, alpha=0.6)
            lanes.scatter([r.stop_epoch], [y], marker="x", s=40, color=colour[name], zorder=3)
            if r.best_epoch is not None:
                lanes.scatter([r.best_epoch], [y], marker="o", s=36, facecolors="none", edgecolors=colour[name],
                              linewidths=1.5, zorder=3)
        lanes.set_yticks(range(len(names)))
        lanes.set_yticklabels(list(reversed(names)), fontsize=7)
        lanes.set_ylim(-0.7, len(names) - 0.3)
        lanes.grid(axis="x", alpha=0.3)
        ax.set_title(f"seed {seed}: lanes show each policy's run (x = stop, o = restored epoch); "
                     f"dotted = oracle epoch", fontsize=9)
        ax.set_ylabel(f"valid {key}")
        ax.tick_params(labelbottom=False)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
        if i == n - 1:
            lanes.set_xlabel("epoch")
    ax2 = fig.add_subplot(outer[:, 1])
    table = rows(c)
    groups: dict[tuple[float, float], list[str]] = {}
    for row in table:
        if row.epochs.mean is None or row.ndcg.mean is None:
            continue
        ax2.errorbar(row.epochs.mean, row.ndcg.mean, xerr=row.epochs.std, yerr=row.ndcg.std, fmt="o",
                     color=colour[row.policy], capsize=3, label=f"{row.policy} ({row.how})")
        groups.setdefault((round(row.epochs.mean, 6), round(row.ndcg.mean, 6)), []).append(row.policy)
    for (x, y), members in groups.items():
        ax2.annotate(", ".join(members), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax2.set_xlabel(f"epochs trained (budget {c.budget}; the oracle needs the whole budget)")
    ax2.set_ylabel("test NDCG@10 of the restored weights")
    ax2.set_title(f"epochs vs test quality, mean ± std over {n} seed{'s' * (n != 1)}", fontsize=9)
    ax2.legend(fontsize=7, loc="lower right")
    ax2.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _series(trace: Trace, key: str) -> list[float]:
    return [math.nan if v is None else float(v) for v in trace.metric(key)]


def _value_at(trace: Trace, key: str, epoch: int) -> float:
    for r, v in zip(trace.records, trace.metric(key)):
        if r["epoch"] == epoch:
            return math.nan if v is None else float(v)
    return math.nan
