"""Class weights of the training loss (`TrainConfig.class_weight`).

The paper trains with the plain softmax cross-entropy (sections 3.3, 4.5):
`"none"`, the default. `"balanced"` weights each training example's loss by
the inverse frequency of its class in the training split, scikit-learn's
"balanced" formula `n_samples / (n_classes * count_c)`, so every class adds
the same total weight to an epoch and the rare ones (e.g. severity's
mild_damage) are not drowned out.

The weights come from the labels the run really trains on: the training
table after the Setting A/B/C selection, `events` and `max_train_examples`,
and in Setting B a unimodal model's own image or text labels
(`data/setting_b.py`); rows dropped later for bad images still count (a
handful at most). A class with no
training example has no defined weight: it is an error naming the class, not a
silent 0 (such a class cannot be learned; say `class_weight="none"` to train
anyway). Only the training loss is weighted: the dev loss (`val_loss`) and
every metric stay unweighted.
"""

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from crisis_keras.training.config import CLASS_WEIGHT_MODES

CLASS_WEIGHTS_FILE = "class_weights.json"


def class_counts(labels: Sequence[int], class_names: Sequence[str]) -> Dict[str, int]:
    """Training examples per class name (every class, zeros included)."""
    labels = np.asarray(labels, dtype=np.int64)
    outside = labels[(labels < 0) | (labels >= len(class_names))]
    if outside.size:
        raise ValueError(
            f"label_id {int(outside[0])} is not a class id of {list(class_names)}."
        )
    counts = np.bincount(labels, minlength=len(class_names))
    return {name: int(counts[i]) for i, name in enumerate(class_names)}


def balanced_class_weights(labels: Sequence[int], class_names: Sequence[str]) -> Dict[str, float]:
    """class name -> n_samples / (n_classes * count_c) over `labels`."""
    counts = class_counts(labels, class_names)
    absent = [name for name, count in counts.items() if count == 0]
    if absent:
        raise ValueError(
            f"class_weight='balanced' needs every class in the training split, but "
            f"{absent} have no training example (counts {counts}); use more training "
            "data or class_weight='none'."
        )
    total, n = sum(counts.values()), len(class_names)
    return {name: total / (n * count) for name, count in counts.items()}


def run_class_weights(mode: str, labels, class_names) -> Optional[Dict[str, float]]:
    """The weights of `TrainConfig.class_weight = mode`, or None for "none"."""
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(f"class_weight must be one of {CLASS_WEIGHT_MODES}, got {mode!r}.")
    return balanced_class_weights(labels, class_names) if mode == "balanced" else None


def keras_class_weight(weights: Optional[Dict[str, float]], class_names) -> Optional[Dict[int, float]]:
    """`fit(class_weight=...)`'s form: class id -> weight (None stays None)."""
    if weights is None:
        return None
    return {i: float(weights[name]) for i, name in enumerate(class_names)}


def describe_class_weights(weights: Dict[str, float]) -> str:
    return ", ".join(f"{name} {weight:.3f}" for name, weight in weights.items())


def write_class_weights(path: Path, weights: Dict[str, float], labels, class_names) -> None:
    """`class_weights.json`: the weights (class name -> weight) and the counts."""
    from crisis_keras.evaluation import reports

    counts = class_counts(labels, class_names)
    reports.write_json_atomic(
        Path(path),
        {"class_weight": "balanced", "num_train_examples": sum(counts.values()),
         "counts": counts, "weights": weights},
    )
