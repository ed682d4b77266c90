"""A head trained on cached features + the backbones that made them = the full model.

`compose_with_backbones(head, store)` builds the same registered model with
`feature_inputs=False` (raw text and pixels in, frozen backbones), loads the
cache's own backbone weights (`backbones.weights.h5`, so even random
backbones are the very ones that made the features) and copies every other
layer's weights from `head` by layer name. Every layer of the result is
accounted for, or it raises. The result exports and serves like any
fine-tuned run (`crisis_keras.export`).
"""

from crisis_keras.features.extract import build_feature_extractor, extractor_config
from crisis_keras.features.store import BACKBONE_WEIGHTS, FeatureStore
from crisis_keras.models.registry import build_model


def _weighted_layers(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


def compose_with_backbones(head, store: FeatureStore, num_classes: int):
    """The raw-input model equal to `backbones -> head` (see module doc).

    Args:
        head: a `CrisisModel` built with `feature_inputs=True` (trained).
        store: the feature cache it was trained on.
        num_classes: the classifier's size.
    """
    config = head.model_config
    if config is None or not config.feature_inputs or head.registered_name is None:
        raise ValueError(
            "compose_with_backbones needs a registered model trained on cached "
            "features (feature_inputs=True)."
        )
    raw_config = config.replace(
        feature_inputs=False, image_feature_shape=None, text_feature_dim=None,
        train_image_backbone=False, train_text_backbone=False,
        # The cache's backbones.weights.h5 supplies the image weights below.
        image_weights=None,
    )
    model = build_model(head.registered_name, num_classes, raw_config)
    # The cache's backbones, rebuilt as extraction built them (random image
    # weights here: backbones.weights.h5 holds the real ones).
    extractor = build_feature_extractor(
        extractor_config(store.spec, image_weights=None), store.modalities
    )
    extractor.load_weights(store.directory / BACKBONE_WEIGHTS)
    sources = {**_weighted_layers(extractor), **_weighted_layers(head)}
    missing = sorted(set(_weighted_layers(model)) - set(sources))
    if missing:
        raise ValueError(
            f"composing {head.registered_name!r}: no trained weights for layer(s) {missing}."
        )
    for name, layer in _weighted_layers(model).items():
        layer.set_weights(sources[name].get_weights())
    model.model_config = raw_config.replace(image_weights=config.image_weights)
    model.registered_name = head.registered_name
    return model
