"""A target_ce monitor in the pure policy core: smaller is better, and its per-user values feed significance."""
from __future__ import annotations

from rec_es import build_policy


def test_target_ce_monitor_minimises_and_reads_per_user_values() -> None:
    """mode auto resolves to min; improvement: significant reads target_ce per user and tests the fall."""
    policy = build_policy({"monitor": "target_ce", "improvement": "significant", "alpha": 0.05, "patience": 2})
    assert policy.mode == "min" and policy.per_user_keys == ("target_ce",)
    base = [6.0 + 0.01 * (u % 7) for u in range(200)]
    first = policy.update(0, {"target_ce": sum(base) / 200}, per_user={"target_ce": base})
    lower = [v - 0.05 for v in base]  # every user's cross-entropy falls: significant
    second = policy.update(1, {"target_ce": sum(lower) / 200}, per_user={"target_ce": lower})
    noisy = [v + (0.3 if u % 2 else -0.3) - 0.001 for u, v in enumerate(lower)]  # mean falls by 0.001 in the noise
    third = policy.update(2, {"target_ce": sum(noisy) / 200}, per_user={"target_ce": noisy})
    assert first.improved and second.improved and not third.improved  # improvement = significant fall
    assert second.measured["significance"]["confirmed"] and not third.measured["significance"]["confirmed"]
