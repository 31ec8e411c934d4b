"""StoppingPolicy: monitor + smoothing + warmup + the registry's rules, with best tracking and versioned state.

Each ``update`` first brings every counter up to date (so nothing latches), then asks the rules in a fixed
order, Lightning's: non-finite -> stopping threshold -> divergence -> plateau rules (patience and the other
plateau criteria, combined any_of or all_of) -> budgets. The first rule that fires is the reason.
The policy itself keeps only what every rule shares: the smoothed monitor, the best so far, the wait since
the last improvement and the weights to restore; each rule keeps its own state (``rec_es.policy.base``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from rec_es.policy.errors import StateError
import rec_es.policy.rules as rules
from rec_es.policy.base import Context, Fired, Rule, Stage, fmt
from rec_es.policy.compare import is_improvement
from rec_es.policy.rules.patience import waited
from rec_es.policy.schema import PolicySettings, parse_settings
from rec_es.policy.smoothing import param, smoother
from rec_es.policy.types import Decision, PerUser, StopReason

STATE_FORMAT = "rec_es.policy_state"
#: the state layout this version writes; it reads every version from 1 on (a rule's ``state_since``)
STATE_VERSION = max(part.state_since for part in rules.PARTS)


@dataclass
class _State:
    """What the policy core learns during a fit; ``reset()`` replaces it whole (and every rule's state)."""

    evaluations: int = 0                 # evaluations counted (from start_from_epoch on)
    last_epoch: int | None = None        # last epoch seen
    smoother: dict[str, Any] = field(default_factory=dict)
    best_score: float | None = None      # best (smoothed) monitor value: the reference for improvement
    improved_epoch: int | None = None    # epoch of the last improvement
    wait_count: int = 0                  # evaluations since the last improvement
    wait_epochs: int = 0                 # epochs spanned by those evaluations
    restore_score: float | None = None   # value (raw or smoothed, per best_by) of the weights to restore
    restore_epoch: int | None = None


_CORE_KEYS = tuple(f.name for f in fields(_State))


def _hooked(name: str) -> tuple[Rule, ...]:
    """The parts that override hook ``name`` (so update() skips the no-op defaults)."""
    return tuple(p for p in rules.PARTS if getattr(type(p), name) is not getattr(Rule, name))


class StoppingPolicy:
    """Decides after each evaluation whether training should stop and which weights are the best.

    Build it with ``rec_es.build_policy(mapping)``. ``epoch`` is 0-based like RecBole's ``epoch_idx`` and must
    increase from call to call. Reusing the object for a second fit requires nothing: ``fit`` calls ``reset()``,
    and a fresh policy and a reset one decide identically.
    """

    _observers = _hooked("observe")
    _confirms = _hooked("confirms_improvement")
    _holds = _hooked("holds")
    _measures = _hooked("measured")
    _gates = _hooked("accepts_improvement")
    _on_improvement = _hooked("on_improvement")
    _updates = _hooked("update")
    _restates = _hooked("restate")
    _statuses = _hooked("status")
    _patience = _hooked("patience")
    _margins = _hooked("min_delta")
    _grants = _hooked("grant_patience")
    _stages = tuple((stage, tuple(p for p in rules.STOPPING if p.stage is stage)) for stage in Stage)

    def __init__(self, settings: PolicySettings, budget: int | None = None) -> None:
        self.settings = settings
        #: the run's epoch budget (RecBole's ``epochs``): not a setting, not state; the trainer and replay set it
        #: so a rule can weigh what is left (the still-learning rule); None: unknown
        self.budget = budget
        self.monitor = settings.monitor
        self._smoother = smoother(settings)
        self._param = param(settings)
        self._criteria = sum(p.criteria(settings) for p in rules.STOPPING if p.stage is Stage.PLATEAU)
        self._per_user = tuple(dict.fromkeys(k for p in rules.PARTS for k in p.per_user(settings)))
        self.reset()

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
        """Effective patience: the setting, as the patience modifiers of the registry change it."""
        value: int | None = None
        for part in self._patience:
            value = part.patience(self.settings, self._rules[part.name], value)
        return value

    @property
    def waited(self) -> int:
        """How long since the last improvement, in ``patience_unit`` (evaluations or epochs)."""
        return waited(self.settings, self._state)

    @property
    def per_user_keys(self) -> tuple[str, ...]:
        """Metric keys whose per-user scores a rule reads: pass them to ``update(per_user=...)``."""
        return self._per_user

    @property
    def changes_training(self) -> bool:
        """Policies never change training; LR schedules do (see rec_es.policy.schedule)."""
        return False

    def settings_mapping(self) -> dict[str, Any]:
        return self.settings.to_mapping()

    def describe_monitor(self) -> str:
        return self.monitor.name + self._smoother.describe(self._param)

    # ----- state ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything learned; the policy then decides exactly like a freshly built one."""
        self._state = _State()
        self._rules: dict[str, dict[str, Any]] = {p.name: p.fresh_state(self.settings) for p in rules.PARTS}

    def grant_patience(self) -> None:
        """Start a fresh patience window (used by reduce-on-plateau after lowering the LR).

        Resets the wait counters and what each rule counts towards a plateau stop; the best so far is kept.
        """
        st = self._state
        st.wait_count = st.wait_epochs = 0
        for part in self._grants:
            part.grant_patience(self._rules[part.name])

    def restore_instead(self, decision: Decision) -> None:
        """Make ``decision``'s epoch the weights to restore, scored as ``best_by`` scores it.

        For a run resumed under another policy: the replayed policy may prefer an epoch whose weights were never
        kept; the caller substitutes the best epoch it does have. Improvement tracking (``best_score``) is kept.
        """
        st = self._state
        st.restore_epoch = decision.epoch
        st.restore_score = decision.value if self.settings.best_by == "raw" else decision.smoothed

    def state_dict(self) -> dict[str, Any]:
        """Versioned, JSON-able state (no settings): ``{"format", "version", "monitor", "mode", "state"}``;
        ``state`` is one flat mapping of the core's keys and every rule's, a copy that later updates leave alone."""
        flat = asdict(self._state)  # asdict copies the core's lists and dicts; the rules' states are copied here
        for state in self._rules.values():
            flat.update(copy.deepcopy(state))
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "monitor": self.monitor.name,
                "mode": self.mode, "state": flat}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from ``state_dict()``; refuse other formats, versions, monitors or missing keys.

        A state written before a rule existed (an older version) gets that rule's fresh state.
        """
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise StateError(f"not a rec_es policy state (expected format {STATE_FORMAT!r})")
        version = state.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= STATE_VERSION:
            raise StateError(f"policy state version {version!r} cannot be loaded; this rec_es reads version {STATE_VERSION}")
        if (state.get("monitor"), state.get("mode")) != (self.monitor.name, self.mode):
            raise StateError(f"policy state is for monitor {state.get('monitor')!r} ({state.get('mode')}), "
                             f"not {self.monitor.name!r} ({self.mode}); build the policy with the same monitor")
        inner = state.get("state")
        fresh = {p.name: p.fresh_state(self.settings) for p in rules.PARTS}
        saved = {p.name for p in rules.PARTS if p.state_since <= version}
        names = [*_CORE_KEYS, *(k for name in saved for k in fresh[name])]
        missing = [n for n in names if not isinstance(inner, Mapping) or n not in inner]
        if missing:
            raise StateError(f"policy state is missing keys: {', '.join(missing)}")
        unknown = sorted(set(inner) - set(names))
        if unknown:
            raise StateError(f"policy state has unknown keys: {', '.join(unknown)}")
        loaded = {p.name: p.load_state(self.settings, {k: inner[k] for k in fresh[p.name]}) if p.name in saved
                  else fresh[p.name] for p in rules.PARTS}
        self._state = _State(**{n: inner[n] for n in _CORE_KEYS})
        self._state.smoother = dict(self._state.smoother)
        self._rules = loaded

    # ----- the decision --------------------------------------------------------------------------------
    def update(self, epoch: int, metrics: Mapping[str, float], train_loss: float | None = None,
               elapsed_seconds: float | None = None, per_user: PerUser | None = None) -> Decision:
        """Take one evaluation (RecBole's result dict for ``epoch``) and decide.

        ``train_loss``, ``elapsed_seconds`` (since the fit started) and ``per_user`` (metric key -> per-user
        scores of this evaluation) are passed to the rules that read them (a training-progress criterion, a time
        budget, a significance test).
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
                                  f"epoch {epoch}: {self.monitor.name} {fmt(raw)} ignored (start_from_epoch {s.start_from_epoch})")
        st.evaluations += 1
        finite = math.isfinite(raw)
        smoothed = None
        new_best = False
        if finite:
            smoothed, st.smoother = self._smoother.step(self._param, st.smoother, raw)
        ctx = Context(s, st, epoch, raw, smoothed, finite, False, train_loss, elapsed_seconds, per_user,
                      self.describe_monitor(), self._improves, budget=self.budget)
        for part in self._observers:
            part.observe(ctx, self._rules[part.name])
        ctx.margin = self._margin()
        if finite:
            ctx.improved = self._improves(smoothed, st.best_score) and all(
                part.confirms_improvement(ctx, self._rules[part.name]) for part in self._confirms)
            candidate = raw if s.best_by == "raw" else smoothed
            new_best = self._improves(candidate, st.restore_score)
            if new_best:
                st.restore_score, st.restore_epoch = candidate, epoch
        improved = ctx.improved
        self._count_wait(ctx, gap)
        ctx.patience = self.patience
        fired = {part.name: [self._restated(ctx, f) for f in part.update(ctx, self._rules[part.name])]
                 for part in self._updates}
        stop = self._stop_rule(ctx, fired) if s.enabled else None
        held = None
        if stop is not None and stop[0] is Stage.PLATEAU:
            held = next((why for part in self._holds
                         if (why := part.holds(ctx, self._rules[part.name], stop[1]))), None)
        measured: dict[str, Any] = {}
        for part in self._measures:
            measured.update(part.measured(ctx, self._rules[part.name]))
        if stop is not None and held is not None:
            measured["held"] = {"reason": stop[1].reason, "because": held}
            return self._decision(epoch, raw, smoothed, improved, new_best, None,
                                  f"{self._status(ctx)}; {stop[1].reason} would stop, held: {held}", measured)
        if stop is None:
            return self._decision(epoch, raw, smoothed, improved, new_best, None, self._status(ctx), measured)
        return self._decision(epoch, raw, smoothed, improved, new_best, stop[1],
                              f"stopped at epoch {epoch}: {stop[1].clause}; {stop[1].hint}", measured)

    def _margin(self) -> float:
        """The improvement margin of this evaluation: 0 folded through every rule (the ``min_delta`` owner
        gives the setting, or the noise it measured with ``min_delta: auto``)."""
        margin = 0.0
        for part in self._margins:
            margin = part.min_delta(self.settings, self._rules[part.name], margin)
        return margin

    def _improves(self, value: float, reference: float | None) -> bool:
        s = self.settings
        return is_improvement(value, reference, self.mode, self._margin(), s.min_delta_mode == "rel", s.ties_improve)

    def _count_wait(self, ctx: Context, gap: int) -> None:
        """An improvement restarts the wait unless a rule refuses it; anything else adds to it."""
        st = self._state
        if ctx.improved:
            previous = st.best_score
            st.best_score, st.improved_epoch = ctx.smoothed, ctx.epoch
            if all(part.accepts_improvement(ctx, self._rules[part.name]) for part in self._gates):
                st.wait_count = st.wait_epochs = 0
                for part in self._on_improvement:
                    part.on_improvement(ctx, self._rules[part.name], previous)
                return
        st.wait_count += 1
        st.wait_epochs += gap

    def _restated(self, ctx: Context, fired: Fired) -> Fired:
        for part in self._restates:
            fired = part.restate(ctx, self._rules[part.name], fired) or fired
        return fired

    def _stop_rule(self, ctx: Context, fired: Mapping[str, list[Fired]]) -> tuple[Stage, Fired] | None:
        """The first rule that fires in Lightning's order, and its stage; warmup holds back thresholds and
        plateau rules."""
        for stage, parts in self._stages:
            if stage in (Stage.THRESHOLD, Stage.PLATEAU) and ctx.epoch < ctx.settings.warmup:
                continue
            said = [f for part in parts for f in fired.get(part.name, ())]
            if said:
                found = self._combined(said) if stage is Stage.PLATEAU else said[0]
                if found is not None:
                    return stage, found
        return None

    def _combined(self, fired: list[Fired]) -> Fired | None:
        """``any_of``: the first plateau rule that fired; ``all_of``: only when every one fired at once."""
        n = self._criteria
        if self.settings.combine == "any_of":
            return fired[0]
        if not n or len(fired) != n:
            return None
        if n == 1:
            return fired[0]
        return Fired(StopReason.ALL_OF.value, "every rule fired (combine: all_of): " + "; and ".join(f.clause for f in fired),
                     "relax any one of them, e.g. " + fired[0].hint)

    def _status(self, ctx: Context) -> str:
        s, st = self.settings, self._state
        line = f"epoch {ctx.epoch}: {self.monitor.name} {fmt(ctx.raw)}"
        if self._smoother.smooths:
            line += f" (smoothed {fmt(ctx.smoothed)})"
        if self._smoother.smooths:  # two bests: the smoothed one rules improve on, the one whose weights are kept
            line += f", best smoothed {fmt(st.best_score)} at epoch {st.improved_epoch}"
            if st.restore_epoch is not None:
                line += f", restores epoch {st.restore_epoch} (best {s.best_by} {fmt(st.restore_score)})"
        else:
            line += f", best {fmt(st.best_score)} at epoch {st.improved_epoch}"
        for part in self._statuses:
            line += part.status(ctx, self._rules[part.name])
        if ctx.improved:
            line += ", improved"
        if ctx.epoch < s.warmup:
            line += f" (warmup: no stop before epoch {s.warmup})"
        if not s.enabled:
            line += " (stopping disabled)"
        return line

    def _decision(self, epoch: int, raw: float, smoothed: float | None, improved: bool, new_best: bool,
                  fired: Fired | None, message: str, measured: Mapping[str, Any] | None = None) -> Decision:
        st = self._state
        return Decision(epoch=epoch, stop=fired is not None, improved=improved, new_best=new_best,
                        reason=StopReason(fired.reason) if fired else StopReason.NOT_STOPPED, message=message,
                        value=raw, smoothed=smoothed, best_epoch=st.restore_epoch, best_score=st.restore_score,
                        wait_count=st.wait_count, wait_epochs=st.wait_epochs, patience=self.patience,
                        measured=dict(measured or {}))


def build_policy(mapping: Mapping[str, Any] | None = None, source: str | None = None,
                 budget: int | None = None) -> StoppingPolicy:
    """Build a policy from an ``early_stopping:`` mapping (as in a property file); raise ConfigError if invalid.
    ``budget``: the run's epoch budget, for rules that weigh what is left (settable later as ``policy.budget``)."""
    return StoppingPolicy(parse_settings(mapping, source=source), budget=budget)
