"""The paper's evaluation metrics (section 4.4), computed with scikit-learn.

Accuracy (equal to micro F1 in single-label classification), macro F1 (the
paper's headline differences) and weighted F1, plus per-class precision,
recall, F1 and support, and the confusion matrix.
"""

from typing import Dict, Sequence

import numpy as np
from sklearn import metrics as sk_metrics


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]
) -> Dict:
    """Section 4.4 metrics of predictions `y_pred` against labels `y_true`.

    Args:
        y_true: true class ids.
        y_pred: predicted class ids.
        class_names: the task's classes, indexed by class id. Every class is
            reported, including those absent from `y_true`.

    Returns:
        A JSON-serializable dict: `num_examples`, `accuracy`, `macro_f1`,
        `weighted_f1`, `per_class` (name -> precision, recall, f1, support)
        and `confusion_matrix` (rows: true class, columns: predicted class).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}."
        )
    labels = list(range(len(class_names)))
    precision, recall, f1, support = sk_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    # Macro and weighted F1 average over the classes present in y_true or
    # y_pred, as scikit-learn's defaults do (what a reader of the paper who
    # calls `f1_score(..., average="macro")` gets).
    f1_kwargs = dict(zero_division=0)
    return {
        "num_examples": int(y_true.size),
        "accuracy": float(sk_metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            sk_metrics.f1_score(y_true, y_pred, average="macro", **f1_kwargs)
        ),
        "weighted_f1": float(
            sk_metrics.f1_score(y_true, y_pred, average="weighted", **f1_kwargs)
        ),
        "per_class": per_class,
        "confusion_matrix": sk_metrics.confusion_matrix(
            y_true, y_pred, labels=labels
        ).tolist(),
    }
