"""What RecBole's evaluation settings mean for rec_es: ``eval_args.mode`` per split, and whether ``target_ce`` can
be computed under them (it needs full-ranking evaluation). Pure Python, no torch.
"""
from __future__ import annotations

from typing import Any, Mapping

from rec_es.policy.errors import ConfigError

SPLITS = ("valid", "test")


def eval_modes(eval_args: Any) -> dict[str, str]:
    """RecBole 1.2.1's ``eval_args.mode`` per split, resolved as its ``Config`` does (default ``full``)."""
    mode = eval_args.get("mode", "full") if isinstance(eval_args, Mapping) else "full"
    if isinstance(mode, Mapping):
        default = mode.get("valid", mode.get("test", "full"))
        return {s: str(mode.get(s, default)) for s in SPLITS}
    return {s: str(mode) for s in SPLITS}


def unavailable(eval_args: Any) -> str | None:
    """Why ``target_ce`` cannot be computed under ``eval_args`` (None: it can: both splits rank all items)."""
    modes = eval_modes(eval_args)
    sampled = {s: m for s, m in modes.items() if m.lower() != "full"}
    if not sampled:
        return None
    return (f"target_ce needs full-ranking evaluation (eval_args.mode: full), but eval_args.mode is "
            f"{', '.join(f'{s}: {m}' for s, m in sampled.items())}: negative-sampled evaluation scores only the "
            "sampled items, so there is no softmax over all items to read the target's cross-entropy from")


def require(eval_args: Any, asked_by: str, source: str | None = None) -> None:
    """ConfigError (key ``eval_args``) when ``target_ce``, asked for by ``asked_by``, cannot be computed."""
    why = unavailable(eval_args)
    if why is not None:
        raise ConfigError(f"{asked_by}: {why}; set eval_args.mode: full, or use a RecBole metric instead",
                          source=source, key="eval_args")
