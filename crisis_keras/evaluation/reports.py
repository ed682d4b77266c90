"""Files a run leaves for people: predictions TSV, metrics JSON, confusion PNG."""

import json
import os
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import pandas as pd


def write_json_atomic(path, payload: Dict) -> None:
    """Writes `payload` as indented JSON via a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def predictions_frame(
    table: pd.DataFrame, probabilities: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per pair: id, true and predicted class, per-class probability."""
    probabilities = np.asarray(probabilities)
    if len(table) != len(probabilities):
        raise ValueError(
            f"{len(table)} rows but {len(probabilities)} predictions."
        )
    predicted = probabilities.argmax(axis=-1)
    frame = pd.DataFrame(
        {
            "image_id": table["image_id"].to_numpy(),
            "tweet_id": table["tweet_id"].to_numpy(),
            "true": table["label"].to_numpy(),
            "predicted": [class_names[i] for i in predicted],
        }
    )
    for i, name in enumerate(class_names):
        frame[f"p_{name}"] = probabilities[:, i].astype(np.float64)
    return frame


def write_predictions_tsv(path, frame: pd.DataFrame) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    os.replace(tmp, path)


def save_confusion_matrix_png(
    path, confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str
) -> None:
    """Draws the confusion matrix (rows: true, columns: predicted) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    matrix = np.asarray(confusion)
    size = max(4.0, 1.1 * len(class_names) + 2.0)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2.0 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(
            col, row, str(count), ha="center", va="center",
            color="white" if count > threshold else "black",
        )
    save_figure_atomic(fig, path)


def save_figure_atomic(fig, path) -> None:
    """Writes matplotlib `fig` to the PNG `path` (via a temporary file, then a
    rename: a reader never sees half a file) and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
