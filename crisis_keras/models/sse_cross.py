"""SSE-Cross-BERT-DenseNet, the paper's model (section 3, Figure 3).

    text  -> tweet_normalization -> text_preprocessor -> text_backbone -> text_cls   e_i (eq. 2)
    image -> image_normalization -> image_backbone                                   f_i (eq. 1)
    [f_i, e_i, modality_mask] -> missing_modality (only with missing_modalities:
        learned stand-ins for absent modalities, modality dropout in training)
    [f_i, e_i, sse_label] -> sse (eq. 9-10, training only)
    -> image_projection (eq. 3), text_projection (eq. 4)
    -> cross_attention (eq. 5-6, masks from the other modality, concat)
    -> self_attention (section 3.3) -> head_dense -> head_dropout -> classifier (softmax)

The same builder makes the config-override variants (no SSE, co-attention,
no attention, ...; see `variants.py`): `attention="co"` uses a
`co_attention` layer (eq. 7-8), `attention="none"` a `fusion` concat/add.
"""

import keras

from crisis_keras.layers import (
    CoAttention,
    CrossAttention,
    MissingModality,
    Projection,
    SelfAttention,
    StochasticSharedEmbedding,
)
from crisis_keras.models.crisis_model import MODALITY_MASK, CrisisModel
from crisis_keras.models.heads import classification_head
from crisis_keras.models.backbone_outputs import (
    IMAGE_FEATURES,
    TEXT_FEATURES,
    image_feature_map,
    text_embedding,
)
from crisis_keras.models.registry import register_model

MISSING_SEED_OFFSET = 7919  # missing_modality's seed = config.seed + this


def model_inputs(config, text=True, image=True, sse_label=False):
    """The named `keras.Input`s: `text` (string, shape ()), `image` (float32
    `image_size x image_size x 3`, 0..255 RGB), `sse_label` (int32, shape (),
    optional). With `config.feature_inputs` the backbones' cached outputs
    replace the raw inputs: `text_features` (float32 `[text_feature_dim]`)
    and `image_features` (float32 `image_feature_shape`). With
    `config.missing_modalities`, `modality_mask` (float32 `[2]`: image
    present, text present; optional, None = both present)."""
    if config.missing_modalities and not (text and image):
        raise ValueError(
            "missing_modalities (modality dropout) needs a model of both modalities; "
            f"this one takes only {'text' if text else 'image'}."
        )
    inputs = {}
    if text and config.feature_inputs:
        inputs[TEXT_FEATURES] = keras.Input(
            shape=(config.text_feature_dim,), dtype="float32", name=TEXT_FEATURES
        )
    elif text:
        inputs["text"] = keras.Input(shape=(), dtype="string", name="text")
    if image and config.feature_inputs:
        inputs[IMAGE_FEATURES] = keras.Input(
            shape=tuple(config.image_feature_shape), dtype="float32", name=IMAGE_FEATURES
        )
    elif image:
        size = config.image_size
        inputs["image"] = keras.Input(shape=(size, size, 3), dtype="float32", name="image")
    if sse_label:
        inputs["sse_label"] = keras.Input(shape=(), dtype="int32", name="sse_label", optional=True)
    if config.missing_modalities:
        inputs[MODALITY_MASK] = keras.Input(
            shape=(2,), dtype="float32", name=MODALITY_MASK, optional=True
        )
    return inputs


def backbone_features(inputs, config):
    """(f_i, e_i): image feature map (or its global average) and [CLS] embedding.

    With `config.missing_modalities` both pass through `missing_modality`
    (absent ones -> learned embeddings; modality dropout in training), before
    SSE: the backbone output of a placeholder (an absent image's zero pixels)
    must never reach another pair as if it were real, so SSE moves the
    stand-in instead, like any other feature (a pair can then, rarely, hold
    two stand-ins: SSE's p0/2 times the other side's missing rate). Its
    seed is offset from `config.seed` so its draws are not SSE's.
    """
    e = text_embedding(inputs, config)
    f = image_feature_map(inputs, config)
    if config.image_pooling == "avg":
        f = keras.layers.GlobalAveragePooling2D(name="image_pooling")(f)
    if config.missing_modalities:
        f, e = MissingModality(
            config.missing_image_rate, config.missing_text_rate,
            seed=None if config.seed is None else config.seed + MISSING_SEED_OFFSET,
            name="missing_modality",
        )([f, e, inputs[MODALITY_MASK]])
    return f, e


def fuse(f, e, config):
    """Projections (eq. 3-4) + attention fusion (eq. 5-8) [+ self-attention]."""
    units = config.projection_units
    f_proj = Projection(units, config.projection_activation, name="image_projection")(f)
    e_proj = Projection(units, config.projection_activation, name="text_projection")(e)
    if config.attention == "cross":
        h = CrossAttention(
            units, gating=config.gating, combine=config.combine, name="cross_attention"
        )([f_proj, e_proj, f, e])
    elif config.attention == "co":
        h = CoAttention(units, combine=config.combine, name="co_attention")([f_proj, e_proj, f, e])
    elif config.combine == "concat":
        h = keras.layers.Concatenate(name="fusion")([f_proj, e_proj])
    else:
        h = keras.layers.Add(name="fusion")([f_proj, e_proj])
    if config.self_attention:
        h = SelfAttention(config.self_attention_activation, name="self_attention")(h)
    return h


@register_model("sse_cross", description="SSE-Cross-BERT-DenseNet (the paper's model, Fig. 3)")
def build_sse_cross(num_classes, config, name="sse_cross"):
    """Build SSE-Cross-BERT-DenseNet (and its config variants) as a `CrisisModel`.

    Inputs (a dict): `text` tf.string `[B]` (raw or normalized tweets: the
    model normalizes in-graph), `image` float32 `[B, S, S, 3]` in 0..255
    (S = config.image_size), and, when `config.sse`, `sse_label` int32 `[B]`
    (the training label used by SSE's class graph, -1 = unknown; ignored at
    inference). `sse_label` is an optional input: `CrisisModel` fills it with
    None when the dict lacks it (a plain functional model would need
    `{"sse_label": None}` explicitly), so `model({"text": t, "image": x})`,
    `predict` and `evaluate` work without labels; SSE is then the identity.
    With `config.missing_modalities`, the optional `modality_mask` float32
    `[B, 2]` ([image present, text present], None = both) selects the learned
    stand-ins of `missing_modality`.
    Output: float32 softmax `[B, num_classes]`.
    """
    inputs = model_inputs(config, sse_label=config.sse)
    f, e = backbone_features(inputs, config)
    if config.sse:
        f, e = StochasticSharedEmbedding(
            config.sse_p0, config.sse_rho, seed=config.seed, name="sse"
        )([f, e, inputs["sse_label"]])
    h = fuse(f, e, config)
    outputs = classification_head(
        h, num_classes, config.head_units, config.head_activation, config.dropout
    )
    return CrisisModel(inputs, outputs, name=name)
