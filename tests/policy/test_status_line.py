"""The per-evaluation status line names the best the rules improve on and the epoch whose weights are restored."""
from __future__ import annotations

from rec_es import build_policy


def _messages(settings: dict, values: list[float]) -> list[str]:
    policy = build_policy(settings)
    return [policy.update(e, {"ndcg@10": v}).message for e, v in enumerate(values)]


def test_smoothed_best_and_restored_raw_epoch_are_both_named() -> None:
    """EMA 0.5 with best_by raw: the spike at epoch 1 is the raw best (restored), while the smoothed best keeps
    rising to epoch 3; the line says both instead of one 'best'."""
    msgs = _messages({"monitor": "ndcg@10", "smoothing": "ema", "ema_alpha": 0.5, "best_by": "raw", "patience": 10},
                     [0.10, 0.30, 0.20, 0.22])
    # smoothed: 0.10, 0.20, 0.20, 0.21 -> best smoothed 0.21 at epoch 3; raw best 0.30 at epoch 1
    assert msgs[3] == ("epoch 3: ndcg@10 0.22 (smoothed 0.21), best smoothed 0.21 at epoch 3, restores epoch 1 "
                       "(best raw 0.3), wait 0/10 evaluations, improved")


def test_best_by_smoothed_names_the_smoothed_restore() -> None:
    """best_by smoothed restores the smoothed best's epoch, and says so."""
    msgs = _messages({"monitor": "ndcg@10", "smoothing": "ema", "ema_alpha": 0.5, "best_by": "smoothed",
                      "patience": 10}, [0.10, 0.30, 0.20, 0.22])
    assert "best smoothed 0.21 at epoch 3, restores epoch 3 (best smoothed 0.21)" in msgs[3]


def test_without_smoothing_there_is_one_best() -> None:
    """No smoothing: the raw best is both, and the line keeps its one 'best'."""
    msgs = _messages({"monitor": "ndcg@10", "patience": 10}, [0.10, 0.30, 0.20])
    assert msgs[2].startswith("epoch 2: ndcg@10 0.2, best 0.3 at epoch 1,")
    assert "restores" not in msgs[2]
