"""How a model trained with modality dropout does when a modality is removed (issue 13).

`evaluate_missing_modalities` evaluates one model on a split three times,
from the same batches: as given (`both`), with every image removed
(`no_image`: `modality_mask` image column set to 0, so the model sees its
learned stand-in) and with every text removed (`no_text`). Compare
`no_image` with a text-only run (`--model bert`) and `no_text` with an
image-only one (`--model densenet`) on the same data.

The trainer writes `metrics_missing.json` next to `metrics.json` for every run
whose model has a `modality_mask` input; `python -m crisis_keras.evaluate
--missing-modalities` computes it for a finished run.
"""

from typing import Dict

import tensorflow as tf

from crisis_keras.evaluation import reports
from crisis_keras.evaluation.metrics import classification_metrics
from crisis_keras.models.crisis_model import MODALITY_MASK, takes_modality_mask

METRICS_FILE = "metrics_missing.json"
# condition -> (image kept, text kept): multiplies the batch's modality_mask
CONDITIONS = {"both": (1.0, 1.0), "no_image": (0.0, 1.0), "no_text": (1.0, 0.0)}
DESCRIPTIONS = {
    "both": "every modality the data has (as metrics.json)",
    "no_image": "all images removed (modality_mask image = 0): text alone",
    "no_text": "all texts removed (modality_mask text = 0): image alone",
}


def _without(ds, keep):
    keep = tf.constant(keep, tf.float32)

    def mask(features, labels):
        features = dict(features)
        features[MODALITY_MASK] = features[MODALITY_MASK] * keep
        return features, labels

    return ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def evaluate_missing_modalities(model, data, config, splits=("dev",), store=None) -> Dict:
    """{split: {"both" | "no_image" | "no_text": metrics}} for each split present.

    Args:
        model: a model with a `modality_mask` input (trained with
            `--missing-image-rate` / `--missing-text-rate`).
        data: the run's `CrisisMMD` tables; config: its `TrainConfig`.
        splits: the splits to evaluate (those absent are skipped).
        store: the run's feature cache, or None (images and text).
    """
    from crisis_keras.training.trainer import evaluation_dataset

    if not takes_modality_mask(model):
        raise ValueError(
            f"model {model.name!r} has no {MODALITY_MASK!r} input: only a model trained "
            "with modality dropout (--missing-image-rate / --missing-text-rate > 0) can "
            "be evaluated with a modality removed."
        )
    results = {}
    for split in splits:
        table = data.splits.get(split)
        if table is None or len(table) == 0:
            continue
        ds, kept = evaluation_dataset(model, table, config, split, store)
        labels = kept["label_id"].to_numpy()
        results[split] = {}
        for condition, keep in CONDITIONS.items():
            probabilities = model.predict(_without(ds, keep), verbose=0)
            results[split][condition] = classification_metrics(
                labels, probabilities.argmax(axis=-1), data.class_names
            )
    return results


def write_missing_metrics(path, results, data) -> None:
    """`metrics_missing.json`: task, classes, the conditions, then per split."""
    payload = {"task": data.task.name, "class_names": list(data.class_names),
               "conditions": DESCRIPTIONS}
    payload.update(results)
    reports.write_json_atomic(path, payload)
