"""What the ranks of tests/integration/test_distributed.py run without RecBole data (a module of its own, so a
spawned rank imports torch and rec_es.training.distributed only, not the test module)."""
from __future__ import annotations

import atexit
import json
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist

from rec_es.training import distributed
from rec_es.training.distributed import LaunchSpec


class Sampler:
    """A DistributedSampler's shape for 5 indices on 2 ranks: 3 each, position 5 is index 0 again (padding)."""

    dataset = list(range(5))
    num_samples = 3


def primitives_then_die(local_rank: int, spec: LaunchSpec, out: str) -> None:
    """Each collective with a different input per rank, each rank's result written to ``out``; then rank 1 is
    killed while rank 0 waits in a barrier."""
    dist.init_process_group("gloo", rank=local_rank, world_size=2, init_method=f"tcp://127.0.0.1:{spec.port}")
    ranks = distributed.Ranks()
    local = torch.tensor([[0], [2], [4]] if local_rank == 0 else [[1], [3], [0]])  # rank r: positions r, r+2, r+4
    rows = ranks.gather_rows(local, Sampler())
    loss = ranks.reduce_loss(float(local_rank + 1), None)
    parts = ranks.reduce_loss((1.0, 2.0 + local_rank), float("nan") if local_rank == 1 else None)
    decided = ranks.agree(0, stop=local_rank == 1, new_best=True)  # rank 1 alone sees a reason to stop
    lr = ranks.broadcast_float(0.1 if local_rank == 0 else 0.5)
    Path(out, f"rank{local_rank}.json").write_text(json.dumps({
        "rows": rows.flatten().tolist(), "loss": loss, "parts": [parts[0], repr(parts[1])], "decided": decided,
        "lr": lr, "disagreements": ranks.disagreements}))
    dist.barrier()
    if local_rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()


def done_then_abort_at_exit(local_rank: int, spec: LaunchSpec, out: str) -> None:
    """Rank 1 is done at once and aborts (SIGABRT) as its process exits, as gloo can while a process group is torn
    down; rank 0 works two seconds longer, then writes ``out``/rank0.done."""
    dist.init_process_group("gloo", rank=local_rank, world_size=2, init_method=f"tcp://127.0.0.1:{spec.port}")
    if local_rank == 1:
        atexit.register(os.abort)
        return
    time.sleep(2)
    Path(out, "rank0.done").write_text("done")
