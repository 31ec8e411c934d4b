"""``bench_explain.py --stock-check``: do the cut logs read like logs stock RecBole writes?

For each config below, stock RecBole 1.2.1 trains it with ``stopping_step`` (``recbole.quick_start.run_recbole``,
``saved=True`` so it writes "Saving current" lines; under torch>=2.6 its test step then fails in torch.load, after
the log of training is complete), and ``rec-es run`` records the same config with stopping disabled and test
metrics at every epoch. The log cut from the recording (``rec_es.recbole_log.write``) must parse as the stock
log does: the same evaluations (epochs, valid_score, every valid metric), the same "Saving current" epochs, the
same train losses (4 decimals), the same ending and best epoch; and ``rec-es explain`` must give both the same
verdict. Each check is printed; the exit status is 1 if any fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
STOCK = """
import json, sys
from recbole.quick_start import run_recbole
cfg = json.loads(sys.argv[1])
run_recbole(model=cfg["model"], dataset=cfg["dataset"], config_dict=cfg, saved=True)
"""
COMMON = {"model": "GRU4Rec", "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 20,
          "loss_type": "CE", "train_neg_sample_args": None, "use_gpu": False, "show_progress": False,
          "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}, "topk": [10],
          "seed": 2020}
# (name, RecBole keys): the stopping_step and valid_metric the stock run uses are part of the keys
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("tiny-ss1-ndcg", {**COMMON, "dataset": "ml-100k-tiny", "data_path": str(REPO / "datasets"),
                       "embedding_size": 16, "hidden_size": 16, "metrics": ["Recall", "NDCG", "MRR"],
                       "valid_metric": "NDCG@10", "learning_rate": 0.01, "epochs": 30, "stopping_step": 1}),
    ("tiny-ss3-mrr", {**COMMON, "dataset": "ml-100k-tiny", "data_path": str(REPO / "datasets"),
                      "embedding_size": 16, "hidden_size": 16, "metrics": ["Recall", "NDCG", "MRR"],
                      "valid_metric": "MRR@10", "learning_rate": 0.01, "epochs": 30, "stopping_step": 3}),
    ("ml100k-ss1-mrr", {**COMMON, "dataset": "ml-100k", "embedding_size": 32, "hidden_size": 32,
                        "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "valid_metric": "MRR@10",
                        "learning_rate": 0.01, "epochs": 12, "stopping_step": 1}),
]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _stock(work: Path, cfg: dict[str, Any]) -> subprocess.Popen[str]:
    work.mkdir(parents=True, exist_ok=True)
    keys = {**cfg, "checkpoint_dir": str(work / "saved")}
    return subprocess.Popen([sys.executable, "-c", STOCK, json.dumps(keys)], cwd=work, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _record(work: Path, cfg: dict[str, Any]) -> subprocess.Popen[str]:
    work.mkdir(parents=True, exist_ok=True)
    keys = {k: v for k, v in cfg.items() if k != "stopping_step"}
    (work / "config.yaml").write_text(yaml.safe_dump({**keys, "checkpoint_dir": str(work / "saved")}))
    return subprocess.Popen([sys.executable, "-m", "rec_es", "run", "--config", "config.yaml",
                             str(REPO / "properties" / "policies" / "disabled.yaml"), "--record-test",
                             "--output-dir", str(work / "run"), "--no-progress", "--quiet"],
                            cwd=work, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _compare(name: str, cfg: dict[str, Any], stock_log: Path, run_dir: Path, out: Path) -> list[tuple[str, bool, str]]:
    from rec_es.explain import explain
    from rec_es.recbole_log import parse_recbole_log
    from rec_es.recbole_log.write import stock_log_name, stock_log_text
    from rec_es.rundir.trace import read_trace

    trace = read_trace(run_dir)
    cut = out / name / stock_log_name(trace)
    cut.parent.mkdir(parents=True, exist_ok=True)
    cut.write_text(stock_log_text(trace, cfg["valid_metric"], cfg["stopping_step"]), encoding="utf-8")
    real, ours = parse_recbole_log(stock_log), parse_recbole_log(cut)
    checks = [
        ("evaluation epochs", [e.epoch for e in real.evaluations], [e.epoch for e in ours.evaluations]),
        ("valid_score", real.scores(), ours.scores()),
        ("valid result", [e.valid for e in real.evaluations], [e.valid for e in ours.evaluations]),
        ("Saving current", [e.epoch for e in real.evaluations if e.saved], [e.epoch for e in ours.evaluations if e.saved]),
        ("train losses", {k: round(v, 4) for k, v in real.train_losses.items()},
         {k: round(v, 4) for k, v in ours.train_losses.items()}),
        ("ending, best epoch", (real.ending, real.finished_best_epoch), (ours.ending, ours.finished_best_epoch)),
        ("settings", (real.epochs, real.eval_step, real.stopping_step, real.valid_metric),
         (ours.epochs, ours.eval_step, ours.stopping_step, ours.valid_metric)),
    ]
    a, b = explain(stock_log)["premature"], explain(cut)["premature"]
    checks.append(("explain verdict", a["verdict"], b["verdict"]))
    return [(f"{name}: {what}", x == y, f"stock {x!r}" + ("" if x == y else f" != cut {y!r}")) for what, x, y in checks]


def stock_check(out: Path) -> int:
    """Train every config stock and recorded, compare, print; 0 when every check passes."""
    out = Path(out) / "stock_check"
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_explain_stock_") as tmp:
        for name, cfg in CONFIGS:
            work = Path(tmp) / name
            print(f"{name}: training stock RecBole and a rec_es recording ...", file=sys.stderr, flush=True)
            procs = {"stock": _stock(work / "stock", cfg), "record": _record(work / "record", cfg)}
            errors = {k: p.communicate(timeout=3600)[1] for k, p in procs.items()}
            if procs["record"].returncode != 0:
                results.append((f"{name}: rec_es recording", False, errors["record"][-2000:]))
                continue
            logs = sorted((work / "stock" / "log").rglob("*.log"))
            if len(logs) != 1:
                results.append((f"{name}: stock log", False, errors["stock"][-2000:]))
                continue
            (out / name).mkdir(parents=True, exist_ok=True)
            kept = out / name / f"stock-{logs[0].name}"
            kept.write_text(logs[0].read_text(encoding="utf-8"), encoding="utf-8")
            results += _compare(name, cfg, kept, work / "record" / "run", out)
    lines = [f"{'ok  ' if ok else 'FAIL'} {what}: {detail}" for what, ok, detail in results]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "checks.txt").write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(ok for _, ok, _ in results) else 1
