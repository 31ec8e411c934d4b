"""The training loss as rec_es reads it: one float per epoch, and the error that ends a run on a non-finite one."""
from __future__ import annotations

from typing import Any


class NonFiniteLossError(Exception):
    """The training loss of a batch was NaN or infinite (RecBole raises a bare ValueError for NaN)."""

    def __init__(self, value: float) -> None:
        self.value = value
        super().__init__(f"training loss is {value}")


def loss_value(loss: Any) -> float | None:
    """RecBole's epoch loss (a float, a tuple of parts, or None) as one float (the parts summed) or None."""
    if loss is None:
        return None
    return float(sum(loss)) if isinstance(loss, tuple) else float(loss)
