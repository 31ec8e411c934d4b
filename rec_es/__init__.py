"""rec_es: early stopping for RecBole, as policies read from property files.

``rec_es.build_policy`` is pure Python; ``EarlyStoppingTrainer`` (RecBole, torch) is imported lazily.
"""
from typing import Any

from rec_es.errors import ConfigError, RecEsError, StateError
from rec_es.policy import Decision, StopReason, StoppingPolicy, build_policy

__version__ = "0.1.0"
__all__ = ["ConfigError", "Decision", "EarlyStoppingTrainer", "RecEsError", "StateError", "StopReason",
           "StoppingPolicy", "build_policy", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "EarlyStoppingTrainer":  # keeps `import rec_es` free of torch and recbole
        from rec_es.trainer import EarlyStoppingTrainer

        return EarlyStoppingTrainer
    raise AttributeError(f"module 'rec_es' has no attribute {name!r}")
