"""``rec_es.training.resume.read_resume``, the reading half of a resume, on a run directory built by hand.

The run directory holds what ``check_resume`` reads: ``config.yaml``, a trace of three mrr@10 evaluations (epochs
0-2) and a ``last.pth`` written by ``checkpoint.last_payload`` from a small model (``tiny_model.TinyRecommender``: a linear layer plus
RecBole's ``other_parameter``, the extra state such as LightGCN's cached embeddings) and its SGD optimizer. The trainer is a
stand-in with the attributes read_resume reads: model, optimizer, device, averager and logger. No training.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import trace_header, write_trace_lines
from tiny_model import TinyRecommender

from rec_es import build_policy
from rec_es.policy.errors import ConfigError
from rec_es.rundir import checkpoint
from rec_es.training.averaging import for_trainer
from rec_es.training.resume import read_resume
from rec_es.training.resume_check import check_resume

POLICY = {"monitor": "mrr@10", "patience": 2}
MRR = [0.3, 0.35, 0.32]


def saved_run(run: Path) -> tuple[TinyRecommender, torch.optim.Optimizer]:
    """RUN with config.yaml, a trace of MRR (header + 3 records) and last.pth after epoch 2 (trace_lines 4) of a
    model with weights 0.5, bias -1.0 and cached {'items': [1.0, 2.0]}, its SGD at lr 0.05, momentum 0.9;
    returns that model and optimizer."""
    write_trace_lines(run, [trace_header(policy=build_policy(POLICY).settings_mapping())]
                      + [{"type": "eval", "epoch": e, "valid": {"mrr@10": v}, "decision": {}}
                         for e, v in enumerate(MRR)])
    (run / "config.yaml").write_text("model: BPR\ndataset: ml-100k\n")
    model = TinyRecommender(cache={"items": torch.tensor([1.0, 2.0])})
    with torch.no_grad():
        model.weight.fill_(0.5)
        model.bias.fill_(-1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    payload = checkpoint.last_payload(model, optimizer, 2, policy_state=build_policy(POLICY).state_dict(),
                                      schedule_state=None, train_data_rng=None, trace_lines=4,
                                      elapsed_seconds=1.5, best=None)
    checkpoint.atomic_save(payload, run / "last.pth")
    return model, optimizer


def stand_in(inputs: int = 2, device: str = "cpu", averager: Any = None) -> SimpleNamespace:
    """A fresh trainer: a TinyRecommender (zero weights, no cache) and its SGD at lr 0.01 without momentum."""
    model = TinyRecommender(inputs)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return SimpleNamespace(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                           device=torch.device(device), averager=averager,
                           logger=logging.getLogger("test_resume_read"))


def test_read_resume_checks_the_run_and_restores_model_optimizer_and_extra_state(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without a plan, read_resume checks RUN itself, then restores the weights, the optimizer (lr 0.05, momentum
    0.9) and other_parameter moved to the trainer's device (meta here: a device other than the CPU that every
    machine has), and logs where the fit continues: after epoch 2, from epoch 3, keeping 4 trace lines."""
    saved_run(tmp_path)
    trainer = stand_in(device="meta")
    with caplog.at_level(logging.INFO, logger="test_resume_read"):
        data = read_resume(trainer, tmp_path)
    assert (data["epoch"], data["trace_lines"]) == (2, 4)
    assert trainer.model.weight.tolist() == [[0.5, 0.5]]
    assert trainer.model.bias.tolist() == [-1.0]
    group = trainer.optimizer.state_dict()["param_groups"][0]
    assert (group["lr"], group["momentum"]) == (0.05, 0.9)
    cache = trainer.model.cache
    assert list(cache) == ["items"]
    assert (cache["items"].device.type, tuple(cache["items"].shape)) == ("meta", (2,))
    assert [r.getMessage() for r in caplog.records] == [
        f"resuming {tmp_path} from epoch 3 (trace keeps its first 4 lines)"]


def test_read_resume_restores_the_plan_it_is_given_without_reading_the_run_again(tmp_path: Path) -> None:
    """Given check_resume's plan, read_resume restores the checkpoint the plan holds and reads RUN no more: it
    still restores after last.pth is gone from the directory."""
    saved_run(tmp_path)
    plan = check_resume(tmp_path)
    (tmp_path / "last.pth").unlink()
    trainer = stand_in()
    assert read_resume(trainer, tmp_path, plan) is plan.checkpoint
    assert trainer.model.weight.tolist() == [[0.5, 0.5]]
    assert trainer.model.cache["items"].tolist() == [1.0, 2.0]


def test_read_resume_refuses_a_model_state_that_does_not_fit(tmp_path: Path) -> None:
    """A model built with another size (3 inputs, saved with 2) is refused naming last.pth, with the start and end
    of the loading error (its repr cut to 58 + '...' + 59 characters: "RuntimeError('" is 14, then the first 44 of
    the first line, "Error(s) in loading state_dict for TinyRecommender:") and which settings to keep."""
    saved_run(tmp_path)
    with pytest.raises(ConfigError) as err:
        read_resume(stand_in(inputs=3), tmp_path, check_resume(tmp_path))
    assert err.value.message == (
        "cannot resume: its model/optimizer state does not fit the model built from the config "
        "(RuntimeError('Error(s) in loading state_dict for TinyRecom...kpoint, the shape in current model "
        "is torch.Size([1, 3]).')); was a model setting (embedding_size, hidden_size, ...) or the learner changed "
        "with --config/--set? Resume with the run's own model settings; nothing in the run directory was changed")
    assert err.value.source == str(tmp_path / "last.pth")


def test_read_resume_refuses_averaging_without_kept_weights_naming_last_pth(tmp_path: Path) -> None:
    """A trainer restoring an average of the best 2 evaluations resumes a run that kept no weights (a plain
    restore-best run): refused after the model loads, naming last.pth as the file to look at."""
    saved_run(tmp_path)
    made = for_trainer(build_policy({**POLICY, "restore": {"average": "best_k", "k": 2}}), torch.nn.Linear(2, 1),
                       "Linear", epochs=10, eval_step=1)
    with pytest.raises(ConfigError) as err:
        read_resume(stand_in(averager=made), tmp_path, check_resume(tmp_path))
    assert err.value.message.startswith("cannot resume: early_stopping.restore: restore: best_k, k 2 averages "
                                        "weights of several evaluations, and this run kept none")
    assert err.value.source == str(tmp_path / "last.pth")
