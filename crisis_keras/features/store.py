"""Reading a feature cache: memory-mapped arrays per split, looked up by row.

Layout of a cache folder (written by `crisis_keras.features.extract`):

    manifest.json             backbones, preprocessing, ids (`manifest.py`)
    backbones.weights.h5      the frozen backbones that made the features
    progress.json             rows finished per pass (resume after a kill)
    <split>/index.jsonl       row, image_id, image, text (the rows' keys)
    <split>/image.npy         f_i of the center crop, [N, H, W, C]  (eq. 1)
    <split>/image_crops.npy   f_i of N random crops + flips, [N, n, H, W, C] (train)
    <split>/text.npy          e_i, [N, D]                            (eq. 2)

Arrays are `.npy` files opened with `numpy.load(mmap_mode="r")`, so a cache
of the whole dataset never has to fit in memory: a batch reads its rows only.
Arrays of at most `max_in_memory_bytes` (1 GiB) are read into memory once,
which gathers batches faster.
"""

import logging
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from crisis_keras.features.manifest import FeatureCacheMismatch, read_manifest

logger = logging.getLogger(__name__)

BACKBONE_WEIGHTS = "backbones.weights.h5"
INDEX_FILE = "index.jsonl"
MAX_IN_MEMORY_BYTES = 1 << 30
ARRAY_FILES = {"image": "image.npy", "image_crops": "image_crops.npy", "text": "text.npy"}


class FeatureStore:
    """A finished feature cache (see module doc).

    Args:
        directory: the cache folder.
        max_in_memory_bytes: arrays up to this size are read into memory
            once; larger ones stay memory-mapped (a batch reads its rows).

    Raises:
        FileNotFoundError: no manifest there.
        FeatureCacheMismatch: the cache is unfinished or of another format.
    """

    def __init__(self, directory, max_in_memory_bytes=MAX_IN_MEMORY_BYTES):
        self.directory = Path(directory)
        self.max_in_memory_bytes = int(max_in_memory_bytes)
        self.manifest = read_manifest(self.directory)
        if not self.manifest.get("complete"):
            raise FeatureCacheMismatch(
                f"the feature cache {self.directory} is unfinished (an extraction was "
                "interrupted): run the same `crisis_keras.features extract` command "
                "again to finish it."
            )
        self._indexes: Dict[str, pd.DataFrame] = {}
        self._arrays: Dict[Tuple[str, str], np.ndarray] = {}

    @property
    def spec(self) -> Dict:
        return self.manifest["spec"]

    @property
    def modalities(self) -> Tuple[str, ...]:
        return tuple(self.spec["modalities"])

    @property
    def image_feature_shape(self) -> Optional[Tuple[int, ...]]:
        shape = self.manifest["shapes"].get("image")
        return tuple(shape) if shape else None

    @property
    def text_feature_dim(self) -> Optional[int]:
        shape = self.manifest["shapes"].get("text")
        return int(shape[0]) if shape else None

    @property
    def splits(self) -> Tuple[str, ...]:
        return tuple(self.manifest["splits"])

    def _split_dir(self, split: str) -> Path:
        if split not in self.manifest["splits"]:
            raise FeatureCacheMismatch(
                f"the feature cache {self.directory} has no {split!r} split "
                f"(it has {sorted(self.manifest['splits'])})."
            )
        return self.directory / split

    def index(self, split: str) -> pd.DataFrame:
        """The split's keys: `image_id`, `image` (relative path), `text`."""
        if split not in self._indexes:
            path = self._split_dir(split) / INDEX_FILE
            self._indexes[split] = pd.read_json(path, orient="records", lines=True, dtype=False)
        return self._indexes[split]

    def array(self, split: str, name: str) -> Optional[np.ndarray]:
        """The memory-mapped `name` array ("image", "image_crops", "text") or None."""
        key = (split, name)
        if key not in self._arrays:
            path = self._split_dir(split) / ARRAY_FILES[name]
            array = np.load(path, mmap_mode="r") if path.exists() else None
            if array is not None and array.nbytes <= self.max_in_memory_bytes:
                array = np.ascontiguousarray(array)  # small: read once, gather from RAM
            self._arrays[key] = array
        return self._arrays[key]

    def rows_for(self, split: str, table: pd.DataFrame, modalities, on_missing="error"):
        """Cache rows of `table`'s images and texts, and the rows of `table` kept.

        Images are looked up by their `image` path and texts by their
        normalized `text`, so a table whose sides were re-paired (Setting B's
        consistency draw, `data/consistency.py`) finds the features of the
        side it now carries. Rows the cache lacks (e.g. dropped as bad images
        at extraction) raise, or are dropped with a warning when
        `on_missing="drop"`; with `on_missing="missing"` (models trained with
        modality dropout) a row absent for one modality is kept with row -1
        there (that modality is missing) and one absent for all is dropped.

        Returns:
            (image_rows, text_rows, keep): int64 arrays over the kept rows
            (-1 for an absent modality) and a boolean mask over `table`.
        """
        index = self.index(split)
        keep = np.ones(len(table), dtype=bool)
        rows = {}
        for modality, column in (("image", "image"), ("text", "text")):
            if modality not in modalities:
                continue
            if modality not in self.modalities:
                raise FeatureCacheMismatch(
                    f"the feature cache {self.directory} holds no {modality} features "
                    f"(it has {list(self.modalities)}); extract them with "
                    f"--modalities {','.join(sorted(set(self.modalities) | {modality}))}."
                )
            lookup = pd.Series(np.arange(len(index)), index=index[column].to_numpy())
            lookup = lookup[~lookup.index.duplicated()]
            found = lookup.reindex(table[column].astype(str).to_numpy()).to_numpy()
            missing = np.isnan(found)
            if missing.any():
                where = _describe(table, np.flatnonzero(missing))
                message = (
                    f"{int(missing.sum())} of {len(table)} {split} rows have no cached "
                    f"{modality} features in {self.directory} ({where})"
                )
                if on_missing not in ("drop", "missing"):
                    raise FeatureCacheMismatch(
                        message + ": extract features for this data (same task, setting "
                        "and events), or pass --on-bad-image drop."
                    )
                if on_missing == "drop":
                    logger.warning("Dropping %s", message)
                    keep &= ~missing
                else:
                    logger.warning("Marking as missing: %s", message)
            rows[modality] = np.where(np.isnan(found), -1, found)
        if on_missing == "missing" and rows:
            keep &= np.any([r >= 0 for r in rows.values()], axis=0)
        n = int(keep.sum())
        image_rows = rows["image"][keep].astype(np.int64) if "image" in rows else np.full(n, -1)
        text_rows = rows["text"][keep].astype(np.int64) if "text" in rows else np.full(n, -1)
        return image_rows, text_rows, keep


def _describe(table: pd.DataFrame, positions, limit=3) -> str:
    shown = []
    for p in positions[:limit]:
        row = table.iloc[int(p)]
        where = ""
        if "source_file" in table.columns and "source_line" in table.columns:
            where = f" at {row['source_file']}:{row['source_line']}"
        shown.append(f"image_id {row.get('image_id', p)}{where}")
    more = f", and {len(positions) - limit} more" if len(positions) > limit else ""
    return "first: " + "; ".join(shown) + more
