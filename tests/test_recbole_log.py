"""Parser of stock RecBole 1.2.1 log files (rec_es.recbole_log).

The fixture logs in tests/fixtures/recbole_logs/ were written by stock RecBole 1.2.1 running
GRU4Rec on datasets/ml-100k-tiny on this machine (the ``broken_*`` files are hand-cut copies):
  stopped_epochs500.log        epochs 500, stopping_step 3, lr 0.01: RecBole stopped after epoch 6
  noisy_stopped.log            epochs 500, stopping_step 3, lr 0.05: stopped after epoch 21
  budget_test_crashed.log      epochs 12, stopping_step 2: ran all 12 epochs, then the test step crashed
                               in torch.load (torch>=2.6), so no 'test result' line
  evalstep2_topk3.log          eval_step 2, topk [5, 10, 20], epochs 10
  evalstep2_topk3_console_coloured.txt  the console of the same run captured on a pty (ANSI colours, CR)
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rec_es.policy.errors import RecEsError
from rec_es.recbole_log import (
    LogFormatError,
    looks_like_recbole_log,
    parse_recbole_log,
    parse_recbole_log_text,
)

LOGS = Path(__file__).parent / "fixtures" / "recbole_logs"


def test_stopped_run_reads_config_scores_and_stop_line() -> None:
    """A run stopped by stopping_step yields its settings, every evaluation and the 'Finished' epoch."""
    log = parse_recbole_log(LOGS / "stopped_epochs500.log")
    assert (log.model, log.dataset) == ("GRU4Rec", "ml-100k-tiny")
    assert (log.epochs, log.eval_step, log.stopping_step) == (500, 1, 3)
    assert log.valid_metric == "ndcg@10" and log.bigger is True
    assert log.config["learning_rate"] == 0.01
    assert log.config["metrics"] == ["Recall", "NDCG", "MRR"]
    assert log.scores() == [(0, 0.0148), (1, 0.0191), (2, 0.0345), (3, 0.0292), (4, 0.0238), (5, 0.023), (6, 0.0247)]
    assert log.evaluations[2].valid == {"recall@10": 0.0833, "ndcg@10": 0.0345, "mrr@10": 0.02}
    assert log.evaluations[0].train_loss == 40.7477
    assert log.finished_best_epoch == 2
    assert log.ending == "early_stopped"
    assert log.best_valid == {"recall@10": 0.0833, "ndcg@10": 0.0345, "mrr@10": 0.02}
    assert log.test_result == {"recall@10": 0.025, "ndcg@10": 0.0113, "mrr@10": 0.0069}
    assert log.warnings == []


def test_budget_run_with_crashed_test_step() -> None:
    """A run that used all epochs ends by budget; the missing test result is a warning, not an error."""
    log = parse_recbole_log(LOGS / "budget_test_crashed.log")
    assert log.ending == "budget"
    assert log.last_trained_epoch == 11 and log.epochs == 12
    assert [e.saved for e in log.evaluations][:3] == [True, True, True]  # ties are saved too
    assert log.evaluations[0].valid_score == log.evaluations[1].valid_score == 0.0042
    assert log.test_result is None
    assert len(log.warnings) == 1 and "no 'test result' line" in log.warnings[0]


@pytest.mark.parametrize("name", ["evalstep2_topk3.log", "evalstep2_topk3_console_coloured.txt"])
def test_eval_step_and_several_topk(name: str) -> None:
    """eval_step 2 evaluates after epochs 1, 3, ...; every metric × topk value is read."""
    log = parse_recbole_log(LOGS / name)
    assert log.eval_step == 2
    assert [e.epoch for e in log.evaluations] == [1, 3, 5, 7, 9]
    assert len(log.train_losses) == 10
    assert set(log.evaluations[0].valid) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (5, 10, 20)}
    assert log.evaluations[0].valid["ndcg@20"] == 0.0253
    assert log.ending == "budget"
    assert log.warnings == []


def test_console_capture_is_coloured_and_matches_file() -> None:
    """The pty console copy has ANSI codes; once stripped it gives the same data as the log file."""
    console = parse_recbole_log(LOGS / "evalstep2_topk3_console_coloured.txt")
    plain = parse_recbole_log(LOGS / "evalstep2_topk3.log")
    assert console.coloured and not plain.coloured
    assert [replace(e, line=0) for e in console.evaluations] == [replace(e, line=0) for e in plain.evaluations]
    assert console.config == plain.config
    assert console.test_result == plain.test_result


def test_truncated_log_is_incomplete_with_warnings() -> None:
    """A log cut inside a 'valid result' block: evaluations so far are kept and the cut is reported."""
    log = parse_recbole_log(LOGS / "broken_truncated.log")
    assert log.ending == "incomplete"
    assert [e.epoch for e in log.evaluations] == [0, 1, 2, 3, 4]
    assert log.evaluations[-1].valid == {} and log.evaluations[-1].valid_score == 0.0238
    assert any(":142: epoch 4: 'valid result' holds no" in w for w in log.warnings)
    assert any("ends after epoch 4 of 500" in w and "crashed" in w for w in log.warnings)


def test_garbled_lines_are_reported_by_line_number() -> None:
    """An unreadable evaluating line and a missing valid-result block are named with file:line."""
    log = parse_recbole_log(LOGS / "broken_garbled.log")
    assert [e.epoch for e in log.evaluations] == [0, 1, 2, 4, 5, 6]
    path = str(LOGS / "broken_garbled.log")
    assert log.warnings[0].startswith(f"{path}:137: unreadable line 'epoch 3 evaluating")
    assert log.warnings[1] == f"{path}:138: 'valid result' block without a preceding 'epoch N evaluating' line; ignored"
    assert log.warnings[2].startswith(f"{path}:145: epoch 5: 'evaluating' line without a 'valid result' block")
    assert log.evaluations[4].valid == {} and log.evaluations[4].valid_score == 0.023


def test_log_without_config_infers_valid_metric_and_says_so() -> None:
    """No config dump: RecBole defaults are assumed, valid_metric is inferred from valid_score, both reported."""
    log = parse_recbole_log(LOGS / "broken_no_config.log")
    assert not log.has_config
    assert log.valid_metric == "ndcg@10"
    assert log.stopping_step == 10  # the RecBole default, which the warning names
    assert any("valid_metric inferred as 'ndcg@10'" in w for w in log.warnings)
    assert any("no config dump found; assuming RecBole defaults epochs=300, eval_step=1, stopping_step=10" in w
               for w in log.warnings)


def test_not_a_log_names_file_and_expected_format() -> None:
    """A file that is not a RecBole log raises LogFormatError naming the file and the expected lines."""
    path = LOGS / "not_a_log.txt"
    with pytest.raises(LogFormatError) as info:
        parse_recbole_log(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a stock RecBole log")
    assert "General Hyper Parameters:" in message and "epoch 0 evaluating" in message
    assert isinstance(info.value, RecEsError) and isinstance(info.value, ValueError)
    assert not looks_like_recbole_log(path)
    assert looks_like_recbole_log(LOGS / "stopped_epochs500.log")


def test_missing_file_is_a_log_format_error(tmp_path: Path) -> None:
    """A path that does not exist is reported with its name."""
    with pytest.raises(LogFormatError, match="nothing.log: cannot read the file"):
        parse_recbole_log(tmp_path / "nothing.log")


def test_tuple_losses_are_summed_like_recbole() -> None:
    """Models with several losses log 'train_loss1: a, train_loss2: b'; RecBole sums them."""
    text = (
        "Sun 22 Nov 2026 03:19:05 INFO  epoch 0 training [time: 1.21s, train_loss1: 1.5000, train_loss2: 0.2500]\n"
        "Sun 22 Nov 2026 03:19:05 INFO  epoch 0 evaluating [time: 0.01s, valid_score: 0.500000]\n"
        "Sun 22 Nov 2026 03:19:05 INFO  valid result: \n"
        "recall@10 : 0.5    mrr@10 : 0.25\n"
    )
    log = parse_recbole_log_text(text, source="mem.log")
    assert log.train_losses == {0: 1.75}
    assert log.evaluations[0].valid == {"recall@10": 0.5, "mrr@10": 0.25}


def test_unreadable_result_dict_is_a_warning() -> None:
    """A 'test result' that is not a dict literal is kept out and reported."""
    text = (
        "Sun 22 Nov 2026 03:19:05 INFO  epoch 0 training [time: 1.21s, train loss: 1.5000]\n"
        "Sun 22 Nov 2026 03:19:10 INFO  test result: <not printed>\n"
    )
    log = parse_recbole_log_text(text, source="mem.log")
    assert log.test_result is None
    assert "mem.log:2: unreadable 'test result' value '<not printed>'" in log.warnings


def test_numpy2_scalar_reprs_in_result_dicts() -> None:
    """Stock RecBole on numpy 2 prints ``np.float64(0.0167)``: read as the number (line as logged here)."""
    text = ("Tue 01 Dec 2026 18:14:50 INFO  epoch 0 training [time: 1.21s, train loss: 1.5000]\n"
            "Tue 01 Dec 2026 18:14:56 INFO  test result: OrderedDict([('recall@5', np.float64(0.0167)), "
            "('recall@10', np.float64(0.025)), ('ndcg@5', np.float64(0.0125))])\n")
    log = parse_recbole_log_text(text, source="mem.log")
    assert log.test_result == {"recall@5": 0.0167, "recall@10": 0.025, "ndcg@5": 0.0125}
    assert not any("test result" in w for w in log.warnings)
