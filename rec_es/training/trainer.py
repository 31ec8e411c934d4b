"""EarlyStoppingTrainer: RecBole's ``Trainer`` with a rec_es stopping policy, LR schedule, trace and checkpoints.

``fit`` runs, for each epoch: set LR → train → (on evaluation epochs) evaluate → policy.update → LR schedule →
snapshot best → trace record → report → resume checkpoint → stop? RecBole's own ``early_stopping`` is never used.
The best weights are kept as a CPU copy in memory (and in ``best.pth`` when saving), restored before
``evaluate(load_best_model=True)``. Checkpoints load with ``torch.load(weights_only=True)``; continuing from
``last.pth`` is ``rec_es.training.resume``, starting from a stock checkpoint ``rec_es.training.from_recbole``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rec_es.rundir import checkpoint
from rec_es.rundir.checkpoint import BestSnapshot, StopInfo
from rec_es.training.compat import apply_recbole_fixes, versions
from rec_es.policy.controller import StopController
from rec_es.policy.errors import ConfigError, StateError
from rec_es.training import averaging, evaluation_log
from rec_es.training.capture import PerUserRecorder
from rec_es.training.distributed import RanksHooks
from rec_es.training.loss import NonFiniteLossError, loss_value
from rec_es.policy.policy import StoppingPolicy
from rec_es.policy.types import Policy
from rec_es.training.resume import begin_resumed, read_resume, save_last
from rec_es.policy.schedule import LRSchedule, PlateauAction
from rec_es.rundir.trace import TraceWriter, jsonable, read_trace

apply_recbole_fixes()  # graph models need it before they are built; importing the trainer is enough

LONG_EPOCH_SECONDS = 30.0  # batch progress bars switch on once an epoch took longer than this


class EarlyStoppingTrainer(RanksHooks, Trainer):
    """RecBole ``Trainer`` whose stopping is decided by a rec_es policy.

    Args:
        config: RecBole ``Config``.
        model: the RecBole model.
        policy: a rec_es ``StoppingPolicy`` or another ``rec_es.policy.Policy`` (or an ``early_stopping:`` mapping,
            built with ``rec_es.build_policy``).
        lr_schedule: an ``lr_schedule:`` mapping, an ``LRSchedule`` or None (default: LR never touched).
        run_dir: run directory for trace.jsonl, best.pth, last.pth, summary.json (default None: nothing on disk).
        record_test: also evaluate the test set at every evaluation and store it in the trace (default False).
        per_user_metrics: top-k metric keys (or ``target_ce``, rec_es.training.target_ce) whose per-user values are kept at
            every evaluation, written to ``RUN/per_user/`` and passed to a policy whose ``update`` takes
            ``per_user`` (default None: the monitor's keys that have per-user values; ``()``: none).
        run_config: plain mapping written to the trace header as the run's config (default: RecBole's keys).
        ranked_k: keep each validation user's top ``ranked_k`` item ids at every evaluation in ``RUN/ranked/`` and
            their label-free signals (churn, coverage, overlap, gini: ``rec_es.rundir.ranked``) in the trace's
            ``"ranked"`` field (default 0: neither; full-ranking evaluation on one process only).
        epoch_progress: show a tqdm bar over epochs on a terminal, and per-batch bars once an epoch
            took longer than 30 s (default False).
    """

    def __init__(self, config: Any, model: torch.nn.Module, policy: Any,
                 lr_schedule: Mapping[str, Any] | LRSchedule | None = None, run_dir: str | os.PathLike[str] | None = None,
                 record_test: bool = False, run_config: Mapping[str, Any] | None = None,
                 epoch_progress: bool = False, per_user_metrics: Sequence[str] | None = None,
                 ranked_k: int = 0) -> None:
        super().__init__(config, model)
        self._init_ranks(config)  # several processes: rows gathered, loss reduced, decisions agreed
        if isinstance(policy, Mapping):
            from rec_es.policy import build_policy

            policy = build_policy(policy)
        if not isinstance(policy, Policy):
            raise ConfigError(f"policy must be a StoppingPolicy, an early_stopping mapping or a rec_es.policy.Policy "
                              f"({type(policy).__name__} lacks some of its methods)", key="early_stopping")
        self.policy: Policy = policy
        if lr_schedule is None or isinstance(lr_schedule, LRSchedule):
            self.schedule = lr_schedule
        else:
            self.schedule = LRSchedule(lr_schedule, base_lr=self.learning_rate)
        self.controller = StopController(policy, self.schedule)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.record_test = record_test
        self.run_config = dict(run_config) if run_config is not None else None
        self.epoch_progress = epoch_progress
        if self.run_dir is not None:
            self.saved_model_file = str(self.run_dir / "best.pth")
        self._resume: dict[str, Any] | None = None
        self.origin_: Any = None  # a stock RecBole checkpoint the fit starts from (rec_es.training.from_recbole)
        if ranked_k and self.ranks_ is not None:
            raise ConfigError("ranked: top-k lists are kept on one process only; drop --ranked or --nproc",
                              key="ranked")
        self.per_user_recorder = PerUserRecorder(self, per_user_metrics, getattr(policy, "monitor_keys", ()),
                                                 ranked_k)
        wanted = [k for k in policy.per_user_keys if k not in self.per_user_recorder.metrics]
        if wanted:
            raise ConfigError(f"early_stopping: the policy reads per-user {', '.join(wanted)} (improvement: significant "
                              f"or min_delta: auto) but per_user_metrics records only "
                              f"{', '.join(self.per_user_recorder.metrics) or 'none'}; record them too",
                              key="per_user_metrics")
        if isinstance(policy, StoppingPolicy):
            policy.budget = self.epochs  # a rule may weigh what is left of the budget
        self.averager = averaging.for_trainer(policy, model, config["model"], self.epochs, self.eval_step)
        self._clear_run_state()

    # --- state of one fit ----------------------------------------------------------------------
    def _clear_run_state(self) -> None:
        self.best_: BestSnapshot | None = None
        self.restored_: BestSnapshot | None = None  # an average of weights restored instead of best_ (restore:)
        self.restore_: averaging.Restored | None = None
        if self.averager is not None:
            self.averager.reset()
        self.stop_: StopInfo | None = None
        self.epochs_trained_ = 0
        self.elapsed_offset_ = 0.0
        self.wall_seconds_ = 0.0
        self.last_epoch_seconds_ = 0.0
        self.trace_: TraceWriter | None = None
        self.train_data_: Any = None
        self._bad_loss: float | None = None  # several processes: a rank's non-finite loss, decided after the epoch

    # RecBole's names for the best evaluation, read from the snapshot (None: no best yet)
    @property
    def best_valid_score(self) -> float | None:
        return self.best_.score if self.best_ is not None else None

    @best_valid_score.setter
    def best_valid_score(self, value: Any) -> None:
        _recbole_sentinel("best_valid_score", value)

    @property
    def best_valid_result(self) -> dict[str, float] | None:
        return self.best_.valid_result if self.best_ is not None else None

    @best_valid_result.setter
    def best_valid_result(self, value: Any) -> None:
        _recbole_sentinel("best_valid_result", value)

    @property
    def best_epoch_(self) -> int | None:
        """The epoch whose weights are (or will be) restored; None before the first evaluation."""
        return self.best_.epoch if self.best_ is not None else None

    @property
    def stop_epoch_(self) -> int | None:
        """The last epoch the fit trained (0-based); None before a fit ends."""
        return self.stop_.epoch if self.stop_ is not None else None

    @property
    def stop_reason_(self) -> str | None:
        return self.stop_.reason if self.stop_ is not None else None

    @property
    def stop_message_(self) -> str | None:
        return self.stop_.message if self.stop_ is not None else None

    def load_resume(self, run_dir: str | os.PathLike[str], plan: Any = None) -> int:
        """Restore the model and optimizer from ``RUN/last.pth`` now (``plan``: ``check_resume``'s result, default:
        checked here); the rest is applied, and the run directory first written, when ``fit`` begins
        (``rec_es.training.resume``). Returns the epoch training continues from (0-based).
        """
        self._resume = read_resume(self, run_dir, plan)
        self.start_epoch = int(self._resume["epoch"]) + 1
        return self.start_epoch

    # --- fit -------------------------------------------------------------------------------------
    def fit(self, train_data: Any, valid_data: Any = None, verbose: bool = True, saved: bool = True,
            show_progress: bool = False, callback_fn: Callable[[int, float | None], Any] | None = None,
            test_data: Any = None) -> tuple[float | None, dict[str, float] | None]:
        """Train until the policy stops or ``epochs`` run out; restore the best weights (or the average of weights
        ``early_stopping.restore`` asks for, once it passed one extra validation pass: ``rec_es.training.averaging``).

        Same signature and return value as RecBole's ``Trainer.fit`` (best monitor value, best valid
        result), plus ``test_data`` (needed with ``record_test``). ``saved`` writes best.pth/last.pth
        when a run directory is set; the best weights are kept in memory either way. A run directory
        holds one fit: fitting again into it raises ``StateError`` (use a new trainer/run_dir, or resume).
        """
        if self.record_test and test_data is None:
            raise ConfigError("record_test needs test_data passed to fit()", key="record_test")
        self._saved_ = saved
        self._begin(train_data, saved)
        start = time.time()
        if self.origin_ is not None and self._resume is None and valid_data and self.origin_.evaluate(
                self, start, valid_data, test_data, verbose, show_progress, saved, callback_fn):
            self.start_epoch = self.epochs  # the policy stopped on the checkpoint's own evaluation
        epochs = range(self.start_epoch, self.epochs)
        bar = tqdm(epochs, desc="epochs", unit="epoch", dynamic_ncols=True,
                   disable=None if self.epoch_progress else True)  # None: only on a terminal
        redirect = logging_redirect_tqdm() if self.epoch_progress else contextlib.nullcontext()
        with redirect, contextlib.closing(bar):
            for epoch in bar:
                self._apply_lr(epoch)
                lr = float(self.optimizer.param_groups[0]["lr"])
                try:
                    loss, train_s = self._train_step(train_data, epoch, verbose, show_progress)
                except NonFiniteLossError as exc:
                    self._stop_on_bad_loss(epoch, exc.value, lr)
                    break
                self.epochs_trained_ = epoch + 1
                if not self._is_eval_epoch(epoch, valid_data):
                    save_last(self, epoch, self._elapsed(start), saved)
                    continue
                stop = self._evaluation_step(epoch, lr, loss, train_s, start, valid_data, test_data,
                                             verbose, show_progress, saved, callback_fn)
                if self.best_epoch_ is not None and self.best_valid_score is not None:
                    bar.set_postfix_str(f"best epoch {self.best_epoch_}: {self.best_valid_score:.4f}")
                if stop:
                    break
        self.wall_seconds_ = self._elapsed(start)
        self._end(verbose, valid_data)
        return self.best_valid_score, self.best_valid_result

    def _elapsed(self, start: float) -> float:
        """The run's wall seconds so far: those before a resume, then this fit's since ``start``."""
        return self.elapsed_offset_ + time.time() - start

    def _begin(self, train_data: Any, saved: bool) -> None:
        resume = self._resume
        self._clear_run_state()
        self.train_data_ = train_data
        self.eval_collector.data_collect(train_data)
        if self.config["train_neg_sample_args"].get("dynamic", False):
            train_data.get_model(self.model)
        if resume is None:  # a fresh run, or one from a stock checkpoint (after its epoch)
            self.start_epoch = self.epochs_trained_ = self.origin_.epoch + 1 if self.origin_ is not None else 0
            self.controller.reset()
            if self.run_dir is not None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self.trace_ = TraceWriter(self.run_dir / "trace.jsonl")
                self.trace_.header(**self._header())
        else:
            state = begin_resumed(self, resume, train_data)
            self.trace_, self.best_ = state.trace, state.best
            self.start_epoch = self.epochs_trained_ = state.start_epoch
            self.elapsed_offset_ = state.elapsed_seconds
        self.per_user_recorder.begin(self.run_dir if self.trace_ is not None else None,
                                     resumed=resume is not None, record_test=self.record_test)

    def _header(self) -> dict[str, Any]:
        settings = self.policy.settings_mapping()
        cfg = self.run_config if self.run_config is not None else dict(self.config.final_config_dict)
        return {"config": jsonable(cfg), "policy": jsonable(settings),
                "lr_schedule": self.schedule.settings if self.schedule is not None else None,
                "versions": versions(), "model": self.config["model"], "dataset": self.config["dataset"],
                "seed": self.config["seed"], "epochs": self.epochs, "eval_step": self.eval_step,
                "record_test": self.record_test, "monitor": self.policy.monitor_name, "mode": self.policy.mode,
                **({"from_recbole": self.origin_.describe()} if self.origin_ is not None else {}),
                **({"world_size": self.ranks_.world_size} if self.ranks_ else {})}

    # --- the steps of one epoch -----------------------------------------------------------------
    def _apply_lr(self, epoch: int) -> None:
        if self.schedule is None:
            return
        lr = self.schedule.lr_for_epoch(epoch)
        lr = self.ranks_.broadcast_float(lr) if self.ranks_ is not None else lr  # rank 0's LR action for all
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _train_step(self, train_data: Any, epoch: int, verbose: bool, show_progress: bool) -> tuple[Any, float]:
        batches = show_progress or (self.epoch_progress and self.last_epoch_seconds_ > LONG_EPOCH_SECONDS)
        t0 = time.time()
        loss = self._train_epoch(train_data, epoch, show_progress=batches)
        loss = self._reduced_loss(loss)  # several processes: the ranks' mean, before the log, policy or trace
        t1 = time.time()
        self.last_epoch_seconds_ = t1 - t0
        self.train_loss_dict[epoch] = loss_value(loss)
        if verbose:
            self.logger.info(self._generate_train_loss_output(epoch, t0, t1, loss))
        self._add_train_loss_to_tensorboard(epoch, loss)
        return loss, t1 - t0

    def _check_nan(self, loss: torch.Tensor) -> None:
        """RecBole raises a bare ValueError on a NaN loss (and lets inf through); stop cleanly on both.

        Runs on every batch: a scalar loss is read with one ``item()`` (as cheap as RecBole's ``isnan``);
        ``torch.isfinite`` would build three small tensors, part of them through autograd.
        """
        value = loss.item() if loss.numel() == 1 else float(loss.detach().float().sum())
        if not math.isfinite(value):
            if self.ranks_ is None:
                raise NonFiniteLossError(value)
            self._bad_loss = value if self._bad_loss is None else self._bad_loss  # one rank must not stop alone

    def _stop_on_bad_loss(self, epoch: int, value: float, lr: float) -> None:
        self.epochs_trained_ = epoch + 1
        best = (f"the weights of epoch {self.best_epoch_} are restored" if self.best_epoch_ is not None
                else "no evaluation ran before it, so there are no good weights to restore")
        self.stop_ = StopInfo(epoch, "non_finite", f"stopped at epoch {epoch}: the training loss became {value} during "
                              f"the epoch (learning rate {lr:.3g}); {best}; lower learning_rate or set clip_grad_norm")

    def _is_eval_epoch(self, epoch: int, valid_data: Any) -> bool:
        return bool(valid_data) and self.eval_step > 0 and (epoch + 1) % self.eval_step == 0

    def _evaluation_step(self, epoch: int, lr: float, loss: Any, train_s: float, start: float, valid_data: Any,
                         test_data: Any, verbose: bool, show_progress: bool, saved: bool,
                         callback_fn: Callable[[int, float | None], Any] | None) -> bool:
        t0 = time.time()
        valid = dict(self.evaluate(valid_data, load_best_model=False, show_progress=show_progress))
        per_user = self.per_user_recorder.record("valid", epoch)  # sidecars are written before the trace record
        eval_s = time.time() - t0
        test, test_s = None, None
        if self.record_test:
            t1 = time.time()
            test = dict(self.evaluate(test_data, load_best_model=False, show_progress=show_progress))
            self.per_user_recorder.record("test", epoch)
            test_s = time.time() - t1
        elapsed = self._elapsed(start)
        step = self.controller.update(epoch, valid, train_loss=loss_value(loss), elapsed_seconds=elapsed,
                                      per_user=self.per_user_recorder.policy_values(per_user))
        decision, action, stop = step.decision, step.action, step.stop
        new_best = decision.new_best
        if self.ranks_ is not None:  # one decision: rank 0's, taken by every rank
            stop, new_best = self.ranks_.agree(epoch, stop, new_best)
        if new_best:
            self._snapshot_best(epoch, valid, test, decision, saved)
        if self.averager is not None:
            self.averager.observe(decision, self.model, per_user)
        self._record(epoch, lr, loss, valid, test, elapsed, train_s, eval_s, test_s, decision, action)
        self._report(epoch, eval_s, valid, decision, action, verbose)
        if stop:
            self.stop_ = StopInfo(epoch, str(decision.reason.value), decision.message)
        save_last(self, epoch, self._elapsed(start), saved)
        if callback_fn is not None:
            callback_fn(epoch, decision.value)
        return stop

    def _snapshot_best(self, epoch: int, valid: dict[str, float], test: dict[str, float] | None, decision: Any,
                       saved: bool) -> None:
        self.best_ = BestSnapshot.take(self.model, epoch, valid, decision.value, test)
        if saved and self.run_dir is not None:
            self._save_best()

    def _save_best(self) -> None:
        """``best.pth``: the best snapshot, or at the end the average restored instead (saying so)."""
        assert self.run_dir is not None and self.best_ is not None
        snapshot = self.restored_ if self.restored_ is not None else self.best_
        payload = snapshot.best_file(self.model, self.config["model"], self.config["dataset"])
        if self.restore_ is not None:
            payload["restored"] = checkpoint.plain(self.restore_.to_dict())
        checkpoint.atomic_save(payload, self.run_dir / "best.pth")

    def _record(self, epoch: int, lr: float, loss: Any, valid: dict[str, float], test: dict[str, float] | None,
                elapsed: float, train_s: float, eval_s: float, test_s: float | None, decision: Any,
                action: PlateauAction | None) -> None:
        if self.trace_ is not None:
            self.trace_.record(**evaluation_log.record_fields(
                epoch, lr, loss, valid, test, elapsed, train_s, eval_s, test_s, decision, action,
                self.per_user_recorder.signals))

    def _report(self, epoch: int, eval_s: float, valid: dict[str, float], decision: Any,
                action: PlateauAction | None, verbose: bool) -> None:
        evaluation_log.report(self.logger if verbose else None, self.tensorboard, self.policy.monitor_name, epoch,
                              eval_s, valid, decision, action, float(self.optimizer.param_groups[0]["lr"]))

    def _end(self, verbose: bool, valid_data: Any = None) -> None:
        if self.stop_ is None:
            best = f"best epoch {self.best_epoch_}" if self.best_epoch_ is not None else "no evaluation ran"
            self.stop_ = StopInfo(self.epochs_trained_ - 1, "max_epochs",
                                  f"trained all {self.epochs} epochs (epochs: {self.epochs}) without an early stop; "
                                  f"{best}; raise epochs to train longer")
        if self.best_ is not None:
            self.best_.restore(self.model, self.device)
            self.restore_ = averaging.restore_average(self, valid_data)  # an average checked on validation
            if self._saved_ and self.run_dir is not None:  # best.pth always holds what was restored
                self._save_best()
            restored = f"restored the best weights from epoch {self.best_epoch_}"
            if self.restore_ is not None:
                restored = self.restore_.sentence(self.policy.monitor_name)
                self.stop_ = StopInfo(self.stop_.epoch, self.stop_.reason, f"{self.stop_.message}; {restored}")
        else:
            restored = "no evaluation ran, so the last weights are kept"
        if verbose:
            self.logger.info(set_color(self.stop_message_, "yellow"))
            self.logger.info(restored)
        if self.trace_ is not None:
            self.trace_.footer(stop_epoch=self.stop_epoch_, stop_reason=self.stop_reason_, message=self.stop_message_,
                               best_epoch=self.best_epoch_, epochs_trained=self.epochs_trained_,
                               wall_seconds=self.wall_seconds_, **self._restored_entry())
        if self.best_valid_score is not None:
            self._add_hparam_to_tensorboard(self.best_valid_score)

    # --- evaluation and results -------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, eval_data: Any, load_best_model: bool = True, model_file: str | None = None,
                 show_progress: bool = False) -> Any:
        """RecBole's ``evaluate``, but the best weights come from memory or a weights-only rec_es checkpoint.

        ``model_file`` (a rec_es ``best.pth``) wins over the in-memory snapshot; with neither, the
        current weights are evaluated.
        """
        if load_best_model:
            if model_file is not None:
                data = checkpoint.load(model_file, kind="best")
                self.model.load_state_dict(data["state_dict"])
                self.model.load_other_parameter(checkpoint.on_device(data.get("other_parameter"), self.device))
            elif self.restored_ is not None or self.best_ is not None:
                (self.restored_ or self.best_).restore(self.model, self.device)
        self._eval_sampler = getattr(eval_data, "sampler", None)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def summary(self, test_result: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The ``summary.json`` content of the last fit (``test_result`` from the restored best weights)."""
        return jsonable({
            "stop_epoch": self.stop_epoch_, "best_epoch": self.best_epoch_, "stop_reason": self.stop_reason_,
            "message": self.stop_message_, "best_valid_result": self.best_valid_result,
            "best_valid_score": self.best_valid_score,
            "test_result": dict(test_result) if test_result is not None else None,
            "epochs_trained": self.epochs_trained_, "wall_seconds": self.wall_seconds_,
            "monitor": self.policy.monitor_name,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "best_checkpoint": str(self.run_dir / "best.pth") if self.run_dir is not None and
            (self.run_dir / "best.pth").exists() else None, **self._restored_entry(),
        })

    def _restored_entry(self) -> dict[str, Any]:
        """``{"restored": ...}`` after a fit that restored (or tried) an average of weights, else ``{}``."""
        return {"restored": jsonable(self.restore_.to_dict())} if self.restore_ is not None else {}

    def write_summary(self, test_result: Mapping[str, float] | None = None) -> Path:
        """Write ``RUN/summary.json`` atomically; returns its path."""
        if self.run_dir is None:
            raise StateError("write_summary needs a run_dir")
        from rec_es.rundir.paths import atomic_write  # never follows a link planted in a received run directory

        return atomic_write(self.run_dir / "summary.json",
                            (json.dumps(self.summary(test_result), indent=2, allow_nan=False) + "\n").encode())


def _recbole_sentinel(name: str, value: Any) -> None:
    """RecBole's ``Trainer.__init__`` sets ``best_valid_score`` to +-inf and ``best_valid_result`` to None; rec_es
    reads both from its best snapshot (None: no best yet), so only those assignments are accepted."""
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return
    raise AttributeError(f"{name} is read from the best snapshot (trainer.best_); it cannot be set")


__all__ = ["EarlyStoppingTrainer", "NonFiniteLossError", "read_trace"]
