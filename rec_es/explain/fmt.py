"""How ``rec-es explain`` writes numbers, counts and policies in its sentences and tables."""
from __future__ import annotations

from rec_es.policy import StoppingPolicy, smoothing


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def _label(policy: StoppingPolicy) -> str:
    """A short name for a policy: ``stopping_step 3``, ``patience 10 evaluations + EMA α=0.5``."""
    s = policy.settings
    if s.is_legacy:
        return f"stopping_step {s.stopping_step}"
    label = f"patience {s.patience} {s.patience_unit}" if s.patience is not None else "no patience rule"
    label += smoothing.label(s)
    return label if s.enabled else "stopping disabled"
