"""The pre-flight of `rec-es run` against real RecBole on the tiny slice: RecBole's errors become refusals that name
the key before anything is written, the pre-flight changes nothing training sees, a crash never blocks the user,
and one model of each family the base Trainer serves trains (or is refused) in one epoch."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
import yaml

from rec_es.cli.run import main
from rec_es.config.properties import load_config
from rec_es.policy.errors import ConfigError
from rec_es.rundir.trace import read_trace
from rec_es.training.run import RunFailed, train

from conftest import REPO, tiny_recbole_config

SHIPPED = str(REPO / "properties" / "gru4rec_ml100k.yaml")
TIMING = ("elapsed_seconds", "train_seconds", "eval_seconds", "test_seconds")
PAIRS = {"distribution": "uniform", "sample_num": 1}
RUN_FILES = {"trace.jsonl", "summary.json", "best.pth", "last.pth", "config.yaml"}
#: The tiny slice instead of ml-100k, one short epoch, no warmup past the budget.
TINY = ["--set", f"data_path={REPO / 'datasets'}", "--set", "dataset=ml-100k-tiny", "--set", "epochs=1",
        "--set", "early_stopping.warmup=0"]


def write(path: Path, keys: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(keys))
    return path


def general(**keys: Any) -> dict[str, Any]:
    """Tiny-slice keys for a general (non-sequential) model: no sequence settings, a random split."""
    base = tiny_recbole_config(**{"epochs": 1, **keys})
    for key in ("loss_type", "MAX_ITEM_LIST_LENGTH", "hidden_size"):
        base.pop(key, None)
    base["train_neg_sample_args"] = keys.get("train_neg_sample_args", PAIRS)
    base["eval_args"] = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "mode": "full"}
    return base


def ctr(**keys: Any) -> dict[str, Any]:
    """RecBole's click-through-rate protocol on the tiny slice: ratings >= 4 are the label, AUC on labeled pairs."""
    protocol = {"model": "FM", "train_neg_sample_args": None, "threshold": {"rating": 4},
                "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
                "metrics": ["AUC", "LogLoss"], "valid_metric": "AUC", "early_stopping": {"monitor": "auc"}}
    base = general(**{**protocol, **keys})
    base["eval_args"] = keys.get("eval_args", {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": None,
                                                "mode": "labeled"})
    return base


def without_timing(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_trace(run).records]


# ----- RecBole's errors, translated ----------------------------------------------------------------------------
@pytest.mark.parametrize("keys, key, fragments", [
    (general(model="BPR", train_neg_sample_args=None), "train_neg_sample_args",
     ["BPR trains on pairs", "set train_neg_sample_args: {distribution: uniform, sample_num: 1}",
      "RecBole raised KeyError: neg_item_id while training one batch"]),
    (tiny_recbole_config(loss_type="BPR"), "train_neg_sample_args",
     ["GRU4Rec with loss_type BPR trains on pairs", "or loss_type: CE"]),
    (general(model="NeuMF", train_neg_sample_args=None), "train_neg_sample_args",
     ["NeuMF trains on a 0/1 label", "each sampled item label 0", "KeyError: label"]),
    (general(model="FM", train_neg_sample_args=None), "threshold",
     ["FM is a click-through-rate model", "threshold: {rating: 4}", "[AUC, LogLoss]"]),
    (ctr(load_col={"inter": ["user_id", "item_id", "timestamp"]}), "load_col",
     ["threshold labels interactions by their rating", "load_col: {inter: [user_id, item_id, rating, timestamp]}",
      "Field [rating] not in inter_feat. while loading the dataset"]),
    (tiny_recbole_config(eval_args={"mode": "full"}), "eval_args.order",
     ["GRU4Rec is a sequential model", "got RO (RecBole's default when eval_args names no order",
      "while splitting the data"]),
    (tiny_recbole_config(train_neg_sample_args=PAIRS), "train_neg_sample_args",
     ["GRU4Rec with loss_type CE scores every item and takes no sampled negatives", "set train_neg_sample_args: ~",
      "while building RecBole's Config"]),
    (ctr(eval_args={"mode": "full"}), "eval_args.mode", ["are value metrics", "set eval_args.mode: labeled"]),
    (tiny_recbole_config(model="GRU4RecF"), "selected_features",
     ["GRU4RecF embeds the item features selected_features: ['class'] (RecBole's default"]),
    # not one of the known mistakes: RecBole's own words, where it raised and the phase (DGCF samples more users
    # than the slice's 120 for its correlation loss)
    (general(model="DGCF"), "model",
     ["model: DGCF: RecBole failed while training one batch (calculate_loss) with this config: ValueError: ",
      "(at recbole/model/general_recommender/dgcf.py:"]),
])
def test_recbole_errors_become_refusals_naming_the_key(in_tmp: Path, keys: dict[str, Any], key: str,
                                                        fragments: list[str]) -> None:
    """train() (the library, which runs no lint): RecBole's exception in the pre-flight is a ConfigError with the key,
    the model and the fix; no run directory and no RecBole log are written."""
    cfg = load_config([write(in_tmp / "c.yaml", keys)])
    with pytest.raises(ConfigError) as caught:
        train(cfg, in_tmp / "run", verbose=False)
    assert caught.value.key == key
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["c.yaml"]  # no run directory, no log/


# ----- the user reports of issue 27 ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["--set", "model=BPR"], "train_neg_sample_args: error: BPR trains on pairs"),
    (["--set", "model=NeuMF"], "train_neg_sample_args: error: NeuMF trains on a 0/1 label"),
    (["--set", "model=LightGCN"], "train_neg_sample_args: error: LightGCN trains on pairs"),
    (["--set", "loss_type=BPR"], "train_neg_sample_args: error: GRU4Rec with loss_type BPR trains on pairs"),
    (["--set", "model=FM"], "load_col: error: threshold labels interactions by their rating (RecBole's own defaults "
                            "for FM on ml-100k set threshold: {'rating': 4}), but load_col does not load"),
    (["--set", "eval_args={mode: uni100}"], "--set eval_args={...} replaces the whole mapping and drops split, order"),
    (["--set", "model=ItemKNN"], "model: error: ItemKNN trains with RecBole's TraditionalTrainer"),
])
def test_user_reports_are_refused_before_anything_is_written(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                             args: list[str], fragment: str) -> None:
    """The shipped ml-100k config with another model or loss: exit 2, the key named, nothing written, no traceback."""
    assert main(["--config", SHIPPED, *args, "--output-dir", "run", "--no-progress", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["--set", "eval_args.mode=uni100"],
    ["--set", "model=BPR", "--set", "train_neg_sample_args={distribution: uniform, sample_num: 1}"],
    ["--set", "model=FM", "--set", "load_col={inter: [user_id, item_id, rating, timestamp]}", "--set",
     "threshold={rating: 4}"],  # on ml-100k RecBole sets this threshold itself; the slice needs it given
])
def test_user_reports_with_the_fix_train(in_tmp: Path, args: list[str]) -> None:
    """The same reports with the fix the refusal names (or the dotted --set) train and write a complete run."""
    assert main(["--config", SHIPPED, *args, *TINY, "--output-dir", "run", "--no-progress", "--quiet"]) == 0
    assert RUN_FILES <= {p.name for p in (in_tmp / "run").iterdir()}


# ----- the pre-flight changes nothing --------------------------------------------------------------------------
@pytest.mark.parametrize("keys", [
    # dropout (torch's RNG), shuffling (the loader's generator), 100 sampled candidates (numpy's RNG)
    tiny_recbole_config(epochs=2, eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"}),
    # sampled negatives in training (numpy's RNG), full ranking
    general(model="BPR", epochs=2),
    # cached embeddings (other_parameter) filled by the pre-flight's full_sort_predict
    general(model="LightGCN", epochs=2),
], ids=["GRU4Rec-uni100", "BPR", "LightGCN"])
def test_preflight_changes_nothing_training_sees(in_tmp: Path, keys: dict[str, Any]) -> None:
    """The same run with and without the pre-flight batches: identical trace records, test result and best weights."""
    cfg = load_config([write(in_tmp / "c.yaml", keys)])
    with_pf = train(cfg, in_tmp / "with", verbose=False)
    without = train(cfg, in_tmp / "without", verbose=False, preflight=False)
    assert without_timing(in_tmp / "with") == without_timing(in_tmp / "without")
    assert with_pf["test_result"] == without["test_result"]
    a, b = (torch.load(in_tmp / name / "best.pth", weights_only=True)["state_dict"] for name in ("with", "without"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ----- a crash never blocks the user ---------------------------------------------------------------------------
@pytest.fixture
def loss_fails_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``fail(epoch)``: GRU4Rec's real calculate_loss raises RuntimeError in that training epoch (found on the
    calling stack, so the pre-flight's own batch passes)."""
    from recbole.model.sequential_recommender.gru4rec import GRU4Rec

    real = GRU4Rec.calculate_loss
    state: dict[str, int | None] = {"epoch": None}

    def calculate_loss(self: Any, interaction: Any) -> Any:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "_train_epoch":
            frame = frame.f_back
        if frame is not None and frame.f_locals.get("epoch_idx") == state["epoch"]:
            raise RuntimeError(f"planted failure at epoch {state['epoch']}")
        return real(self, interaction)

    monkeypatch.setattr(GRU4Rec, "calculate_loss", calculate_loss)
    yield lambda epoch: state.__setitem__("epoch", epoch)


def test_a_crash_before_anything_resumable_removes_the_directory(in_tmp: Path, loss_fails_at: Any,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """calculate_loss raises in epoch 0: exit 1, RecBole's traceback then the sentence, no run directory left (an
    existing empty --output-dir is left empty, a library caller's files in its directory stay)."""
    cfg = write(in_tmp / "c.yaml", tiny_recbole_config(epochs=2))
    loss_fails_at(0)
    assert main(["--config", str(cfg), "--output-dir", "out/run", "--no-progress", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: planted failure at epoch 0" in err
    assert ("rec-es run: error: training failed (RuntimeError: planted failure at epoch 0); it failed before anything "
            "--resume could continue, so the run directory out/run was removed; fix the cause and run it again") in err
    assert not (in_tmp / "out").exists()
    (in_tmp / "empty").mkdir()
    assert main(["--config", str(cfg), "--output-dir", "empty", "--no-progress", "--quiet"]) == 1
    assert "what it wrote into empty was removed" in capsys.readouterr().err
    assert list((in_tmp / "empty").iterdir()) == []
    (in_tmp / "trial").mkdir()  # a library caller's directory (a tune trial's): its own files stay
    (in_tmp / "trial" / "trial.json").write_text("{}")
    with pytest.raises(RunFailed, match="planted failure at epoch 0"):
        train(load_config([cfg]), in_tmp / "trial", verbose=False)
    assert [p.name for p in (in_tmp / "trial").iterdir()] == ["trial.json"]


def test_a_crash_after_the_first_record_leaves_a_resumable_run(in_tmp: Path, loss_fails_at: Any,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """calculate_loss raises in epoch 1: the directory keeps epoch 0 and last.pth, the message gives the resume
    command, and --resume (the cause gone) finishes the run."""
    cfg = write(in_tmp / "c.yaml", tiny_recbole_config(epochs=2))
    loss_fails_at(1)
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert ("training failed (RuntimeError: planted failure at epoch 1); run keeps 1 evaluation (epochs 0-0) and "
            "last.pth: once the cause is fixed, continue it with rec-es run --resume run, or delete the directory "
            "(rm -r run) to start over") in err
    assert [r["epoch"] for r in read_trace(in_tmp / "run").records] == [0]
    loss_fails_at(None)
    assert main(["--resume", "run", "--no-progress", "--quiet"]) == 0
    trace = read_trace(in_tmp / "run")
    assert [r["epoch"] for r in trace.records] == [0, 1] and trace.footer is not None


def test_a_run_killed_before_its_first_save_names_what_to_delete(in_tmp: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A directory as a kill in epoch 0 leaves it (config.yaml, a header-only trace, no last.pth): both a new run into
    it and --resume say it cannot be continued and give the command that deletes it."""
    run = in_tmp / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: GRU4Rec\n")
    (run / "trace.jsonl").write_text('{"type":"header"}\n')
    cfg = write(in_tmp / "c.yaml", tiny_recbole_config())
    assert main(["--config", str(cfg), "--output-dir", "run"]) == 2
    assert "ended before its first epoch was saved, so nothing in it can be continued; delete it (rm -r run)" in \
        capsys.readouterr().err
    assert main(["--resume", "run"]) == 2
    assert "run/last.pth is missing: the run in run ended before its first epoch was saved" in capsys.readouterr().err


# ----- one model of each family the base Trainer serves --------------------------------------------------------
MATRIX = {
    "sequential, cross-entropy (GRU4Rec)": tiny_recbole_config(epochs=1),
    "sequential, BPR loss (GRU4Rec)": tiny_recbole_config(epochs=1, loss_type="BPR", train_neg_sample_args=PAIRS),
    "general, pairwise (BPR)": general(model="BPR"),
    "general, pairwise graph (LightGCN)": general(model="LightGCN"),
    "general, pointwise (NeuMF)": general(model="NeuMF"),
    "context-aware, CTR protocol (FM)": ctr(),
}


@pytest.mark.parametrize("family", list(MATRIX))
def test_model_matrix_trains_one_epoch(in_tmp: Path, family: str) -> None:
    """Each family trains an epoch through `rec-es run` and writes a complete run directory."""
    cfg = write(in_tmp / "c.yaml", MATRIX[family])
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 0
    run = in_tmp / "run"
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    trace = read_trace(run)
    assert [r["epoch"] for r in trace.records] == [0] and trace.footer is not None
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] == 0 and summary["test_result"]


@pytest.mark.parametrize("model, trainer", [("ItemKNN", "TraditionalTrainer"), ("NCL", "NCLTrainer"),
                                            ("KGAT", "KGATTrainer"), ("RecVAE", "RecVAETrainer")])
def test_models_of_other_trainers_are_refused(in_tmp: Path, capsys: pytest.CaptureFixture[str], model: str,
                                              trainer: str) -> None:
    """A model RecBole trains with another trainer is refused before anything is written, naming it."""
    cfg = write(in_tmp / "c.yaml", general(model=model))
    assert main(["--config", str(cfg), "--output-dir", "run", "--no-progress", "--quiet"]) == 2
    assert f"model: error: {model} trains with RecBole's {trainer}" in capsys.readouterr().err
    assert sorted(p.name for p in in_tmp.iterdir()) == ["c.yaml"]
