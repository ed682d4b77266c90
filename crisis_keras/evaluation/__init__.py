"""Metrics and run reports of section 4.4: accuracy, macro F1, weighted F1."""

from crisis_keras.evaluation.metrics import classification_metrics

__all__ = ["classification_metrics"]
