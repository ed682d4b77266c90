"""Compact bilinear baselines of Tables 3-5 (section 4.3).

- `compact_bilinear_pooling`, "Compact Bilinear Pooling [22]" (Fukui et al.,
  EMNLP 2016, MCB): the outer product of the image and text vectors sketched
  to d = `bilinear_dim` dimensions, signed square root, L2 normalization,
  then the classifier:

      image -> image_normalization -> image_backbone -> image_pooling (GAP, 1024)
      text  -> ... -> text_backbone -> text_cls ([CLS], 768)
      [image_pooling, text_cls] -> compact_bilinear_pooling (d) -> head_dropout -> classifier

  Fukui et al. pool whole-image CNN features and an LSTM question vector and
  put one fully-connected layer after MCB, so the default head is the
  classifier alone (`head_units=0`) with the usual dropout; global average
  pooling turns DenseNet's 7x7x1024 map into the image vector.

- `compact_bilinear_gated_pooling`, "Compact Bilinear Gated Pooling [38]"
  (Kiela et al., AAAI 2018, "Efficient Large-Scale Multi-Modal
  Classification"): the paper describes it as compact bilinear pooling "by
  adding an extra gate on top". Reading (Kiela et al.'s exact gate formula
  was not available to us): a sigmoid gate computed from both modalities
  multiplies the MCB output element-wise,

      g = sigmoid(W [x | y] + b)  in (0, 1)^d,    h = g * MCB(x, y),

  layers `bilinear_gate_input` (concat), `bilinear_gate` (Dense, sigmoid),
  `gated_bilinear` (Multiply).

Both take `text` and `image` (no `sse_label`; no SSE).
"""

import keras

from crisis_keras.layers import CompactBilinearPooling
from crisis_keras.models.crisis_model import CrisisModel
from crisis_keras.models.heads import classification_head
from crisis_keras.models.registry import register_model
from crisis_keras.models.sse_cross import backbone_features, model_inputs

BASELINE_OVERRIDES = dict(head_units=0, sse=False, image_pooling="avg", attention="none", self_attention=False)


def _build(num_classes, config, name, gated):
    if config.image_pooling != "avg":
        raise ValueError(
            f"{name} pools the DenseNet map globally: image_pooling must be 'avg', "
            f"got {config.image_pooling!r}."
        )
    inputs = model_inputs(config)
    x, y = backbone_features(inputs, config)
    h = CompactBilinearPooling(config.bilinear_dim, seed=config.seed, name="compact_bilinear_pooling")([x, y])
    if gated:
        both = keras.layers.Concatenate(name="bilinear_gate_input")([x, y])
        gate = keras.layers.Dense(config.bilinear_dim, activation="sigmoid", name="bilinear_gate")(both)
        h = keras.layers.Multiply(name="gated_bilinear")([gate, h])
    outputs = classification_head(h, num_classes, config.head_units, config.head_activation, config.dropout)
    return CrisisModel(inputs, outputs, name=name)


@register_model(
    "compact_bilinear_pooling",
    description="Compact Bilinear Pooling (Fukui et al. 2016, MCB) of pooled DenseNet and BERT [CLS]",
    **BASELINE_OVERRIDES,
)
def build_compact_bilinear_pooling(num_classes, config, name="compact_bilinear_pooling"):
    """MCB baseline; inputs `text` tf.string `[B]`, `image` float32 `[B, S, S, 3]`
    in 0..255; output softmax `[B, num_classes]` (float32)."""
    return _build(num_classes, config, name, gated=False)


@register_model(
    "compact_bilinear_gated_pooling",
    description="Compact Bilinear Gated Pooling (Kiela et al. 2018): sigmoid gate on MCB",
    **BASELINE_OVERRIDES,
)
def build_compact_bilinear_gated_pooling(num_classes, config, name="compact_bilinear_gated_pooling"):
    """Gated MCB baseline (see module docstring); same inputs/output as MCB."""
    return _build(num_classes, config, name, gated=True)
