"""CrisisMMD tables -> `tf.data` pipelines (paper section 4.5).

`make_dataset` turns a table of image-text pairs (the pandas DataFrame of
`crisis_keras.data.crisismmd`) into batches of `(features, labels)`:
`features["text"]` the normalized tweet (or its token ids), `features["image"]`
float32 `[B, 224, 224, 3]` in 0..255, `labels` int32 `[B]`.

Determinism. Training order comes from `Dataset.shuffle(seed=seed,
reshuffle_each_iteration=True)`; each element's crop/flip seed is
`[r, row_index]` where `r` comes from `Dataset.random(seed=seed,
rerandomize_each_iteration=True)`. Both advance once per pass over the
dataset, so every epoch has a new order and new crops, and two datasets built
with the same `seed` yield identical batches epoch after epoch (in every run:
TF derives op seeds from `seed` and the global seed, which is a fixed default
unless `tf.random.set_seed`/`keras.utils.set_random_seed` set another).
Evaluation keeps the table order and uses center crops only. The parallel map
is `deterministic=True`, so parallelism never reorders elements.

Bad images. Before any batch is built, `check_images` looks for missing,
empty and undecodable files (decoded with the pipeline's own TensorFlow
decoder). `on_bad_image="error"` raises `ImageError` naming them and their TSV
rows; `"drop"` drops those rows, logs a warning and records the count on the
dataset (`dataset.num_dropped`, `dataset.bad_image_report`). `"missing"` keeps
them as posts without an image, for models trained with modality dropout
(`modality_mask=True`, issue 13).

Image cache. With `image_cache` (an `image_cache.ImageCache` or its folder,
made by `python -m crisis_keras.data cache-images`) images are read as the
cache's uint8 pixels, already resized, instead of being decoded; the crops,
flips and their seeds are the same, so pixels differ from the JPEG path's by
at most 0.5. The bad-image check then comes from the cache's manifest, and a
changed or uncached image is refused (`ImageCacheMismatch`) unless the cache
was opened with `update=True`.

Missing modalities. With `modality_mask=True` every batch carries
`features["modality_mask"]`, float32 `[B, 2]` = [image present, text present]:
1 for a usable image (0 for a bad one under `on_bad_image="missing"`, whose
pixels are then zeros and whose file is never read) and 1 for a non-blank
text. Only models with a `modality_mask` input want it
(`models.crisis_model.takes_modality_mask`).
"""

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import tensorflow as tf

from crisis_keras.data import images

logger = logging.getLogger(__name__)

MODALITIES = ("text", "image")
BAD_IMAGE_MODES = ("error", "drop", "missing")
MODALITY_MASK = "modality_mask"
TEXT_COLUMN = "text"
IMAGE_COLUMN = "image_path"
_MAX_LISTED = 5


class ImageError(ValueError):
    """Images of a table are missing or cannot be decoded."""


@dataclasses.dataclass(frozen=True)
class BadImage:
    """One unusable image: its table row, path, why, and where it is listed."""

    row: int
    path: str
    reason: str
    location: str

    def describe(self) -> str:
        return f"{self.path} ({self.reason}; {self.location})"


@dataclasses.dataclass(frozen=True)
class BadImageReport:
    """Result of `check_images`: the table's unusable images."""

    num_checked: int
    bad: Tuple[BadImage, ...]

    @property
    def num_bad(self) -> int:
        return len(self.bad)

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def bad_rows(self) -> List[int]:
        """Positions (0-based, as `table.iloc`) of the rows with a bad image."""
        return [b.row for b in self.bad]

    def summary(self, limit: int = _MAX_LISTED) -> str:
        listed = "; ".join(b.describe() for b in self.bad[:limit])
        more = f"; ... and {self.num_bad - limit} more" if self.num_bad > limit else ""
        return (
            f"{self.num_bad} of {self.num_checked} images are missing or "
            f"undecodable: {listed}{more}"
        )


def _location(table: pd.DataFrame, row: int) -> str:
    if "source_file" in table.columns and "source_line" in table.columns:
        src = table["source_file"].iloc[row]
        line = table["source_line"].iloc[row]
        return f"{src}:{line}"
    return f"table row {table.index[row]!r}"


# Decode results keyed by (path, size, mtime_ns): rebuilding a dataset each
# epoch (Setting B re-pairs the table every epoch) does not decode again.
_DECODE_CACHE: Dict[Tuple[str, int, int], Optional[str]] = {}


def _decode_shape(data):
    """Decode encoded bytes (JPEGs DCT-scaled: every coefficient is still read,
    at 1/64 of the work) -> the decoded `[height, width]`."""

    def jpeg():
        return tf.shape(tf.io.decode_jpeg(data, channels=3, ratio=8))[:2]

    def other():
        return tf.shape(images.decode_image(data))[:2]

    return tf.cond(tf.io.is_jpeg(data), jpeg, other)


def _decode_error(path: str) -> str:
    """The TensorFlow decoder's message for one bad file."""
    try:
        _decode_shape(tf.io.read_file(path))
    except tf.errors.OpError as err:
        lines = str(getattr(err, "message", err)).strip().splitlines()
        return "undecodable: " + (lines[0] if lines else type(err).__name__)
    return "undecodable"


def _decode_many(paths: Sequence[str]) -> List[bool]:
    """True where the file decodes; parallel tf.data pass, errors dropped."""
    if not paths:
        return []
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), tf.constant(list(paths), tf.string))
    )
    ds = ds.map(
        lambda i, p: (i, tf.reduce_min(_decode_shape(tf.io.read_file(p))) > 0),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    ).ignore_errors()
    ok = [False] * len(paths)
    for index, good in ds.as_numpy_iterator():
        ok[int(index)] = bool(good)
    return ok


def check_images(table: pd.DataFrame, column: str = IMAGE_COLUMN) -> BadImageReport:
    """Find the rows whose image file is missing, empty or undecodable.

    Files are decoded with the pipeline's TensorFlow decoder (so "decodable"
    means decodable by training and serving alike), in parallel; results are
    cached per (path, size, mtime).
    """
    if column not in table.columns:
        raise KeyError(f"The table has no {column!r} column (columns: {list(table.columns)}).")
    paths = [str(p) for p in table[column].tolist()]
    reasons: List[Optional[str]] = [None] * len(paths)
    to_decode: Dict[Tuple[str, int, int], List[int]] = {}
    for row, path in enumerate(paths):
        try:
            st = os.stat(path)
        except OSError:
            reasons[row] = "missing file"
            continue
        if not os.path.isfile(path):
            reasons[row] = "not a file"
        elif st.st_size == 0:
            reasons[row] = "empty file (0 bytes)"
        else:
            key = (path, st.st_size, st.st_mtime_ns)
            if key in _DECODE_CACHE:
                reasons[row] = _DECODE_CACHE[key]
            else:
                to_decode.setdefault(key, []).append(row)
    keys = list(to_decode)
    for key, good in zip(keys, _decode_many([k[0] for k in keys])):
        reason = None if good else _decode_error(key[0])
        _DECODE_CACHE[key] = reason
        for row in to_decode[key]:
            reasons[row] = reason
    bad = tuple(
        BadImage(row, paths[row], reason, _location(table, row))
        for row, reason in enumerate(reasons)
        if reason is not None
    )
    return BadImageReport(num_checked=len(paths), bad=bad)


def drop_bad_images(
    table: pd.DataFrame, on_bad_image: str = "error", column: str = IMAGE_COLUMN,
    image_cache=None,
) -> Tuple[pd.DataFrame, BadImageReport]:
    """Check `table`'s images; raise (`"error"`) or drop (`"drop"`) bad rows.

    `"missing"` keeps every row (the report names the bad ones): the caller
    marks their image as missing (`make_dataset(modality_mask=True)`). With
    an `image_cache` the check reads its manifest (`ImageCache.check_images`).
    """
    if on_bad_image not in BAD_IMAGE_MODES:
        raise ValueError(
            f"on_bad_image must be one of {BAD_IMAGE_MODES}, got {on_bad_image!r}."
        )
    if image_cache is not None:
        report = image_cache.check_images(table, column)
    else:
        report = check_images(table, column)
    if report.ok or on_bad_image == "missing":
        return table, report
    if on_bad_image == "error":
        raise ImageError(
            report.summary()
            + ". Fix the paths (image_root?) or pass on_bad_image='drop'."
        )
    logger.warning("Dropping %d rows: %s", report.num_bad, report.summary())
    keep = np.ones(len(table), dtype=bool)
    keep[report.bad_rows] = False
    return table.iloc[keep], report


def _validate(table, modalities, label_column, image_size, resize_to):
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}.")
    modalities = tuple(modalities)
    unknown = [m for m in modalities if m not in MODALITIES]
    if not modalities or unknown:
        raise ValueError(
            f"modalities must be a non-empty subset of {MODALITIES}, got {modalities!r}."
        )
    needed = [label_column]
    needed += [TEXT_COLUMN] if "text" in modalities else []
    needed += [IMAGE_COLUMN] if "image" in modalities else []
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KeyError(
            f"The table lacks column(s) {missing} needed for modalities "
            f"{modalities} (columns: {list(table.columns)})."
        )
    if image_size > resize_to:
        raise ValueError(f"image_size ({image_size}) cannot exceed resize_to ({resize_to}).")
    if len(table) == 0:
        raise ValueError("Cannot build a dataset from an empty table.")
    labels = table[label_column]
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise ValueError(f"Missing {label_column!r} at {_location(table, row)}.")
    negative = np.flatnonzero(labels.to_numpy() < 0)
    if negative.size:
        row = int(negative[0])
        raise ValueError(
            f"{label_column!r} is {labels.iloc[row]} (< 0, unknown class) at "
            f"{_location(table, row)}: {negative.size} such rows."
        )
    return modalities


def make_dataset(
    table: pd.DataFrame,
    *,
    training: bool,
    batch_size: int = 32,
    seed: int = 0,
    modalities: Sequence[str] = MODALITIES,
    image_size: int = images.CROP_SIZE,
    resize_to: int = images.RESIZE_TO,
    sse_labels: bool = False,
    on_bad_image: str = "error",
    text_preprocessor=None,
    label_column: str = "label_id",
    drop_remainder: bool = False,
    modality_mask: bool = False,
    image_cache=None,
) -> tf.data.Dataset:
    """Batches of `(features, labels)` for one split (paper section 4.5).

    Args:
        table: one split's pairs (columns `text`, `image_path`, `label_id`,
            and optionally `source_file`/`source_line` for error messages).
        training: shuffle (seeded, new order each epoch) and random
            crop + flip; otherwise table order and center crops.
        batch_size: examples per batch (the paper uses 32).
        seed: fixes the shuffle order and the crops/flips of every epoch.
        modalities: `("text", "image")`, `("text",)` (never opens image
            files) or `("image",)`.
        image_size: crop side (224); resize_to: shortest side first (228).
        sse_labels: add `features["sse_label"]` (int32, the label column),
            which the SSE layer uses in training and the model ignores
            otherwise.
        on_bad_image: `"error"` raises `ImageError` before any batch is
            built; `"drop"` drops those rows (count in `dataset.num_dropped`);
            `"missing"` (needs `modality_mask`) keeps them with image
            presence 0 and zero pixels.
        text_preprocessor: a keras-hub preprocessor; if given,
            `features["text"]` is its dict of token ids instead of strings.
        label_column: the int class-id column used as labels.
        drop_remainder: drop the last incomplete batch.
        modality_mask: add `features["modality_mask"]` (see module doc);
            needs both modalities. Rows with neither a usable image nor a
            non-blank text are dropped (counted in `num_dropped`).
        image_cache: an `image_cache.ImageCache` or its folder: read the
            cached resized pixels instead of decoding (see module doc); its
            `resize_to` must be this one.

    Returns:
        A `tf.data.Dataset` of `(features, labels)`, labels int32 `[B]`; its
        `table` attribute holds the rows it serves (training: before shuffling).
    """
    modalities = _validate(table, modalities, label_column, image_size, resize_to)
    if modality_mask and set(modalities) != set(MODALITIES):
        raise ValueError(
            f"modality_mask needs both modalities {MODALITIES}, got {modalities!r}."
        )
    if on_bad_image == "missing" and not modality_mask:
        raise ValueError(
            "on_bad_image='missing' keeps rows without a usable image, which only a "
            "model trained with modality dropout (a modality_mask input: "
            "--missing-image-rate/--missing-text-rate) can take; use 'error' or 'drop'."
        )
    report = None
    num_unusable = 0
    cache = None
    if image_cache is not None and "image" in modalities:
        from crisis_keras.data.image_cache import as_image_cache  # imports this module

        cache = as_image_cache(image_cache)
        cache.require_resize_to(resize_to)
    if "image" in modalities:
        table, report = drop_bad_images(table, on_bad_image, image_cache=cache)
        if len(table) == 0:
            raise ImageError(f"No usable image left: {report.summary()}")
    if modality_mask:
        image_present = np.ones(len(table), dtype=np.float32)
        if on_bad_image == "missing":
            image_present[report.bad_rows] = 0.0
        text_present = (
            table[TEXT_COLUMN].fillna("").astype(str).str.strip().str.len().to_numpy() > 0
        ).astype(np.float32)
        usable = (image_present + text_present) > 0
        num_unusable = int((~usable).sum())
        if num_unusable:
            logger.warning(
                "Dropping %d rows with neither a usable image nor text.", num_unusable
            )
            table = table.iloc[np.flatnonzero(usable)]
            image_present, text_present = image_present[usable], text_present[usable]
        if len(table) == 0:
            raise ValueError("No row with a usable image or text is left.")
    labels = table[label_column].to_numpy().astype(np.int32)
    slices = {
        "index": np.arange(len(table), dtype=np.int64),
        "label": labels,
    }
    if "text" in modalities:
        slices["text"] = table[TEXT_COLUMN].astype(str).to_numpy(dtype=object)
    if "image" in modalities:
        slices["path"] = table[IMAGE_COLUMN].astype(str).to_numpy(dtype=object)
        if cache is not None:
            slices["location"] = cache.locations(slices["path"])
    if modality_mask:
        slices["mask"] = np.stack([image_present, text_present], axis=-1)
    ds = tf.data.Dataset.from_tensor_slices(slices)

    if training:
        ds = ds.shuffle(len(table), seed=seed, reshuffle_each_iteration=True)
        noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, noise)

    def to_example(element, noise=None):
        features = {}
        if "text" in modalities:
            features["text"] = element["text"]
        if "image" in modalities:

            def image():
                if cache is not None:  # resized uint8; same crop/flip, then float
                    pixels = cache.pixels(element["location"])
                    if training:
                        element_seed = tf.stack([noise, element["index"]])
                        crop = images.random_crop_and_flip(pixels, element_seed, image_size)
                    else:
                        crop = images.center_crop(pixels, image_size)
                    return tf.cast(crop, tf.float32)
                data = tf.io.read_file(element["path"])
                if training:
                    element_seed = tf.stack([noise, element["index"]])
                    return images.preprocess_for_training(
                        data, element_seed, resize_to, image_size
                    )
                return images.preprocess_for_eval(data, resize_to, image_size)

            if modality_mask:
                features["image"] = tf.cond(
                    element["mask"][0] > 0.5,
                    image,
                    lambda: tf.zeros([image_size, image_size, 3], tf.float32),
                )
                features[MODALITY_MASK] = element["mask"]
            else:
                features["image"] = image()
        if sse_labels:
            features["sse_label"] = element["label"]
        return features, element["label"]

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if text_preprocessor is not None and "text" in modalities:

        def tokenize(features, labels):
            features = dict(features)
            features["text"] = text_preprocessor(features["text"])
            return features, labels

        ds = ds.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.bad_image_report = report
    ds.table = table  # the rows served (evaluation: in this order)
    dropped_images = report.num_bad if report is not None and on_bad_image == "drop" else 0
    ds.num_dropped = dropped_images + num_unusable
    return ds
