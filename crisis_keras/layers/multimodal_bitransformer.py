"""Supervised multimodal bitransformer (MMBT; Kiela et al. 2019, "Supervised
Multimodal Bitransformers for Classifying Images and Text", arXiv:1909.02950),
the baseline "MMBT [37]" of the paper's section 4.3 and Tables 3-5.

MMBT feeds N image embeddings to BERT as extra tokens. Each projected image
vector is an input embedding (instead of a token embedding); BERT's own
position embeddings, segment embeddings, embedding LayerNorm and dropout are
shared by both modalities; the whole sequence goes through all transformer
layers, so every layer attends across image and text:

    image part: [CLS]  img_1 ... img_N  [SEP]   positions 0..N+1, segment 0
    text part:  the tweet's WordPiece tokens     positions 0..L-2, segment 1
    mask:       image part always attended, text tokens by the padding mask

as in Kiela et al.'s code (facebookresearch/mmbt, `MultimodalBertEncoder`):
each part numbers its positions from 0 (the parts are embedded separately and
concatenated), the image part is segment 0 and the text segment 1, and the
text has neither [CLS] nor a closing [SEP]. Our preprocessor's sequence is
[CLS] tokens [SEP] padding, so the layer drops its first token and masks its
[SEP] (a masked key is as good as a removed token; the positions of the
tokens before it do not change). The classifier reads the first ([CLS])
token: BERT's pooler on it in MMBT, or `sequence_output[:, 0]`. One
difference: Kiela et al. give the image part its own embedding dropout (same
rate); here both parts share BERT's `embeddings_dropout`.

`MultimodalBitransformer` wraps a keras-hub `BertBackbone` and calls its
sub-layers (`token_embedding`, `position_embedding`, `segment_embedding`,
`embeddings_layer_norm`, `embeddings_dropout`, `transformer_layers`,
`pooled_dense`) directly; it returns the backbone's output dict, so it can
stand where the backbone stood (named "text_backbone" in the model, called
with the preprocessor's token dict first).
"""

import math

import keras
from keras import ops


def region_bounds(size, regions):
    """Rows `[start, end)` of each of `regions` bands of a `size`-row map, as
    PyTorch's AdaptiveAvgPool2d (MMBT's pooling): start = floor(i size / N),
    end = ceil((i + 1) size / N); neighbouring bands overlap when N does not
    divide size (7 rows, N = 3: [0, 3), [2, 5), [4, 7))."""
    return [(math.floor(i * size / regions), math.ceil((i + 1) * size / regions)) for i in range(regions)]


@keras.saving.register_keras_serializable(package="crisis_keras")
class ImageRegionPooling(keras.layers.Layer):
    """A CNN feature map pooled into N image embeddings, as MMBT does.

    Kiela et al. pool ResNet-152's map with `AdaptiveAvgPool2d((N, 1))` for
    N = 3 (N horizontal bands, each averaged over its rows and all columns)
    and read them as N vectors. (`keras.layers.AdaptiveAveragePooling2D`
    does the same in eager mode, but its TF graph-mode kernel fails on e.g.
    8 -> 3 or 7 -> 1, so this layer slices the bands itself.)

    Args:
        num_regions: N (>= 1), at most the map's height.

    Call: `[B, H, W, C]` (static H) -> `[B, N, C]`.
    """

    def __init__(self, num_regions=3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_regions, int) or isinstance(num_regions, bool) or num_regions < 1:
            raise ValueError(f"ImageRegionPooling: num_regions must be an int >= 1, got {num_regions!r}.")
        self.num_regions = num_regions

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None:
            raise ValueError(
                f"ImageRegionPooling '{self.name}' expects [B, H, W, C] with a known H, got {input_shape}."
            )
        if input_shape[1] < self.num_regions:
            raise ValueError(
                f"ImageRegionPooling '{self.name}': {self.num_regions} regions from a map of "
                f"height {input_shape[1]}."
            )

    def call(self, inputs):
        bands = [
            ops.mean(inputs[:, start:end, :, :], axis=(1, 2))
            for start, end in region_bounds(inputs.shape[1], self.num_regions)
        ]
        return ops.stack(bands, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_regions, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["num_regions"] = self.num_regions
        return config


@keras.saving.register_keras_serializable(package="crisis_keras")
class MultimodalBitransformer(keras.layers.Layer):
    """BERT over [CLS] image tokens [SEP] text tokens (see the module docstring).

    Args:
        backbone: a `keras_hub.models.BertBackbone` (or its config dict).
        cls_token_id, sep_token_id: the tokenizer's [CLS] and [SEP] ids.

    Call: `(tokens, image_embeddings)`: tokens is the `BertTextClassifierPreprocessor`
    dict (`token_ids`, `padding_mask`, `[B, L]`, [CLS] ... [SEP] padding);
    `image_embeddings` float `[B, N, hidden_dim]` (already projected) ->
    `{"sequence_output": [B, N + 1 + L, hidden_dim], "pooled_output": [B, hidden_dim]}`.
    """

    def __init__(self, backbone, cls_token_id, sep_token_id, **kwargs):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        self.backbone = backbone
        self.cls_token_id = int(cls_token_id)
        self.sep_token_id = int(sep_token_id)

    def get_layer(self, name):
        """The wrapped backbone's sub-layer `name` (e.g. "pooled_dense")."""
        return self.backbone.get_layer(name)

    def build(self, tokens_shape, image_embeddings_shape=None):
        # the wrapped backbone is a functional model, built at construction
        self.built = True

    def _embed(self, embeddings, segment, batch, length):
        bb = self.backbone
        positions = bb.position_embedding(embeddings)
        segments = bb.segment_embedding(ops.full((batch, length), segment, dtype="int32"))
        return embeddings + positions + segments

    def call(self, tokens, image_embeddings, training=None):
        bb = self.backbone
        token_ids = tokens["token_ids"][:, 1:]  # the text without its [CLS]
        text_mask = ops.logical_and(  # padding and the closing [SEP] are masked
            ops.cast(tokens["padding_mask"][:, 1:], "bool"), ops.not_equal(token_ids, self.sep_token_id)
        )
        batch = ops.shape(token_ids)[0]
        text_length = ops.shape(token_ids)[1]
        num_image = image_embeddings.shape[1]

        special = ops.convert_to_tensor([[self.cls_token_id, self.sep_token_id]], dtype="int32")
        special = bb.token_embedding(ops.broadcast_to(special, (batch, 2)))
        image_embeddings = ops.cast(image_embeddings, special.dtype)
        image_part = ops.concatenate([special[:, :1], image_embeddings, special[:, 1:]], axis=1)
        image_part = self._embed(image_part, 0, batch, num_image + 2)
        text_part = self._embed(bb.token_embedding(token_ids), 1, batch, text_length)

        x = ops.concatenate([image_part, text_part], axis=1)
        x = bb.embeddings_layer_norm(x)
        x = bb.embeddings_dropout(x, training=training)
        mask = ops.concatenate([ops.ones((batch, num_image + 2), dtype="bool"), text_mask], axis=1)
        for layer in bb.transformer_layers:
            x = layer(x, padding_mask=mask, training=training)
        return {"sequence_output": x, "pooled_output": bb.pooled_dense(x[:, 0, :])}

    def compute_output_spec(self, tokens, image_embeddings, training=None):
        hidden = self.backbone.hidden_dim
        shape = tokens["token_ids"].shape
        length = None if shape[1] is None else shape[1] - 1 + image_embeddings.shape[1] + 2
        dtype = self.backbone.compute_dtype
        return {
            "sequence_output": keras.KerasTensor((shape[0], length, hidden), dtype=dtype),
            "pooled_output": keras.KerasTensor((shape[0], hidden), dtype=dtype),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "cls_token_id": self.cls_token_id,
                "sep_token_id": self.sep_token_id,
            }
        )
        return config
