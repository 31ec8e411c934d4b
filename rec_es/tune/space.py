"""The search space of ``rec-es tune``: RecBole's hyper-parameter file format, read without ``eval``.

One parameter a line, as ``recbole/trainer/hyper_tuning.py`` reads it (``name type value``, the value's
spaces removed)::

    learning_rate choice [0.001,0.005,0.01]
    embedding_size choice [32,64]
    dropout_prob uniform 0.0,0.5
    hidden_size quniform 32,128,32
    weight_decay loguniform -12,-4        # bounds are natural logs: exp(-12) .. exp(-4), as hyperopt's

Blank lines and ``#`` comments are skipped; any other malformed line is an error naming the file and line
(RecBole skips lines of fewer than three words silently, and ``eval``s choice values). Dotted names set
nested keys (``early_stopping.patience choice [2,5]``).
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rec_es.policy.errors import ConfigError

#: Parameter types and the shape of their value.
KINDS = {"choice": "[v1,v2,...]", "uniform": "LOW,HIGH", "quniform": "LOW,HIGH,Q", "loguniform": "LOG_LOW,LOG_HIGH"}


@dataclass(frozen=True)
class Param:
    """One line of a space file: ``name``, ``kind`` (a key of KINDS) and its parsed ``args``."""

    name: str
    kind: str
    args: tuple[Any, ...]
    where: str

    def to_tune(self) -> Any:
        """The Ray Tune domain that samples this parameter (loguniform bounds are natural logs, as RecBole's)."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.args))
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "quniform":
            return tune.quniform(*self.args)
        low, high = self.args
        return tune.loguniform(math.exp(low), math.exp(high))


def read_space(path: str | Path) -> list[Param]:
    """Parse a space file; raises ConfigError naming the file, line and the allowed forms."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the search space ({exc.strerror})", source=str(p)) from None
    params: list[Param] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        params.append(parse_line(line, f"{p}:{number}"))
    names = [q.name for q in params]
    for q in params:
        if names.count(q.name) > 1:
            raise ConfigError(f"{q.name}: searched twice; keep one line per parameter", source=q.where, key=q.name)
    if not params:
        raise ConfigError("the search space has no parameter line (e.g. `learning_rate choice [0.001,0.01]`)",
                          source=str(p))
    return params


def parse_line(line: str, where: str) -> Param:
    """One ``name type value`` line (``where`` is FILE:LINE for errors)."""
    words = line.split()
    forms = "; ".join(f"NAME {k} {v}" for k, v in KINDS.items())
    if len(words) < 3:
        raise ConfigError(f"{line!r}: expected NAME TYPE VALUE ({forms})", source=where)
    name, kind, value = words[0], words[1], "".join(words[2:])
    if kind not in KINDS:
        raise ConfigError(f"{name}: unknown type {kind!r}; allowed: {', '.join(KINDS)}", source=where, key=name)
    if kind == "choice":
        try:
            values = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ConfigError(f"{name}: choice takes a Python/JSON list of literals, e.g. [0.001,0.005] "
                              f"(got {value!r}; expressions are not evaluated)", source=where, key=name) from None
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{name}: choice takes a non-empty list, e.g. [0.001,0.005] (got {value!r})",
                              source=where, key=name)
        return Param(name, kind, tuple(values), where)
    parts = value.split(",")
    want = KINDS[kind].count(",") + 1
    try:
        nums = tuple(float(x) for x in parts)
    except ValueError:
        nums = ()
    if len(parts) != want or len(nums) != want or not all(math.isfinite(x) for x in nums):
        raise ConfigError(f"{name}: {kind} takes {want} numbers {KINDS[kind]} (got {value!r})", source=where,
                          key=name)
    if nums[0] >= nums[1]:
        raise ConfigError(f"{name}: {kind} needs LOW < HIGH (got {nums[0]:g} >= {nums[1]:g})", source=where, key=name)
    if kind == "quniform" and nums[2] <= 0:
        raise ConfigError(f"{name}: quniform's step Q must be > 0 (got {nums[2]:g})", source=where, key=name)
    return Param(name, kind, nums, where)


def grid_size(params: list[Param]) -> int | None:
    """The number of combinations when every parameter is a choice, else None (a continuous space)."""
    if any(q.kind != "choice" for q in params):
        return None
    return math.prod(len(q.args) for q in params)


def param_space(params: list[Param], grid: bool) -> dict[str, Any]:
    """Ray Tune's ``param_space``: grid_search over every choice (``grid``) or sampled domains."""
    from ray import tune

    if grid:
        return {q.name: tune.grid_search(list(q.args)) for q in params}
    return {q.name: q.to_tune() for q in params}
