"""early_stopping.restore with an average of weights, on real RecBole (GRU4Rec on the tiny ml-100k slice): best.pth
holds the average of the kept epochs' weights, the fallback to the best epoch, resume equality, bad input."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rec_es import build_policy
from rec_es.cli.run import main
from rec_es.config.lint import lint_files
from rec_es.config.properties import load_config
from rec_es.policy.errors import ConfigError
from rec_es.policy.restore import RestoreSpec, epochs_to_average
from rec_es.rundir import checkpoint
from rec_es.rundir.trace import read_trace
from rec_es.training import averaging
from rec_es.training.run import RunInterrupted, train
from rec_es.training.trainer import EarlyStoppingTrainer

from conftest import tiny_recbole_config
from test_trainer import build


#: a learning rate at which the tiny run peaks at epoch 2 and declines: an average of epochs around the peak stays
#: within the noise of the best there (at RecBole's default 0.001 the run still climbs, and an average lags behind)
LR = 0.01


def fit_recording(tmp: Path, restore: dict[str, Any], epochs: int = 6) -> tuple[EarlyStoppingTrainer, Any,
                                                                                dict[int, dict[str, torch.Tensor]]]:
    """(trainer, valid loader, every epoch's weights as evaluated) of a run that no rule stops."""
    config, train_data, valid, _, model = build(tiny_recbole_config(epochs=epochs, learning_rate=LR, metric_decimal_place=12,
                                                                    checkpoint_dir=str(tmp / "s")))
    policy = build_policy({"monitor": "ndcg@10", "patience": None, "restore": restore})
    trainer = EarlyStoppingTrainer(config, model, policy, run_dir=tmp / "run")
    weights: dict[int, dict[str, torch.Tensor]] = {}
    trainer.fit(train_data, valid, verbose=False,
                callback_fn=lambda epoch, _: weights.__setitem__(epoch, checkpoint.cpu_state_dict(trainer.model)))
    return trainer, valid, weights


def test_best_k_restores_the_average_of_the_k_best_epochs(in_tmp: Path) -> None:
    """best_k 3: best.pth, the model and the tested weights are the mean of the 3 best epochs' recorded weights
    (ranked from the trace); footer, summary and stop message say so; the average was judged on validation."""
    trainer, valid, weights = fit_recording(in_tmp, {"average": "best_k", "k": 3})
    trace = read_trace(in_tmp / "run")
    history = [(r["epoch"], r["valid"]["ndcg@10"], r["valid"]["ndcg@10"]) for r in trace.records]
    epochs = sorted(sorted(history, key=lambda h: (-h[1], h[0]))[:3][i][0] for i in range(3))
    assert epochs == epochs_to_average(RestoreSpec.parse({"average": "best_k", "k": 3}), history)
    restored = trace.footer["restored"]
    assert restored["epochs"] == epochs and restored["best_epoch"] == trainer.best_epoch_
    assert not restored["fell_back"], "the tiny run's average must not fall back for this test to mean anything"
    expected = {k: torch.stack([weights[e][k].double() for e in epochs]).mean(0) for k in weights[epochs[0]]}
    saved = checkpoint.load(in_tmp / "run" / "best.pth", kind="best")
    for key, value in saved["state_dict"].items():
        assert torch.allclose(value.double(), expected[key], atol=1e-6), key
        assert torch.equal(trainer.model.state_dict()[key], value), key
    assert saved["restored"]["epochs"] == epochs and saved["restored"]["fell_back"] is False
    assert any(not torch.equal(saved["state_dict"][k], weights[trainer.best_epoch_][k]) for k in expected)
    # the restored weights are what evaluate(load_best_model=True) scores: the footer's validation result
    assert dict(trainer.evaluate(valid, load_best_model=True)) == restored["valid_result"]
    assert restored["valid_score"] == restored["valid_result"]["ndcg@10"]
    assert restored["best_score"] == trainer.best_valid_score
    assert trace.footer["message"].endswith(
        f"restored the average of the weights of epochs {', '.join(map(str, epochs))} (restore: best_k, k 3): "
        f"validation ndcg@10 {restored['valid_score']:.6g} against {restored['best_score']:.6g} for the best epoch "
        f"{trainer.best_epoch_} (noise margin {restored['margin']:.6g}, {averaging.SE_SOURCE})")
    trainer.write_summary()
    summary = json.loads((in_tmp / "run" / "summary.json").read_text())
    assert summary["restored"] == restored and summary["message"] == trace.footer["message"]


def test_an_average_worse_than_the_best_falls_back(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The average's validation score forced 1.0 below the best: the best epoch's weights are restored, best.pth holds
    them, and footer and message say the average was not used."""
    real = averaging.judge
    monkeypatch.setattr(averaging, "judge", lambda avg, best, *a: real(avg - 1.0, best, *a))
    trainer, _, weights = fit_recording(in_tmp, {"average": "window", "window": 3}, epochs=4)
    footer = read_trace(in_tmp / "run").footer
    best = trainer.best_epoch_
    assert footer["restored"]["fell_back"] is True and footer["restored"]["epochs"] == [1, 2, 3]
    saved = checkpoint.load(in_tmp / "run" / "best.pth", kind="best")
    assert saved["epoch"] == best and saved["restored"]["fell_back"] is True
    for key, value in saved["state_dict"].items():
        assert torch.equal(value, weights[best][key]) and torch.equal(trainer.model.state_dict()[key], value), key
    assert f"; restored the best epoch {best}'s weights, not the average of epochs 1, 2, 3 (restore: window, " \
           "window 3): its validation ndcg@10" in footer["message"]
    assert footer["message"].endswith("is worse by more than the noise")


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_resumed_run_restores_the_same_average(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """peak 3 (ring buffer and the peak's evaluations in last.pth): a run interrupted after epoch 2 and resumed
    restores bit for bit the weights of the same run trained straight through (the verdict is forced to keep the
    average, which this tiny run's would not: the fallback is the test above)."""
    real = averaging.judge
    monkeypatch.setattr(averaging, "judge", lambda avg, best, *a: real(best, best, *a))
    cfg = write(in_tmp / "tiny.yaml", {**tiny_recbole_config(epochs=6, learning_rate=LR), "early_stopping": {
        "monitor": "ndcg@10", "patience": None, "restore": {"average": "peak", "window": 3}}})
    run = load_config([cfg])
    train(run, in_tmp / "full", verbose=False)

    def interrupt(epoch: int, _: Any) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        train(run, in_tmp / "cut", verbose=False, callback_fn=interrupt)
    assert not read_trace(in_tmp / "cut").complete
    train(run, in_tmp / "cut", resume=True, verbose=False)
    full, cut = (checkpoint.load(in_tmp / d / "best.pth", kind="best") for d in ("full", "cut"))
    assert full["restored"] == cut["restored"] and not full["restored"]["fell_back"]
    assert len(full["restored"]["epochs"]) >= 2
    assert full["state_dict"].keys() == cut["state_dict"].keys()
    assert all(torch.equal(full["state_dict"][k], cut["state_dict"][k]) for k in full["state_dict"])


def test_bad_restore_is_refused_before_anything_is_written(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A window longer than the budget stops `rec-es run` before the run directory exists, naming the key (a lint
    error, so `rec-es check` says it too); the trainer refuses it as well (library use)."""
    cfg = write(in_tmp / "tiny.yaml", tiny_recbole_config(epochs=4))
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet", "--set",
                 "early_stopping={monitor: ndcg@10, restore: {average: window, window: 5}}"]) == 2
    err = capsys.readouterr().err
    assert "early_stopping.restore.window" in err and "makes 4 evaluations, fewer than window 5" in err
    assert not (in_tmp / "run").exists()
    findings = lint_files([cfg], {"early_stopping": {"monitor": "ndcg@10", "restore": {"average": "peak", "window": 9}}})
    assert [(f.level, f.key) for f in findings if "restore" in f.key] == [("error", "early_stopping.restore.window")]
    config, _, _, _, model = build(tiny_recbole_config(epochs=4, eval_step=2, checkpoint_dir=str(in_tmp / "s")))
    with pytest.raises(ConfigError, match=r"restore\.k: the budget \(epochs 4, eval_step 2\) makes 2 evaluations"):
        EarlyStoppingTrainer(config, model, {"monitor": "ndcg@10", "restore": {"average": "best_k", "k": 3}})
