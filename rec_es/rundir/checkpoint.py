"""Checkpoints that hold tensors and plain Python data only, written atomically.

Every file written here loads with ``torch.load(path, weights_only=True)`` (the torch >= 2.6 default):
no RecBole ``Config`` object, no numpy arrays, no pickled classes. The config travels as YAML beside
the checkpoint (``config.yaml`` in the run directory). A write goes to a temporary file in the same
directory, is flushed and fsync'ed, then ``os.replace``'d over the target, so a crash during a save
leaves the previous file intact and never a truncated one.
"""
from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from rec_es.policy.errors import StateError

FORMAT = "rec_es.checkpoint"
VERSION = 1


def atomic_save(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (temp file in the same dir, fsync, os.replace)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Load a rec_es checkpoint with ``weights_only=True`` on the CPU; check format, version and ``kind``."""
    p = Path(path)
    if not p.is_file():
        raise StateError(f"{p}: checkpoint file not found")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted or foreign file: say which
        raise StateError(f"{p}: cannot be read as a weights-only checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f"{p}: not a rec_es checkpoint (expected format '{FORMAT}')")
    if data.get("version") != VERSION:
        raise StateError(f"{p}: checkpoint version {data.get('version')!r} is not {VERSION}")
    if kind is not None and data.get("kind") != kind:
        raise StateError(f"{p}: holds a '{data.get('kind')}' checkpoint, expected '{kind}'")
    return data


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model.state_dict()`` (safe to keep while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def plain(value: Any) -> Any:
    """``value`` made weights-only safe: numpy arrays/scalars become tensors/floats, tuples lists."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise StateError(f"cannot store a {type(value).__name__} in a weights-only checkpoint: {value!r}")


def best_payload(model: torch.nn.Module, epoch: int, state_dict: Mapping[str, torch.Tensor] | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The ``best.pth`` content: format, version, kind, epoch, state_dict, other_parameter, extras."""
    other = model.other_parameter() if hasattr(model, "other_parameter") else None
    payload = {"format": FORMAT, "version": VERSION, "kind": "best", "epoch": int(epoch),
               "state_dict": dict(state_dict) if state_dict is not None else cpu_state_dict(model),
               "other_parameter": plain(other)}
    payload.update({k: plain(v) for k, v in extra.items()})
    return payload


def last_payload(model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int, *,
                 policy_state: Mapping[str, Any], schedule_state: Mapping[str, Any] | None,
                 train_data_rng: torch.Tensor | None, trace_lines: int, elapsed_seconds: float,
                 best: Mapping[str, Any] | None, trace_digests: list[str] | None = None,
                 policy_settings: Mapping[str, Any] | None = None,
                 schedule_settings: Mapping[str, Any] | None = None,
                 rank_states: list[Mapping[str, Any]] | None = None,
                 averaging: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``last.pth`` content: everything ``--resume`` needs to continue exactly after ``epoch``.

    Model (CPU copy), ``other_parameter``, optimizer, LR schedule and policy state, every RNG state (and
    ``train_data_rng``, the train loader's generator), the count of trace lines written so far, the elapsed
    seconds, and ``best``: the best snapshot so far (``epoch``, ``state_dict``, ``other_parameter``,
    ``valid_result``, ``score``, ``test_result``) or None before the first evaluation. When given (the trainer
    always does): ``trace_digests``, one digest per trace line after the header (an edited trace is refused on
    resume), and ``policy_settings`` / ``schedule_settings``, the settings the two states belong to.
    ``rank_states`` (several processes only): every global rank's ``rank_state()`` in rank order, stored with
    ``world_size``; ``rng`` and ``train_data_rng`` are then rank 0's. A one-process ``last.pth`` has neither key.
    ``averaging``: an averaging ``restore``'s kept weights and history (``rec_es.training.averaging``), only then.
    """
    if best is not None:
        best = {**best, "valid_result": plain(best["valid_result"]), "test_result": plain(best["test_result"])}
    payload = {
        "format": FORMAT, "version": VERSION, "kind": "last", "epoch": epoch,
        "model": cpu_state_dict(model), "other_parameter": plain(model.other_parameter()),
        "optimizer": optimizer.state_dict(),
        "lr_schedule": schedule_state,
        "policy": plain(policy_state), "rng": capture_rng_state(),
        "train_data_rng": train_data_rng,
        "trace_lines": trace_lines, "elapsed_seconds": elapsed_seconds,
        "best": best,
    }
    if trace_digests is not None:
        payload["trace_digests"] = list(trace_digests)
    if policy_settings is not None:  # the settings both states belong to (schedule_settings None: no schedule)
        payload["policy_settings"] = plain(policy_settings)
        payload["schedule_settings"] = plain(schedule_settings)
    if rank_states is not None:
        payload["world_size"] = len(rank_states)
        payload["rank_states"] = [plain(state) for state in rank_states]
    if averaging is not None:
        payload["averaging"] = averaging
    return payload


# --- run state carried by the checkpoints ------------------------------------------------------
@dataclass
class BestSnapshot:
    """The best evaluation so far and the weights it was made with (CPU copies, safe to keep while training goes on).

    ``epoch`` (0-based), ``state_dict`` and ``other_parameter`` (RecBole's extra model state, e.g. LightGCN's cached
    embeddings, made weights-only safe), ``valid_result`` (RecBole's metrics at that epoch), ``score`` (the
    policy's monitor value that made it the best) and ``test_result`` (only when test metrics are recorded).
    ``to_payload`` / ``from_payload`` are its form inside ``last.pth``; ``best_file`` is ``best.pth``.
    """

    epoch: int
    state_dict: dict[str, torch.Tensor]
    other_parameter: Any
    valid_result: dict[str, float] | None
    score: float | None
    test_result: dict[str, float] | None = None

    @classmethod
    def take(cls, model: torch.nn.Module, epoch: int, valid_result: dict[str, float] | None, score: float | None,
             test_result: dict[str, float] | None = None) -> BestSnapshot:
        """Snapshot ``model`` now as the best of ``epoch``."""
        return cls(int(epoch), cpu_state_dict(model), plain(model.other_parameter()), valid_result, score, test_result)

    def to_payload(self) -> dict[str, Any]:
        """The snapshot as plain data (the ``best`` entry of ``last.pth``)."""
        return {"epoch": self.epoch, "state_dict": self.state_dict, "other_parameter": self.other_parameter,
                "valid_result": plain(self.valid_result), "score": self.score, "test_result": plain(self.test_result)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> BestSnapshot:
        """Inverse of ``to_payload``."""
        return cls(int(data["epoch"]), data["state_dict"], data.get("other_parameter"), data.get("valid_result"),
                   data.get("score"), data.get("test_result"))

    def best_file(self, model: torch.nn.Module, model_name: str, dataset: str) -> dict[str, Any]:
        """The ``best.pth`` content of this snapshot (``best_payload``)."""
        return best_payload(model, self.epoch, self.state_dict, valid_result=self.valid_result, score=self.score,
                            test_result=self.test_result, model_name=model_name, dataset=dataset)

    def restore(self, model: torch.nn.Module, device: Any) -> None:
        """Load the snapshot's weights and ``other_parameter`` into ``model`` (tensors moved to ``device``)."""
        model.load_state_dict(self.state_dict)
        model.load_other_parameter(on_device(self.other_parameter, device))


@dataclass(frozen=True)
class StopInfo:
    """How a fit ended: the last epoch trained (0-based), the reason (a ``StopReason`` value, ``max_epochs`` or
    ``non_finite``) and the sentence that says why."""

    epoch: int
    reason: str
    message: str


def on_device(value: Any, device: Any) -> Any:
    """Tensors inside ``value`` (nested dicts included, e.g. LightGCN's cached embeddings) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: on_device(v, device) for k, v in value.items()}
    return value


# --- random number generators ------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Python ``random``, numpy's global and torch's CPU (and CUDA) RNG states as tensors/plain data."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def rank_state(train_data: Any) -> dict[str, Any]:
    """What one process of a distributed run needs to repeat its randomness and data order after a resume:
    ``rng`` (``capture_rng_state``), ``train_data_rng`` (the train loader's generator, None without one) and
    ``sampler`` (the train loader's ``DistributedSampler`` ``seed`` and ``epoch``, None without one)."""
    from torch.utils.data.distributed import DistributedSampler

    gen = getattr(train_data, "generator", None)
    sampler = getattr(train_data, "sampler", None)
    return {"rng": capture_rng_state(), "train_data_rng": gen.get_state() if gen is not None else None,
            "sampler": ({"seed": int(sampler.seed), "epoch": int(sampler.epoch)}
                        if isinstance(sampler, DistributedSampler) else None)}


def own_rank_state(data: Mapping[str, Any], rank: int) -> dict[str, Any]:
    """The ``rank_state`` of global ``rank`` in a ``last.pth`` payload; a one-process payload (no
    ``rank_states``) gives its ``rng`` and ``train_data_rng`` for rank 0. StateError for a rank it does not hold."""
    states = data.get("rank_states")
    if states is None:
        if rank != 0:
            raise StateError(f"last.pth holds one process's random state; rank {rank} has none")
        return {"rng": data["rng"], "train_data_rng": data.get("train_data_rng"), "sampler": None}
    if not 0 <= rank < len(states):
        raise StateError(f"last.pth holds the random state of {len(states)} ranks; rank {rank} has none")
    return dict(states[rank])


def restore_rank_state(state: Mapping[str, Any], train_data: Any) -> None:
    """Inverse of ``rank_state``: the RNGs, the train loader's generator and its sampler's seed and epoch."""
    restore_rng_state(state["rng"])
    gen = getattr(train_data, "generator", None)
    if gen is not None and state.get("train_data_rng") is not None:
        gen.set_state(state["train_data_rng"])
    sampler, saved = getattr(train_data, "sampler", None), state.get("sampler")
    if saved is not None and sampler is not None and hasattr(sampler, "set_epoch"):
        sampler.seed = int(saved["seed"])
        sampler.set_epoch(int(saved["epoch"]))


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state``."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), int(nps["pos"]),
                         int(nps["has_gauss"]), float(nps["cached_gaussian"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
