"""A model small enough to build in every test, with RecBole's extra state (a module of its own, so that conftest
stays free of torch for the tests that do not need it)."""
from __future__ import annotations

from typing import Any

import torch


class TinyRecommender(torch.nn.Linear):
    """``inputs`` -> 1 linear model with RecBole's ``other_parameter`` / ``load_other_parameter`` pair; ``cache`` is
    that extra state (LightGCN's cached embeddings, say), None by default."""

    def __init__(self, inputs: int = 2, cache: Any = None) -> None:
        super().__init__(inputs, 1)
        self.cache = cache

    def other_parameter(self) -> Any:
        return self.cache

    def load_other_parameter(self, para: Any) -> None:
        self.cache = para
