"""The tail every replay benchmark shares: print its Markdown report and, with ``--out``, write it."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def emit(lines: Sequence[str], out: Path | None) -> int:
    """Print ``lines`` as one text and write it (newline-terminated) to ``out`` when given; the exit status 0."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    return 0
