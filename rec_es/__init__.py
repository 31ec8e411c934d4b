"""rec_es: early stopping for RecBole, as policies read from property files.

``rec_es.build_policy`` is pure Python; ``EarlyStoppingTrainer`` (RecBole, torch) and ``read_per_user`` (numpy)
are imported lazily.
"""
from typing import Any

from rec_es.policy.errors import ConfigError, RecEsError, StateError
from rec_es.policy import Decision, StopReason, StoppingPolicy, build_policy

__version__ = "0.1.0"
__all__ = ["ConfigError", "Decision", "EarlyStoppingTrainer", "PerUserScores", "RecEsError", "StateError",
           "StopReason", "StoppingPolicy", "build_policy", "read_per_user", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "EarlyStoppingTrainer":  # keeps `import rec_es` free of torch and recbole
        from rec_es.training.trainer import EarlyStoppingTrainer

        return EarlyStoppingTrainer
    if name in ("read_per_user", "PerUserScores"):  # numpy: kept out of the pure policy core's imports
        from rec_es.rundir import per_user

        return getattr(per_user, name)
    raise AttributeError(f"module 'rec_es' has no attribute {name!r}")
