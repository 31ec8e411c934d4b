"""EarlyStoppingTrainer against real RecBole 1.2.1 on the tiny ml-100k slice (GRU4Rec)."""
from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed

from rec_es import build_policy
from rec_es.training.compat import recbole_config
from rec_es.rundir.trace import read_trace
from rec_es.training.trainer import EarlyStoppingTrainer

from conftest import tiny_recbole_config

TIMING = ("elapsed_seconds", "train_seconds", "eval_seconds")


def build(keys: dict[str, Any]) -> tuple[Any, Any, Any, Any, torch.nn.Module]:
    """Config, train/valid/test loaders and model, seeded exactly as RecBole's run_recbole does."""
    config = recbole_config(keys["model"], keys["dataset"], keys)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    return config, train, valid, test, model


def fit_recorded(tmp: Path, epochs: int, per_user_metrics: list[str]) -> tuple[Any, Any, Any, Any, Any]:
    """(config, valid, test, trainer, trace) of a run on the tiny set that no rule stops, with test metrics and
    ``per_user_metrics`` recorded every epoch at 12 decimals into ``tmp / "run"``."""
    keys = tiny_recbole_config(epochs=epochs, metric_decimal_place=12, checkpoint_dir=str(tmp / "s"))
    config, train, valid, test, model = build(keys)
    trainer = EarlyStoppingTrainer(config, model, build_policy({"monitor": "ndcg@10", "patience": None}),
                                   run_dir=tmp / "run", record_test=True, per_user_metrics=per_user_metrics)
    trainer.fit(train, valid, verbose=False, test_data=test)
    return config, valid, test, trainer, read_trace(tmp / "run")


def without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_recbole_legacy_equals_stock_trainer(in_tmp: Path) -> None:
    """recbole_legacy reproduces stock Trainer.fit: per-epoch scores, stop epoch, best epoch, test result."""
    keys = tiny_recbole_config(epochs=16, stopping_step=1, checkpoint_dir=str(in_tmp / "saved"))

    config, train, valid, test, model = build(keys)
    stock = Trainer(config, model)
    stock_scores: dict[int, float] = {}
    best_score, best_result = stock.fit(train, valid, saved=True, verbose=False,
                                        callback_fn=lambda e, s: stock_scores.__setitem__(e, s))
    saved = torch.load(stock.saved_model_file, weights_only=False)  # RecBole pickles its Config in here
    model.load_state_dict(saved["state_dict"])
    stock_test = dict(stock.evaluate(test, load_best_model=False))

    config, train, valid, test, model = build(keys)
    policy = build_policy({"preset": "recbole_legacy", "monitor": "ndcg@10", "stopping_step": 1})
    ours = EarlyStoppingTrainer(config, model, policy, run_dir=in_tmp / "run")
    our_score, our_result = ours.fit(train, valid, saved=True, verbose=False)
    our_test = dict(ours.evaluate(test, load_best_model=True))
    records = read_trace(in_tmp / "run").records

    assert max(stock_scores) < 15, "the config must make stock RecBole stop early for this test to mean anything"
    scores = [stock_scores[e] for e in sorted(stock_scores)]
    assert any(a == b for a, b in zip(scores, scores[1:])), "a tie must occur so RecBole's tie rule is exercised"
    assert {r["epoch"]: r["valid"]["ndcg@10"] for r in records} == stock_scores
    assert ours.stop_epoch_ == max(stock_scores)
    assert ours.best_epoch_ == saved["epoch"]
    assert (our_score, dict(our_result)) == (best_score, dict(best_result))
    assert our_test == stock_test
    # RecBole's own evaluate(model_file=...) path, made weights-only safe: loads our best.pth
    assert dict(ours.evaluate(test, load_best_model=True, model_file=str(in_tmp / "run" / "best.pth"))) == stock_test


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in the TensorBoard event files of ``log_dir``: tag -> [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_best_weights_restored_without_saving(in_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    """saved=False and no run dir: best weights restored in memory; logger and TensorBoard get the story."""
    config, train, valid, test, model = build(tiny_recbole_config(epochs=14, checkpoint_dir=str(in_tmp / "s")))
    trainer = EarlyStoppingTrainer(config, model, build_policy({"monitor": "ndcg@10", "patience": 2}))
    values: dict[int, float] = {}
    with caplog.at_level(logging.INFO):
        trainer.fit(train, valid, saved=False, verbose=True, callback_fn=lambda e, v: values.__setitem__(e, v))
    assert trainer.best_epoch_ is not None and trainer.best_epoch_ < trainer.stop_epoch_
    assert dict(trainer.evaluate(valid, load_best_model=True)) == dict(trainer.best_valid_result)
    assert not list(in_tmp.glob("**/*.pth"))
    messages = [r.getMessage() for r in caplog.records]
    assert trainer.stop_message_.startswith(f"stopped at epoch {trainer.stop_epoch_}: ndcg@10 did not improve")
    assert any(trainer.stop_message_ in m for m in messages)
    assert f"restored the best weights from epoch {trainer.best_epoch_}" in messages
    assert sum("evaluating" in m for m in messages) == trainer.stop_epoch_ + 1  # one status line per evaluation

    # patience 2 by hand on the evaluated values: strict improvement resets the wait, the 2nd miss in a row stops
    epochs = sorted(values)
    assert epochs == list(range(trainer.stop_epoch_ + 1))
    improved, wait, best = [], [], None
    for e in epochs:
        improved.append(best is None or values[e] > best)
        best = values[e] if improved[-1] else best
        wait.append(0 if improved[-1] else wait[-1] + 1)
    assert wait[-1] == 2 and 2 not in wait[:-1]
    trainer.tensorboard.flush()
    [log_dir] = [d for d in (in_tmp / "log_tensorboard").iterdir() if list(d.glob("events.out.tfevents.*"))]
    scalars = tensorboard_scalars(log_dir)
    expected = {"rec_es/monitor/ndcg@10": [values[e] for e in epochs], "rec_es/smoothed/ndcg@10": [values[e] for e in epochs],
                "rec_es/improved": [float(i) for i in improved], "rec_es/wait_count": [float(w) for w in wait],
                "rec_es/stop": [0.0] * (len(epochs) - 1) + [1.0], "rec_es/lr": [config["learning_rate"]] * len(epochs)}
    for tag, series in expected.items():
        assert [step for step, _ in scalars[tag]] == epochs, tag
        assert [value for _, value in scalars[tag]] == pytest.approx(series, rel=1e-6), tag  # stored as float32
    assert sorted(t for t in scalars if t.startswith("rec_es/")) == sorted(expected)


def test_policy_reuse_and_second_fit_carry_no_state(in_tmp: Path) -> None:
    """One policy object used by two trainers gives identical traces; a second fit starts fresh."""
    keys = tiny_recbole_config(epochs=4, checkpoint_dir=str(in_tmp / "s"))
    policy = build_policy({"monitor": "ndcg@10", "patience": 2, "smoothing": "ema", "ema_alpha": 0.5})
    traces = []
    for name in ("a", "b"):
        config, train, valid, test, model = build(keys)
        EarlyStoppingTrainer(config, model, policy, run_dir=in_tmp / name).fit(train, valid, verbose=False)
        traces.append(without_timing(read_trace(in_tmp / name).records))
    assert traces[0] == traces[1]

    config, train, valid, test, model = build(keys)
    trainer = EarlyStoppingTrainer(config, model, policy)
    trainer.fit(train, valid, verbose=False)
    assert trainer.policy.state_dict()["state"]["evaluations"] == 4
    first: list[tuple[float, dict[str, Any]]] = []

    def grab(epoch: int, value: float | None) -> None:
        if not first:
            first.append((value, copy.deepcopy(trainer.policy.state_dict())))

    trainer.fit(train, valid, verbose=False, callback_fn=grab)  # the model goes on training from where it is
    fresh = build_policy({"monitor": "ndcg@10", "patience": 2, "smoothing": "ema", "ema_alpha": 0.5})
    fresh.update(0, {"ndcg@10": first[0][0]})
    assert first[0][1] == fresh.state_dict()  # after one evaluation of the second fit: exactly a fresh policy


def test_lr_schedule_applied_and_plateau_defers_stop(in_tmp: Path) -> None:
    """Warmup LRs reach the optimizer; a patience stop is deferred once with the LR cut, then it stands."""
    keys = tiny_recbole_config(epochs=20, learning_rate=0.01, checkpoint_dir=str(in_tmp / "s"))
    config, train, valid, test, model = build(keys)
    schedule = {"warmup_epochs": 2, "warmup_start_factor": 0.5,
                "reduce_on_plateau": {"factor": 0.5, "max_reductions": 1}}
    trainer = EarlyStoppingTrainer(config, model, build_policy({"monitor": "ndcg@10", "patience": 1}),
                                   lr_schedule=schedule, run_dir=in_tmp / "run")
    trainer.fit(train, valid, verbose=False)
    records = read_trace(in_tmp / "run").records
    assert [r["lr"] for r in records[:3]] == pytest.approx([0.005, 0.0075, 0.01])
    deferred = [r for r in records if r.get("lr_action", {}).get("defer_stop")]
    assert len(deferred) == 1 and deferred[0]["decision"]["stop"] is False
    after = records[records.index(deferred[0]) + 1]
    assert after["lr"] == pytest.approx(0.005)
    assert records[-1]["decision"]["stop"] is True and records[-1]["decision"]["reason"] == "patience"
    assert trainer.stop_epoch_ == records[-1]["epoch"]


def test_eval_step_records_only_evaluated_epochs(in_tmp: Path) -> None:
    """With eval_step 2 the trace holds epochs 1, 3, ...; every epoch still trains and checkpoints."""
    config, train, valid, test, model = build(tiny_recbole_config(epochs=4, eval_step=2,
                                                                  checkpoint_dir=str(in_tmp / "s")))
    trainer = EarlyStoppingTrainer(config, model, build_policy({"monitor": "ndcg@10", "patience": 5}),
                                   run_dir=in_tmp / "run")
    trainer.fit(train, valid, verbose=False)
    trace = read_trace(in_tmp / "run")
    assert [r["epoch"] for r in trace.records] == [1, 3]
    assert trace.header["eval_step"] == 2 and trace.footer["epochs_trained"] == 4
    assert torch.load(in_tmp / "run" / "last.pth", weights_only=True)["epoch"] == 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_loss_check_catches_nan_and_inf(bad: float) -> None:
    """RecBole's own check only sees NaN; ours stops on inf too, for scalar and multi-element losses."""
    from rec_es.training.trainer import NonFiniteLossError

    from types import SimpleNamespace

    check = EarlyStoppingTrainer._check_nan  # reads only whether several processes train (ranks_)
    one = SimpleNamespace(ranks_=None)
    check(one, torch.tensor(0.5, requires_grad=True))
    check(one, torch.tensor([0.5, 1.0]))
    for loss in (torch.tensor(bad, requires_grad=True), torch.tensor([0.5, bad])):
        with pytest.raises(NonFiniteLossError) as info:
            check(one, loss)
        assert not torch.isfinite(torch.tensor(info.value.value))
        several = SimpleNamespace(ranks_=object(), _bad_loss=None)  # a rank notes it; the epoch's end decides
        check(several, loss)
        assert not math.isfinite(several._bad_loss)
