"""`rec-es explain` (rec_es.explain) on stock RecBole logs (real, from tests/fixtures/recbole_logs) and on
rec_es traces written in the contract format by rec_es.rundir.trace.TraceWriter from scripted scores."""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rec_es import build_policy
from rec_es.cli.explain import main
from rec_es.explain import ExplainError, explain, load_run, read_policy_file, render_text
from rec_es.explain.verdict import CONFIDENCE, UNTUNED
from rec_es.recbole_log import parse_recbole_log
from rec_es.rundir.trace import TraceWriter

LOGS = Path(__file__).parent / "fixtures" / "recbole_logs"


def write_trace(run_dir: Path, scores: list[float], policy: dict[str, Any], *, epochs: int,
                eval_step: int = 1, footer: bool = True, resumed: tuple[int, dict[str, Any]] | None = None,
                record_test: bool = False, losses: list[float | None] | None = None) -> Path:
    """A run directory whose trace.jsonl holds ``policy``'s real decisions on ``scores`` (ndcg@10).

    ``resumed=(from_epoch, previous)``: written as the trainer writes a run started under ``previous`` and
    resumed at ``from_epoch`` under ``policy`` (``rec-es run --resume RUN --set ...``): the records before
    ``from_epoch`` hold ``previous``'s decisions, the later ones ``policy``'s (replayed over the earlier
    records first), and the header names ``policy`` with ``resumed_with_changes`` naming ``previous``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    built = build_policy({"monitor": "ndcg@10", **policy})
    before = build_policy({"monitor": "ndcg@10", **(resumed[1] if resumed else policy)})
    start = resumed[0] if resumed else 0
    writer = TraceWriter(run_dir / "trace.jsonl")
    changes = ({"resumed_with_changes": [{"from_epoch": start, "previous_policy": before.settings_mapping(),
                                          "previous_lr_schedule": None, "previous_config": {}, "previous_epochs": epochs}]}
               if resumed else {})
    writer.header(config={"metric_decimal_place": 4}, policy=built.settings_mapping(), lr_schedule=None,
                  versions={}, model="GRU4Rec", dataset="ml-100k-tiny", seed=2020, epochs=epochs,
                  eval_step=eval_step, record_test=record_test, **changes)
    last = None
    for n, score in enumerate(scores):
        epoch = (n + 1) * eval_step - 1
        last = built.update(epoch, {"ndcg@10": score})
        recorded = before.update(epoch, {"ndcg@10": score}) if epoch < start else last
        test = {"test": {"ndcg@10": round(score / 2, 4)}} if record_test else {}
        writer.record(epoch=epoch, train_loss=1.0 if losses is None else losses[n], lr=0.001, valid={"ndcg@10": score}, elapsed_seconds=float(n),
                      train_seconds=0.5, eval_seconds=0.5, decision=recorded.to_dict(), **test)
        if last.stop:
            break
    if footer:
        assert last is not None
        writer.footer(stop_epoch=last.epoch, stop_reason=last.reason.value if last.stop else "max_epochs",
                      message=last.message, best_epoch=built.best_epoch, epochs_trained=last.epoch + 1,
                      wall_seconds=1.0)
    return run_dir


def row(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in report["counterfactuals"] if r["policy"] == name)


# ----- stock RecBole logs ---------------------------------------------------------------------------------
def test_stock_stop_names_stopping_step_misses_and_best_epoch() -> None:
    """The 500-epoch run that stopped after epoch 6: stopping_step 3, 4 misses, best epoch from the log."""
    path = LOGS / "stopped_epochs500.log"
    text = path.read_text()
    logged_best = int(re.search(r"Finished training, best eval result in epoch (\d+)", text).group(1))
    last_eval = max(int(e) for e in re.findall(r"epoch (\d+) evaluating", text))
    report = explain(path)
    stop = report["stop"]
    assert (stop["ending"], stop["stop_epoch"], stop["best_epoch"]) == ("early_stopped", last_eval, logged_best)
    assert stop["evaluations_without_improvement"] == 3 + 1
    assert stop["setting"] == {"key": "stopping_step", "value": 3}
    assert stop["sentence"].startswith(
        f"RecBole's stopping_step rule stopped the run at epoch {last_eval} ({last_eval + 1} of 500 epochs trained): "
        f"ndcg@10 did not reach its best (0.0345 at epoch {logged_best}) for 4 evaluations (4 epochs), one more "
        "than stopping_step: 3 allows.")
    assert report["warnings"] == []


def test_stock_stop_at_epoch_6_of_500_is_premature_though_the_curve_fell() -> None:
    """ndcg@10 fell for 4 evaluations after a peak that is not a spike, but at epoch 6 of 500 with the loss still
    falling the stop is premature (issue 13: the old verdict said "Not premature" here). The same config trained
    60 epochs with stopping disabled reaches valid ndcg@10 0.0733 at epoch 57, with test ndcg@10 0.041 against
    0.0136 at the restored epoch 2. The replay still shows no better setting, so no advice; more patience is
    worth trying."""
    report = explain(LOGS / "stopped_epochs500.log")
    premature = report["premature"]
    assert premature["trend"] == "worsening"
    assert premature["call"] == "premature"
    confidence = CONFIDENCE["early stop, loss still falling"]
    right, cases = UNTUNED["early stop, loss still falling"]
    assert premature["verdict"] == (f"Premature (confidence {100 * confidence:.0f} %; right {right} of {cases} times "
                                    "on regimes left out of its tuning): the training loss was still "
                                    "falling 0.46 % per epoch on average over epochs 2-6, 0.33 % per epoch over epochs 5-6: "
                                    "at the average pace 90 % more over the 493 epochs "
                                    "left, above the 4 % below which training counts as finished; it stopped at epoch "
                                    "6, 1.4 % into its 500-epoch budget.")
    assert premature["spike"]["is_spike"] is False
    assert report["advice"] == []
    assert report["worth_trying"] == [
        "More patience, since the verdict found the stop premature (the training loss was still falling 0.46 % per "
        "epoch on average over epochs 2-6, 0.33 % per epoch over epochs 5-6: at the average pace 90 % more over "
        "the 493 epochs left, above the 4 % below which training "
        "counts as finished): stopping_step: 10 (stock RecBole) or early_stopping.patience: 10 (rec_es). The data ends at epoch 6, "
        "so only a longer run can show whether a better epoch follows."]
    assert row(report, "observed: stopping_step 3")["stop_epoch"] == 6
    patience10 = row(report, "patience 10")
    assert (patience10["status"], patience10["stop_epoch"], patience10["best_epoch"]) == ("data_ends", 6, 2)
    assert "would still be running at epoch 6 (data ends)" in render_text(report)


def test_high_learning_rate_stop_whose_run_never_improved_cannot_tell() -> None:
    """The lr 0.05 run stopped at epoch 21 of 500. The same config trained 100 epochs with stopping disabled
    never beats epoch 17's valid ndcg@10 (0.0789): not premature, in truth. The log cannot show it: the training
    loss still fell 0.3 % per epoch (77 % more to shed in the budget left) while ndcg@10 drifted within its noise
    (z -0.7), which is also what a plateau before a second rise looks like, so the verdict cannot tell (it said
    "not premature" until two held-out regimes made that call right on 27 of 60 such stops)."""
    premature = explain(LOGS / "noisy_stopped.log")["premature"]
    assert (premature["call"], premature["rule"]) == ("cannot_tell", "loss falling, monitor flat")


def test_noisy_stock_run_flags_gap_and_spike_with_advice() -> None:
    """The lr 0.05 run: a 3-miss gap recovered at epoch 17 and a spiky best; advice names the settings."""
    report = explain(LOGS / "noisy_stopped.log")
    premature = report["premature"]
    assert premature["longest_recovered_gap"] == {"evaluations": 3, "from_epoch": 14, "improved_at": 17}
    assert premature["gap_close_to_patience"] is True
    assert premature["spike"]["epoch"] == 17 and premature["spike"]["is_spike"] is True
    assert premature["verdict"].startswith("Cannot tell: ")
    assert report["advice"] == []  # the data ends at the stop: no replay can show a better setting
    assert any("stopping_step: 10 (stock RecBole) or early_stopping.patience: 10 (rec_es)" in a
               for a in report["worth_trying"])
    assert any("smoothing: ema, ema_alpha: 0.5" in a for a in report["worth_trying"])


def test_budget_run_counts_tie_resets_like_recbole() -> None:
    """A run that used all epochs: tie resets are the evaluations that equalled the running best."""
    log = parse_recbole_log(LOGS / "budget_test_crashed.log")
    expected_ties, best = [], None
    for epoch, score in log.scores():
        if best is not None and score == best:
            expected_ties.append(epoch)
        best = score if best is None else max(best, score)
    report = explain(LOGS / "budget_test_crashed.log")
    assert report["stop"]["ending"] == "budget"
    assert report["stop"]["sentence"].startswith("No early stop: the run used its whole budget (epochs: 12; last epoch 11)")
    assert report["premature"]["tie_resets"] == expected_ties == [1, 8, 10]
    assert any("no 'test result' line" in w for w in report["warnings"])


def test_eval_step_two_counts_epochs_and_evaluations() -> None:
    """eval_step 2: waits are reported in evaluations and epochs; every policy runs the budget."""
    report = explain(LOGS / "evalstep2_topk3_console_coloured.txt")
    assert report["eval_step"] == 2
    assert [e["epoch"] for e in report["evaluations"]] == [1, 3, 5, 7, 9]
    assert {r["status"] for r in report["counterfactuals"]} == {"budget"}
    assert report["stop"]["ending"] == "budget"


def test_truncated_log_is_explained_as_incomplete() -> None:
    """A log cut mid-run: no rule, no budget; the parser's warnings are passed on."""
    report = explain(LOGS / "broken_truncated.log")
    assert report["stop"]["ending"] == "incomplete"
    assert report["stop"]["sentence"].startswith("The run did not end by a rule or by its budget: the data ends at epoch 4 of 500")
    assert any("ends after epoch 4 of 500" in w for w in report["warnings"])


def _drop_epoch_4(text: str) -> str:
    """The log without epoch 4's training line, evaluating line and valid result (4 lines)."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "epoch 4 training" in line)
    return "".join(lines[:start] + lines[start + 4:])


@pytest.mark.parametrize("name, edit, warning", [
    # stopped_epochs500: best 0.0345 at 2, then 0.0292, 0.0238, 0.0230, 0.0247 = the 4 misses stopping_step 3
    # stops on. Without epoch 4 only 3 misses remain, so RecBole's rule would not have stopped at epoch 6.
    ("stopped_epochs500.log", _drop_epoch_4,
     "replaying stopping_step 3 on the logged valid_scores does not stop at epoch 6 as the log does; evaluations "
     "may be missing from the log"),
    ("stopped_epochs500.log",
     lambda t: t.replace("best eval result in epoch 2", "best eval result in epoch 1"),
     "the log says best epoch 1, the replay of RecBole's rule gives 2; evaluations may be missing from the log"),
    # budget_test_crashed ran its 12 epochs; with stopping_step 0 the first miss (0.0033 < 0.0083 at epoch 3) stops.
    ("budget_test_crashed.log",
     lambda t: t.replace("stopping_step = 2", "stopping_step = 0").replace("valid_score: 0.013300", "valid_score: 0.003300"),
     "RecBole's rule replayed on the logged scores stops at epoch 3, but the log continues to epoch 11"),
])
def test_replay_that_disagrees_with_the_log_is_a_caveat(tmp_path: Path, name: str, edit: Any, warning: str) -> None:
    """A log whose outcome RecBole's rule does not reproduce on its own scores gets a caveat naming both."""
    original = (LOGS / name).read_text()
    assert not [w for w in explain(LOGS / name)["warnings"] if "replay" in w]
    path = tmp_path / name
    path.write_text(edit(original))
    assert path.read_text() != original
    assert f"{path}: {warning}" in explain(path)["warnings"]


# ----- rec_es traces --------------------------------------------------------------------------------------
def test_trace_still_rising_is_likely_premature(tmp_path: Path) -> None:
    """A patience-2 stop on a curve still rising over the window is called premature, with a patience advice."""
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.79, 0.795]
    run = write_trace(tmp_path / "run", scores, {"patience": 2}, epochs=100,
                      losses=[5.0 * 0.98 ** n for n in range(len(scores))])
    report = explain(run)
    assert report["kind"] == "rec_es"
    assert (report["stop"]["stop_epoch"], report["stop"]["best_epoch"], report["stop"]["reason"]) == (9, 7, "patience")
    assert report["stop"]["setting"] == {"key": "early_stopping.patience", "value": 2}
    assert "The setting that decided it: early_stopping.patience: 2." in report["stop"]["sentence"]
    assert report["premature"]["trend"] == "improving"
    # issue 13: was "Likely premature: the monitor was still improving when the run stopped."
    assert report["premature"]["call"] == "premature"
    assert report["premature"]["verdict"].startswith("Premature (confidence ")
    assert "the training loss was still falling 1.9 % per epoch on average over epochs 5-9" in report["premature"]["verdict"]
    assert report["premature"]["all_facts"]["trend"].startswith("ndcg@10 rose 0.76 per 10 epochs over epochs 2-9")
    assert report["worth_trying"][0].startswith("More patience, since the monitor was still improving at the stop: "
                                                "early_stopping.patience: 10. The data ends at epoch 9")
    assert "--resume" not in report["worth_trying"][0]  # no last.pth in this run directory
    (run / "last.pth").write_bytes(b"")
    assert f"rec-es run --resume {run} --config new_policy.yaml" in explain(run)["worth_trying"][0]


def test_earlier_stop_with_same_best_is_advised(tmp_path: Path) -> None:
    """A run with stopping disabled peaks at epoch 3; patience 10 would stop at 13 restoring the same epoch."""
    scores = [0.1, 0.2, 0.3, 0.4] + [0.39 - 0.001 * i for i in range(26)]
    run = write_trace(tmp_path / "run", scores, {"enabled": False}, epochs=30)
    report = explain(run)
    assert report["stop"]["ending"] == "budget" and report["stop"]["best_epoch"] == 3
    p10 = row(report, "patience 10")
    assert (p10["status"], p10["stop_epoch"], p10["best_epoch"]) == ("stopped", 13, 3)
    legacy = row(report, "stopping_step 10 (RecBole default)")
    assert (legacy["stop_epoch"], legacy["best_epoch"]) == (14, 3)  # 11 misses, RecBole's rule
    assert report["advice"][0] == ("patience 10 would have stopped at epoch 13, 16 epochs earlier, and restored an "
                                   "equally good epoch (3, 0.4): set early_stopping: {patience: 10} to save time.")


def test_better_restored_epoch_is_advised(tmp_path: Path) -> None:
    """min_delta 0.05 never accepts the later 0.53; plain patience restores it, and the advice says so."""
    scores = [0.5, 0.52, 0.53, 0.53, 0.51, 0.5, 0.51, 0.5, 0.52, 0.5, 0.51, 0.5]
    run = write_trace(tmp_path / "run", scores, {"patience": 30, "min_delta": 0.05}, epochs=12)
    report = explain(run)
    assert report["stop"]["best_epoch"] == 0
    assert row(report, "patience 10")["best_epoch"] == 2
    assert report["advice"][0] == ("patience 10 would have restored epoch 2 (ndcg@10 0.53) instead of epoch 0 (0.5): "
                                   "set early_stopping: {patience: 10}.")


def test_rounding_ties_decide_a_rec_es_stop(tmp_path: Path) -> None:
    """Equal (rounded) values count as misses in rec_es; counting them as improvements would not have stopped."""
    run = write_trace(tmp_path / "run", [0.5, 0.6, 0.6, 0.6], {"patience": 2}, epochs=50)
    report = explain(run)
    assert report["stop"]["stop_epoch"] == 3
    decided = report["premature"]["ties_decided"]
    assert decided["stop_epoch"] is None
    assert decided["sentence"] == ("Ties decided the stop: with ties counted as improvements (values rounded to 4 "
                                   "decimals), the same run would still have been running at epoch 3 (data ends).")


def test_ties_that_kept_a_stock_run_going(tmp_path: Path) -> None:
    """RecBole counted the ties at epochs 2 and 3; without them its rule would have stopped at epoch 3."""
    text, finished, _ = _stock_log_text([0.5, 0.6, 0.6, 0.6, 0.6], stopping_step=1, eval_step=1)
    assert finished is None  # every tie reset RecBole's counter: the budget ended the run
    path = tmp_path / "ties.log"
    path.write_text(text)
    report = explain(path)
    assert report["premature"]["tie_resets"] == [2, 3, 4]
    assert report["premature"]["ties_decided"]["sentence"] == (
        "Ties kept the run going: with ties not counted as improvements (values rounded to 4 decimals), it would "
        "have stopped at epoch 3.")


def test_resumed_run_is_explained_with_its_final_policy(tmp_path: Path) -> None:
    """A run resumed under another policy: the header's final policy is explained, its original one replayed."""
    # patience 3 alone: best 0.3 at epoch 1, misses at 2, 3, 4 -> stops at 4; resumed at 5 under patience 5.
    scores = [0.1, 0.3, 0.2, 0.25, 0.28, 0.35, 0.3, 0.3, 0.3]
    run = write_trace(tmp_path / "run", scores, {"patience": 5}, epochs=50, footer=False,
                      resumed=(5, {"patience": 3}))
    report = explain(run)
    assert report["observed_policy"]["patience"] == 5
    assert f"{run / 'trace.jsonl'}: the run was resumed at epoch 5 under another policy (patience 5 evaluations; it " \
           "started with patience 3 evaluations); the report explains the final policy, and the table also " \
           "replays the original one" in report["warnings"]
    original = row(report, "original (epochs 0-4): patience 3 evaluations")
    assert (original["status"], original["stop_epoch"], original["best_epoch"]) == ("stopped", 4, 1)
    observed = row(report, "observed: patience 5 evaluations")
    assert (observed["status"], observed["best_epoch"]) == ("data_ends", 5)  # 0.35 at 5, then 3 misses of 5
    assert report["stop"]["evaluations_without_improvement"] == 3


def test_resume_that_kept_the_policy_has_no_original_row(tmp_path: Path) -> None:
    """A resume that changed only the budget, or a config.yaml a failed resume rewrote, is no policy change."""
    run = write_trace(tmp_path / "run", [0.1, 0.3, 0.2], {"patience": 5}, epochs=50, footer=False,
                      resumed=(2, {"patience": 5}))
    (run / "config.yaml").write_text("early_stopping:\n  monitor: ndcg@10\n  patience: 9\n")
    report = explain(run)
    assert not [w for w in report["warnings"] if "resumed" in w]
    assert not [r for r in report["counterfactuals"] if r["policy"].startswith("original")]
    assert report["observed_policy"]["patience"] == 5


def test_trace_without_footer_is_incomplete(tmp_path: Path) -> None:
    """A killed run (no footer) is explained up to its last record, with a warning."""
    run = write_trace(tmp_path / "run", [0.1, 0.2, 0.15], {"patience": 5}, epochs=50, footer=False)
    report = explain(run / "trace.jsonl")
    assert report["stop"]["ending"] == "incomplete"
    assert any("no footer" in w for w in report["warnings"])


def test_eval_step_trace_reports_both_units(tmp_path: Path) -> None:
    """With eval_step 3 the wait is given in evaluations and in epochs."""
    run = write_trace(tmp_path / "run", [0.3, 0.2, 0.2, 0.1], {"patience": 3}, epochs=60, eval_step=3)
    stop = explain(run)["stop"]
    assert (stop["stop_epoch"], stop["evaluations_without_improvement"], stop["epochs_without_improvement"]) == (11, 3, 9)
    assert "after 3 evaluations (9 epochs) without improvement" in stop["sentence"]


# ----- errors and the command line ------------------------------------------------------------------------
def test_unreadable_inputs_name_the_file_and_the_expected_format(tmp_path: Path) -> None:
    """Missing path, directory without a trace, header-only trace and a non-log file are clear errors."""
    with pytest.raises(ExplainError, match="nope: not found; expected a rec_es run directory"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExplainError, match="a directory without trace.jsonl"):
        load_run(tmp_path / "empty")
    run = write_trace(tmp_path / "run", [], {"patience": 2}, epochs=5, footer=False)
    with pytest.raises(ExplainError, match="holds no evaluation yet"):
        load_run(run)
    with pytest.raises(ExplainError, match="not_a_log.txt: not a stock RecBole log"):
        load_run(LOGS / "not_a_log.txt")


def test_main_json_plot_and_policy_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json carries the report, --plot writes a PNG, --policies adds a row named after the file."""
    policy = tmp_path / "patient.yaml"
    policy.write_text("early_stopping:\n  patience: 2\n  smoothing: ema\n  ema_alpha: 0.3\n")
    png = tmp_path / "stop.png"
    assert main([str(LOGS / "noisy_stopped.log"), "--json", "--plot", str(png), "--policies", str(policy)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stop"]["best_epoch"] == 17 and data["plot"] == str(png)
    patient = row(data, "patient")
    assert patient["status"] == "stopped" and patient["mapping"]["ema_alpha"] == 0.3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_draws_the_curve_best_stop_and_patience_window(tmp_path: Path, saved_figures: list[Any]) -> None:
    """--plot draws the logged valid_scores, an EMA α=0.5 of them, the best (17) and stop (21) epochs and the
    patience window: stopping_step 3 = 4 evaluations, from the best epoch on."""
    path = LOGS / "noisy_stopped.log"
    scores = [float(v) for v in re.findall(r"evaluating \[time: [\d.]+s, valid_score: ([\d.]+)\]", path.read_text())]
    ema = [scores[0]]
    for v in scores[1:]:
        ema.append(0.5 * v + 0.5 * ema[-1])
    png = tmp_path / "stop.png"
    assert main([str(path), "--plot", str(png)]) == 0
    [(fig, saved)] = saved_figures
    assert saved == png and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [ax] = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    observed, smoothed = lines["ndcg@10 (observed)"], lines["EMA α=0.5 (for reading only)"]
    assert list(observed.get_xdata()) == list(range(22)) and list(observed.get_ydata()) == scores
    assert observed.get_marker() == "o"
    assert list(smoothed.get_ydata()) == pytest.approx(ema)
    assert list(lines["best epoch 17"].get_xdata()) == [17, 17]
    assert list(lines["stop epoch 21"].get_xdata()) == [21, 21]
    [window] = [p for p in ax.patches if p.get_label() == "patience window (4 evaluations)"]
    assert (window.get_x(), window.get_x() + window.get_width()) == (17, 21)


def test_main_bad_policy_file_and_bad_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --policies file exits 2 naming file and key; an unreadable RUN exits 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("early_stopping:\n  patiance: 2\n")
    assert main([str(LOGS / "noisy_stopped.log"), "--policies", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: early_stopping.patiance: unknown key — did you mean 'patience'?" in err
    assert main([str(tmp_path / "missing.log")]) == 1
    assert "missing.log: not found" in capsys.readouterr().err


def test_text_report_has_every_section() -> None:
    """The plain-text report holds the stop sentence, the premature verdict, the table and the advice."""
    text = render_text(explain(LOGS / "noisy_stopped.log"))
    for heading in ("Why it stopped", "Was it premature?", "What other settings would have done", "Advice"):
        assert f"\n{heading}" in text
    assert "observed: stopping_step 3" in text and "stops at epoch 21" in text


# ----- RecBole's own rule as the reference ---------------------------------------------------------------
def _stock_log_text(scores: list[float], stopping_step: int, eval_step: int,
                    metric: str = "NDCG@10") -> tuple[str, int | None, list[bool]]:
    """A log in stock RecBole's file format, with RecBole's own early_stopping deciding (as Trainer.fit does).

    Returns (text, the epoch of its 'Finished training' line or None, RecBole's update flags)."""
    from recbole.utils import early_stopping

    stamp = "Sun 22 Nov 2026 03:18:26 INFO  "
    bigger = metric.lower() != "rmse"
    epochs = len(scores) * eval_step
    lines = [stamp, "General Hyper Parameters:", "seed = 2020", "", "Training Hyper Parameters:",
             f"epochs = {epochs}", f"eval_step = {eval_step}", f"stopping_step = {stopping_step}", "",
             "Evaluation Hyper Parameters:", f"valid_metric = {metric}", f"valid_metric_bigger = {bigger}",
             "metric_decimal_place = 4", "", "Other Hyper Parameters: ", "MODEL_TYPE = ModelType.SEQUENTIAL", "", ""]
    best, cur_step, finished, updates = float("-inf") if bigger else float("inf"), 0, None, []
    for n, score in enumerate(scores):
        for epoch in range(n * eval_step, (n + 1) * eval_step):
            lines.append(f"{stamp}epoch {epoch} training [time: 0.50s, train loss: {40 - epoch / 10:.4f}]")
        best, cur_step, stop, update = early_stopping(score, best, cur_step, max_step=stopping_step, bigger=bigger)
        updates.append(update)
        lines += [f"{stamp}epoch {epoch} evaluating [time: 0.01s, valid_score: {score:f}]",
                  f"{stamp}valid result: ", f"{metric.lower()} : {score}"]
        if update:
            lines.append(f"{stamp}Saving current: saved/GRU4Rec.pth")
        if stop:
            finished = epoch - cur_step * eval_step
            lines.append(f"{stamp}Finished training, best eval result in epoch {finished}")
            break
    return "\n".join(lines) + "\n", finished, updates


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.integers(0, 12).map(lambda x: round(0.01 + x / 1000, 4)), min_size=1, max_size=30),
       stopping_step=st.integers(0, 4), eval_step=st.integers(1, 3))
def test_stock_stop_matches_recbole_early_stopping(scores: list[float], stopping_step: int, eval_step: int) -> None:
    """On logs decided by recbole.utils.early_stopping (many ties), explain finds RecBole's stop, best epoch,
    miss count and update flags."""
    text, finished, updates = _stock_log_text(scores, stopping_step, eval_step)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "GRU4Rec-ml-100k-Nov-22-2026_03-18-26-abcdef.log"
        path.write_text(text)
        observed = load_run(path)
        report = explain(path)
    stop = report["stop"]
    assert [d["improved"] for d in observed.decisions] == updates
    assert report["warnings"] == [w for w in report["warnings"] if "test result" in w]
    if finished is None:
        assert stop["ending"] == "budget"
        last_update = max(i for i, u in enumerate(updates) if u)
        assert stop["best_epoch"] == (last_update + 1) * eval_step - 1
    else:
        assert stop["ending"] == "early_stopped"
        assert stop["best_epoch"] == finished
        assert stop["evaluations_without_improvement"] == stopping_step + 1
        assert stop["epochs_without_improvement"] == (stopping_step + 1) * eval_step


def test_smaller_is_better_stock_metric() -> None:
    """RMSE (valid_metric_bigger False): the lowest value is the best and rises count as misses."""
    text, finished, _ = _stock_log_text([0.9, 0.8, 0.85, 0.8, 0.82, 0.83], stopping_step=1, eval_step=1, metric="RMSE")
    assert finished == 3  # the tie at epoch 3 reset RecBole's counter; 0.82 and 0.83 are two misses
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.log"
        path.write_text(text)
        report = explain(path)
    assert (report["mode"], report["monitor"]) == ("min", "rmse")
    assert (report["stop"]["stop_epoch"], report["stop"]["best_epoch"]) == (5, 3)
    assert report["premature"]["tie_resets"] == [3]


def test_policy_file_with_lr_schedule_is_marked_policy_only(tmp_path: Path) -> None:
    """An LR schedule changes training, so only the policy part is replayed, and the row says so."""
    policy = tmp_path / "plateau.yaml"
    policy.write_text("early_stopping:\n  patience: 2\nlr_schedule:\n  reduce_on_plateau: {factor: 0.5}\n")
    name, mapping = read_policy_file(policy)
    assert name == "plateau (policy only: its lr_schedule changes training and cannot be replayed)"
    assert mapping == {"patience": 2}


def test_recorded_test_metrics_appear_in_the_table(tmp_path: Path) -> None:
    """A trace recorded with test metrics shows each policy's test value at the epoch it restores."""
    scores = [0.1, 0.2, 0.3, 0.4] + [0.39 - 0.001 * i for i in range(26)]
    run = write_trace(tmp_path / "run", scores, {"enabled": False}, epochs=30, record_test=True)
    report = explain(run)
    assert row(report, "patience 10")["best_test"] == 0.2
    assert "test ndcg@10 there" in render_text(report)
