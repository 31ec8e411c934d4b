"""Several processes (RecBole's ``nproc``): the gloo/CPU shim, the launcher, and what makes the ranks agree.

* ``use_gloo_on_cpu`` (applied by ``compat.apply_recbole_fixes``): RecBole 1.2.1's ``Config._init_device`` hard-codes
  NCCL and CUDA once ``local_rank`` is set. When no GPU is asked for or present (``use_gpu: false``, an empty
  ``gpu_id`` or no CUDA) it initialises the process group with **gloo** on the CPU instead, with RecBole's rank
  arithmetic (global rank = ``local_rank + offset``) and its silencing of ranks != 0; with a GPU, RecBole's own
  code runs unchanged. RecBole's trainer module gets a ``DistributedDataParallel`` that drops ``device_ids`` for a
  CPU module only (torch refuses them there). RecBole's ``ensure_dir`` (``exists`` then ``makedirs``) races when
  several ranks start at once (``FileExistsError: './log'`` killed a rank here); it is made race-free everywhere.
* ``Ranks`` is what an ``EarlyStoppingTrainer`` holds under several processes: the evaluation rows all-gathered in
  RecBole's user order with the ``DistributedSampler``'s padding duplicates dropped, the training loss reduced,
  the decision (stop, new best) and the learning rate made identical by an explicit reduction, every rank's
  random state gathered for rank 0's ``last.pth``, and rank 0's resumed state shared with the others.
* ``LaunchSpec``, ``check_launch`` and ``launch``: ``rec-es run --nproc N``; every check runs before a process
  starts. Global rank 0 alone holds the run directory.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.distributed as dist

from rec_es.policy.errors import ConfigError, RecEsError, StateError
from rec_es.training.loss import NonFiniteLossError

#: RecBole's keys of a distributed run: rec_es sets them from ``--nproc`` and friends, never from a config file
DISTRIBUTED_KEYS = ("nproc", "world_size", "ip", "port", "offset", "local_rank")
#: evaluation data a gather can put together row by row (top-k rows, top-k item ids); the rest is refused
GATHERED = ("rec.topk", "rec.items")
#: data every rank already holds whole (counted from the training set, not from its sampler share)
WHOLE = ("data.num_items", "data.num_users", "data.count_items", "data.count_users")


# --- a: gloo and the CPU when no GPU is asked for --------------------------------------------------------------
_recbole_init_device: Callable[[Any], None] | None = None


def gpu_asked(config: Mapping[str, Any]) -> bool:
    """A GPU is asked for and present: ``use_gpu`` (default true), a non-empty ``gpu_id`` and CUDA available."""
    gpu_id = config.get("gpu_id", "0")
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
    return bool(config.get("use_gpu", True)) and len(gpu_id) > 0 and torch.cuda.is_available()


def use_gloo_on_cpu() -> None:
    """Swap RecBole's ``Config._init_device``, its trainer's ``DistributedDataParallel`` and its ``ensure_dir``
    (idempotent)."""
    global _recbole_init_device
    import importlib

    from recbole.config.configurator import Config

    if _recbole_init_device is None:
        _recbole_init_device = Config._init_device
        Config._init_device = _init_device
        importlib.import_module("recbole.trainer.trainer").DistributedDataParallel = _ddp
        for name in ("recbole.utils", "recbole.utils.utils", "recbole.utils.logger", "recbole.trainer.trainer",
                     "recbole.data.utils", "recbole.data.dataset.dataset"):
            importlib.import_module(name).ensure_dir = ensure_dir


def ensure_dir(dir_path: str) -> None:
    """RecBole's ``ensure_dir`` without its race: two ranks may create the same directory at once."""
    os.makedirs(dir_path, exist_ok=True)


def _init_device(self: Any) -> None:
    d = self.final_config_dict
    if "local_rank" not in d or gpu_asked(d):
        assert _recbole_init_device is not None
        return _recbole_init_device(self)  # one process, or RecBole's NCCL/CUDA path as shipped
    gpu_id = d["gpu_id"]
    d["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
    os.environ["CUDA_VISIBLE_DEVICES"] = d["gpu_id"]  # as RecBole does
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", rank=d["local_rank"] + d["offset"], world_size=d["world_size"],
                                init_method=f"tcp://{d['ip']}:{d['port']}")
    d["device"] = torch.device("cpu")
    d["single_spec"] = False
    if d["local_rank"] != 0:
        d["state"] = "error"
        d["show_progress"] = False
        d["verbose"] = False


def _ddp(module: torch.nn.Module, device_ids: Sequence[int] | None = None, *args: Any,
         **kwargs: Any) -> torch.nn.parallel.DistributedDataParallel:
    """RecBole passes ``device_ids=[local_rank]`` whatever the device; torch accepts them for a GPU module only."""
    if all(p.device.type == "cpu" for p in module.parameters()):
        device_ids = None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids, *args, **kwargs)


# --- c, d: the ranks of one run ------------------------------------------------------------------------------------
class Ranks:
    """The collective steps of one ``EarlyStoppingTrainer`` under several processes (every rank calls each one)."""

    def __init__(self) -> None:
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        # NCCL (RecBole's GPU path) reduces CUDA tensors only; results come back to the CPU, where RecBole keeps them
        self.device = (torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl"
                       else torch.device("cpu"))
        self.disagreements: list[tuple[int, list[int]]] = []  # (epoch, ranks whose own decision was overruled)

    def gather_rows(self, local: torch.Tensor, sampler: Any) -> torch.Tensor:
        """All ranks' evaluation rows in RecBole's user order, the sampler's padding duplicates dropped.

        ``DistributedSampler(drop_last=False)`` pads ``range(n)`` with its first indices up to a multiple of the
        world size and gives rank r the padded positions r, r+W, r+2W, ...: row k of rank r is position r + k*W,
        and positions >= n are the duplicates.
        """
        n, per = len(sampler.dataset), sampler.num_samples
        if local.shape[0] != per:
            raise StateError(f"rank {self.rank}: {local.shape[0]} evaluation rows for {per} sampled indices; the "
                             "gather needs one row per index (full-ranking evaluation)")
        dtype = local.dtype
        send = local.to(self.device, torch.int64 if dtype == torch.bool else dtype).contiguous()
        parts = [torch.empty_like(send) for _ in range(self.world_size)]
        dist.all_gather(parts, send)
        rows = torch.stack(parts, dim=1).reshape(per * self.world_size, *send.shape[1:])[:n]
        return rows.to("cpu", dtype)

    def reduce_loss(self, loss: Any, bad: float | None) -> tuple[Any, float | None]:
        """The epoch's training loss as the mean over ranks of each rank's sum (a tuple: per part), and the
        non-finite batch loss of any rank (None: every rank's losses were finite)."""
        parts = list(loss) if isinstance(loss, tuple) else [0.0 if loss is None else loss]
        flag = 0.0 if bad is None else 1.0
        t = torch.tensor([float(x) for x in parts] + [flag, 0.0 if bad is None else bad], dtype=torch.float64,
                         device=self.device)
        dist.all_reduce(t)
        values = [float(x) / self.world_size for x in t[:len(parts)]]
        reduced: Any = tuple(values) if isinstance(loss, tuple) else (None if loss is None else values[0])
        any_bad = float(t[-2]) > 0
        return reduced, (float(t[-1]) if any_bad else None)

    def agree(self, epoch: int, stop: bool, new_best: bool) -> tuple[bool, bool]:
        """Every rank's (stop, new best) all-gathered; rank 0's is taken by all. A rank whose own decision differed
        is logged by name (the inputs are identical, so this means a rank's policy state diverged)."""
        mine = torch.tensor([int(stop), int(new_best)], dtype=torch.int64, device=self.device)
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(parts, mine)
        decided = parts[0]
        differ = [r for r, p in enumerate(parts) if not torch.equal(p, decided)]
        if differ:
            self.disagreements.append((epoch, differ))
            getLogger().warning(f"epoch {epoch}: rank(s) {', '.join(map(str, differ))} decided (stop, new best) "
                                f"{[tuple(bool(x) for x in parts[r]) for r in differ]}, rank 0 decided "
                                f"{tuple(bool(x) for x in decided)}; every rank follows rank 0")
        return bool(decided[0]), bool(decided[1])

    def broadcast_float(self, value: float) -> float:
        """Rank 0's value on every rank (the learning rate an epoch trains with)."""
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t[0])

    def gather_states(self, state: Any) -> list[Any] | None:
        """Every rank's ``state`` (picklable) on rank 0, in global rank order; None on the other ranks."""
        parts: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(state, parts, dst=0)
        return parts

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable) on every rank; the other ranks' ``value`` is ignored."""
        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


class RanksHooks:
    """What ``EarlyStoppingTrainer`` (a RecBole ``Trainer``) does differently under several processes; one process
    (``ranks_`` None) changes nothing."""

    ranks_: Ranks | None
    evaluator: Any
    _eval_sampler: Any
    _bad_loss: float | None

    def _init_ranks(self, config: Any) -> None:
        self.ranks_ = None if config["single_spec"] else Ranks()
        self._eval_sampler = None  # the sampler of the evaluation running now (set by ``evaluate``)
        if self.ranks_ is not None:
            self.evaluator = GatheringEvaluator(self.evaluator, self.ranks_, lambda: self._eval_sampler)

    def _map_reduce(self, result: Any, num_sample: int) -> Any:
        """The result is already the whole evaluation's (``GatheringEvaluator``); RecBole's weighted mean of
        per-rank means (which counts the sampler's padding duplicates) is not taken."""
        return result

    def gather_users(self, uids: torch.Tensor) -> torch.Tensor:
        """Every rank's evaluated user ids in RecBole's order (one process: ``uids``)."""
        return uids if self.ranks_ is None else self.ranks_.gather_rows(uids, self._eval_sampler)

    def _reduced_loss(self, loss: Any) -> Any:
        """The epoch's loss as the mean over ranks; ``NonFiniteLossError`` on every rank if any rank had one."""
        if self.ranks_ is None:
            return loss
        loss, bad = self.ranks_.reduce_loss(loss, self._bad_loss)
        if bad is not None:
            raise NonFiniteLossError(bad)
        return loss


class GatheringEvaluator:
    """RecBole's ``Evaluator`` evaluating the rows of every rank at once: the top-k rows and item ids of the struct
    are all-gathered (``Ranks.gather_rows``) before RecBole averages them, on every rank."""

    def __init__(self, inner: Any, ranks: Ranks, sampler_of: Callable[[], Any]) -> None:
        self._inner = inner
        self._ranks = ranks
        self._sampler_of = sampler_of

    def evaluate(self, struct: Any) -> Any:
        sampler = self._sampler_of()
        for key in GATHERED:
            if key in struct:
                struct.set(key, self._ranks.gather_rows(struct.get(key), sampler))
        return self._inner.evaluate(struct)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --- b, e: the launcher ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchSpec:
    """RecBole's distributed arguments (``quick_start.run``): ``nproc`` processes on this machine, ranks
    ``group_offset .. group_offset+nproc-1`` of ``world_size`` (-1: ``nproc``), rendezvous at ``tcp://ip:port``."""

    nproc: int = 1
    world_size: int = -1
    ip: str = "localhost"
    port: int = 5678
    group_offset: int = 0

    @property
    def total(self) -> int:
        return self.nproc if self.world_size == -1 else self.world_size


def check_launch(spec: LaunchSpec, recbole_keys: Mapping[str, Any], sources: Mapping[str, str] | None = None,
                 *, resume: bool = False) -> None:
    """ConfigError for a launch that cannot work, before any process starts."""
    sources = sources or {}
    if spec.nproc < 1:
        raise ConfigError(f"--nproc must be an integer >= 1 (got {spec.nproc})", source="--nproc")
    if spec.world_size != -1 and spec.world_size < spec.nproc:
        raise ConfigError(f"--world-size {spec.world_size} is smaller than --nproc {spec.nproc}: the processes of "
                          "all machines together make the world (-1, the default: --nproc)", source="--world-size")
    if spec.group_offset < 0 or spec.group_offset + spec.nproc > spec.total:
        raise ConfigError(f"--group-offset {spec.group_offset} with --nproc {spec.nproc} names ranks "
                          f"{spec.group_offset}..{spec.group_offset + spec.nproc - 1}, outside a world of "
                          f"{spec.total} (0..{spec.total - 1})", source="--group-offset")
    if not 1 <= spec.port <= 65535:
        raise ConfigError(f"--port must be in 1..65535 (got {spec.port})", source="--port")
    for key in DISTRIBUTED_KEYS:
        if key in recbole_keys:
            raise ConfigError(f"{key}: is RecBole's distributed setting, which rec_es sets itself from "
                              f"--nproc/--world-size/--ip/--port/--group-offset; remove it from the config",
                              source=sources.get(key), key=key)
    if spec.total == 1:
        return
    _check_evaluation(recbole_keys, sources)
    if gpu_asked(recbole_keys):
        gpu_id = recbole_keys.get("gpu_id", "0")
        listed = len((",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)).split(","))
        have = torch.cuda.device_count()
        if spec.nproc > min(listed, have):
            raise ConfigError(f"--nproc {spec.nproc} is more processes than GPUs: gpu_id lists {listed}, CUDA sees "
                              f"{have}; one process per GPU (or use_gpu: false for CPU processes with gloo)",
                              source="--nproc")
    if spec.group_offset == 0:
        _check_port_free(spec.ip, spec.port)


def check_resume_launch(spec: LaunchSpec) -> None:
    """ConfigError for ``--resume`` on several machines: only rank 0's machine holds the run directory, and the
    ranks of a resumed run read their state from rank 0's ``last.pth`` through the launching process."""
    if spec.nproc != spec.total:
        raise ConfigError(f"--resume of a run on several machines (--world-size {spec.total}, --nproc {spec.nproc}) "
                          "is not supported: only rank 0's machine holds the run directory. Resume it on one machine "
                          f"with --nproc {spec.total}", source="--resume")


def _check_evaluation(keys: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    from recbole.evaluator import metrics_dict

    from rec_es.config.protocol import unavailable

    eval_args = keys.get("eval_args")
    if unavailable(eval_args) is not None:
        raise ConfigError("--nproc needs full-ranking evaluation (eval_args.mode: full): rec_es gathers one "
                          "evaluation row per user from every process, and negative-sampled evaluation is not "
                          "gathered yet", source=sources.get("eval_args"), key="eval_args")
    metrics = keys.get("metrics") or ["Recall", "MRR", "NDCG", "Hit", "Precision"]
    for metric in metrics:
        needs = getattr(metrics_dict.get(str(metric).lower()), "metric_need", [])
        if any(n not in GATHERED + WHOLE for n in needs):
            raise ConfigError(f"metrics: {metric} needs {', '.join(needs)}, which rec_es does not gather across "
                              "processes yet; with --nproc use top-k metrics (Recall, NDCG, MRR, Hit, Precision, "
                              "MAP) and the item ones (ItemCoverage, AveragePopularity, GiniIndex, ...)",
                              source=sources.get("metrics"), key="metrics")


def _check_port_free(ip: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, port))
        except OSError as exc:
            raise ConfigError(f"--port {port} on {ip} cannot be used for the rendezvous ({exc.strerror or exc}); "
                              "pick a free port with --port", source="--port") from None


def rank_keys(spec: LaunchSpec, local_rank: int) -> dict[str, Any]:
    """The RecBole keys that make one process rank ``local_rank + group_offset`` (as ``quick_start.run`` sets)."""
    return {"local_rank": local_rank, "nproc": spec.nproc, "world_size": spec.total, "ip": spec.ip,
            "port": str(spec.port), "offset": spec.group_offset}


def launch(spec: LaunchSpec, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Spawn ``spec.nproc`` processes running ``target(local_rank, spec, *args)``; a rank that fails or dies ends
    them all, and ``RecEsError`` names its global rank (a ``RecEsError`` of its own is passed on with the rank).

    Every rank waits at a last barrier after its ``target`` returns, so that no rank tears its process group down
    while another still works (rank 0 writes the run's last files after the others are done). A rank that dies
    after all of them passed that barrier (gloo can abort while a process group is torn down) has lost nothing:
    it is logged as a warning and ``launch`` returns."""
    import torch.multiprocessing as mp

    finished = mp.get_context("spawn").Array("b", spec.nproc, lock=False)  # 1 once a rank passed the last barrier
    try:
        mp.spawn(_entry, args=(spec, target, args, finished), nprocs=spec.nproc, join=True)
    except mp.ProcessRaisedException as exc:
        rank = exc.error_index + spec.group_offset
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        raise RecEsError(f"rank {rank} failed: {last}; the other ranks were stopped") from None
    except mp.ProcessExitedException as exc:
        rank = exc.error_index + spec.group_offset
        how = (f"was killed by signal {exc.signal_name}" if exc.signal_name else f"exited with status {exc.exit_code}")
        if all(finished):
            getLogger().warning(f"rank {rank} {how} while its process group was torn down, after every rank had "
                                "finished its work; nothing was lost")
            return
        raise RecEsError(f"rank {rank} {how}; the other ranks were stopped") from None


def _entry(local_rank: int, spec: LaunchSpec, target: Callable[..., Any], args: tuple[Any, ...],
           finished: Any) -> None:
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit():
        torch.set_num_threads(int(threads))
    try:
        target(local_rank, spec, *args)
        if dist.is_initialized():
            dist.barrier()
        finished[local_rank] = 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["DISTRIBUTED_KEYS", "GatheringEvaluator", "LaunchSpec", "Ranks", "RanksHooks", "check_launch",
           "check_resume_launch", "gpu_asked", "launch",
           "rank_keys", "use_gloo_on_cpu"]
