"""Image backbone: DenseNet121 feature map f_i (paper section 3.1, eq. 1).

`densenet121_feature_extractor` returns `keras.applications.DenseNet121`
without its classifier and without pooling: the last dense block's feature
map (7 x 7 x 1024 at 224 x 224), which eq. 3 projects. `tiny_cnn_feature_extractor`
is a three-convolution stand-in with the same contract for fast tests.
`image_branch` wires input -> `ImageNormalization` -> backbone.
"""

import os

import keras

from crisis_keras.layers.image_normalization import ImageNormalization


def _check_weights(weights):
    if weights is None or weights == "imagenet":
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"image weights must be 'imagenet', None or a file path, got {weights!r}."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"image weights file not found: {path!r} (expected a DenseNet121 "
            "include_top=False .weights.h5 or legacy .h5 file)."
        )
    return path


def densenet121_feature_extractor(
    weights="imagenet", input_shape=(224, 224, 3), name="image_backbone"
):
    """DenseNet121 (include_top=False, no pooling) -> feature map [B, S/32, S/32, 1024].

    Args:
        weights: "imagenet" (downloads from storage.googleapis.com, the
            default real users run), None (random init), or the path of a
            local `.weights.h5` / legacy `.h5` weights file of a DenseNet121
            without top.
        input_shape: (S, S, 3), S >= 32; inputs must be already normalized
            (see `ImageNormalization`).
        name: the model's name (a nested model in the fusion graph).
    """
    weights = _check_weights(weights)
    try:
        base = keras.applications.DenseNet121(
            include_top=False, weights=weights, input_shape=tuple(input_shape), pooling=None
        )
    except Exception as err:  # keras raises a bare Exception on a failed download
        if weights != "imagenet":
            raise
        raise ValueError(
            f"could not download DenseNet121 ImageNet weights: {err}. Offline, pass a "
            "local DenseNet121 (no top) .weights.h5/.h5 file, or None for random weights "
            "(--image-weights PATH|none)."
        ) from err
    # Re-wrap to give the nested model a readable name (the application
    # is called "densenet121"); weights and layers are shared, not copied.
    return keras.Model(base.input, base.output, name=name)


def tiny_cnn_feature_extractor(input_shape=(64, 64, 3), name="image_backbone", channels=(8, 16, 32)):
    """Random three-convolution CNN -> feature map [B, S/8, S/8, channels[-1]] (tests)."""
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for i, width in enumerate(channels):
        x = keras.layers.Conv2D(
            width, 3, strides=2, padding="same", activation="relu", name=f"conv{i + 1}"
        )(x)
    return keras.Model(inputs, x, name=name)


def build_image_backbone(kind="densenet121", weights="imagenet", image_size=224, name="image_backbone"):
    """The feature extractor named `kind` ("densenet121" or "tiny")."""
    input_shape = (int(image_size), int(image_size), 3)
    if kind == "densenet121":
        return densenet121_feature_extractor(weights, input_shape, name=name)
    if kind == "tiny":
        if weights == "imagenet":
            raise ValueError(
                "the 'tiny' image backbone has no ImageNet weights: use "
                "image_weights=None (random) or a weights file of the tiny CNN."
            )
        model = tiny_cnn_feature_extractor(input_shape, name=name)
        if weights is not None:
            model.load_weights(_check_weights(weights))
        return model
    raise ValueError(f"image backbone must be 'densenet121' or 'tiny', got {kind!r}.")


def image_branch(image, kind="densenet121", weights="imagenet", image_size=224, trainable=True):
    """`image` (0..255 RGB KerasTensor) -> f_i feature map (eq. 1).

    Layers: `image_normalization` (DenseNet torch-mode preprocessing),
    `image_backbone` (nested model).
    """
    x = ImageNormalization(name="image_normalization")(image)
    backbone = build_image_backbone(kind, weights, image_size)
    backbone.trainable = bool(trainable)
    return backbone(x)
