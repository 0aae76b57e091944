"""Training: TrainConfig (plain dataclass), the Trainer and `train()`."""
from .config import ConfigError, TrainConfig
from .identity import IdentityMismatch
from .preemption import Preempted
from .trainer import Trainer, train

__all__ = ["TrainConfig", "ConfigError", "Trainer", "train", "Preempted", "IdentityMismatch"]
