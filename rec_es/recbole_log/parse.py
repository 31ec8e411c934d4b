"""The stock RecBole log parser: records, config dump, epoch blocks, then checks that warn about gaps."""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

from rec_es.rundir.textio import TextInputError, read_text
from rec_es.recbole_log.model import RECBOLE_DEFAULTS, LogEvaluation, LogFormatError, RecBoleLog

# RecBole's own pattern (recbole.utils.logger.RemoveColorFilter).
_ANSI = re.compile(r"\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")
# File format "%a %d %b %Y %H:%M:%S" (Sun 22 Nov 2026 03:18:26) or console "%d %b %H:%M" (22 Nov 03:18).
_RECORD = re.compile(
    r"^(?:\w+ )?\d{1,2} \w+(?: \d{4})? \d{1,2}:\d{2}(?::\d{2})?\s+"
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)  (?P<msg>.*)$"
)
_FLOAT = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf|-inf)"
_TRAIN = re.compile(r"^epoch (?P<epoch>\d+) training \[time: (?P<time>" + _FLOAT + r")s, (?P<losses>.*)\]\s*$")
_TRAIN_LOSS = re.compile(r"train[ _]?loss\d* ?: ?(?P<loss>" + _FLOAT + ")")
_EVAL = re.compile(
    r"^epoch (?P<epoch>\d+) evaluating \[time: (?P<time>" + _FLOAT + r")s, valid_score: (?P<score>" + _FLOAT + r")\]\s*$"
)
_VALID_RESULT = re.compile(r"^valid result:\s*$")
_METRIC_PAIR = re.compile(r"(?P<key>[^\s:]+) : (?P<value>" + _FLOAT + r")(?=\s|$)")
_FINISHED = re.compile(r"^Finished training, best eval result in epoch (?P<epoch>-?\d+)\s*$")
_SAVING = re.compile(r"^Saving current(?: best)?\s*: (?P<path>.*)$")
_BEST_VALID = re.compile(r"^best valid\s*: (?P<value>.*)$")
_TEST_RESULT = re.compile(r"^test result\s*: (?P<value>.*)$")
_NUMPY2_SCALAR = re.compile(r"\bnp\.(?:float|int)\d*\((?P<value>[^()]*)\)")
_CONFIG_HEADER = re.compile(r"^(?P<category>General|Training|Evaluation|Dataset|Other) Hyper Parameters:\s*$")
_CONFIG_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w\-]*) = ?(?P<value>.*)$")
_MODEL_RECORD = re.compile(r"^(?P<model>[A-Za-z_]\w*)\($")
_FILENAME = re.compile(r"^(?P<model>[A-Za-z_]\w*)-(?P<dataset>.+)-[A-Z][a-z]{2}-\d{2}-\d{4}_\d{2}-\d{2}-\d{2}(?:-[0-9a-f]{6})?\.log$")


def strip_ansi(text: str) -> str:
    """Remove ANSI colour codes, as RecBole's own file handler does."""
    return _ANSI.sub("", text)


def looks_like_recbole_log(path: str | Path) -> bool:
    """True if the first 64 kB of ``path`` hold a RecBole log record or config header."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = strip_ansi(handle.read(65536))
    except OSError:
        return False
    lines = head.splitlines()
    return any(_CONFIG_HEADER.match(line) for line in lines) or any(
        _TRAIN.match(_message(line) or "") for line in lines
    )


def parse_recbole_log(path: str | Path) -> RecBoleLog:
    """Parse a stock RecBole log file; raises LogFormatError if it is not one."""
    path = Path(path)
    if not path.exists():
        raise LogFormatError(f"{path}: cannot read the file (no such file)")
    try:  # lenient: a log may hold a terminal's bytes that are not UTF-8; they become U+FFFD
        text = read_text(path, "a RecBole log file", lenient=True)
    except TextInputError as exc:
        raise LogFormatError(str(exc)) from None
    return parse_recbole_log_text(text, source=str(path))


def parse_recbole_log_text(text: str, source: str = "<text>") -> RecBoleLog:
    """Parse the text of a stock RecBole log; ``source`` names it in warnings and errors."""
    coloured = bool(_ANSI.search(text))
    records = _split_records(strip_ansi(text).splitlines())
    log = RecBoleLog(path=source, config={}, evaluations=[], train_losses={}, coloured=coloured)
    _Reader(log).read(records)
    _name_from_filename(log)
    _check(log)
    return log


def _message(line: str) -> str | None:
    match = _RECORD.match(line)
    return match.group("msg") if match else None


def _split_records(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Group lines into log records: (1-based line number, [message, continuation lines...])."""
    records: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines, start=1):
        message = _message(line)
        if message is not None:
            records.append((number, [message]))
        elif records:
            records[-1][1].append(line)
        # lines before the first record (e.g. Python warnings on a captured console) are ignored
    return records


def _literal(text: str) -> Any:
    """A config value as RecBole printed it: Python literal if it is one, else the string."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _result_dict(text: str) -> dict[str, float] | None:
    """``OrderedDict([('recall@10', 0.08)])``, ``{...}``, numpy 2's ``np.float64(0.08)`` → dict; None if unreadable."""
    text = _NUMPY2_SCALAR.sub(r"\g<value>", text.strip())
    inner = re.fullmatch(r"OrderedDict\((?P<items>.*)\)", text, flags=re.S)
    value = _literal(inner.group("items") if inner else text)
    try:
        pairs = dict(value)
        return {str(k).lower(): float(v) for k, v in pairs.items()}
    except (TypeError, ValueError):
        return None


class _Reader:
    """Walks the records once, filling a RecBoleLog."""

    def __init__(self, log: RecBoleLog) -> None:
        self.log = log
        self.pending_eval: dict[str, Any] | None = None
        self.train_seconds: dict[int, float] = {}

    def read(self, records: list[tuple[int, list[str]]]) -> None:
        for number, lines in records:
            self._record(number, lines)
        self._flush_eval()

    def _warn(self, number: int, text: str) -> None:
        self.log.warnings.append(f"{self.log.path}:{number}: {text}")

    def _record(self, number: int, lines: list[str]) -> None:
        message = lines[0]
        body = lines[1:]
        if any(_CONFIG_HEADER.match(line) for line in body):
            self._config(number, body)
            return
        for pattern, handler in (
            (_TRAIN, self._train),
            (_EVAL, self._eval),
            (_VALID_RESULT, self._valid_result),
            (_SAVING, self._saving),
            (_FINISHED, self._finished),
            (_BEST_VALID, self._best_valid),
            (_TEST_RESULT, self._test_result),
        ):
            match = pattern.match(message)
            if match:
                handler(number, match, body)
                return
        if body and _MODEL_RECORD.match(message) and any(l.startswith("Trainable parameters") for l in body):
            self.log.model = self.log.model or _MODEL_RECORD.match(message).group("model")
            return
        if body and body[0].startswith("The number of users") and message.strip():
            self.log.dataset = self.log.dataset or message.strip()
            return
        if re.match(r"^epoch \d+ (training|evaluating)", message):
            self._warn(number, f"unreadable line {message!r}: expected 'epoch N training [time: Xs, "
                       "train loss: L]' or 'epoch N evaluating [time: Xs, valid_score: S]'")

    def _config(self, number: int, body: list[str]) -> None:
        if self.log.has_config:
            self._warn(number, "a second config dump was found (two runs in one file?); using the first")
            return
        self.log.has_config = True
        in_other = False
        for offset, line in enumerate(body, start=1):
            header = _CONFIG_HEADER.match(line)
            if header:
                in_other = header.group("category") == "Other"
                continue
            if not line.strip():
                if in_other:
                    break  # the dump ends with a blank line after "Other Hyper Parameters"
                continue
            match = _CONFIG_LINE.match(line)
            if match:
                self.log.config[match.group("key")] = _literal(match.group("value"))
            else:
                self._warn(number + offset, f"config line not of the form 'key = value': {line!r}")

    def _train(self, number: int, match: re.Match[str], body: list[str]) -> None:
        self._flush_eval()
        epoch = int(match.group("epoch"))
        losses = [float(m.group("loss")) for m in _TRAIN_LOSS.finditer(match.group("losses"))]
        if not losses:
            self._warn(number, f"epoch {epoch}: no train loss in {match.group('losses')!r}")
            return
        # RecBole sums a tuple of losses (train_loss1, train_loss2, ...) into train_loss_dict.
        self.log.train_losses[epoch] = math.fsum(losses)
        self.train_seconds[epoch] = float(match.group("time"))

    def _eval(self, number: int, match: re.Match[str], body: list[str]) -> None:
        self._flush_eval()
        self.pending_eval = {
            "epoch": int(match.group("epoch")),
            "valid_score": float(match.group("score")),
            "eval_seconds": float(match.group("time")),
            "valid": None,
            "saved": False,
            "line": number,
        }

    def _valid_result(self, number: int, match: re.Match[str], body: list[str]) -> None:
        if self.pending_eval is None or self.pending_eval["valid"] is not None:
            self._warn(number, "'valid result' block without a preceding 'epoch N evaluating' line; ignored")
            return
        text = " ".join(line.strip() for line in body)
        pairs = {m.group("key").lower(): float(m.group("value")) for m in _METRIC_PAIR.finditer(text)}
        if not pairs:
            self._warn(number, f"epoch {self.pending_eval['epoch']}: 'valid result' holds no "
                       f"'metric : value' pairs (got {text!r})")
        self.pending_eval["valid"] = pairs

    def _saving(self, number: int, match: re.Match[str], body: list[str]) -> None:
        self.log.checkpoint = match.group("path").strip() or None
        if self.pending_eval is not None:
            self.pending_eval["saved"] = True

    def _finished(self, number: int, match: re.Match[str], body: list[str]) -> None:
        self._flush_eval()
        self.log.finished_best_epoch = int(match.group("epoch"))

    def _best_valid(self, number: int, match: re.Match[str], body: list[str]) -> None:
        self._flush_eval()
        self.log.best_valid = _result_dict(match.group("value"))
        if self.log.best_valid is None:
            self._warn(number, f"unreadable 'best valid' value {match.group('value')!r}")

    def _test_result(self, number: int, match: re.Match[str], body: list[str]) -> None:
        self._flush_eval()
        self.log.test_result = _result_dict(match.group("value"))
        if self.log.test_result is None:
            self._warn(number, f"unreadable 'test result' value {match.group('value')!r}")

    def _flush_eval(self) -> None:
        pending, self.pending_eval = self.pending_eval, None
        if pending is None:
            return
        epoch = pending["epoch"]
        if pending["valid"] is None:
            self._warn(pending["line"], f"epoch {epoch}: 'evaluating' line without a 'valid result' "
                       "block (log cut off?); using valid_score only")
        self.log.evaluations.append(
            LogEvaluation(
                epoch=epoch,
                valid_score=pending["valid_score"],
                valid=pending["valid"] or {},
                train_loss=self.log.train_losses.get(epoch),
                train_seconds=self.train_seconds.get(epoch),
                eval_seconds=pending["eval_seconds"],
                saved=pending["saved"],
                line=pending["line"],
            )
        )


def _name_from_filename(log: RecBoleLog) -> None:
    """Fill model/dataset from ``<Model>-<dataset>-<Mon-DD-YYYY_HH-MM-SS>-<md5>.log`` if the body lacks them."""
    match = _FILENAME.match(Path(log.path).name)
    if match:
        log.model = log.model or match.group("model")
        log.dataset = log.dataset or match.group("dataset")


def _check(log: RecBoleLog) -> None:
    """Raise if nothing usable was found; add warnings for gaps and inconsistencies."""
    if not log.has_config and not log.train_losses and not log.evaluations:
        raise LogFormatError(
            f"{log.path}: not a stock RecBole log: expected a config dump ('General Hyper Parameters:' "
            "followed by 'key = value' lines) and lines like 'epoch 0 training [time: 0.67s, train loss: "
            "40.77]' / 'epoch 0 evaluating [time: 0.00s, valid_score: 0.0133]'; found none"
        )
    if not log.has_config:
        _infer_valid_metric(log)
        assumed = {k: v for k, v in RECBOLE_DEFAULTS.items() if k not in log.inferred}
        log.warnings.append(
            f"{log.path}: no config dump found; assuming RecBole defaults "
            + ", ".join(f"{k}={v}" for k, v in assumed.items())
        )
    if not log.evaluations:
        log.warnings.append(f"{log.path}: no 'epoch N evaluating' lines: the run never evaluated")
    _check_epochs(log)
    _check_metric(log)
    if log.ending == "incomplete":
        last = log.last_trained_epoch
        log.warnings.append(
            f"{log.path}: the log ends after epoch {last} of {log.epochs} (epochs {0}-{log.epochs - 1}) "
            "without 'Finished training': the run crashed, was interrupted or is still running"
        )
    elif log.test_result is None and log.evaluations:
        log.warnings.append(
            f"{log.path}: training ended but there is no 'test result' line: the test step did not run or "
            "crashed (under torch>=2.6 RecBole's evaluate(load_best_model=True) fails in torch.load)"
        )


def _infer_valid_metric(log: RecBoleLog) -> None:
    """Without a config dump: the valid_metric is the one metric equal to valid_score everywhere."""
    evaluated = [e for e in log.evaluations if e.valid]
    if not evaluated:
        return
    keys = set.intersection(*(set(e.valid) for e in evaluated))
    matching = sorted(k for k in keys if all(math.isclose(e.valid[k], e.valid_score, abs_tol=5e-7) for e in evaluated))
    if len(matching) == 1:
        log.inferred["valid_metric"] = matching[0]
        log.warnings.append(f"{log.path}: valid_metric inferred as {matching[0]!r} (the only metric equal "
                            "to valid_score at every evaluation)")


def _check_epochs(log: RecBoleLog) -> None:
    epochs = [e.epoch for e in log.evaluations]
    if epochs != sorted(set(epochs)):
        log.warnings.append(f"{log.path}: evaluation epochs are not increasing ({epochs}); "
                            "several runs in one file?")
    step = log.eval_step
    off_grid = [e for e in epochs if (e + 1) % step != 0]
    if off_grid:
        log.warnings.append(f"{log.path}: evaluations at epochs {off_grid} do not fit eval_step={step} "
                            "(RecBole evaluates after epochs where (epoch + 1) % eval_step == 0)")


def _check_metric(log: RecBoleLog) -> None:
    metric = log.valid_metric
    mismatched = [
        e.epoch for e in log.evaluations
        if metric in e.valid and not math.isclose(e.valid[metric], e.valid_score, rel_tol=0, abs_tol=5e-7)
    ]
    missing = [e.epoch for e in log.evaluations if e.valid and metric not in e.valid]
    if missing:
        log.warnings.append(f"{log.path}: valid_metric {metric!r} is not in the 'valid result' of epochs "
                            f"{missing}; using valid_score")
    if mismatched:
        log.warnings.append(f"{log.path}: valid_score differs from {metric} in epochs {mismatched}; "
                            "using valid_score (what RecBole's early stopping used)")
