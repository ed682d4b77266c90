"""Running the frozen backbones once: f_i (eq. 1) and e_i (eq. 2) for every row.

`build_feature_extractor(config)` is the backbones of the model config, in
inference mode, with the same layers (and names) as every registered model:
`image_normalization` -> `image_backbone` and `tweet_normalization` ->
`text_preprocessor` -> `text_backbone` -> `text_cls`.

`extract_features(data, out, spec)` writes a cache (layout in `store.py`):
evaluation features from the center crop, and optionally `train_crops`
random crops + flips per training image (seeded by the crop number and the
row, so that augmentation survives caching). Work is written in chunks of
rows; after each chunk the arrays are flushed and `progress.json` records the
rows finished, so an extraction killed midway resumes without recomputing
them. An existing cache made with another configuration is refused.
"""

import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from crisis_keras.data import images
from crisis_keras.data.pipeline import drop_bad_images
from crisis_keras.features.manifest import (
    FORMAT_VERSION,
    FeatureCacheMismatch,
    FeatureSpec,
    ids_sha256,
    read_manifest,
    spec_differences,
    write_manifest,
)
from crisis_keras.features.store import ARRAY_FILES, BACKBONE_WEIGHTS, INDEX_FILE
from crisis_keras.models.backbone_outputs import (
    IMAGE_FEATURES,
    TEXT_FEATURES,
    image_feature_map,
    text_embedding,
)
from crisis_keras.models.config import ModelConfig
from crisis_keras.models.sse_cross import model_inputs
from crisis_keras.training.resume import epoch_seed

PROGRESS_FILE = "progress.json"
DTYPES = ("float16", "float32")


def build_feature_extractor(config: ModelConfig, modalities=("text", "image")) -> keras.Model:
    """The frozen backbones of `config` -> `{"image_features": f_i, "text_features": e_i}`."""
    config = config.replace(
        feature_inputs=False, image_feature_shape=None, text_feature_dim=None,
        train_image_backbone=False, train_text_backbone=False,
    )
    inputs = model_inputs(config, text="text" in modalities, image="image" in modalities)
    outputs = {}
    if "image" in modalities:
        outputs[IMAGE_FEATURES] = image_feature_map(inputs, config)
    if "text" in modalities:
        outputs[TEXT_FEATURES] = text_embedding(inputs, config)
    return keras.Model(inputs, outputs, name="feature_extractor")


def extractor_config(spec: Dict, image_weights="from-spec") -> ModelConfig:
    """The `ModelConfig` of the backbones a `FeatureSpec` dict describes."""
    return ModelConfig(
        image_backbone=spec["image_backbone"] or "densenet121",
        image_weights=spec["image_weights"] if image_weights == "from-spec" else image_weights,
        image_size=spec["image_size"],
        text_backbone=spec["text_backbone"] or "tiny",
        text_preprocessor=spec.get("text_preprocessor") if spec["text_backbone"] else None,
        sequence_length=spec["sequence_length"],
        text_pooling=spec["text_pooling"],
        trim_sequences=True,  # inference only: the same e_i, fewer tokens through BERT
    )


def _passes(split: str, spec: FeatureSpec):
    """(pass name, array name, crop number or None, modalities) of one split."""
    yield "center", None, spec.modalities
    if split == "train" and "image" in spec.modalities:
        for k in range(spec.train_crops):
            yield f"crop{k}", k, ("image",)


def _pass_dataset(table, start, crop, spec: FeatureSpec, modalities, batch_size):
    n = len(table)
    slices = {"row": np.arange(start, n, dtype=np.int64)}
    if "image" in modalities:
        slices["path"] = table["image_path"].astype(str).to_numpy(dtype=object)[start:]
    if "text" in modalities:
        slices["text"] = table["text"].astype(str).to_numpy(dtype=object)[start:]
    crop_seed = None if crop is None else epoch_seed(spec.crop_seed, crop, "train-crop")

    def load(element):
        features = {}
        if "text" in element:
            features["text"] = element["text"]
        if "path" in element:
            data = tf.io.read_file(element["path"])
            if crop_seed is None:
                features["image"] = images.preprocess_for_eval(data, spec.resize_to, spec.image_size)
            else:
                seed = tf.stack([tf.constant(crop_seed, tf.int64), element["row"]])
                features["image"] = images.preprocess_for_training(
                    data, seed, spec.resize_to, spec.image_size
                )
        return features

    ds = tf.data.Dataset.from_tensor_slices(slices)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _open_array(path: Path, shape, dtype, fresh: bool):
    if not fresh and path.exists():
        array = np.load(path, mmap_mode="r+")
        if tuple(array.shape) == tuple(shape) and str(array.dtype) == dtype:
            return array, False
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape)), True


def _write_json(path: Path, payload) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _kept_tables(data, spec: FeatureSpec, splits, on_bad_image) -> Dict[str, pd.DataFrame]:
    tables = {}
    for split in splits:
        table = data.splits.get(split)
        if table is None or len(table) == 0:
            continue
        if "image" in spec.modalities:
            table, _ = drop_bad_images(table, on_bad_image)
        tables[split] = table.reset_index(drop=True)
    if not tables:
        raise ValueError(f"no rows to extract features from in {data.data_dir}.")
    return tables


def extract_features(
    data,
    out,
    spec: FeatureSpec,
    *,
    data_description: Optional[Dict] = None,
    splits: Sequence[str] = ("train", "dev", "test"),
    batch_size: int = 32,
    chunk_rows: int = 512,
    on_bad_image: str = "error",
    announce: Callable = print,
    progress: bool = True,
    on_chunk: Optional[Callable] = None,
) -> Path:
    """Writes (or finishes) the feature cache of `data` in `out`; returns `out`.

    Args:
        data: a `CrisisMMD` (e.g. `training.trainer.load_data(config)`).
        out: the cache folder.
        spec: the backbones and preprocessing (`FeatureSpec`).
        data_description: recorded in the manifest (data dir, task, setting).
        splits: the splits to extract (those present in `data`).
        batch_size: images per backbone call.
        chunk_rows: rows between two progress records (resume granularity).
        on_bad_image: "error" stops before any work on a missing or
            undecodable image; "drop" leaves those rows out of the cache.
        on_chunk: called as `on_chunk(split, pass_name, rows_done)` after
            each recorded chunk (progress hooks; tests interrupt here).

    Raises:
        FeatureCacheMismatch: `out` holds a cache of another configuration.
    """
    out = Path(out)
    if spec.dtype not in DTYPES:
        raise ValueError(f"feature dtype must be one of {DTYPES}, got {spec.dtype!r}.")
    if on_bad_image not in ("error", "drop"):
        raise ValueError(
            f"on_bad_image must be 'error' or 'drop' for extraction, got {on_bad_image!r} "
            "(a cache holds decodable images only; a run with --on-bad-image missing "
            "treats rows without cached image features as posts without an image)."
        )
    tables = _kept_tables(data, spec, splits, on_bad_image)
    model_config = extractor_config(spec.to_dict())
    manifest = {
        "format": FORMAT_VERSION,
        "complete": False,
        "spec": spec.to_dict(),
        "data": dict(data_description or {}),
        "splits": {
            split: {"rows": len(t), "ids_sha256": ids_sha256(t["image_id"])}
            for split, t in tables.items()
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    resuming = (out / "manifest.json").exists()
    if resuming:
        existing = read_manifest(out)
        differences = spec_differences(existing["spec"], manifest["spec"])
        differences += spec_differences(
            existing["splits"], manifest["splits"], sorted(manifest["splits"])
        )
        if differences:
            raise FeatureCacheMismatch(
                f"{out} holds a feature cache of another configuration; it differs in:\n  "
                + "\n  ".join(differences)
                + "\nChoose another --out folder."
            )
        if existing.get("complete"):
            announce(f"crisis_keras.features: {out} is already complete.")
            return out
        manifest["shapes"] = existing.get("shapes", {})

    extractor = build_feature_extractor(model_config, spec.modalities)
    weights_path = out / BACKBONE_WEIGHTS
    if resuming and weights_path.exists():
        extractor.load_weights(weights_path)  # random backbones stay the same ones
    else:
        extractor.save_weights(weights_path)
    shapes = {k: [int(d) for d in v.shape[1:]] for k, v in extractor.output.items()}
    if "image" in spec.modalities:  # crop passes run the image backbone alone
        image_only = keras.Model(
            {"image": extractor.input["image"]},
            {IMAGE_FEATURES: extractor.output[IMAGE_FEATURES]},
        )
    manifest["shapes"] = {name.split("_")[0]: shape for name, shape in shapes.items()}
    write_manifest(out, manifest)

    progress_path = out / PROGRESS_FILE
    done = json.loads(progress_path.read_text()) if resuming and progress_path.exists() else {}
    total = sum(
        len(t) for split, t in tables.items() for _ in _passes(split, spec)
    )
    remaining = total - sum(done.values())
    bar = keras.utils.Progbar(remaining, stateful_metrics=["rows/s"], verbose=1 if progress else 0)
    started, processed = time.perf_counter(), 0
    if resuming and done:
        announce(f"crisis_keras.features: resuming {out}: {sum(done.values())} of {total} rows done.")

    for split, table in tables.items():
        split_dir = out / split
        split_dir.mkdir(exist_ok=True)
        index = table[["image_id", "image", "text"]].astype(str)
        index.insert(0, "row", np.arange(len(table)))
        index.to_json(split_dir / INDEX_FILE, orient="records", lines=True, force_ascii=False)
        n = len(table)
        for pass_name, crop, modalities in _passes(split, spec):
            key = f"{split}/{pass_name}"
            start = int(done.get(key, 0))
            arrays = {}
            for modality in modalities:
                name = "image_crops" if crop is not None else modality
                shape = [n] + ([spec.train_crops] if crop is not None else []) + shapes[f"{modality}_features"]
                arrays[modality], fresh = _open_array(
                    split_dir / ARRAY_FILES[name], shape, spec.dtype,
                    fresh=start == 0 and (crop is None or crop == 0),
                )
                if fresh and start:
                    start = 0  # the array was missing or of another shape
            if start >= n:
                continue
            position, since_record = start, 0
            for batch in _pass_dataset(table, start, crop, spec, modalities, batch_size):
                runner = image_only if crop is not None else extractor
                outputs = runner.predict_on_batch(batch)
                size = len(next(iter(batch.values())))
                for modality, array in arrays.items():
                    values = np.asarray(outputs[f"{modality}_features"], dtype=spec.dtype)
                    if crop is None:
                        array[position:position + size] = values
                    else:
                        array[position:position + size, crop] = values
                position += size
                since_record += size
                processed += size
                rate = processed / max(time.perf_counter() - started, 1e-9)
                bar.add(size, values=[("rows/s", rate)])
                if since_record >= chunk_rows or position == n:
                    for array in arrays.values():
                        array.flush()
                    done[key] = position
                    _write_json(progress_path, done)
                    since_record = 0
                    if on_chunk is not None:
                        on_chunk(split, pass_name, position)
            del arrays
    manifest["complete"] = True
    manifest["seconds"] = round(time.perf_counter() - started, 1)
    write_manifest(out, manifest)
    if progress:
        sys.stdout.flush()
    return out

