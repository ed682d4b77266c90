"""Cached features -> `tf.data` batches for a model built with `feature_inputs`.

`make_feature_dataset` is the cached counterpart of `data.pipeline.make_dataset`:
batches of `(features, labels)` where `features["image_features"]` is f_i
`[B, H, W, C]` and `features["text_features"]` e_i `[B, D]` (float32), plus
`sse_label` when the model has SSE or a baseline that needs labels. Training
shuffles with the given seed (a new dataset, and seed, per epoch) and, when
the cache holds training crops, takes one of them per image at random, so
the paper's crop-and-flip augmentation (section 4.5) survives caching;
evaluation keeps the table order and the center crop. Rows are gathered from
the memory-mapped arrays one batch at a time.

With `modality_mask=True` (models trained with modality dropout, issue 13)
batches also carry `modality_mask` float32 `[B, 2]` = [image present, text
present]: ones, except, with `on_missing="missing"`, for rows the cache has
no features of (bad images left out at extraction), whose features are then
zeros and presence 0.
"""

import numpy as np
import pandas as pd
import tensorflow as tf

from crisis_keras.features.store import FeatureStore
from crisis_keras.models.backbone_outputs import IMAGE_FEATURES, TEXT_FEATURES
from crisis_keras.models.crisis_model import MODALITY_MASK


def make_feature_dataset(
    store: FeatureStore,
    split: str,
    table: pd.DataFrame,
    *,
    training: bool,
    batch_size: int = 32,
    seed: int = 0,
    modalities=("text", "image"),
    sse_labels: bool = False,
    on_missing: str = "error",
    label_column: str = "label_id",
    modality_mask: bool = False,
):
    """(dataset, kept table): batches of one split's cached features.

    Args:
        store: the cache (`FeatureStore`).
        split: the cache split the table's rows come from ("train", ...).
        table: the rows to serve (possibly re-paired, Setting B).
        training: shuffle and draw stored crops; otherwise table order.
        seed: this dataset's shuffle and crop seed.
        modalities: which features the model takes.
        sse_labels: add `features["sse_label"]`.
        on_missing: "error" or "drop" for rows absent from the cache;
            "missing" (needs `modality_mask`) keeps them, that modality missing.
        modality_mask: add `features["modality_mask"]` (needs both modalities).
    """
    if modality_mask and set(modalities) != {"text", "image"}:
        raise ValueError(f"modality_mask needs both modalities, got {tuple(modalities)!r}.")
    if on_missing == "missing" and not modality_mask:
        raise ValueError(
            "on_missing='missing' keeps rows without cached features, which only a model "
            "trained with modality dropout (a modality_mask input) can take."
        )
    image_rows, text_rows, keep = store.rows_for(split, table, modalities, on_missing)
    kept = table.iloc[np.flatnonzero(keep)]
    if len(kept) == 0:
        raise ValueError(f"no {split} row of the table has cached features in {store.directory}.")
    labels = kept[label_column].to_numpy().astype(np.int32)
    n = len(kept)
    order = np.arange(n)
    image = store.array(split, "image") if "image" in modalities else None
    crops = store.array(split, "image_crops") if ("image" in modalities and training) else None
    text = store.array(split, "text") if "text" in modalities else None
    rng = np.random.default_rng(seed)
    crop_ids = np.full(n, -1, dtype=np.int64)
    if training:
        order = rng.permutation(n)
        if crops is not None:
            crop_ids = rng.integers(0, crops.shape[1], size=n)

    def take(array, rows, *more):
        absent = rows < 0
        if not absent.any():
            return np.asarray(array[(rows, *more)])
        values = np.array(array[(np.where(absent, 0, rows), *more)])
        values[absent] = 0  # a missing modality: the model's stand-in replaces it
        return values

    def gather(positions):
        positions = np.asarray(positions)
        out = []
        if image is not None:
            rows = image_rows[positions]
            if crops is not None:
                out.append(take(crops, rows, crop_ids[positions]))
            else:
                out.append(take(image, rows))
        if text is not None:
            out.append(take(text, text_rows[positions]))
        return tuple(out)

    presence = np.stack([image_rows >= 0, text_rows >= 0], axis=-1).astype(np.float32)

    # Rows travel in the cache's dtype (float16: half the bytes) and are cast in the graph.
    signature = []
    if image is not None:
        signature.append(tf.TensorSpec([None, *image.shape[1:]], tf.as_dtype(image.dtype)))
    if text is not None:
        signature.append(tf.TensorSpec([None, text.shape[1]], tf.as_dtype(text.dtype)))

    def to_batch(positions):
        values = tf.numpy_function(gather, [positions], [s.dtype for s in signature], stateful=False)
        features = {}
        names = ([IMAGE_FEATURES] if image is not None else []) + ([TEXT_FEATURES] if text is not None else [])
        for name, value, spec in zip(names, values, signature):
            value.set_shape(spec.shape)
            features[name] = tf.cast(value, tf.float32)
        batch_labels = tf.gather(labels, positions)
        if modality_mask:
            features[MODALITY_MASK] = tf.gather(presence, positions)
        if sse_labels:
            features["sse_label"] = batch_labels
        return features, batch_labels

    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(batch_size)
    ds = ds.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.num_dropped = int((~keep).sum())
    return ds, kept
