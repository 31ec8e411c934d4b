"""Pure-Python stopping-policy core: no torch, numpy or recbole imports (a test checks this)."""
from rec_es.policy.policy import StoppingPolicy, build_policy
from rec_es.policy.schema import KEYS, PolicySettings, parse_settings
from rec_es.policy.types import Decision, Policy, StopReason

__all__ = ["KEYS", "Decision", "Policy", "PolicySettings", "StopReason", "StoppingPolicy", "build_policy", "parse_settings"]
