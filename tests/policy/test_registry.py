"""The rule registry: what it assembles (keys, reasons, order, state) and that each rule stays in its module."""
from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from rec_es import build_policy
from rec_es.policy import StopReason, rules
from rec_es.policy.base import Context, Rule, Stage
from rec_es.policy.policy import _CORE_KEYS
from rec_es.policy.schema import KEYS

REC_ES = Path(__file__).resolve().parents[2] / "rec_es"


def test_stop_reasons_are_the_ones_traces_hold() -> None:
    """StopReason, assembled from the rules, still has every value traces written so far use."""
    assert {r.value for r in StopReason} >= {
        "not_stopped", "patience", "baseline", "stopping_threshold", "divergence_threshold", "non_finite",
        "max_epochs", "time_budget", "prechelt_gl", "prechelt_pq", "prechelt_up", "all_of"}
    assert StopReason("prechelt_up") is StopReason.PRECHELT_UP and StopReason.PATIENCE == "patience"


def test_rules_are_asked_in_lightnings_order() -> None:
    """non-finite -> stopping threshold -> divergence -> plateau rules -> budgets (a new rule may come between)."""
    lightning = ["non_finite", "stopping_threshold", "divergence_threshold", "patience", "prechelt", "max_epochs",
                 "max_minutes"]
    assert [p.name for p in rules.STOPPING if p.name in lightning] == lightning
    assert [p.stage for p in rules.STOPPING] == sorted(p.stage for p in rules.STOPPING)
    assert rules.STOPPING[0].stage is Stage.FINITE


def test_keys_and_state_keys_are_unique() -> None:
    """Every key is declared once; no two parts (or a part and the core) share a state key."""
    names = [k.name for k in rules.KEYS]
    assert len(names) == len(set(names)) == len(KEYS)
    settings = build_policy({"monitor": "ndcg@10", "prechelt": {"criterion": "GL", "alpha": 1}}).settings
    state_keys = [*_CORE_KEYS, *(k for p in rules.PARTS for k in p.fresh_state(settings))]
    assert len(state_keys) == len(set(state_keys))
    assert len({p.name for p in rules.PARTS}) == len(rules.PARTS)


@pytest.mark.parametrize("reason", [r.value for r in StopReason if r is not StopReason.NOT_STOPPED])
def test_every_reason_names_a_setting_a_user_can_change(reason: str) -> None:
    """Each stop reason maps to an early_stopping key that exists, with the settings' value."""
    settings = build_policy({"monitor": "ndcg@10"}).settings
    found = rules.setting_for(reason, settings)
    assert found is not None and found["key"].startswith("early_stopping.")
    assert found["key"].split(".", 1)[1] in KEYS


def test_setting_values_and_unknown_reasons() -> None:
    """The value is the setting's (the criterion for Prechelt); unknown or no reason names nothing."""
    settings = build_policy({"monitor": "ndcg@10", "patience": 7, "max_minutes": 3}).settings
    assert rules.setting_for("patience", settings) == {"key": "early_stopping.patience", "value": 7}
    assert rules.setting_for("time_budget", settings) == {"key": "early_stopping.max_minutes", "value": 3.0}
    assert rules.setting_for("prechelt_pq", settings) == {"key": "early_stopping.prechelt", "value": "PQ"}
    assert rules.setting_for("all_of", settings) == {"key": "early_stopping.combine", "value": "any_of"}
    assert rules.setting_for(None, settings) is None and rules.setting_for("trace_ended", settings) is None


def test_only_patience_stops_are_deferrable() -> None:
    """An LR schedule may defer a patience stop and nothing else."""
    assert [r.value for r in StopReason if rules.deferrable(r.value)] == ["patience"]
    assert not rules.deferrable(None)


def test_worst_case_drops_the_value_dependent_rules() -> None:
    """check's earliest-stop estimate keeps patience and budgets but not thresholds, baseline or minutes."""
    s = build_policy({"monitor": "ndcg@10", "stopping_threshold": 0.9, "divergence_threshold": 0.1,
                      "baseline": 0.5, "max_minutes": 2, "max_epochs": 9, "patience": 4}).settings
    w = rules.worst_case(s)
    assert (w.stopping_threshold, w.divergence_threshold, w.baseline, w.max_minutes) == (None, None, None, None)
    assert (w.max_epochs, w.patience) == (9, 4)


def test_wait_is_described_by_the_first_plateau_rule_that_can() -> None:
    """Patience describes the wait; without it the Prechelt criteria; with neither, thresholds and budgets."""
    def wait(**m: object) -> tuple[str, str]:
        return rules.describe_wait(build_policy({"monitor": "ndcg@10", **m}).settings, 2)

    assert wait(patience=3) == ("early_stopping.patience",
                                "early_stopping.patience 3 evaluations with eval_step 2 waits 6 epochs without improvement")
    assert wait(patience=None, prechelt=[{"criterion": "GL", "alpha": 1}, {"criterion": "UP", "s": 2}]) == (
        "early_stopping.prechelt", "the patience rule is off (patience: null); Prechelt GL, UP decide")
    assert wait(patience=None) == ("early_stopping.patience", ("the patience rule is off (patience: null): only "
                                                               "thresholds and budgets can stop the run"))
    # patience in epochs rounds up to whole evaluations: 5 epochs at eval_step 2 wait 3 evaluations, 6 epochs
    assert wait(patience=5, patience_unit="epochs") == (
        "early_stopping.patience",
        "early_stopping.patience 5 epochs waits 6 epochs (3 evaluations every 2 epochs) without improvement")
    assert wait(patience=4, patience_unit="epochs")[1].startswith("early_stopping.patience 4 epochs waits 4 epochs (2 ")


#: names every module may use: patience is the shared vocabulary of Decision, the LR schedule and the reports;
#: non_finite and max_epochs are also the trainer's own stop reasons (a NaN loss mid-epoch, the epochs budget).
SHARED = {"patience", "non_finite", "max_epochs"}


@pytest.mark.parametrize("part", [p for p in rules.STOPPING + (rules.dynamic_patience.RULE, rules.baseline.RULE)
                                  if p.name not in SHARED], ids=lambda p: p.name)
def test_a_rule_is_named_only_in_its_module_and_the_registry(part: rules.Rule) -> None:
    """`grep -rl NAME rec_es/` finds a rule's name in its own module and the registry list, nowhere else."""
    found = sorted(str(p.relative_to(REC_ES)) for p in REC_ES.rglob("*.py") if part.name in p.read_text(encoding="utf-8"))
    home = next(m for m in sys.modules.values() if getattr(m, "__name__", "").startswith("rec_es.policy.rules.")
                and any(v is part for v in vars(m).values()))
    module = home.__name__.replace("rec_es.", "").replace(".", "/") + ".py"
    assert set(found) <= {module, "policy/rules/__init__.py"}, found


class _Bare(Rule):
    """A rule that overrides nothing: what a new rule inherits (docs/adding_a_rule.md)."""

    name = "bare"
    reasons: ClassVar[Mapping[str, str]] = {"BARE": "bare"}


def test_a_rule_inherits_hooks_that_change_nothing() -> None:
    """A rule that overrides no hook adds no plateau criterion, confirms and accepts every improvement and adds
    nothing to the status line."""
    settings = build_policy({"monitor": "ndcg@10"}).settings
    ctx = Context(settings=settings, core=None, epoch=0, raw=0.5, smoothed=0.5, finite=True, improved=True,
                  train_loss=None, elapsed_seconds=None, per_user=None, monitor="ndcg@10",
                  improves=lambda a, b: True)
    rule = _Bare()
    assert rule.criteria(settings) == 0
    assert rule.confirms_improvement(ctx, {}) is True
    assert rule.accepts_improvement(ctx, {}) is True
    assert rule.status(ctx, {}) == ""


def test_a_rule_names_its_first_key_for_its_own_reasons_only() -> None:
    """The default setting(): the rule's first key and its value for one of its reasons; None for another rule's
    reason, and None for a rule without keys."""
    settings = build_policy({"monitor": "ndcg@10", "patience": 7}).settings
    assert rules.patience.RULE.setting("patience", settings) == ("early_stopping.patience", 7)
    assert rules.patience.RULE.setting("time_budget", settings) is None
    assert _Bare().setting("bare", settings) is None


def test_loaded_states_are_copies() -> None:
    """Two policies loaded from one saved state go on independently, and neither changes the saved mapping (the
    still-learning rule appends to lists in its state at every evaluation)."""
    mapping = {"monitor": "ndcg@10", "still_learning": "hold"}
    first = build_policy(mapping)
    for epoch, value in enumerate([0.1, 0.2, 0.3]):
        first.update(epoch, {"ndcg@10": value}, train_loss=1.0)
    saved = copy.deepcopy(first.state_dict())
    kept = copy.deepcopy(saved)
    a, b = build_policy(mapping), build_policy(mapping)
    a.load_state_dict(saved)
    b.load_state_dict(saved)
    a.update(3, {"ndcg@10": 0.4}, train_loss=1.0)
    assert saved == kept
    assert b.state_dict() == kept
    assert a.state_dict()["state"]["learning_epochs"] == [0, 1, 2, 3]
