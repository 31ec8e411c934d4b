#!/usr/bin/env python
"""Record long runs with stopping disabled, test metrics and per-user scores at every epoch (issue 12's evidence).

    OMP_NUM_THREADS=1 python scripts/record_runs.py [--regimes NAME ...] [--seeds 2020 2021 2022]
                      [--output docs/results/long_runs] [--epochs N] [--target-ce] [--ranked K]
                      [--weights DIR] [--list]

Each regime x seed trains the full epoch budget (``properties/policies/disabled.yaml``: no rule stops) with
``--record-test`` and per-user ndcg@10, recall@10 and mrr@10, into ``OUTPUT/<regime>/seed<N>/``, a rec_es run
directory. When a run has finished, its checkpoints (best.pth, last.pth) are deleted and its per-user sidecars
gzipped (``read_per_user`` reads ``.bin.gz``); what stays is what replay needs: trace.jsonl, summary.json,
config.yaml, per_user/. Runs go one after another, in one thread; a finished run is skipped, an interrupted one
is resumed from its last.pth, so the same command continues after a kill. ``--epochs`` overrides every budget
(to time an epoch: ``--epochs 1 --output /tmp/x``). ``--target-ce`` also records ``target_ce`` (the cross-entropy
at the target item, ``rec_es.training.target_ce``) per user and averaged in the trace, valid and test.
``--ranked K`` keeps each validation user's top-K items (``RUN/ranked/``, gzipped when the run ends) and their
signals in the trace (``rec-es run --ranked``). ``--weights DIR`` also saves the model's weights after every
evaluation as ``DIR/<regime>/seed<N>/epoch<E>.pth`` (a plain dict of tensors: ``torch.load(weights_only=True)``
reads it), the input of ``scripts/bench_restore.py``.
"""
from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]

BASE = [REPO / "properties" / "gru4rec_ml100k.yaml", REPO / "properties" / "policies" / "disabled.yaml"]
# under leave-one-out hit@10 = recall@10 and precision@10 = recall@10 / 10: these three hold every top-k metric
PER_USER_METRICS = ("ndcg@10", "recall@10", "mrr@10")
SASREC_SMALL = {"model": "SASRec", "hidden_size": 32, "inner_size": 128, "n_layers": 2, "n_heads": 2}
# name -> RecBole keys over properties/gru4rec_ml100k.yaml (GRU4Rec 32/32, history 20, CE loss, full ranking)
REGIMES: dict[str, dict[str, Any]] = {
    "gru4rec-lr0.001": {"learning_rate": 0.001, "epochs": 200},
    "gru4rec-lr0.005": {"learning_rate": 0.005, "epochs": 100},
    "sasrec-lr0.001": {**SASREC_SMALL, "learning_rate": 0.001, "epochs": 100},
    # STAMP (attention/MLP, no recurrence): a second model family at about a quarter of GRU4Rec's epoch cost
    "stamp-lr0.001": {"model": "STAMP", "embedding_size": 32, "learning_rate": 0.001, "epochs": 100},
    # recorded after the explain verdict's thresholds and the recommended policy were fixed: a held-out regime
    # (a second learning rate for the second model, where training fits faster and overfits sooner)
    "stamp-lr0.005": {"model": "STAMP", "embedding_size": 32, "learning_rate": 0.005, "epochs": 100},
    # recorded after every choice of sessions 1-7 was committed (the recommended policy, the verdict's
    # thresholds): a fourth model (GRU with attention) at a learning rate between the two recorded ones
    "narm-lr0.002": {"model": "NARM", "embedding_size": 32, "hidden_size": 32, "learning_rate": 0.002,
                     "epochs": 100},
    # recorded after the verdict's rule 5 was revisited on the NARM and SASRec runs: held out for that change.
    # BPR loss (one uniform negative per positive) instead of CE over all items: a loss on another scale, which
    # the verdict's loss headroom reads as a share of itself
    "gru4rec-bpr-lr0.005": {"loss_type": "BPR", "train_neg_sample_args": {"distribution": "uniform",
                            "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0},
                            "learning_rate": 0.005, "epochs": 100},
    # registered in session 8 before it was recorded, held out for everything shipped then. It tests the one
    # thing that split rule 5's stops on seven regimes, the learning rate (0.005: mostly fine; <= 0.002: always
    # premature), on a third model at 0.005: if NARM at 0.005 stops fine, "a fast learner" is worth measuring
    # from the log; if not, the split was GRU4Rec's and STAMP's, not the learning rate's
    "narm-lr0.005": {"model": "NARM", "embedding_size": 32, "hidden_size": 32, "learning_rate": 0.005,
                     "epochs": 100},
    # registered in session 8 before it was recorded, and recorded into a directory the benchmarks do not read
    # until the verdict's thresholds were re-chosen on the eight regimes above: a fifth model, convolutional
    # (Caser, Tang & Wang 2018; history L = 5 as in the paper: at 20 it takes 40 s per epoch here), held out for
    # that choice and for the recommended policy
    "caser-lr0.001": {"model": "Caser", "embedding_size": 32, "n_h": 8, "n_v": 4, "dropout_prob": 0.4,
                      "reg_weight": 1e-4, "MAX_ITEM_LIST_LENGTH": 5, "learning_rate": 0.001, "epochs": 100},
    # registered in session 9 before it was recorded, and recorded outside docs/results until the verdict's
    # slow-loss rule is fixed: on the nine regimes above, stops with the training loss still falling, the monitor
    # flat or only leaning up, and the loss's fall over the trend window at most about 2.4 % were premature every
    # time (NARM, SASRec, GRU4Rec at 0.001: 1-2.4 %); faster falls were a coin flip (STAMP at 0.005, GRU4Rec at
    # 0.005, Caser: 2.4-4 %). GRU4Rec at 0.003 sits between GRU4Rec's two recorded learning rates, where the
    # threshold is closest to cases of both kinds: the hardest test of it that costs 25 minutes
    "gru4rec-lr0.003": {"learning_rate": 0.003, "epochs": 100},
    # registered in session 10 before they were recorded, and recorded outside docs/results until the evidence
    # bound (scripts/bench_explain_bound.py) was committed: seven regimes held out for everything shipped at
    # 946f5f4 (the verdict's thresholds, the recommended policy, the still-learning bounds). Two new models (NPE,
    # Ke et al. 2018, an embedding model with no sequence encoder; CORE, Hou et al. 2022, with its mean-pooling
    # encoder) at two learning rates, and third learning rates or losses for three recorded ones. Predictions,
    # from the ten regimes' leave-one-regime-out record (208 right / 32 wrong / 73 cannot tell of 313): the
    # verdict about 65 % right, 20-25 % cannot tell, 85-90 % of its calls right on them; and the bound (the
    # largest share of stops a learned classifier of the log's evidence can call with >= 90 % of the calls
    # right, leave one regime out, band chosen after seeing the predictions), 0.78 on ten regimes and rising
    # from 0.73 to 0.78 as the regimes fitted on go from seven to nine, stays under the goal's 0.90 on seventeen
    # (NextItNet was timed at 33 s per epoch here and left out)
    "npe-lr0.001": {"model": "NPE", "embedding_size": 32, "learning_rate": 0.001, "epochs": 100},
    "npe-lr0.005": {"model": "NPE", "embedding_size": 32, "learning_rate": 0.005, "epochs": 100},
    "core-lr0.001": {"model": "CORE", "embedding_size": 32, "dnn_type": "ave", "learning_rate": 0.001,
                     "epochs": 100},
    "core-lr0.005": {"model": "CORE", "embedding_size": 32, "dnn_type": "ave", "learning_rate": 0.005,
                     "epochs": 100},
    "stamp-lr0.003": {"model": "STAMP", "embedding_size": 32, "learning_rate": 0.003, "epochs": 100},
    "caser-lr0.003": {"model": "Caser", "embedding_size": 32, "n_h": 8, "n_v": 4, "dropout_prob": 0.4,
                      "reg_weight": 1e-4, "MAX_ITEM_LIST_LENGTH": 5, "learning_rate": 0.003, "epochs": 100},
    "gru4rec-bpr-lr0.001": {"loss_type": "BPR", "train_neg_sample_args": {"distribution": "uniform",
                            "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0},
                            "learning_rate": 0.001, "epochs": 100},
}
SEEDS = (2020, 2021, 2022)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="record_runs.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES), metavar="NAME",
                   help=f"regimes to record, in this order (default: all: {', '.join(REGIMES)})")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="seeds (default 2020 2021 2022)")
    p.add_argument("--output", type=Path, default=REPO / "docs" / "results" / "long_runs", help="root directory")
    p.add_argument("--epochs", type=int, default=None, help="override every regime's epoch budget")
    p.add_argument("--target-ce", action="store_true",
                   help="also record target_ce (cross-entropy at the target item) per user and in the trace")
    p.add_argument("--ranked", type=int, default=0, metavar="K", help="keep each validation user's top K items")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="save the weights after every evaluation under DIR/<regime>/seed<N>/")
    p.add_argument("--list", action="store_true", help="print each run's state and exit")
    return p


def run_config(regime: str, seed: int, epochs: int | None) -> Any:
    from rec_es.config.properties import load_config

    keys = {**REGIMES[regime], "seed": seed}
    if epochs is not None:
        keys["epochs"] = epochs
    return load_config([str(p) for p in BASE], keys)


def state(run_dir: Path) -> str:
    """'done' (finished and archived), 'partial' (resumable), 'new'."""
    if (run_dir / "summary.json").is_file() and not (run_dir / "last.pth").exists():
        return "done"
    if (run_dir / "last.pth").is_file() and (run_dir / "trace.jsonl").is_file():
        return "partial"
    return "new"


def archive(run_dir: Path) -> None:
    """Drop the checkpoints and gzip the per-user sidecars of a finished run (replay needs neither .pth)."""
    for name in ("best.pth", "last.pth"):
        (run_dir / name).unlink(missing_ok=True)
    for path in sorted((run_dir / "per_user").glob("*.bin")) + sorted((run_dir / "ranked").glob("*.bin")):
        packed = path.with_name(path.name + ".gz")
        tmp = packed.with_name(f".{packed.name}.tmp")
        tmp.write_bytes(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))
        os.replace(tmp, packed)
        path.unlink()


def save_weights_after_each_evaluation(root: Path) -> None:
    """Make every ``EarlyStoppingTrainer`` of this process save its weights after each trace record."""
    import torch

    from rec_es.training.trainer import EarlyStoppingTrainer

    record_eval = EarlyStoppingTrainer._record

    def _record(self: Any, epoch: int, *args: Any, **kwargs: Any) -> None:
        record_eval(self, epoch, *args, **kwargs)
        if self.run_dir is not None:
            out = root / self.run_dir.parent.name / self.run_dir.name
            out.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            torch.save(state, out / f"epoch{epoch}.pth")

    EarlyStoppingTrainer._record = _record


def record(regime: str, seed: int, output: Path, epochs: int | None, target_ce: bool = False,
           ranked: int = 0) -> None:
    """Train (or resume) one regime x seed into ``output/<regime>/seed<N>`` and archive it."""
    from rec_es.rundir.per_user import read_per_user
    from rec_es.training.run import prepare_run_dir, train

    run_dir = (output / regime / f"seed{seed}").resolve()
    now = state(run_dir)
    if now == "done":
        print(f"{regime} seed {seed}: already recorded in {run_dir}", flush=True)
        return
    cfg = run_config(regime, seed, epochs)
    if now == "new":
        prepare_run_dir(run_dir, cfg.recbole)
    start = time.time()
    print(f"{time.strftime('%H:%M:%S')} {regime} seed {seed}: {'resuming' if now == 'partial' else 'recording'} "
          f"{cfg.recbole['epochs']} epochs into {run_dir}", flush=True)
    summary = train(cfg, run_dir, resume=now == "partial", record_test=True, verbose=False,
                    per_user_metrics=PER_USER_METRICS + (("target_ce",) if target_ce else ()), ranked_k=ranked)
    archive(run_dir)
    for split in ("valid", "test"):
        read_per_user(run_dir, split)  # the archived sidecars read back and match the trace
    print(f"{time.strftime('%H:%M:%S')} {regime} seed {seed}: {summary['epochs_trained']} epochs in "
          f"{time.time() - start:.0f} s, best epoch {summary['best_epoch']}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runs = [(r, s) for r in args.regimes for s in args.seeds]
    if args.list:
        for r, s in runs:
            print(f"{r} seed {s}: {state(args.output / r / f'seed{s}')}")
        return 0
    import torch

    torch.set_num_threads(1)
    output = args.output.resolve()
    if args.weights is not None:
        save_weights_after_each_evaluation(args.weights.resolve())
    with tempfile.TemporaryDirectory(prefix="rec_es_record_") as scratch:
        os.chdir(scratch)  # RecBole writes log/ and log_tensorboard/ into the working directory
        for r, s in runs:
            record(r, s, output, args.epochs, args.target_ce, args.ranked)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
