"""StoppingPolicy: monitor + smoothing + warmup + rules, with best tracking and versioned state.

Each ``update`` first brings every counter up to date (so nothing latches), then asks the rules in a fixed
order, Lightning's: non-finite -> stopping threshold -> divergence -> plateau rules (patience / baseline /
Prechelt, combined any_of or all_of) -> budgets. The first rule that fires is the reason.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from rec_es.errors import RecEsError, StateError
from rec_es.policy import rules
from rec_es.policy.schema import PolicySettings, parse_settings
from rec_es.policy.smoothing import describe, smooth
from rec_es.policy.types import Decision, StopReason

STATE_FORMAT = "rec_es.policy_state"
STATE_VERSION = 1


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.6g}"


@dataclass
class _State:
    """Everything a policy learns during a fit; ``reset()`` replaces it whole."""

    evaluations: int = 0                 # evaluations counted (from start_from_epoch on)
    last_epoch: int | None = None        # last epoch seen
    smoother: dict[str, Any] = field(default_factory=dict)
    best_score: float | None = None      # best (smoothed) monitor value: the reference for improvement
    improved_epoch: int | None = None    # epoch of the last improvement
    wait_count: int = 0                  # evaluations since the last improvement
    wait_epochs: int = 0                 # epochs spanned by those evaluations
    patience_grown: int | None = None    # patience earned by dynamic_patience (the setting still bounds it)
    baseline_beaten: bool = False
    restore_score: float | None = None   # value (raw or smoothed, per best_by) of the weights to restore
    restore_epoch: int | None = None
    error_opt: float | None = None       # Prechelt: lowest validation error so far
    prechelt: list[dict[str, Any]] = field(default_factory=list)  # per criterion: strip losses, last strip error, rises


@dataclass(frozen=True)
class _Fired:
    reason: StopReason
    clause: str
    hint: str


class StoppingPolicy:
    """Decides after each evaluation whether training should stop and which weights are the best.

    Build it with ``rec_es.build_policy(mapping)``. ``epoch`` is 0-based like RecBole's ``epoch_idx`` and must
    increase from call to call. Reusing the object for a second fit requires nothing: ``fit`` calls ``reset()``,
    and a fresh policy and a reset one decide identically.
    """

    def __init__(self, settings: PolicySettings) -> None:
        self.settings = settings
        self.monitor = settings.monitor
        self._state = self._fresh_state()

    # ----- public properties ---------------------------------------------------------------------------
    @property
    def monitor_name(self) -> str:
        return self.monitor.name

    @property
    def monitor_keys(self) -> tuple[str, ...]:
        return self.monitor.keys

    @property
    def mode(self) -> str:
        return self.monitor.mode

    @property
    def best_epoch(self) -> int | None:
        """Epoch whose weights should be restored (``None`` before the first finite evaluation)."""
        return self._state.restore_epoch

    @property
    def best_score(self) -> float | None:
        """Monitor value at ``best_epoch`` (raw or smoothed, per ``best_by``)."""
        return self._state.restore_score

    @property
    def wait_count(self) -> int:
        return self._state.wait_count

    @property
    def patience(self) -> int | None:
        """Effective patience: the setting, raised by dynamic_patience (capped at its max_patience)."""
        s, grown = self.settings, self._state.patience_grown
        if s.patience is None or grown is None or s.dynamic_patience is None:
            return s.patience
        cap = s.dynamic_patience.max_patience
        return max(s.patience, grown if cap is None else min(cap, grown))

    @property
    def waited(self) -> int:
        """How long since the last improvement, in ``patience_unit`` (evaluations or epochs)."""
        st = self._state
        return st.wait_epochs if self.settings.patience_unit == "epochs" else st.wait_count

    @property
    def changes_training(self) -> bool:
        """Policies never change training; LR schedules do (see rec_es.schedule)."""
        return False

    def settings_mapping(self) -> dict[str, Any]:
        return self.settings.to_mapping()

    def describe_monitor(self) -> str:
        s = self.settings
        return self.monitor.name + describe(s.smoothing, s.smoothing_param)

    # ----- state ---------------------------------------------------------------------------------------
    def _fresh_state(self) -> _State:
        s = self.settings
        return _State(prechelt=[{"losses": [], "prev_error": None, "rises": 0} for _ in s.prechelt])

    def reset(self) -> None:
        """Forget everything learned; the policy then decides exactly like a freshly built one."""
        self._state = self._fresh_state()

    def grant_patience(self) -> None:
        """Start a fresh patience window (used by reduce-on-plateau after lowering the LR).

        Resets the wait counters and Prechelt UP's rise count; the best so far is kept.
        """
        st = self._state
        st.wait_count = st.wait_epochs = 0
        for p in st.prechelt:
            p["rises"] = 0

    def state_dict(self) -> dict[str, Any]:
        """Versioned, JSON-able state (no settings): ``{"format", "version", "monitor", "mode", "state"}``."""
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "monitor": self.monitor.name,
                "mode": self.mode, "state": asdict(self._state)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from ``state_dict()``; refuse other formats, versions, monitors or missing keys."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise StateError(f"not a rec_es policy state (expected format {STATE_FORMAT!r})")
        if state.get("version") != STATE_VERSION:
            raise StateError(f"policy state version {state.get('version')!r} cannot be loaded; this rec_es reads version {STATE_VERSION}")
        if (state.get("monitor"), state.get("mode")) != (self.monitor.name, self.mode):
            raise StateError(f"policy state is for monitor {state.get('monitor')!r} ({state.get('mode')}), "
                             f"not {self.monitor.name!r} ({self.mode}); build the policy with the same monitor")
        inner = state.get("state")
        names = [f.name for f in fields(_State)]
        missing = [n for n in names if not isinstance(inner, Mapping) or n not in inner]
        if missing:
            raise StateError(f"policy state is missing keys: {', '.join(missing)}")
        unknown = sorted(set(inner) - set(names))
        if unknown:
            raise StateError(f"policy state has unknown keys: {', '.join(unknown)}")
        if len(inner["prechelt"]) != len(self.settings.prechelt):
            raise StateError("policy state was saved with a different number of prechelt criteria")
        loaded = {n: inner[n] for n in names}
        loaded["smoother"] = dict(loaded["smoother"])
        loaded["prechelt"] = [{"losses": list(p["losses"]), "prev_error": p["prev_error"], "rises": p["rises"]}
                              for p in loaded["prechelt"]]
        self._state = _State(**loaded)

    # ----- the decision --------------------------------------------------------------------------------
    def update(self, epoch: int, metrics: Mapping[str, float], train_loss: float | None = None,
               elapsed_seconds: float | None = None) -> Decision:
        """Take one evaluation (RecBole's result dict for ``epoch``) and decide.

        ``train_loss`` is needed by Prechelt's PQ; ``elapsed_seconds`` (since the fit started) by ``max_minutes``.
        """
        s, st = self.settings, self._state
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0 (got {epoch!r})")
        if st.last_epoch is not None and epoch <= st.last_epoch:
            raise ValueError(f"epoch {epoch} is not after the previous evaluation's epoch {st.last_epoch}; "
                             "call reset() before a new fit")
        raw = self.monitor.score(metrics)
        gap = epoch - (-1 if st.last_epoch is None else st.last_epoch)
        st.last_epoch = epoch
        if epoch < s.start_from_epoch:
            return self._decision(epoch, raw, None, False, False, None,
                                  f"epoch {epoch}: {self.monitor.name} {_fmt(raw)} ignored (start_from_epoch {s.start_from_epoch})")
        st.evaluations += 1
        finite = math.isfinite(raw)
        smoothed = None
        improved = new_best = False
        if finite:
            smoothed, st.smoother = smooth(s.smoothing, s.smoothing_param, st.smoother, raw)
            improved = self._improves(smoothed, st.best_score)
            candidate = raw if s.best_by == "raw" else smoothed
            new_best = self._improves(candidate, st.restore_score)
            if new_best:
                st.restore_score, st.restore_epoch = candidate, epoch
        if improved:
            previous = st.best_score
            st.best_score, st.improved_epoch = smoothed, epoch
            if s.baseline is None or self._improves(smoothed, s.baseline):
                st.baseline_beaten = True
                st.wait_count = st.wait_epochs = 0
                self._extend_patience(previous, smoothed)
            else:  # Keras: an improvement that does not beat the baseline does not reset the wait
                st.wait_count += 1
                st.wait_epochs += gap
        else:
            st.wait_count += 1
            st.wait_epochs += gap
        prechelt_fired = self._update_prechelt(epoch, smoothed, train_loss) if finite else []
        fired = self._stop_rule(epoch, raw, smoothed, improved, finite, prechelt_fired, elapsed_seconds)
        if fired is None:
            return self._decision(epoch, raw, smoothed, improved, new_best, None, self._status(epoch, raw, smoothed, improved))
        return self._decision(epoch, raw, smoothed, improved, new_best, fired,
                              f"stopped at epoch {epoch}: {fired.clause}; {fired.hint}")

    def _improves(self, value: float, reference: float | None) -> bool:
        s = self.settings
        return rules.is_improvement(value, reference, self.mode, s.min_delta, s.min_delta_mode == "rel", s.ties_improve)

    def _extend_patience(self, previous: float | None, new: float) -> None:
        s, st = self.settings, self._state
        dyn = s.dynamic_patience
        if dyn is None or s.patience is None:
            return
        if previous is not None and previous != 0:
            gain = (new - previous) / abs(previous) * (1 if self.mode == "max" else -1)
            if gain < dyn.min_gain:
                return
        elapsed = st.last_epoch + 1 if s.patience_unit == "epochs" else st.evaluations
        st.patience_grown = max(st.patience_grown or 0, math.ceil(dyn.factor * elapsed))

    def _update_prechelt(self, epoch: int, smoothed: float, train_loss: float | None) -> list[_Fired]:
        s, st = self.settings, self._state
        if not s.prechelt:
            return []
        error = rules.prechelt_error(smoothed, self.mode, s.error_offset)
        if st.error_opt is None or error < st.error_opt:
            st.error_opt = error
        gl = rules.generalization_loss(error, st.error_opt)
        err_desc = f"error {_fmt(s.error_offset)} − {self.describe_monitor()}" if self.mode == "max" else f"error {self.describe_monitor()}"
        fired = []
        for spec, mem in zip(s.prechelt, st.prechelt):
            if spec.criterion == "GL":
                if gl > spec.alpha:
                    fired.append(_Fired(StopReason.PRECHELT_GL,
                                        f"generalization loss GL = {gl:.3g}% ({err_desc} = {_fmt(error)} is {gl:.3g}% above its lowest, "
                                        f"{_fmt(st.error_opt)}) exceeds alpha {spec.alpha:g} (Prechelt GL_{spec.alpha:g})",
                                        "raise the GL alpha in early_stopping.prechelt"))
                continue
            if spec.criterion == "PQ":
                if train_loss is None:
                    raise RecEsError("Prechelt PQ needs the training loss: pass train_loss= to update() at every evaluation")
                mem["losses"].append(float(train_loss))
            if st.evaluations % spec.strip:
                continue
            if spec.criterion == "PQ":
                progress = rules.training_progress(mem["losses"])
                mem["losses"] = []
                pq = rules.progress_quotient(gl, progress)
                if pq > spec.alpha:
                    fired.append(_Fired(StopReason.PRECHELT_PQ,
                                        f"PQ = GL/P_{spec.strip} = {pq:.3g} exceeds alpha {spec.alpha:g} (GL {gl:.3g}%, training progress "
                                        f"P_{spec.strip} {progress:.3g}‰ over the last {spec.strip} evaluations; Prechelt PQ_{spec.alpha:g})",
                                        "raise the PQ alpha in early_stopping.prechelt"))
            else:  # UP
                prev = mem["prev_error"]
                mem["rises"] = mem["rises"] + 1 if prev is not None and error > prev else 0
                mem["prev_error"] = error
                if mem["rises"] >= spec.s:
                    fired.append(_Fired(StopReason.PRECHELT_UP,
                                        f"{err_desc} rose at the end of {mem['rises']} successive strips of {spec.strip} evaluations "
                                        f"(now {_fmt(error)}; Prechelt UP_{spec.s})",
                                        "raise s of the UP criterion in early_stopping.prechelt"))
        return fired

    def _patience_rule(self, epoch: int, improved: bool) -> _Fired | None:
        s, st = self.settings, self._state
        patience = self.patience
        if patience is None or improved:
            return None
        if self.waited < patience:
            return None
        span = f"{st.wait_count} evaluation{'s' * (st.wait_count != 1)} ({st.wait_epochs} epoch{'s' * (st.wait_epochs != 1)})"
        grown = f" (dynamic_patience grew it from {s.patience})" if patience != s.patience else ""
        mon = self.describe_monitor()
        if st.improved_epoch is None:
            return _Fired(StopReason.PATIENCE, f"{mon} had no finite value for {span}",
                          "check the training, or set early_stopping.check_finite: stop")
        best = f"{_fmt(st.best_score)} at epoch {st.improved_epoch}"
        if s.preset == "recbole_legacy":
            return _Fired(StopReason.PATIENCE,
                          f"{mon} did not reach its best ({best}) for {span}, one more than stopping_step: {s.stopping_step} allows "
                          "(RecBole counts ties as reaching the best)",
                          "raise stopping_step, or use an early_stopping policy with a larger patience")
        if s.baseline is not None and not st.baseline_beaten:
            return _Fired(StopReason.BASELINE, f"{mon} did not beat baseline {_fmt(s.baseline)} within {span} (best {best})",
                          "lower early_stopping.baseline or raise early_stopping.patience")
        if s.min_delta == 0:
            by = "did not reach its best" if s.ties_improve else "did not improve"
        elif s.min_delta_mode == "rel":
            by = f"did not improve by {'at least' if s.ties_improve else 'more than'} {s.min_delta:.3g}×|best|"
        else:
            by = f"did not improve by {'≥' if s.ties_improve else 'more than'} {_fmt(s.min_delta)}"
        unit = f"patience {patience} {s.patience_unit}"
        return _Fired(StopReason.PATIENCE, f"{mon} {by} for {span} since epoch {st.improved_epoch} ({_fmt(st.best_score)}); "
                      f"{unit}{grown}", "raise early_stopping.patience or set early_stopping.enabled: false")

    def _stop_rule(self, epoch: int, raw: float, smoothed: float | None, improved: bool, finite: bool,
                   prechelt_fired: list[_Fired], elapsed: float | None) -> _Fired | None:
        s, st = self.settings, self._state
        if not s.enabled:
            return None
        mon = self.describe_monitor()
        if not finite and s.check_finite == "stop":
            return _Fired(StopReason.NON_FINITE, f"{self.monitor.name} is {raw} (not finite)",
                          "check the training (learning rate, loss), or set early_stopping.check_finite: miss to count it as a miss")
        if epoch >= s.warmup:
            if finite and s.stopping_threshold is not None and rules.better_than(smoothed, s.stopping_threshold, self.mode):
                return _Fired(StopReason.STOPPING_THRESHOLD,
                              f"{mon} {_fmt(smoothed)} is better than stopping_threshold {_fmt(s.stopping_threshold)} (good enough)",
                              "raise or remove early_stopping.stopping_threshold")
            if finite and s.divergence_threshold is not None and rules.worse_than(smoothed, s.divergence_threshold, self.mode):
                return _Fired(StopReason.DIVERGENCE_THRESHOLD,
                              f"{mon} {_fmt(smoothed)} is worse than divergence_threshold {_fmt(s.divergence_threshold)}",
                              "lower or remove early_stopping.divergence_threshold")
            patience = self._patience_rule(epoch, improved)
            fired = ([patience] if patience else []) + prechelt_fired
            n_rules = (s.patience is not None) + len(s.prechelt)
            if s.combine == "any_of" and fired:
                return fired[0]
            if s.combine == "all_of" and n_rules and len(fired) == n_rules:
                if n_rules == 1:
                    return fired[0]
                return _Fired(StopReason.ALL_OF, "every rule fired (combine: all_of): " + "; and ".join(f.clause for f in fired),
                              "relax any one of them, e.g. " + fired[0].hint)
        if s.max_epochs is not None and epoch + 1 >= s.max_epochs:
            return _Fired(StopReason.MAX_EPOCHS, f"the budget of early_stopping.max_epochs: {s.max_epochs} epochs is used up",
                          "raise early_stopping.max_epochs")
        if s.max_minutes is not None and elapsed is not None and elapsed / 60.0 >= s.max_minutes:
            return _Fired(StopReason.TIME_BUDGET,
                          f"{elapsed / 60.0:.1f} minutes of training reached the budget early_stopping.max_minutes: {s.max_minutes:g}",
                          "raise early_stopping.max_minutes")
        return None

    def _status(self, epoch: int, raw: float, smoothed: float | None, improved: bool) -> str:
        s, st = self.settings, self._state
        line = f"epoch {epoch}: {self.monitor.name} {_fmt(raw)}"
        if s.smoothing != "none":
            line += f" (smoothed {_fmt(smoothed)})"
        line += f", best {_fmt(st.best_score)} at epoch {st.improved_epoch}"
        if self.patience is not None:
            line += f", wait {self.waited}/{self.patience} {s.patience_unit}"
        if improved:
            line += ", improved"
        if epoch < s.warmup:
            line += f" (warmup: no stop before epoch {s.warmup})"
        if not s.enabled:
            line += " (stopping disabled)"
        return line

    def _decision(self, epoch: int, raw: float, smoothed: float | None, improved: bool, new_best: bool,
                  fired: _Fired | None, message: str) -> Decision:
        st = self._state
        return Decision(epoch=epoch, stop=fired is not None, improved=improved, new_best=new_best,
                        reason=fired.reason if fired else StopReason.NOT_STOPPED, message=message,
                        value=raw, smoothed=smoothed, best_epoch=st.restore_epoch, best_score=st.restore_score,
                        wait_count=st.wait_count, wait_epochs=st.wait_epochs, patience=self.patience)


def build_policy(mapping: Mapping[str, Any] | None = None, source: str | None = None) -> StoppingPolicy:
    """Build a policy from an ``early_stopping:`` mapping (as in a property file); raise ConfigError if invalid."""
    return StoppingPolicy(parse_settings(mapping, source=source))
