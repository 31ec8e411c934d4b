"""The weights side of ``early_stopping.restore``: keep the evaluations' weights an average needs, average them,
check the average on validation and restore it (or the best evaluation's weights when it is worse).

Which evaluations an average takes is ``rec_es.policy.restore`` (pure); this module holds the tensors:

* ``average_state_dicts(states, base=None)``: the uniform average of ``state_dict`` s;
* ``WeightAverager``: what a trainer keeps during a fit (CPU copies of the weights ``epochs_to_keep`` names, or
  one EMA copy; the evaluations seen; the best evaluation's per-user monitor values), saved in ``last.pth``
  (``state_dict`` / ``load_state_dict``) so a resumed run restores the same average as an uninterrupted one;
* ``restore_average(trainer, valid_data)``: at the end of a fit, load the average, evaluate it on the validation
  data (one extra evaluation pass; the test data is never looked at), and keep it unless its monitor value is
  worse than the single best evaluation's by more than the noise (``noise_margin``); otherwise the best
  evaluation's weights are restored. Returns what was restored (``Restored``), for the footer, summary and
  ``best.pth``.

RecBole's ``other_parameter()`` is not averaged: a cache of embeddings computed from the weights (LightGCN's
``restore_user_e``/``restore_item_e``, DMF's ``i_embedding``, ...: ``CACHES``) is set to None after averaged
weights are loaded, so the model recomputes it at the next prediction; a sub-module listed there (FDSA's
``feature_embed_layer``) has its weights in the ``state_dict`` and is averaged with them. Any other entry (Pop's
counts, ItemKNN's similarity, KGCN's sampled graph: ``OTHER_PARAMETERS``) is refused before training
(``check_model``): averaging would silently mix or drop it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from rec_es.policy.errors import ConfigError, StateError
from rec_es.policy.restore import RestoreSpec, Verdict, check_budget, counted, epochs_to_average, epochs_to_keep, judge
from rec_es.policy.rules.noise import curve_noise
from rec_es.policy.stats import paired_se
from rec_es.rundir.checkpoint import BestSnapshot, cpu_state_dict, plain

if TYPE_CHECKING:
    from rec_es.training.trainer import EarlyStoppingTrainer

#: what each ``other_parameter_name`` entry of RecBole 1.2.1's models holds (a test reads RecBole's sources)
OTHER_PARAMETERS = {
    "restore_user_e": "cache", "restore_item_e": "cache", "restore_entity_e": "cache", "i_embedding": "cache",
    "feature_embed_layer": "sub-module", "embedding_layer": "sub-module",
    "item_cnt": "fitted counts", "max_cnt": "fitted counts", "w": "fitted similarity", "pred_mat": "fitted scores",
    "interaction_matrix": "training data", "item_similarity": "fitted similarity",
    "adj_entity": "sampled graph", "adj_relation": "sampled graph", "ripple_set": "sampled graph",
}
CACHES = frozenset(k for k, v in OTHER_PARAMETERS.items() if v == "cache")
#: per-user values give the paired SE; without them the curve's noise; with neither, no margin
SE_SOURCE, CURVE_SOURCE, NO_SOURCE = "per-user paired SE", "curve noise (1.4826·MAD of first differences)", "none"


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]], *,
                        base: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The uniform average of ``states`` (``state_dict`` s of one model), as a new ``state_dict``.

    Floating-point tensors (weights, float buffers such as a batch norm's running mean) are averaged, summed in
    float64 in the order given and cast back to their dtype; every other tensor (integer buffers such as
    ``num_batches_tracked``) is copied from ``base``, the best evaluation's state (default: ``states[0]``).
    Raises ValueError for no states, or states whose keys or float shapes differ from ``base``'s. Example::

        >>> average_state_dicts([{"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])}])["w"]
        tensor([2.])
    """
    if not states:
        raise ValueError("average_state_dicts needs at least one state")
    ref = states[0] if base is None else base
    for i, state in enumerate(states):
        if set(state) != set(ref):
            raise ValueError(f"state {i} has other keys than the base state: {sorted(set(state) ^ set(ref))[:3]}")
    out: dict[str, torch.Tensor] = {}
    for key, like in ref.items():
        if not torch.is_floating_point(like):
            out[key] = like.detach().clone()
            continue
        total = torch.zeros(like.shape, dtype=torch.float64)
        for i, state in enumerate(states):
            if state[key].shape != like.shape:
                raise ValueError(f"state {i}: {key} has shape {tuple(state[key].shape)}, not {tuple(like.shape)}")
            total += state[key].detach().to("cpu", torch.float64)
        out[key] = (total / len(states)).to(like.dtype)
    return out


def ema_update(ema: dict[str, torch.Tensor] | None, state: Mapping[str, torch.Tensor],
               decay: float) -> dict[str, torch.Tensor]:
    """``ema = decay * ema + (1 - decay) * state`` on the float tensors, in place (``state`` itself when None);
    non-float entries follow ``state``."""
    if ema is None:
        return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
    for key, value in state.items():
        if torch.is_floating_point(value):
            ema[key].mul_(decay).add_(value.detach().to("cpu", ema[key].dtype), alpha=1.0 - decay)
        else:
            ema[key] = value.detach().to("cpu", copy=True)
    return ema


def check_model(model: torch.nn.Module, spec: RestoreSpec, model_name: str) -> None:
    """ConfigError (key ``early_stopping.restore``) when ``spec`` averages and ``model`` keeps something in
    ``other_parameter()`` that is neither a cache of its weights nor one of its sub-modules."""
    if not spec.averages:
        return
    modules = {id(m) for m in model.modules()}
    for name in getattr(model, "other_parameter_name", ()):
        if name in CACHES or id(getattr(model, name, None)) in modules:
            continue
        what = OTHER_PARAMETERS.get(name, "not a cache of its weights")
        raise ConfigError(f"early_stopping.restore: {model_name} keeps {name} ({what}) in other_parameter(), "
                          f"which an average of weights cannot restore; allowed: restore: best with {model_name} "
                          f"(got {spec.describe()})", key="early_stopping.restore")


def reset_caches(model: torch.nn.Module) -> None:
    """Set the model's cached embeddings (``CACHES`` in its ``other_parameter_name``) to None: recomputed from the
    weights now loaded at the next prediction."""
    for name in getattr(model, "other_parameter_name", ()):
        if name in CACHES:
            setattr(model, name, None)


def monitor_values(scores: Any, terms: Sequence[tuple[str, float]]) -> np.ndarray | None:
    """The per-user monitor (weighted sum of its terms) of one evaluation's ``UserScores``; None if a term was not
    captured."""
    values = getattr(scores, "values", None) or {}
    if any(k not in values for k, _ in terms):
        return None
    return sum(w * values[k].astype(np.float64) for k, w in terms)  # type: ignore[return-value]


def noise_margin(average_users: np.ndarray | None, best_users: np.ndarray | None,
                 raw_values: Sequence[float]) -> tuple[float, str]:
    """(margin, source) for the fallback: the SE of the paired per-user difference average - best when both are
    given; else the curve noise of the run's raw monitor values (``rec_es.policy.rules.noise.curve_noise``, 5
    values at least); else 0."""
    if average_users is not None and best_users is not None and len(average_users) == len(best_users) > 1:
        se = paired_se(average_users.tolist(), best_users.tolist())
        if math.isfinite(se):
            return se, SE_SOURCE
    noise = curve_noise([v for v in raw_values if math.isfinite(v)])
    return (noise, CURVE_SOURCE) if noise is not None else (0.0, NO_SOURCE)


class WeightAverager:
    """What a fit keeps for an averaging ``restore``. ``observe`` after every evaluation; ``average`` at the end.

    Holds at most ``spec.copies()`` CPU copies of the weights beside the model, and in ``last.pth`` the same.
    ``basis``: the policy settings its history depends on (restore, monitor, mode, smoothing, best_by,
    start_from_epoch); a resume under another basis is refused, since the kept weights were chosen under it.
    """

    BASIS_KEYS = ("restore", "monitor", "mode", "smoothing", "ema_alpha", "window", "best_by", "start_from_epoch")

    def __init__(self, spec: RestoreSpec, settings: Any) -> None:
        self.spec, self.settings = spec, settings
        mapping = settings.to_mapping()
        self.basis = {k: mapping.get(k) for k in self.BASIS_KEYS}
        self.reset()

    def reset(self) -> None:
        self.history: list[tuple[int, float | None, float | None]] = []
        self.kept: dict[int, dict[str, torch.Tensor]] = {}
        self.ema: dict[str, torch.Tensor] | None = None
        self.best_users: np.ndarray | None = None

    def observe(self, decision: Any, model: torch.nn.Module, scores: Any = None) -> None:
        """Take one evaluation: its ``Decision``, the model as evaluated and its per-user ``UserScores`` (or None)."""
        value = None if decision.value is None or not math.isfinite(decision.value) else float(decision.value)
        self.history.append((int(decision.epoch), value, decision.smoothed))
        if decision.new_best:
            self.best_users = monitor_values(scores, self.settings.monitor.terms)
        if not counted(self.history[-1:]):
            return
        if self.spec.average == "ema":
            assert self.spec.decay is not None
            self.ema = ema_update(self.ema, model.state_dict(), self.spec.decay)
            return
        keep = set(epochs_to_keep(self.spec, self.history, self.settings.mode, self.settings.best_by))
        if decision.epoch in keep:
            self.kept[int(decision.epoch)] = cpu_state_dict(model)
        self.kept = {e: s for e, s in self.kept.items() if e in keep}

    def epochs(self) -> list[int]:
        """The epochs the average takes now (``rec_es.policy.restore.epochs_to_average``)."""
        return epochs_to_average(self.spec, self.history, self.settings.mode, self.settings.best_by)

    def average(self, best: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The averaged ``state_dict``; non-float entries from ``best`` (the best evaluation's weights)."""
        if self.spec.average == "ema":
            assert self.ema is not None
            return {k: v.clone() if torch.is_floating_point(v) else best[k].clone() for k, v in self.ema.items()}
        return average_state_dicts([self.kept[e] for e in self.epochs()], base=best)

    def state_dict(self) -> dict[str, Any]:
        """Plain data and tensors for ``last.pth`` (weights-only safe)."""
        return {"basis": plain(self.basis), "history": [list(h) for h in self.history],
                "kept": {str(e): s for e, s in self.kept.items()}, "ema": self.ema,
                "best_users": None if self.best_users is None else torch.from_numpy(self.best_users.copy())}

    def load_state_dict(self, data: Mapping[str, Any]) -> None:
        """Inverse of ``state_dict``; StateError when it was saved under another basis (``BASIS_KEYS``)."""
        if dict(data.get("basis") or {}) != plain(self.basis):
            raise StateError(f"the kept weights were chosen under {data.get('basis')}, not {plain(self.basis)}")
        self.history = [(int(e), r, s) for e, r, s in data["history"]]
        self.kept = {int(e): dict(s) for e, s in data["kept"].items()}
        self.ema = None if data.get("ema") is None else dict(data["ema"])
        users = data.get("best_users")
        self.best_users = None if users is None else users.numpy().astype(np.float64)


@dataclass(frozen=True)
class Restored:
    """What a fit with an averaging ``restore`` restored: the setting, the epochs averaged, the verdict (the
    average's and the single best's validation monitor values, the noise margin and its source) and the
    best evaluation's epoch; ``fell_back``: the best evaluation's weights were restored instead."""

    spec: RestoreSpec
    epochs: tuple[int, ...]
    verdict: Verdict
    best_epoch: int
    valid_result: dict[str, float] | None

    @property
    def fell_back(self) -> bool:
        return not self.verdict.keep

    def to_dict(self) -> dict[str, Any]:
        """The ``restored`` entry of the trace footer, ``summary.json`` and ``best.pth``."""
        v = self.verdict
        return {"restore": self.spec.to_mapping(), "epochs": list(self.epochs), "valid_score": v.average_score,
                "best_epoch": self.best_epoch, "best_score": v.best_score, "margin": v.margin, "noise": v.source,
                "fell_back": self.fell_back, "valid_result": self.valid_result}

    def sentence(self, monitor: str) -> str:
        """How the stop message ends: which weights were restored and why."""
        v, epochs = self.verdict, ", ".join(map(str, self.epochs))
        scores = (f"validation {monitor} {_fmt(v.average_score)} against {_fmt(v.best_score)} for the best epoch "
                  f"{self.best_epoch} (noise margin {_fmt(v.margin)}, {v.source})")
        if self.fell_back:
            return (f"restored the best epoch {self.best_epoch}'s weights, not the average of epochs {epochs} "
                    f"({self.spec.describe()}): its {scores} is worse by more than the noise")
        return f"restored the average of the weights of epochs {epochs} ({self.spec.describe()}): {scores}"


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.6g}"


def restore_average(trainer: EarlyStoppingTrainer, valid_data: Any) -> Restored | None:
    """At the end of a fit whose best weights are in the model: load the average, evaluate it on ``valid_data``
    (its per-user values taken, not recorded), judge it against the best evaluation and leave the chosen weights
    in the model. Returns None when nothing was averaged (no counted evaluation, or no validation data)."""
    averager, best = trainer.averager, trainer.best_
    if averager is None or best is None or not valid_data or not averager.epochs():
        return None
    epochs = tuple(averager.epochs())
    model = trainer.model
    model.load_state_dict(averager.average(best.state_dict))
    reset_caches(model)
    result = dict(trainer.evaluate(valid_data, load_best_model=False))
    capture = trainer.per_user_recorder.capture
    scores = capture.take() if capture is not None else None
    s = averager.settings
    score = s.monitor.score(result)
    margin, source = noise_margin(monitor_values(scores, s.monitor.terms), averager.best_users,
                                  [r for _, r, _ in averager.history if r is not None])
    verdict = judge(score, best.score, s.mode, margin, source)
    restored = Restored(averager.spec, epochs, verdict, best.epoch, result)
    if verdict.keep:
        trainer.restored_ = BestSnapshot(best.epoch, cpu_state_dict(model), plain(model.other_parameter()), result,
                                         score, None)
    else:
        best.restore(model, trainer.device)
    return restored


def for_trainer(policy: Any, model: torch.nn.Module, model_name: str, epochs: int,
                eval_step: int) -> WeightAverager | None:
    """The ``WeightAverager`` of a trainer whose policy averages (None for ``restore: best`` and policies without
    a ``restore`` setting), after the checks made before training: the model (``check_model``) and the budget
    (``rec_es.policy.restore.check_budget``)."""
    settings = getattr(policy, "settings", None)
    spec = getattr(settings, "restore", None)
    if not isinstance(spec, RestoreSpec) or not spec.averages:
        return None
    check_budget(spec, epochs, eval_step, settings.max_epochs)
    check_model(model, spec, model_name)
    return WeightAverager(spec, settings)
