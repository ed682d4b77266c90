"""The trainer's feature mode: which model to build, and whether the cache fits.

`python -m crisis_keras.train --features DIR` trains the same registered
model with `feature_inputs=True` (its backbones replaced by the cached
outputs, every later layer unchanged). Before it builds anything,
`check_run_against_cache` compares the run's backbones and preprocessing
with the cache's manifest and refuses a cache made otherwise.
"""

from typing import Dict

from crisis_keras.features.manifest import check_spec, text_fingerprint, weights_fingerprint
from crisis_keras.features.store import FeatureStore

IMAGE_FIELDS = ("image_backbone", "image_weights", "image_weights_sha256", "image_size", "resize_to")
TEXT_FIELDS = ("text_backbone", "text_preprocessor", "text_weights_sha256", "text_pooling",
               "sequence_length")


def feature_model_overrides(store: FeatureStore) -> Dict:
    """`ModelConfig` overrides that make a model take this cache's features."""
    overrides = {"feature_inputs": True}
    overrides["image_feature_shape"] = store.image_feature_shape or (1, 1, 1)
    overrides["text_feature_dim"] = store.text_feature_dim or 1
    return overrides


def requested_spec(train_config, model_config) -> Dict:
    """The cache fields a run asks for (`FeatureSpec` names)."""
    return {
        "image_backbone": model_config.image_backbone,
        "image_weights": model_config.image_weights,
        "image_weights_sha256": weights_fingerprint(
            model_config.image_weights, model_config.image_backbone
        ),
        "image_size": int(train_config.image_size),
        "resize_to": int(train_config.resize_to),
        "text_backbone": model_config.text_backbone,
        "text_preprocessor": model_config.text_preprocessor,
        "text_weights_sha256": text_fingerprint(
            model_config.text_backbone, model_config.text_preprocessor
        ),
        "text_pooling": model_config.text_pooling,
        "sequence_length": int(model_config.sequence_length),
    }


def check_run_against_cache(store: FeatureStore, train_config, model_config, modalities) -> None:
    """Raise `FeatureCacheMismatch` naming every field where run and cache differ."""
    fields = []
    if "image" in modalities:
        fields += IMAGE_FIELDS
    if "text" in modalities:
        fields += TEXT_FIELDS
    check_spec(store.manifest, requested_spec(train_config, model_config), store.directory, fields)
