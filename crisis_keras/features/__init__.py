"""Frozen-backbone feature cache: run the backbones once, train heads in minutes.

    python -m crisis_keras.features extract --task informative --out FEATURES ...
    python -m crisis_keras.train --task informative --features FEATURES ...

`extract.py` writes a cache, `store.py` reads it, `manifest.py` records and
checks what made it, `dataset.py` turns it into `tf.data` batches, `run.py`
is the trainer's feature mode and `compose.py` puts the backbones back in
front of a trained head for export.
"""

from crisis_keras.features.manifest import FeatureCacheMismatch, FeatureSpec, read_manifest
from crisis_keras.features.store import FeatureStore

__all__ = ["FeatureCacheMismatch", "FeatureSpec", "FeatureStore", "read_manifest"]
