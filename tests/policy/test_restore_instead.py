"""``StoppingPolicy.restore_instead``: a resumed run substitutes the best epoch whose weights it kept."""
from __future__ import annotations

import pytest

from rec_es import build_policy


@pytest.mark.parametrize("best_by, score", [("raw", 0.25), ("smoothed", 0.225)])
def test_restore_instead_moves_the_weights_to_restore_and_keeps_improvement_tracking(best_by: str,
                                                                                    score: float) -> None:
    """Best at epoch 1 (raw 0.5, EMA 0.3); epoch 3 (raw 0.25, EMA(0.5) 0.225) substituted: best_epoch 3 and
    best_score its raw or smoothed value, per best_by. Improvement is still measured against EMA 0.3 (the wait goes
    on counting); a later epoch that beats the stand-in but not the best becomes the weights to restore, one that
    does not leaves epoch 3."""
    p = build_policy({"monitor": "ndcg@10", "patience": 10, "smoothing": "ema", "ema_alpha": 0.5, "best_by": best_by})
    decisions = [p.update(e, {"ndcg@10": v}) for e, v in enumerate([0.1, 0.5, 0.1, 0.25])]
    # EMA 0.1, 0.3, 0.2, 0.225: raw best 0.5 and smoothed best 0.3, both at epoch 1
    assert (p.best_epoch, decisions[-1].wait_count) == (1, 2)
    stand_in = decisions[3]
    assert (stand_in.value, stand_in.smoothed) == (0.25, pytest.approx(0.225))
    p.restore_instead(stand_in)
    assert p.best_epoch == 3 and p.best_score == pytest.approx(score)
    lower = p.update(4, {"ndcg@10": 0.2})  # raw 0.2 < 0.25, EMA 0.2125 < 0.225: epoch 3 stays
    assert (lower.new_best, lower.improved, lower.wait_count, p.best_epoch) == (False, False, 3, 3)
    higher = p.update(5, {"ndcg@10": 0.29})  # raw 0.29 > 0.25, EMA 0.25125 > 0.225, both under the bests 0.5 / 0.3
    assert (higher.new_best, higher.improved, higher.wait_count, p.best_epoch) == (True, False, 4, 5)
