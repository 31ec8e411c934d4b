"""rec_es.tune_space: RecBole's hyper-parameter file format, parsed without eval (no Ray started)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from rec_es.policy.errors import ConfigError
from rec_es.tune.space import grid_size, param_space, read_space


def test_reads_every_kind_like_recbole(tmp_path: Path) -> None:
    """choice/uniform/quniform/loguniform lines (spaces inside values, comments, dotted keys) parse to their values."""
    f = tmp_path / "hyper.test"
    f.write_text("# RecBole's hyper.test\nlearning_rate loguniform -8, 0\nembedding_size choice [64, 96 , 128]\n\n"
                 "dropout_prob uniform 0.1,0.5\nhidden_size quniform 32,128,32  # step 32\n"
                 "early_stopping.patience choice [2,5]\n"
                 "train_neg_sample_args choice [None, {'distribution': 'uniform'}]\n")
    params = {q.name: q for q in read_space(f)}
    assert params["embedding_size"].args == (64, 96, 128)
    assert params["learning_rate"].args == (-8.0, 0.0) and params["hidden_size"].args == (32.0, 128.0, 32.0)
    assert params["train_neg_sample_args"].args == (None, {"distribution": "uniform"})
    assert params["early_stopping.patience"].where == f"{f}:7"  # line 4 is blank
    assert grid_size(list(params.values())) is None
    lr = params["learning_rate"].to_tune()
    assert (lr.lower, lr.upper) == (pytest.approx(math.exp(-8)), 1.0)  # natural-log bounds, as hyperopt's


def test_all_choice_space_is_a_grid(tmp_path: Path) -> None:
    """An all-choice space has as many combinations as the product of its lists, searched as grid_search."""
    f = tmp_path / "s"
    f.write_text("learning_rate choice [0.001,0.01,0.05]\nembedding_size choice [16,32]\n")
    params = read_space(f)
    assert grid_size(params) == 6
    assert param_space(params, grid=True)["learning_rate"] == {"grid_search": [0.001, 0.01, 0.05]}


@pytest.mark.parametrize("text, message", [
    ("lr choice [1,2]\nlr choice [3]\n", "lr: searched twice"),
    ("lr uniform 0.5,0.1\n", "needs LOW < HIGH"),
    ("lr quniform 1,10,0\n", "step Q must be > 0"),
    ("lr choice []\n", "non-empty list"),
    ("# nothing\n", "no parameter line"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    """Each malformed space is a ConfigError naming the file (and line) and what is allowed."""
    f = tmp_path / "s"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        read_space(f)
    assert str(f) in str(err.value)
