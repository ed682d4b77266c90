"""Training runs of section 4.5: configuration, resumable loop, reports."""

from crisis_keras.training.config import TrainConfig

__all__ = ["TrainConfig"]
