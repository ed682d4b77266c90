#!/usr/bin/env python
"""Export of a feature-trained run vs `evaluate` on its cache: the measured tolerance.

    python bench/feature_export_check.py RUN_DIR EXPORT_DIR

Exports RUN_DIR (a `train --features` run: the cache's frozen backbones are
composed with the trained head), feeds the dev split's raw tweets and image
bytes to the SavedModel's `serving_default`, and prints the largest and mean
absolute difference from `crisis_keras.evaluate`'s probabilities (computed
from the float16 cache), and the fraction of equal predicted classes.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (the export's tokenizer ops)

from crisis_keras import export  # noqa: E402
from crisis_keras.evaluate import evaluate_run  # noqa: E402
from crisis_keras.training import trainer  # noqa: E402
from crisis_keras.training.config import TrainConfig  # noqa: E402



def main(run, out) -> int:
    metrics, frame = evaluate_run(run, split="dev")
    summary = export.export_run(run, out)
    fn = tf.saved_model.load(summary["saved_model"]).signatures["serving_default"]
    config = TrainConfig.from_json_file(f"{run}/config.json")
    table = trainer.load_data(config).splits["dev"]
    assert list(table["image_id"]) == list(frame["image_id"])
    probs = []
    for i in range(0, len(table), 16):
        t = table.iloc[i:i+16]
        o = fn(text=tf.constant(list(t["tweet_text"])), image_bytes=tf.stack([tf.io.read_file(p) for p in t["image_path"]]))
        probs.append(o["probabilities"].numpy())
    probs = np.concatenate(probs)
    expected = frame[[f"p_{c}" for c in summary["class_names"]]].to_numpy()
    d = np.abs(probs - expected)
    print(f"rows {len(table)}: max abs(export - evaluate) {d.max():.2e}, mean {d.mean():.2e}; same argmax {np.mean(probs.argmax(1)==expected.argmax(1)):.4f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
