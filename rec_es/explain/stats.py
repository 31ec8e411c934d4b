"""The statistics ``rec-es explain`` reads off the observed evaluations: noise, trend, gaps, ties, spikes.

All on the raw monitor values, in evaluation order (see ``rec_es.explain`` for the definitions).
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from rec_es.explain.observed import Observed


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def noise_level(values: Sequence[float]) -> float | None:
    """Standard deviation of the evaluation-to-evaluation changes (None with fewer than 3 values)."""
    if len(values) < 3:
        return None
    return statistics.stdev(b - a for a, b in zip(values, values[1:]))


def trend_change(points: Sequence[tuple[int, float]]) -> float | None:
    """Least-squares slope over ``points`` (epoch, value) times the epochs they span; None if < 3 points."""
    if len(points) < 3:
        return None
    xs = [float(x) for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope * (xs[-1] - xs[0])


def _patience_evaluations(obs: Observed) -> int | None:
    """The observed policy's patience in evaluations at the end of the run (None if it has none)."""
    patience = obs.decisions[-1].get("patience")
    if patience is None:
        return None
    if obs.policy.settings.patience_unit == "epochs":
        return max(1, -(-patience // obs.eval_step))
    return patience


def _gaps(obs: Observed) -> tuple[dict[str, Any] | None, list[int], list[int]]:
    """Longest recovered gap, epochs of counter resets after the first, and which of them were exact ties."""
    longest: dict[str, Any] | None = None
    run = 0
    start: int | None = None
    resets: list[int] = []
    ties: list[int] = []
    reference: float | None = None
    for d in obs.decisions:
        level = d.get("smoothed") if d.get("smoothed") is not None else d.get("value")
        if d.get("improved"):
            if reference is not None:
                resets.append(d["epoch"])
                if level == reference:
                    ties.append(d["epoch"])
            if run and (longest is None or run > longest["evaluations"]):
                longest = {"evaluations": run, "from_epoch": start, "improved_at": d["epoch"]}
            reference, run, start = level, 0, None
        else:
            if run == 0:
                start = d["epoch"]
            run += 1
    return longest, resets, ties


def _spike(obs: Observed, best_epoch: int | None, noise: float | None) -> dict[str, Any] | None:
    """The best value compared with the mean of its two neighbours, when both exist."""
    points = obs.values()
    epochs = [e for e, _ in points]
    if best_epoch not in epochs or noise is None:
        return None
    i = epochs.index(best_epoch)
    if i == 0 or i == len(points) - 1:
        return None
    neighbours = (points[i - 1][1] + points[i + 1][1]) / 2
    excess = (points[i][1] - neighbours) * (1 if obs.mode == "max" else -1)
    # With per-value noise sd = noise/sqrt(2), "value minus mean of two neighbours" has sd sqrt(3)/2 * noise;
    # a spike stands out by more than two of those.
    threshold = 2 * math.sqrt(3) / 2 * noise
    return {"epoch": best_epoch, "excess_over_neighbours": excess, "threshold": threshold,
            "is_spike": excess > threshold}
