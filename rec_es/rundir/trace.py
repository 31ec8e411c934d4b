"""``trace.jsonl``: one JSON object per line — a header, one record per evaluation, a footer.

Written by ``EarlyStoppingTrainer``; read by replay, compare and explain through ``read_trace``.
Each line is flushed and fsync'ed as it is written, so a killed run leaves every finished
evaluation on disk (and no footer). Non-finite floats are written as ``null`` (strict JSON).
Format (docs/CONTRACT.md)::

    {"type": "header", "format": "rec_es.trace", "version": 1, "config": {...}, "policy": {...}, ...}
    {"type": "eval", "epoch": 0, "train_loss": 5.1, "lr": 0.001, "valid": {...}, "decision": {...}, ...}
    {"type": "footer", "stop_epoch": 41, "stop_reason": "patience", "message": "...", ...}
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from rec_es.policy.errors import StateError, brief
from rec_es.rundir.textio import iter_lines

FORMAT = "rec_es.trace"
VERSION = 1
HEADER_KEYS = ("config", "policy", "versions", "model", "dataset")
RECORD_KEYS = ("epoch", "valid", "decision")
FOOTER_KEYS = ("stop_epoch", "stop_reason", "message", "best_epoch")
#: What a trace file holds (ends the error for a file that is not UTF-8 text).
TRACE_TEXT = "a rec_es trace: JSON lines, UTF-8"
_INT, _NUM, _NULL, _STR, _DICT = "int", "number", "null", "str", "object"
#: Types of the fields a reader uses, checked when present (other fields may be anything): header, record, footer.
HEADER_TYPES = {"config": (_DICT,), "policy": (_DICT,), "lr_schedule": (_DICT, _NULL), "versions": (_DICT,),
                "model": (_STR, _NULL), "dataset": (_STR, _NULL), "seed": (_INT, _NULL), "epochs": (_INT, _NULL),
                "eval_step": (_INT, _NULL), "record_test": ("bool",), "monitor": (_STR, _NULL),
                "mode": (_STR, _NULL), "resumed_with_changes": ("list",)}
RECORD_TYPES = {"train_loss": (_NUM, _NULL), "lr": (_NUM, _NULL), "elapsed_seconds": (_NUM, _NULL),
                "train_seconds": (_NUM, _NULL), "eval_seconds": (_NUM, _NULL), "test_seconds": (_NUM, _NULL),
                "train_losses": ("list",), "lr_action": (_DICT, _NULL), "ranked": (_DICT, _NULL)}
#: Types of ``Decision.to_dict()`` fields in a record's ``decision``, checked when present.
DECISION_TYPES = {"epoch": (_INT,), "stop": ("bool",), "improved": ("bool",), "new_best": ("bool",),
                  "reason": (_STR,), "message": (_STR,), "value": (_NUM, _NULL), "smoothed": (_NUM, _NULL),
                  "best_epoch": (_INT, _NULL), "best_score": (_NUM, _NULL), "wait_count": (_INT,),
                  "wait_epochs": (_INT,), "patience": (_INT, _NULL)}
FOOTER_TYPES = {"stop_epoch": (_INT,), "stop_reason": (_STR,), "message": (_STR, _NULL), "best_epoch": (_INT, _NULL),
                "epochs_trained": (_INT, _NULL), "wall_seconds": (_NUM, _NULL)}


def jsonable(value: Any) -> Any:
    """``value`` as strict-JSON data: numpy/torch scalars become floats/ints, NaN/inf become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        return jsonable(value.item())
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # str enum
        return value.value
    return str(value)


def dumps(obj: Mapping[str, Any]) -> str:
    """One compact strict-JSON line."""
    return json.dumps(jsonable(obj), allow_nan=False, separators=(",", ":"))


class TraceWriter:
    """Appends header/records/footer to ``path``; ``lines`` counts the valid lines written so far.

    ``keep_lines=None`` starts a new file (the target must not exist or be empty); an int resumes:
    the file is cut to its first ``keep_lines`` lines (the count saved in ``last.pth``). ``digests`` holds
    one digest per line after the header (``line_digest``), which ``last.pth`` keeps to detect an edited trace.
    """

    def __init__(self, path: str | os.PathLike[str], keep_lines: int | None = None) -> None:
        self.path = Path(path)
        if keep_lines is None:
            if self.path.exists() and self.path.stat().st_size > 0:
                raise StateError(f"{self.path}: a trace already exists here; it is never overwritten")
            _replace_bytes(self.path, b"")  # a new file, even where a dangling link was
            self.lines = 0
            self.digests: list[str] = []
        else:
            self.lines = truncate_lines(self.path, keep_lines)
            self.digests = [line_digest(x) for x in self.path.read_bytes().split(b"\n")[1:self.lines]]

    def _write(self, obj: Mapping[str, Any]) -> None:
        line = dumps(obj) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        if self.lines > 0:
            self.digests.append(line_digest(line.encode("utf-8")))
        self.lines += 1

    def header(self, **fields: Any) -> None:
        """Write the header line (must be the first line)."""
        if self.lines != 0:
            raise StateError(f"{self.path}: header must be the first line (file has {self.lines})")
        self._write({"type": "header", "format": FORMAT, "version": VERSION, **fields})

    def record(self, **fields: Any) -> None:
        """Append one per-evaluation record."""
        self._write({"type": "eval", **fields})

    def footer(self, **fields: Any) -> None:
        """Append the footer (the run ended normally)."""
        self._write({"type": "footer", **fields})


def line_digest(line: bytes) -> str:
    """The digest ``last.pth`` keeps of one trace line (without its newline): 16 hex digits of SHA-256."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()[:16]


def truncate_lines(path: Path, keep_lines: int) -> int:
    """Cut ``path`` after its first ``keep_lines`` complete lines; return how many it keeps.

    The kept lines go to a new file renamed over ``path`` (fsync'ed), so the old file is never changed in place:
    a trace that is a link to another file (or shares its inode with one) leaves that file as it was.
    """
    if not path.is_file():
        raise StateError(f"{path}: trace file to resume is missing")
    data = path.read_bytes()
    offset = 0
    kept = 0
    while kept < keep_lines:
        nl = data.find(b"\n", offset)
        if nl < 0:
            break
        offset = nl + 1
        kept += 1
    if kept < keep_lines:
        raise StateError(f"{path}: has {kept} complete lines, the checkpoint expects at least {keep_lines}")
    _replace_bytes(path, data[:offset])
    return kept


def _replace_bytes(path: Path, data: bytes) -> None:
    from rec_es.rundir.paths import atomic_write

    atomic_write(path, data)


def rewrite_header(path: str | os.PathLike[str], header: Mapping[str, Any]) -> None:
    """Replace line 1 of a trace with ``header`` (atomically: temp file, fsync, os.replace)."""
    p = Path(path)
    lines = p.read_bytes().split(b"\n", 1)
    rest = lines[1] if len(lines) > 1 else b""
    fields = {k: v for k, v in header.items() if k not in ("type", "format", "version")}
    obj = {"type": "header", "format": FORMAT, "version": VERSION, **fields}
    _replace_bytes(p, dumps(obj).encode("utf-8") + b"\n" + rest)


@dataclass
class Trace:
    """A parsed trace: ``header``, evaluation ``records`` in order, ``footer`` (None if the run crashed)."""

    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    footer: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        """True when the run wrote its footer (it ended, by a stop or the epoch budget)."""
        return self.footer is not None

    def metric(self, key: str, split: str = "valid") -> list[float | None]:
        """Per-evaluation values of metric ``key`` (any case) in ``split`` ('valid' or 'test')."""
        k = key.lower()
        return [{m.lower(): v for m, v in (r.get(split) or {}).items()}.get(k) for r in self.records]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read and validate a ``trace.jsonl`` (or a run directory holding one).

    Raises ``StateError`` naming the file and line when a line is not JSON, the header is missing or
    of another format/version, a record lacks ``epoch``/``valid``/``decision``, epochs do not increase,
    or anything follows the footer. A missing footer is allowed (crashed or running run). Bytes that are
    not UTF-8 raise ``rec_es.rundir.textio.TextInputError`` (a ConfigError) naming the line.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "trace.jsonl"
    if not p.is_file():
        raise StateError(f"{p}: trace file not found")
    return parse_trace(iter_lines(p, TRACE_TEXT), p)


def parse_trace(lines: Iterable[tuple[int, str]], p: Path) -> Trace:
    """Validate numbered trace lines (``(line number, text)``, as ``rec_es.rundir.textio.iter_lines`` yields them)."""
    trace: Trace | None = None
    last_epoch = -1
    for no, line in lines:
        if not line.strip():
            continue
        where = f"{p}:{no}"
        obj = _json_line(line, where)
        if trace is None:
            trace = _header(obj, where, p)
            continue
        if trace.footer is not None:
            raise StateError(f"{where}: a line follows the footer")
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "eval":
            _require(obj, RECORD_KEYS, where, "record")
            epoch = obj["epoch"]
            if _kind(epoch) != _INT or epoch <= last_epoch:
                raise StateError(f"{where}: record epoch {brief(epoch)} does not follow epoch {last_epoch}")
            _check_record(obj, where)
            last_epoch = epoch
            trace.records.append(obj)
        elif kind == "footer":
            _require(obj, FOOTER_KEYS, where, "footer")
            _check_types(obj, FOOTER_TYPES, where, "footer")
            trace.footer = obj
        else:
            raise StateError(f"{where}: unknown line type {brief(kind)} (expected 'eval' or 'footer')")
    if trace is None:
        raise StateError(f"{p}: empty trace (no header)")
    return trace


def _json_line(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        if not line.endswith("\n"):
            raise StateError(f"{where}: last line is cut off (the run was killed while writing)") from exc
        raise StateError(f"{where}: not valid JSON ({exc.msg})") from exc
    except RecursionError:
        raise StateError(f"{where}: JSON nested too deeply to be a trace line") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise StateError(f"{where}: a value cannot be read ({brief(str(exc))})") from None


def _header(obj: Any, where: str, path: Path) -> Trace:
    if not isinstance(obj, dict) or obj.get("type") != "header":
        raise StateError(f"{where}: first line must be the trace header")
    if obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise StateError(f"{where}: format {brief(obj.get('format'))} version {brief(obj.get('version'))} "
                         f"is not {FORMAT} version {VERSION}")
    _require(obj, HEADER_KEYS, where, "header")
    _check_types(obj, HEADER_TYPES, where, "header")
    return Trace(path=path, header=obj)


def _kind(value: Any) -> str:
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return _INT
    if isinstance(value, float):
        return _NUM
    return {str: _STR, dict: _DICT, list: "list"}.get(type(value), type(value).__name__)


def _check_types(obj: Mapping[str, Any], types: Mapping[str, tuple[str, ...]], where: str, what: str) -> None:
    for key, allowed in types.items():
        if key in obj:
            kind = _kind(obj[key])
            if kind not in allowed and not (kind == _INT and _NUM in allowed):
                raise StateError(f"{where}: {what} field {key!r} must be {' or '.join(allowed)} "
                                 f"(got {brief(obj[key])})")


def _check_record(obj: Mapping[str, Any], where: str) -> None:
    """A record's fields that readers compute with: metrics are numbers or null, decision fields typed."""
    _check_types(obj, RECORD_TYPES, where, "record")
    for split in ("valid", "test"):
        metrics = obj.get(split)
        if split == "test" and metrics is None:
            continue
        if not isinstance(metrics, dict):
            raise StateError(f"{where}: record field {split!r} must be an object of metric: value (got {brief(metrics)})")
        bad = [k for k, v in metrics.items() if _kind(v) not in (_INT, _NUM, _NULL)]
        if bad:
            raise StateError(f"{where}: {split} metric {bad[0]!r} must be a number or null (got {brief(metrics[bad[0]])})")
    decision = obj["decision"]
    if not isinstance(decision, dict):
        raise StateError(f"{where}: record field 'decision' must be an object (got {brief(decision)})")
    _check_types(decision, DECISION_TYPES, where, "decision")
    if "epoch" in decision and decision["epoch"] != obj["epoch"]:
        raise StateError(f"{where}: decision epoch {decision['epoch']} is not the record's epoch {obj['epoch']}")


def _require(obj: Mapping[str, Any], keys: tuple[str, ...], where: str, what: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise StateError(f"{where}: {what} lacks {', '.join(missing)}")
