"""The "was it premature?" verdict, the lost-gain estimate and the projection on the plot (issue 13).

tests/fixtures/recbole_logs/cut/ holds stock-format logs written by ``rec_es.recbole_log.write`` from long runs
recorded with stopping disabled (docs/results/long_runs, ml-100k), cut where RecBole's rule stops. What the full
runs did afterwards (the truth the verdict cannot see; docs/explain_verdict.md):
  * gru4rec_lr0.005_ss1: stopping_step 1 on NDCG@10 stops at epoch 7 of 100, restoring epoch 5; the full run's
    best-validation epoch (68) has 29 % more test NDCG@10: premature;
  * gru4rec_lr0.005_ss20: stopping_step 20 stops at epoch 65, restoring epoch 44; the full run's best-validation
    epoch (68) has 9 % less test NDCG@10: not premature;
  * stamp_ss1: STAMP, stopping_step 1 stops at epoch 2 of 100, restoring epoch 0; the full run's best (65) has
    2.6x its test NDCG@10: premature.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from rec_es.cli.explain import main
from rec_es.explain import explain
from rec_es.explain.verdict import CONFIDENCE, LOSS_HEADROOM, MIN_POINTS, SLOW_LOSS, UNDECIDED, UNTUNED
from rec_es.policy.learning import estimate_learning
from rec_es.recbole_log import parse_recbole_log
from rec_es.recbole_log.write import stock_log_text
from rec_es.rundir.trace import read_trace

from test_explain import write_trace

CUT = Path(__file__).parent / "fixtures" / "recbole_logs" / "cut"


def _log_series(path: Path) -> tuple[list[int], list[float], list[float]]:
    """(epochs, valid_scores, train losses) read from the raw log text with regular expressions."""
    text = path.read_text()
    evals = [(int(e), float(s)) for e, s in re.findall(r"epoch (\d+) evaluating \[time: [\d.]+s, valid_score: ([\d.]+)\]", text)]
    losses = {int(e): float(x) for e, x in re.findall(r"epoch (\d+) training \[time: [\d.]+s, train loss: ([\d.]+)\]", text)}
    return [e for e, _ in evals], [s for _, s in evals], [losses[e] for e, _ in evals]


def _headroom(epochs: list[int], losses: list[float], budget: int) -> tuple[float, float]:
    """(relative fall per epoch over the last five evaluations, the share of the loss that pace sheds over the
    epochs left), by hand."""
    e0, e1, x0, x1 = epochs[-5:][0], epochs[-1], losses[-5:][0], losses[-1]
    fall = (x0 - x1) / x0 / (e1 - e0)
    return fall, 1 - (1 - max(fall, 0.0)) ** (budget - 1 - e1)


def test_early_stop_with_the_loss_still_falling_is_premature() -> None:
    """Three evaluations, too few for a curve: the loss falling fast, with 97 epochs left, decides it."""
    path = CUT / "stamp_ss1.log"
    epochs, _, losses = _log_series(path)
    assert len(epochs) < MIN_POINTS
    fall, headroom = _headroom(epochs, losses, 100)
    assert headroom > LOSS_HEADROOM
    premature = explain(path)["premature"]
    rule = "early stop, loss still falling"
    assert (premature["call"], premature["rule"], premature["confidence"]) == ("premature", rule, CONFIDENCE[rule])
    recent = (losses[-2] - losses[-1]) / abs(losses[-2]) / (epochs[-1] - epochs[-2])  # the last step's pace
    assert premature["facts"] == [
        f"the training loss was still falling {100 * fall:.2g} % per epoch on average over epochs 0-2, "
        f"{100 * recent:.2g} % per epoch over epochs 1-2: at the average pace "
        f"{100 * headroom:.0f} % more over the 97 epochs left, above the {100 * LOSS_HEADROOM:g} % below which "
        "training counts as finished",
        "it stopped at epoch 2, 3 % into its 100-epoch budget"]
    right, cases = UNTUNED[rule]
    assert premature["untuned"] == [right, cases]
    assert premature["verdict"] == (f"Premature (confidence {100 * CONFIDENCE[rule]:.0f} %; right {right} of {cases} "
                                    "times on regimes left out of its tuning): "
                                    + "; ".join(premature["facts"]) + ".")


def test_stop_with_the_loss_still_falling_quotes_the_extrapolation() -> None:
    """Stopped at epoch 7 of 100 with the loss still falling fast and NDCG@10 rising through its noise: premature,
    and the third fact is the shared estimator's expected gain with its bounds, which the plot then draws."""
    path = CUT / "gru4rec_lr0.005_ss1.log"
    epochs, values, losses = _log_series(path)
    est = estimate_learning(epochs, values, "max", 100, losses)
    fall, headroom = _headroom(epochs, losses, 100)
    premature = explain(path)["premature"]
    assert headroom > LOSS_HEADROOM and est.trend_z >= 2.0  # TREND_Z
    assert (premature["call"], premature["rule"]) == ("premature", "loss falling, monitor rising")
    assert premature["facts"][0].startswith(f"the training loss was still falling {100 * fall:.2g} % per epoch")
    assert premature["facts"][2] == (f"the learning-curve fit expects {est.gain:+.2g} more by epoch 99 (bounds "
                                     f"{est.gain_lo:+.2g} to {est.gain_hi:+.2g})")
    assert premature["extrapolated"] is True


def test_late_stop_with_a_flat_loss_is_not_premature() -> None:
    """Stopped at epoch 65 of 100: at the loss's last pace it would shed about 1 % more in the 34 epochs left, under
    LOSS_HEADROOM: not premature; ndcg@10 drifts down within its noise (z above -2, FALLING_Z), the second fact."""
    path = CUT / "gru4rec_lr0.005_ss20.log"
    epochs, values, losses = _log_series(path)
    est = estimate_learning(epochs, values, "max", 100, losses)
    fall, headroom = _headroom(epochs, losses, 100)
    premature = explain(path)["premature"]
    assert 0 < headroom <= LOSS_HEADROOM and -2.0 < est.trend_z < 0  # above -FALLING_Z
    rule = "training loss flat for the budget left"
    assert (premature["call"], premature["rule"]) == ("not_premature", rule)
    right, cases = UNTUNED[rule]
    assert premature["verdict"].startswith(f"Not premature (confidence {100 * CONFIDENCE[rule]:.0f} %; right {right} "
                                           f"of {cases} times on regimes left out of its tuning): the "
                                           f"training loss had flattened ({100 * fall:.2g} % per epoch")
    assert premature["facts"][1].startswith("ndcg@10 fell ") and "(within noise)" in premature["facts"][1]
    assert premature["extrapolated"] is False


def test_the_loss_headroom_threshold_decides(tmp_path: Path) -> None:
    """The same rising scores, the loss falling at two paces: 0.1 % per epoch with 71 epochs left is 6.9 % of
    headroom (premature), 0.05 % is 3.5 % (not premature)."""
    scores = [0.1 + 0.004 * i for i in range(25)] + [0.19] * 5
    calls = []
    for pace in (0.001, 0.0005):
        losses = [5.0 * (1 - pace) ** n for n in range(len(scores))]
        run = write_trace(tmp_path / f"run{pace}", scores, {"patience": 4, "min_delta": 0.01}, epochs=100,
                          losses=losses)
        premature = explain(run)["premature"]
        calls.append((premature["call"], premature["rule"], explain(run)["stop"]["stop_epoch"]))
    assert calls == [("premature", "loss falling, monitor rising", 28),
                     ("not_premature", "training loss flat for the budget left", 28)]


def test_falling_loss_without_a_rising_monitor_cannot_tell(tmp_path: Path) -> None:
    """The loss falls 1 % per epoch (well above LOSS_HEADROOM) but NDCG@10 only wobbles within its noise: what a
    plateau before a second rise and an overfitting model both look like (on the benchmark such stops were
    premature about half the time, by regime from almost never to always), so cannot tell, with no confidence,
    and the sentence says what decides it: more epochs."""
    scores = [0.2 + (0.004 if i % 3 == 0 else -0.003 if i % 3 == 1 else 0.0) for i in range(20)]
    losses = [5.0 * 0.99 ** n for n in range(20)]
    run = write_trace(tmp_path / "run", scores, {"patience": 19}, epochs=100, losses=losses)
    report = explain(run)
    premature = report["premature"]
    est = premature["estimate"]
    assert -2.0 < est["trend_z"] < 2.0  # between -FALLING_Z and TREND_Z
    assert (premature["call"], premature["rule"], premature["confidence"]) == (
        "cannot_tell", "loss falling, monitor flat", None)
    assert "(within noise)" in premature["facts"][0]
    assert premature["facts"][1].startswith("the training loss fell ")
    assert f"above the {100 * SLOW_LOSS:g} % of a plateau" in premature["facts"][1]
    premature_share, cases = UNDECIDED
    assert premature["facts"][2].startswith(
        "a fall beside a flat validation curve that a plateau before a second rise and a model fitting its training "
        f"data past its validation peak both show: on the benchmark's recorded runs such stops were premature "
        f"{premature_share} times in {cases}")
    assert premature["verdict"].startswith("Cannot tell: ")
    assert any(a.startswith("More patience, since the verdict could not tell whether the stop was premature")
               for a in report["worth_trying"])


def test_a_flat_monitor_beside_a_slowly_falling_loss_is_a_plateau_and_premature(tmp_path: Path) -> None:
    """The same flat, wobbling ndcg@10 beside two training losses, both still falling fast enough for the 80
    epochs left (headroom above LOSS_HEADROOM): at 0.1 % per epoch the loss sheds about 1 % over the trend window,
    at most SLOW_LOSS, a plateau training and validation share: premature; at 1 % per epoch it sheds about 9 %,
    what a model past its validation peak also does: cannot tell. The slow-loss fact says which, with the
    numbers."""
    scores = [0.2 + (0.004 if i % 3 == 0 else -0.003 if i % 3 == 1 else 0.0) for i in range(20)]
    verdicts = {}
    for pace in (0.001, 0.01):
        losses = [5.0 * (1 - pace) ** n for n in range(20)]
        premature = explain(write_trace(tmp_path / f"run{pace}", scores, {"patience": 19}, epochs=100,
                                        losses=losses))["premature"]
        assert premature["evidence"]["loss_headroom"] > LOSS_HEADROOM
        assert -2.0 < premature["estimate"]["trend_z"] < 2.0  # between -FALLING_Z and TREND_Z
        verdicts[pace] = premature
    slow, fast = verdicts[0.001], verdicts[0.01]
    a, b = slow["estimate"]["trend_window"]
    fell = 1 - (1 - 0.001) ** (b - a)
    assert slow["evidence"]["window_loss_fall"] == pytest.approx(fell) and fell <= SLOW_LOSS
    rule = "loss falling slowly, monitor flat"
    assert (slow["call"], slow["rule"], slow["confidence"]) == ("premature", rule, CONFIDENCE[rule])
    assert slow["facts"][0] == (f"the training loss fell only {100 * fell:.2g} % over epochs {a}-{b}, the trend "
                                f"window, not above the {100 * SLOW_LOSS:g} % of a plateau the training loss shares "
                                "with the validation curve (a model fitting its training data past its validation "
                                "peak sheds more)")
    assert fast["evidence"]["window_loss_fall"] > SLOW_LOSS
    assert (fast["call"], fast["rule"]) == ("cannot_tell", "loss falling, monitor flat")


def test_falling_monitor_is_not_premature_whatever_the_loss(tmp_path: Path) -> None:
    """Validation falling through its noise while the training loss still falls fast (overfitting): not
    premature, decided by the trend."""
    scores = [0.3 - 0.004 * i + (0.002 if i % 2 else 0.0) for i in range(20)]
    losses = [5.0 * 0.98 ** n for n in range(20)]
    run = write_trace(tmp_path / "run", scores, {"patience": 19}, epochs=100, losses=losses)
    premature = explain(run)["premature"]
    assert explain(run)["stop"]["stop_epoch"] == 19
    assert (premature["call"], premature["rule"]) == ("not_premature", "monitor falling")
    assert premature["facts"][0].startswith("ndcg@10 fell ") and "(falling)" in premature["facts"][0]
    assert premature["facts"][1].startswith("the training loss still fell 1.9 % per epoch on average over epochs 15-19, "
                                            "2 % per epoch over epochs 18-19, so the model")


def test_rising_stop_near_the_budget_is_not_premature(tmp_path: Path) -> None:
    """Without training losses the trend decides: a curve still rising at epoch 17 of 20 has too few epochs left
    for the trend to matter."""
    scores = [0.1 + 0.01 * i + (0.003 if i % 2 else 0.0) for i in range(16)] + [0.24, 0.245]
    run = write_trace(tmp_path / "run", scores, {"patience": 2, "min_delta": 0.01}, epochs=20,
                      losses=[None] * len(scores))
    premature = explain(run)["premature"]
    assert explain(run)["stop"]["stop_epoch"] == 17
    assert (premature["call"], premature["rule"]) == ("not_premature", "little budget left")
    assert premature["facts"][0].startswith("2 of its 20 epochs were left, fewer than the ")


def test_short_stop_without_losses_cannot_be_told(tmp_path: Path) -> None:
    """Four evaluations and no training losses: no curve and no loss headroom: cannot tell."""
    run = write_trace(tmp_path / "run", [0.3, 0.35, 0.34, 0.33], {"patience": 2}, epochs=6, losses=[None] * 4)
    premature = explain(run)["premature"]
    assert premature["call"] == "cannot_tell" and premature["verdict"].startswith("Cannot tell: it stopped at epoch 3")


def test_lost_gain_is_the_estimators_and_data_ends_rows_are_simulated() -> None:
    """The lost estimate restates the shared estimator's gain; every "data ends" policy gets a simulated outcome,
    the same on every call (seeded)."""
    path = CUT / "gru4rec_lr0.005_ss1.log"
    epochs, values, losses = _log_series(path)
    est = estimate_learning(epochs, values, "max", 100, losses)
    report = explain(path)
    lost = report["lost"]
    assert (lost["gain"], lost["gain_lo"], lost["gain_hi"]) == pytest.approx((est.gain, est.gain_lo, est.gain_hi))
    assert lost["end_epoch"] == 99 and lost["end_level"] == pytest.approx(est.continuation[-1].mean)
    ends = [r for r in report["counterfactuals"] if r.get("status") == "data_ends"]
    assert ends and all(r["extrapolated"]["median_stop_epoch"] > 7 for r in ends)
    assert all(r["extrapolated"]["simulations"] == 30 for r in ends)
    assert [r["extrapolated"] for r in ends] == [r["extrapolated"] for r in explain(path)["counterfactuals"]
                                                 if r.get("status") == "data_ends"]
    assert lost["captured_by"] and set(lost["captured_by"]) <= {r["policy"] for r in ends}
    assert "Policies expected to capture at least 50 % of the expected gain: " in lost["sentence"]


def test_plot_draws_the_fitted_continuation_and_its_band(tmp_path: Path, saved_figures: list[Any]) -> None:
    """When the verdict used the extrapolation, the PNG shows the estimator's curve from after the stop to the
    budget's end, with its band."""
    path = CUT / "gru4rec_lr0.005_ss1.log"
    epochs, values, losses = _log_series(path)
    est = estimate_learning(epochs, values, "max", 100, losses)
    png = tmp_path / "p.png"
    assert main([str(path), "--plot", str(png)]) == 0
    [(fig, _)] = saved_figures
    [ax] = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    line = lines["learning-curve fit extrapolated to epoch 99"]
    assert list(line.get_xdata()) == [p.epoch for p in est.continuation] and line.get_xdata()[0] > 7
    assert list(line.get_ydata()) == pytest.approx([p.mean for p in est.continuation])
    [band] = [c for c in ax.collections if c.get_label() == "band of the fitted curve (one-sided 90 % bounds)"]
    xs, ys = band.get_paths()[0].vertices[:, 0], band.get_paths()[0].vertices[:, 1]
    assert min(xs) == est.continuation[0].epoch and max(xs) == 99
    assert min(ys) == pytest.approx(min(p.lo for p in est.continuation))
    assert max(ys) == pytest.approx(max(p.hi for p in est.continuation))


def test_plot_has_no_extrapolation_when_the_verdict_did_not_use_one(tmp_path: Path,
                                                                    saved_figures: list[Any]) -> None:
    """A not-premature verdict decided by the trend draws no fitted continuation."""
    assert main([str(CUT / "gru4rec_lr0.005_ss20.log"), "--plot", str(tmp_path / "p.png")]) == 0
    [(fig, _)] = saved_figures
    assert not [line for line in fig.axes[0].get_lines() if "extrapolated" in line.get_label()]
    assert not fig.axes[0].collections


def test_plot_has_no_extrapolation_without_a_stop(tmp_path: Path, saved_figures: list[Any]) -> None:
    """A run that used its budget has no extrapolation on its plot."""
    run = write_trace(tmp_path / "run", [0.1 * i for i in range(12)], {"enabled": False}, epochs=12)
    assert main([str(run), "--plot", str(tmp_path / "p.png")]) == 0
    [(fig, _)] = saved_figures
    assert not [line for line in fig.axes[0].get_lines() if "extrapolated" in line.get_label()]
    assert not fig.axes[0].collections


def test_json_report_carries_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    """--json is strict JSON with the call, confidence, deciding facts and the estimator's result."""
    assert main([str(CUT / "gru4rec_lr0.005_ss20.log"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    premature = data["premature"]
    assert premature["call"] == "not_premature" and 2 <= len(premature["facts"]) <= 3
    assert premature["verdict"].startswith("Not premature (") and premature["estimate"]["budget"] == 100


def test_written_log_matches_recbole_early_stopping(tmp_path: Path) -> None:
    """A log written from a recorded trace reads back with the evaluations, 'Saving current' flags and stop that
    recbole.utils.early_stopping gives on the same scores."""
    from recbole.utils import early_stopping

    scores = [0.1, 0.2, 0.2, 0.25, 0.24, 0.25, 0.23, 0.22, 0.21, 0.3]
    run = write_trace(tmp_path / "run", scores, {"enabled": False}, epochs=10, record_test=True)
    trace = read_trace(run)
    path = tmp_path / "GRU4Rec-ml-100k-Jan-01-2026_12-00-00.log"
    path.write_text(stock_log_text(trace, "NDCG@10", 2))
    best, step, updates, stop_at = -math.inf, 0, [], None
    for epoch, score in enumerate(scores):
        best, step, stop, update = early_stopping(score, best, step, max_step=2, bigger=True)
        updates.append(update)
        if stop:
            stop_at = epoch
            break
    log = parse_recbole_log(path)
    assert stop_at == 8 and log.ending == "early_stopped" and log.warnings == []
    assert log.scores() == list(enumerate(scores[:stop_at + 1]))
    assert [e.saved for e in log.evaluations] == updates
    restored = max(i for i, u in enumerate(updates) if u)  # the tie at epoch 5 counts, as in RecBole
    assert log.finished_best_epoch == restored == 5
    assert log.test_result == {"ndcg@10": round(scores[restored] / 2, 4)}
    assert (log.stopping_step, log.epochs, log.valid_metric) == (2, 10, "ndcg@10")


def test_runs_no_rule_stopped_get_no_call() -> None:
    """A truncated log and a run that used its budget are not judged premature or not: no call, no lost gain."""
    logs = CUT.parent
    truncated = explain(logs / "broken_truncated.log")
    assert truncated["premature"]["call"] is None and truncated["lost"] is None
    assert truncated["premature"]["verdict"] == "Not stopped by a rule: the data ends before any stop or budget."
    budget = explain(logs / "budget_test_crashed.log")
    assert budget["premature"]["call"] is None and budget["lost"] is None
    assert budget["premature"]["verdict"].startswith("Not stopped early: the run used its whole budget")


# --- the thresholds at literal boundary values (docs/explain_verdict.md), not against the imported constants ------
def _evidence(trend_z: float | None, *, loss_fall: float | None = 0.01, epochs_left: int | None = 50,
              window_loss_fall: float | None = 0.2, evaluations: int = 50) -> Any:
    """Evidence of a stop at epoch 49 of 100 with a trend window 25-49, the given trend z and training loss."""
    from rec_es.explain.verdict import Evidence
    from rec_es.policy.learning import LearningEstimate

    est = LearningEstimate(state="unknown", confidence=0.5, gain=None, gain_lo=None, gain_hi=None, margin=None,
                           noise=0.01, noise_source="residuals", trend_slope=0.0004 * (trend_z or 0), trend_z=trend_z,
                           trend_window=(25, 49), loss_progress=None, loss_change=None, facts=(), continuation=(),
                           method="none", epoch=49, budget=100, level=0.3)
    return Evidence(epoch=49, budget=100, budget_used=0.5, epochs_left=epochs_left, evaluations=evaluations,
                    loss_fall=loss_fall, loss_span=(45, 49) if loss_fall is not None else None,
                    window_loss_fall=window_loss_fall, bar=0.3, bar_epoch=40, bar_level=0.3, estimate=est)


@pytest.mark.parametrize("z, call, rule", [
    (1.49, "cannot_tell", "loss falling, monitor flat"),       # just under LEANING_Z 1.5
    (1.5, "premature", "loss falling, monitor leaning up"),    # at it
    (1.51, "premature", "loss falling, monitor leaning up"),
    (1.99, "premature", "loss falling, monitor leaning up"),   # just under TREND_Z 2
    (2.0, "premature", "loss falling, monitor rising"),
    (-1.99, "cannot_tell", "loss falling, monitor flat"),      # just above -FALLING_Z
    (-2.0, "not_premature", "monitor falling"),                # at -FALLING_Z 2
    (-2.01, "not_premature", "monitor falling"),
])
def test_leaning_and_falling_thresholds_at_their_boundaries(z: float, call: str, rule: str) -> None:
    """With the loss still falling (headroom 1 - 0.99^50 = 39 % > 4 %) and a fast-falling loss over the window,
    the trend z alone decides: leaning up from z = 1.5, rising from 2, falling at or below -2 (literal values)."""
    from rec_es.explain.verdict import decide

    got_call, _, got_rule = decide(_evidence(z))
    assert (got_call, got_rule) == (call, rule)


@pytest.mark.parametrize("z, call, rule", [
    (-1.99, "not_premature", "trend within noise"),
    (-2.0, "not_premature", "monitor falling"),
    (1.99, "not_premature", "trend within noise"),
    (2.0, "premature", "still rising, with room"),
])
def test_falling_and_rising_thresholds_without_a_training_loss(z: float, call: str, rule: str) -> None:
    """A trace with no training loss: z = -2 is 'monitor falling', -1.99 and 1.99 within noise, 2 rising with the
    50 epochs left at least the 24-epoch trend window (literal values)."""
    from rec_es.explain.verdict import decide

    got_call, _, got_rule = decide(_evidence(z, loss_fall=None, window_loss_fall=None))
    assert (got_call, got_rule) == (call, rule)


@pytest.mark.parametrize("z, label", [(2.0, " (still rising)"), (1.99, " (leaning up, within noise)"),
                                      (1.5, " (leaning up, within noise)"), (1.49, " (within noise)"),
                                      (-1.99, " (within noise)"), (-2.0, " (falling)")])
def test_trend_fact_names_the_band_of_its_z(z: float, label: str) -> None:
    """The trend fact's words change at z = 2, 1.5 and -2, where the rules change (literal values)."""
    from rec_es.explain.verdict import facts

    assert facts(_evidence(z), "ndcg@10")["trend"].endswith(label)


@pytest.mark.parametrize("args, expected", [
    ((0.04, 3.0), ("not_premature", "training loss flat for the budget left")),   # at LOSS_HEADROOM 4 %
    ((0.0401, 3.0), ("premature", "loss falling, monitor rising")),
    ((0.1, 0.0, 0.025), ("premature", "loss falling slowly, monitor flat")),       # at SLOW_LOSS 2.5 %
    ((0.1, 0.0, 0.0251), ("cannot_tell", "loss falling, monitor flat")),
    ((0.1, None), ("premature", "early stop, loss still falling")),
])
def test_loss_rule_at_its_literal_boundaries(args: tuple, expected: tuple[str, str]) -> None:
    """The loss headroom counts as flat at 4 % exactly, the slow-loss plateau at a 2.5 % fall exactly."""
    from rec_es.explain.verdict import loss_rule

    assert loss_rule(*args) == expected


@pytest.mark.parametrize("epoch, mode, level", [
    (8, "max", 0.39),    # inside the trend window 4-8: its mean (epoch 6, 0.35) + slope 0.02 x 2 epochs
    (4, "max", 0.31),    # the window's first epoch is inside it
    (6, "max", 0.35),
    (8, "min", 0.31),    # min mode: the slope is oriented (positive = better = lower)
    (2, "max", 0.2375),  # before the window: the mean of the evaluations around it (epochs 0-6)
    (3, "max", None),    # not an evaluated epoch
])
def test_level_at_is_the_trend_line_in_its_window_else_a_local_mean(epoch: int, mode: str, level: float | None) -> None:
    """The restored epoch's level (the bar the verdict's lost-gain reads) from the estimator's trend line."""
    from rec_es.explain.verdict import _level_at
    from rec_es.policy.learning import LearningEstimate

    points = [(0, 0.1), (2, 0.2), (4, 0.3), (6, 0.35), (8, 0.4)]
    est = LearningEstimate(state="unknown", confidence=0.5, gain=None, gain_lo=None, gain_hi=None, margin=None,
                           noise=0.01, noise_source="residuals", trend_slope=0.02, trend_z=1.0, trend_window=(4, 8),
                           loss_progress=None, loss_change=None, facts=(), continuation=(), method="none", epoch=8,
                           budget=20, level=0.4)
    got = _level_at(points, est, mode, epoch)
    assert got == (None if level is None else pytest.approx(level))
    from dataclasses import replace

    assert _level_at(points, replace(est, trend_slope=None), mode, 8) == pytest.approx(0.35)  # (0.3+0.35+0.4)/3
    assert _level_at(points, replace(est, trend_window=None), mode, 8) == pytest.approx(0.35)


def test_gathered_evidence_of_a_stock_log_field_by_field() -> None:
    """The evidence of the stopping_step-20 log (stop at epoch 65 of 100, best 0.0766 at epoch 44), each field
    recomputed from the log's text: budget used and left, the loss spans and falls, the bar and its level on the
    estimator's trend line; the estimator was given the budget, the monitor's name and the losses."""
    path = CUT / "gru4rec_lr0.005_ss20.log"
    epochs, scores, losses = _log_series(path)
    v = explain(path)["premature"]
    ev, est = v["evidence"], v["estimate"]
    assert (ev["epoch"], ev["budget"], ev["budget_used"], ev["epochs_left"], ev["evaluations"]) == (65, 100, 0.66, 34, 66)
    assert (ev["bar"], ev["bar_epoch"]) == (scores[44], 44) == (0.0766, 44)
    assert ev["loss_span"] == [61, 65]
    assert ev["loss_fall"] == pytest.approx((losses[61] - losses[65]) / losses[61] / 4)
    first = est["trend_window"][0]
    assert ev["window_loss_fall"] == pytest.approx((losses[first] - losses[65]) / losses[first])
    window = [(e, s) for e, s in zip(epochs, scores) if e >= first]
    mean_e, mean_v = sum(e for e, _ in window) / len(window), sum(s for _, s in window) / len(window)
    assert ev["bar_level"] == pytest.approx(mean_v + est["trend_slope"] * (44 - mean_e))
    assert est["budget"] == 100 and est["loss_progress"] is not None and "ndcg@10" in " ".join(est["facts"]).lower()


@pytest.mark.parametrize("epochs, losses, expected", [
    ([0, 2], [2.0, 1.0], (0.25, (0, 2))),           # two evaluations are enough
    ([1, 3], [2.0, 1.0], (0.25, (1, 3))),
    ([0, 2], [1.0, 0.5], (0.25, (0, 2))),
    ([0, 2], [2.0, 0.0], (0.5, (0, 2))),            # a loss that reached 0
    ([0, 0, 4], [2.0, 1.5, 1.0], (0.125, (0, 4))),  # first to last, per epoch
    ([0], [2.0], (None, None)),                     # one evaluation
    ([3, 3], [2.0, 1.0], (None, None)),             # no epochs between
    ([0, 2], [0.0, 1.0], (None, None)),             # no relative fall from 0
])
def test_loss_fall_per_epoch(epochs: list[int], losses: list[float], expected: tuple) -> None:
    """The training loss's relative fall per epoch from the first to the last evaluation of the strip."""
    from rec_es.explain.verdict import _loss_fall

    assert _loss_fall(epochs, losses) == expected


def test_small_pieces_of_the_sentence() -> None:
    """Percentages (two significant digits under 10 %, whole numbers above), a confidence without a left-out record,
    a verdict with no deciding fact, the loss fact without a budget, and the result's shape."""
    from rec_es.explain.verdict import _pct, _sentence, facts

    assert [_pct(x) for x in (0.0123, 0.05, 0.123, 1.0)] == ["1.2 %", "5 %", "12 %", "100 %"]
    assert _sentence("not_premature", 0.8, None, ["a", "b"]) == "Not premature (confidence 80 %): a; b."
    assert _sentence("premature", 0.9, (8, 12), ["a"]) == (
        "Premature (confidence 90 %; right 8 of 12 times on regimes left out of its tuning): a.")
    assert _sentence("cannot_tell", None, None, []) == "Cannot tell: the log holds too little to judge."
    assert facts(_evidence(0.0, epochs_left=None), "ndcg@10")["loss"] == (
        "the training loss fell 1 % per epoch on average over epochs 45-49")
    v = explain(CUT / "gru4rec_lr0.005_ss20.log")["premature"]
    assert {"call", "confidence", "untuned", "rule", "facts", "all_facts", "estimate", "extrapolated",
            "evidence"} <= set(v)
    assert "estimate" not in v["evidence"] and isinstance(v["estimate"]["continuation"], list)


def test_a_stop_without_a_known_budget(tmp_path: Path) -> None:
    """A trace whose header has no epoch budget: no budget fact, no budget used or epochs left, and the estimator
    is given the stop's epoch + 1 as its budget (epoch 17: budget 18, nothing to extrapolate); a curve still
    rising then cannot be told."""
    scores = [0.1 + 0.01 * i + (0.003 if i % 2 else 0.0) for i in range(16)] + [0.24, 0.245]
    run = write_trace(tmp_path / "run", scores, {"patience": 2, "min_delta": 0.01}, epochs=None,
                      losses=[5.0 * 0.99 ** n for n in range(18)])
    premature = explain(run)["premature"]
    ev, est = premature["evidence"], premature["estimate"]
    assert (ev["epoch"], ev["budget"], ev["budget_used"], ev["epochs_left"], ev["loss_headroom"]) == (
        17, None, None, None, None)
    assert (est["budget"], est["continuation"], est["gain"]) == (18, [], 0.0)
    assert (premature["call"], premature["rule"]) == ("cannot_tell", "rising, budget unknown")
    assert "budget" not in premature["all_facts"] and "room" not in premature["all_facts"]


def test_a_stop_at_the_budgets_last_epoch_has_no_epochs_left(tmp_path: Path) -> None:
    """Patience fires at epoch 9 of a 10-epoch budget: 0 epochs left, so no headroom (0 %) whatever the loss's
    pace, and the loss fact says so."""
    scores = [0.1, 0.2, 0.3, 0.35, 0.4, 0.42, 0.44, 0.45, 0.43, 0.42]
    run = write_trace(tmp_path / "run", scores, {"patience": 2}, epochs=10, losses=[5.0 * 0.99 ** n for n in range(10)])
    premature = explain(run)["premature"]
    ev = premature["evidence"]
    assert (ev["epoch"], ev["budget_used"], ev["epochs_left"], ev["loss_headroom"]) == (9, 1.0, 0, 0.0)
    assert (premature["call"], premature["rule"]) == ("not_premature", "training loss flat for the budget left")
    assert premature["facts"][0].endswith(": at the average pace 0 % more over the 0 epochs left, not above the 4 % "
                                          "below which training counts as finished")


def _flat_monitor_falling_loss(tmp_path: Path) -> Path:
    """The run of test_falling_loss_without_a_rising_monitor_cannot_tell: cannot tell, 'loss falling, monitor flat'."""
    scores = [0.2 + (0.004 if i % 3 == 0 else -0.003 if i % 3 == 1 else 0.0) for i in range(20)]
    return write_trace(tmp_path / "run", scores, {"patience": 19}, epochs=100,
                       losses=[5.0 * 0.99 ** n for n in range(20)])


def test_cannot_tell_states_no_confidence_even_with_a_recorded_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A cannot-tell call states no confidence and no left-out record, whatever the benchmark's record holds for
    its rule (today it holds none: this guards the promise, not the data)."""
    from rec_es.explain import verdict as module

    rule = "loss falling, monitor flat"
    monkeypatch.setitem(module.CONFIDENCE, rule, 0.5)
    monkeypatch.setitem(module.UNTUNED, rule, (3, 4))
    premature = explain(_flat_monitor_falling_loss(tmp_path))["premature"]
    assert (premature["call"], premature["rule"], premature["confidence"], premature["untuned"]) == (
        "cannot_tell", rule, None, None)
    assert premature["verdict"].startswith("Cannot tell: ")


def test_a_left_out_record_is_stated_only_beside_a_confidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule with a left-out-regime record but no confidence states neither."""
    from rec_es.explain import verdict as module

    rule = "training loss flat for the budget left"
    monkeypatch.delitem(module.CONFIDENCE, rule)
    premature = explain(CUT / "gru4rec_lr0.005_ss20.log")["premature"]
    assert (premature["rule"], premature["confidence"], premature["untuned"]) == (rule, None, None)
    assert premature["verdict"].startswith("Not premature: the training loss had flattened")


def test_at_most_three_deciding_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a rule names, the verdict quotes the first three of its facts the evidence has, in its order (a name
    without a fact is skipped, not counted)."""
    from rec_es.explain import verdict as module

    decide = module.decide

    def five_names(ev: Any) -> tuple[str, list[str], str]:
        call, _, rule = decide(ev)
        return call, ["no such fact", "trend", "slow", "loss", "budget"], rule

    monkeypatch.setattr(module, "decide", five_names)
    premature = explain(_flat_monitor_falling_loss(tmp_path))["premature"]
    facts = premature["all_facts"]
    assert premature["facts"] == [facts["trend"], facts["slow"], facts["loss"]]


@pytest.mark.parametrize("recent, span, text", [
    (0.02, (48, 49), "the training loss fell 1 % per epoch on average over epochs 45-49, 2 % per epoch over epochs 48-49"),
    (0.02, (45, 49), "the training loss fell 1 % per epoch on average over epochs 45-49"),  # the same span: once
    (None, (48, 49), "the training loss fell 1 % per epoch on average over epochs 45-49"),
    (0.02, None, "the training loss fell 1 % per epoch on average over epochs 45-49"),
])
def test_loss_fact_adds_the_last_steps_pace_only_over_a_shorter_span(recent: float | None,
                                                                     span: tuple[int, int] | None, text: str) -> None:
    """The loss fact quotes the last step's pace beside the average only when there is one, over other epochs."""
    from dataclasses import replace

    from rec_es.explain.verdict import facts

    ev = replace(_evidence(0.0, epochs_left=None), recent_loss_fall=recent, recent_span=span)
    assert facts(ev, "ndcg@10")["loss"] == text


@pytest.mark.parametrize("evidence, gain, expected", [
    # monitor falling: the loss fact second, as 'overfit' only when the loss still had headroom (39 % here)
    ({"trend_z": -2.5}, None, ("not_premature", ["trend", "overfit", "budget"], "monitor falling")),
    ({"trend_z": -2.5, "loss_fall": 0.0005}, None, ("not_premature", ["trend", "loss", "budget"], "monitor falling")),
    ({"trend_z": -2.5, "loss_fall": None}, None, ("not_premature", ["trend", "loss", "budget"], "monitor falling")),
    # a rule naming the extrapolation names the budget instead when the fit has no gain
    ({"trend_z": 2.0}, None, ("premature", ["loss", "trend", "budget"], "loss falling, monitor rising")),
    ({"trend_z": 2.0}, 0.01, ("premature", ["loss", "trend", "extrapolation"], "loss falling, monitor rising")),
    ({"trend_z": 1.5}, None, ("premature", ["loss", "trend", "budget"], "loss falling, monitor leaning up")),
    # without a training loss: no trend, or fewer than 8 evaluations (MIN_POINTS), is too few for a curve
    ({"trend_z": None, "loss_fall": None}, None,
     ("cannot_tell", ["budget", "loss"], "too few evaluations for a curve")),
    ({"trend_z": 0.0, "loss_fall": None, "evaluations": 7}, None,
     ("cannot_tell", ["budget", "loss"], "too few evaluations for a curve")),
    ({"trend_z": 0.0, "loss_fall": None, "evaluations": 8}, None,
     ("not_premature", ["trend", "room", "loss"], "trend within noise")),
    ({"trend_z": 2.0, "loss_fall": None, "epochs_left": None}, None,
     ("cannot_tell", ["trend", "loss"], "rising, budget unknown")),
    ({"trend_z": 2.0, "loss_fall": None, "epochs_left": 23}, None,
     ("not_premature", ["room", "trend", "loss"], "little budget left")),   # 23 epochs left < the 24-epoch window
    ({"trend_z": 2.0, "loss_fall": None, "epochs_left": 24}, None,
     ("premature", ["trend", "room", "extrapolation"], "still rising, with room")),
])
def test_decide_names_its_facts_in_order(evidence: dict[str, Any], gain: float | None,
                                         expected: tuple[str, list[str], str]) -> None:
    """Each rule's call, the facts it names (in the sentence's order) and its name, on hand-built evidence of a
    stop at epoch 49 of 100 with a trend window 25-49 (literal values)."""
    from dataclasses import replace

    from rec_es.explain.verdict import decide

    ev = _evidence(evidence["trend_z"], **{k: v for k, v in evidence.items() if k != "trend_z"})
    ev = replace(ev, estimate=replace(ev.estimate, gain=gain))
    assert decide(ev) == expected


@pytest.mark.parametrize("headroom, loss", [(0.04, "loss"), (0.0401, "overfit")])
def test_falling_monitor_calls_the_loss_overfitting_only_above_4_percent(headroom: float, loss: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A falling monitor's loss fact is the overfitting one only when the loss's headroom is above 4 % (at 4 %
    exactly training counts as finished, as in the loss rule)."""
    from rec_es.explain.verdict import Evidence, decide

    monkeypatch.setattr(Evidence, "loss_headroom", property(lambda self: headroom))
    assert decide(_evidence(-2.5))[1] == ["trend", loss, "budget"]


def test_every_fact_word_for_word() -> None:
    """Each fact of a stop at epoch 49 of 100 with the loss still falling 1 % per epoch (39 % of headroom), a flat
    trend and a 20 % fall over the trend window, whole (the benchmark's counts for 'undecided' from its record)."""
    from rec_es.explain.verdict import facts

    premature, cases = UNDECIDED
    assert facts(_evidence(0.0), "ndcg@10") == {
        "budget": "it stopped at epoch 49, 50 % into its 100-epoch budget",
        "loss": "the training loss was still falling 1 % per epoch on average over epochs 45-49: at the average pace "
                "39 % more over the 50 epochs left, above the 4 % below which training counts as finished",
        "undecided": "a fall beside a flat validation curve that a plateau before a second rise and a model fitting "
                     "its training data past its validation peak both show: on the benchmark's recorded runs such "
                     f"stops were premature {premature} times in {cases}, depending on the model and learning rate; "
                     "only more epochs can tell (a larger stopping_step or patience)",
        "overfit": "the training loss still fell 1 % per epoch on average over epochs 45-49, so the model was fitting "
                   "its training data better without helping the validation users",
        "slow": "the training loss fell 20 % over epochs 25-49, the trend window, above the 2.5 % of a plateau the "
                "training loss shares with the validation curve",
        "trend": "ndcg@10 stayed flat 0 per 10 epochs over epochs 25-49, z = +0.0 against its noise of 0.01 "
                 "(within noise)",
        "room": "50 of its 100 epochs were left, more than the 24 the trend was measured over"}


@pytest.mark.parametrize("z, text", [
    (1.0, "ndcg@10 rose 0.004 per 10 epochs"),      # slope 0.0004 per epoch
    (0.0, "ndcg@10 stayed flat 0 per 10 epochs"),
    (-1.0, "ndcg@10 fell 0.004 per 10 epochs"),
])
def test_trend_fact_says_which_way_the_slope_goes(z: float, text: str) -> None:
    """A positive slope rose, zero stayed flat, a negative one fell, however small."""
    from rec_es.explain.verdict import facts

    assert facts(_evidence(z), "ndcg@10")["trend"].startswith(text + " over epochs 25-49")


@pytest.mark.parametrize("fell, text", [
    (0.025, "the training loss fell only 2.5 % over epochs 25-49, the trend window, not above the 2.5 %"),
    (0.0251, "the training loss fell 2.5 % over epochs 25-49, the trend window, above the 2.5 %"),
])
def test_slow_loss_fact_at_its_literal_boundary(fell: float, text: str) -> None:
    """A 2.5 % fall over the trend window is a plateau's ('only ... not above'); 2.51 % is above it."""
    from rec_es.explain.verdict import facts

    assert facts(_evidence(0.0, window_loss_fall=fell), "ndcg@10")["slow"].startswith(text)


@pytest.mark.parametrize("headroom, start", [(0.04, "the training loss had flattened ("),
                                             (0.0401, "the training loss was still falling ")])
def test_loss_fact_at_4_percent_of_headroom(headroom: float, start: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 % of headroom exactly is flattened, as the loss rule counts it; above it the loss was still falling."""
    from rec_es.explain.verdict import Evidence, facts

    monkeypatch.setattr(Evidence, "loss_headroom", property(lambda self: headroom))
    assert facts(_evidence(0.0), "ndcg@10")["loss"].startswith(start)


@pytest.mark.parametrize("change", [{"trend_window": None}, {"trend_z": None}, {"trend_slope": None}])
def test_no_trend_fact_without_a_z_a_slope_and_a_window(change: dict[str, Any]) -> None:
    """The trend fact needs all three of the estimator's z, slope and window."""
    from dataclasses import replace

    from rec_es.explain.verdict import facts

    ev = _evidence(1.0)
    assert "trend" not in facts(replace(ev, estimate=replace(ev.estimate, **change)), "ndcg@10")


@pytest.mark.parametrize("left, text", [
    (24, "24 of its 100 epochs were left, more than the 24 the trend was measured over"),
    (23, "23 of its 100 epochs were left, fewer than the 24 the trend was measured over"),
])
def test_room_fact_at_the_trend_windows_length(left: int, text: str) -> None:
    """As many epochs left as the 24-epoch trend window is room ('more'), one fewer is not (ROOM 1, literal)."""
    from rec_es.explain.verdict import facts

    assert facts(_evidence(2.0, epochs_left=left), "ndcg@10")["room"] == text


@pytest.mark.parametrize("gain, lo, hi", [(0.01, -0.005, 0.02), (None, -0.005, 0.02), (0.01, None, 0.02),
                                          (0.01, -0.005, None)])
def test_extrapolation_fact_needs_the_gain_and_both_bounds(gain: float | None, lo: float | None,
                                                           hi: float | None) -> None:
    """The fit's expected gain is quoted with its bounds, or not at all."""
    from dataclasses import replace

    from rec_es.explain.verdict import facts

    ev = _evidence(2.0)
    got = facts(replace(ev, estimate=replace(ev.estimate, gain=gain, gain_lo=lo, gain_hi=hi)), "ndcg@10")
    if None in (gain, lo, hi):
        assert "extrapolation" not in got
    else:
        assert got["extrapolation"] == "the learning-curve fit expects +0.01 more by epoch 99 (bounds -0.005 to +0.02)"
