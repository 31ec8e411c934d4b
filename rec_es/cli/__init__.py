"""``rec-es <subcommand> ...``: one console script for every tool.

Subcommands are imported only when used, so a tool that is missing or broken gives one clear error
and never stops the others from starting.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn, Sequence

from rec_es.policy.errors import ConfigError

#: subcommand -> (module with ``main(argv) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("rec_es.cli.run", "train a RecBole model with a stopping policy into a run directory"),
    "compare": ("rec_es.cli.compare", "compare stopping policies over seeds (replay and live)"),
    "explain": ("rec_es.cli.explain", "explain why a run (rec_es or stock RecBole log) stopped"),
    "check": ("rec_es.cli.check", "lint RecBole + rec_es property files before training"),
    "tune": ("rec_es.cli.tune", "hyper-parameter search on Ray Tune, a rec_es policy in every trial"),
}


def refuse_nproc(command: str, why: str) -> NoReturn:
    """Refuse ``--nproc`` on a command other than ``run``: ``why`` says how ``command`` spreads its work instead."""
    raise ConfigError(f"rec-es {command} {why}; several processes per training (RecBole's distributed "
                      "data parallel) are rec-es run --nproc N only (docs/distributed.md)", source="--nproc")


def usage() -> str:
    """The top-level help text."""
    lines = ["usage: rec-es <command> [options]   (rec-es <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its module's ``main(argv[1:])``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"rec-es: unknown command {name!r}; choose one of {', '.join(COMMANDS)}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"rec-es: command {name!r} is not available in this installation ({module_name} is missing)",
              file=sys.stderr)
        return 2
    try:
        return int(module.main(rest) or 0)
    except BrokenPipeError:  # `rec-es explain RUN | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
