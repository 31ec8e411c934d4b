#!/usr/bin/env python
"""Cost of keeping the best weights: rec_es's snapshot vs RecBole's checkpoint on every improvement.

    python scripts/bench_snapshot.py [--config properties/gru4rec_ml100k.yaml ...] [--set key=value ...]
                                     [--sizes 0 256] [--repeat 20] [--improvements N]

For each model size (0 = the config's own embedding/hidden size; N = embedding_size and hidden_size N)
it builds the model on the config's data, takes one real optimizer step (so Adam's state exists, as it
does after the first epoch), then times, per improvement, best of ``--repeat``:

* rec_es in memory: ``checkpoint.cpu_state_dict`` (a detached CPU copy; what is restored at the end);
* rec_es on disk: ``best.pth`` written atomically (weights only, temp file + fsync + rename), done when a
  run directory is saved;
* RecBole: ``Trainer._save_checkpoint`` — ``torch.save`` of the config, weights and optimizer state.

Bytes are the file sizes (and tensor bytes held in memory). Per run = per improvement x the number of
improvements (``--improvements``, default: counted in the newest full trace under .rec_es_cache/traces,
else 30).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from benchlib import DEFAULT_CONFIG, Setup, load, median, scratch_cwd, threads_line


def improvements_in_cache(root: Path = Path(".rec_es_cache/traces")) -> tuple[int, int, str] | None:
    """(new-best evaluations, epochs, description) of the newest finished recording in the compare cache."""
    from rec_es.rundir.trace import read_trace

    traces = sorted(root.glob("*/trace.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True) if root.is_dir() else []
    for path in traces:
        if path.parent.name.startswith("."):  # a run still being recorded
            continue
        tr = read_trace(path)
        n = sum(1 for r in tr.records if r["decision"].get("new_best"))
        if n and tr.complete and tr.header.get("record_test"):  # a full-budget recording, not a live run
            return n, len(tr.records), f"{path.parent.name} ({tr.header.get('model')}, {len(tr.records)} epochs)"
    return None


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, float]:
    """(best, median) seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), median(times)


def one_step(setup: Setup, model: Any, optimizer: Any) -> None:
    """One real training step on the first batch, so the optimizer holds its per-parameter state."""
    model.train()
    batch = next(iter(setup.train_data)).to(setup.config["device"])
    optimizer.zero_grad()
    loss = model.calculate_loss(batch)
    loss.backward()
    optimizer.step()


def last_payload(model: Any, optimizer: Any) -> dict[str, Any]:
    """What EarlyStoppingTrainer writes to last.pth after every epoch when saving (resume checkpoint)."""
    from rec_es.rundir import checkpoint

    return {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "kind": "last", "epoch": 1,
            "model": checkpoint.cpu_state_dict(model), "optimizer": optimizer.state_dict(),
            "rng": checkpoint.capture_rng_state(), "best": {"epoch": 1, "state_dict": checkpoint.cpu_state_dict(model)}}


def measure(setup: Setup, size: int, repeat: int, tmp: Path) -> dict[str, Any]:
    from recbole.trainer import Trainer

    from rec_es.rundir import checkpoint

    if size:
        setup.config.final_config_dict.update(embedding_size=size, hidden_size=size)
    model = setup.fresh_model()
    stock = Trainer(setup.config, model)
    one_step(setup, model, stock.optimizer)
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(v.numel() * v.element_size() for v in model.state_dict().values())

    snap_best, snap_med = best_of(repeat, lambda: checkpoint.cpu_state_dict(model))
    best_file = tmp / f"best-{size}.pth"
    disk_best, disk_med = best_of(repeat, lambda: checkpoint.atomic_save(
        checkpoint.best_payload(model, 1, checkpoint.cpu_state_dict(model)), best_file))
    stock.saved_model_file = str(tmp / f"recbole-{size}.pth")
    rb_best, rb_med = best_of(repeat, lambda: stock._save_checkpoint(1, verbose=False))
    last_file = tmp / f"last-{size}.pth"
    last_best, last_med = best_of(repeat, lambda: checkpoint.atomic_save(last_payload(model, stock.optimizer), last_file))
    return {
        "last": (last_best, last_med), "last_bytes": last_file.stat().st_size,
        "size": size or setup.config["embedding_size"], "hidden": setup.config["hidden_size"], "params": params,
        "weight_bytes": weight_bytes, "snap": (snap_best, snap_med), "disk": (disk_best, disk_med),
        "disk_bytes": best_file.stat().st_size, "recbole": (rb_best, rb_med),
        "recbole_bytes": Path(stock.saved_model_file).stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", nargs="+", default=[DEFAULT_CONFIG], metavar="FILE")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--sizes", nargs="+", type=int, default=[0, 256],
                   help="embedding/hidden sizes; 0 = the config's own (default 0 256)")
    p.add_argument("--repeat", type=int, default=20, help="timed repetitions per measure (default 20)")
    p.add_argument("--improvements", type=int, default=None, help="improvements per run (default: from the cache)")
    p.add_argument("--epochs", type=int, default=100, help="epochs per run when no trace is found (default 100)")
    args = p.parse_args(argv)
    found = improvements_in_cache()
    if args.improvements is not None:
        n_imp, n_epochs, where = args.improvements, args.epochs, "--improvements"
    elif found is not None:
        n_imp, n_epochs, where = found[0], found[1], f"new-best evaluations in recorded trace {found[2]}"
    else:
        n_imp, n_epochs, where = 30, args.epochs, "assumed (no finished trace in .rec_es_cache/traces)"
    setup = load(args.config, args.sets)
    print(f"snapshot benchmark: {setup.config['model']} on {setup.config['dataset']}, best of {args.repeat}; "
          f"{threads_line()}")
    print(f"per run: {n_imp} improvements, {n_epochs} epochs ({where})")
    rows = []
    with scratch_cwd(setup) as tmp:
        for size in args.sizes:
            rows.append(measure(setup, size, args.repeat, tmp))
    mib = 2 ** 20
    for r in rows:
        print(f"\n{setup.config['model']} embedding {r['size']}, hidden {r['hidden']}: {r['params']:,} parameters, "
              f"weights {r['weight_bytes'] / mib:.2f} MiB")
        print(f"  {'way of keeping the best':<44}{'ms/improvement':>15}{'(median)':>10}{'bytes written':>15}{'per run':>12}")
        for label, key, nbytes in (("rec_es in-memory CPU copy (always)", "snap", 0),
                                   ("rec_es best.pth atomic + fsync (saving on)", "disk", r["disk_bytes"]),
                                   ("RecBole torch.save full checkpoint", "recbole", r["recbole_bytes"])):
            best, med = r[key]
            print(f"  {label:<44}{best * 1000:>15.2f}{med * 1000:>10.2f}{nbytes / mib:>13.2f} M"
                  f"{best * n_imp:>11.2f}s")
        rb = r["recbole"][0]
        last_best, _ = r["last"]
        print(f"  (rec_es last.pth resume checkpoint, every epoch when saving: {last_best * 1000:.2f} ms and "
              f"{r['last_bytes'] / mib:.2f} MiB per epoch, {last_best * n_epochs:.2f} s per run)")
        print(f"  ratio RecBole / rec_es in-memory: {rb / r['snap'][0]:.1f}x time; RecBole / rec_es best.pth: "
              f"{rb / r['disk'][0]:.2f}x time, {r['recbole_bytes'] / r['disk_bytes']:.2f}x bytes")
        print(f"  memory held by the in-memory snapshot: {r['weight_bytes'] / mib:.2f} MiB (one copy of the weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
