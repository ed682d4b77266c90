"""Missing modalities: a learned stand-in for an absent image or text (issue 13).

Real crisis streams hold posts without an image (none attached, a dead link,
an undecodable file) and images whose text is empty. `MissingModality` sits
between the backbones and the projections (f_i of eq. 1 and e_i of eq. 2, or
the cached features that replace them), so the full model and a head trained
on cached features share it under the same name. It holds one learned
embedding per modality, of the feature's own shape, and returns

    f_i' = where(image_present, f_i, image_embedding)
    e_i' = where(text_present,  e_i, text_embedding)

with `[image_present, text_present]` read from a presence mask.

Modality dropout (training only). A pair with both modalities present loses
its image with probability `image_rate` (p) and its text with probability
`text_rate` (q), never both: one u ~ U[0, 1) per pair drops the image when
u < p and the text when u >= 1 - q, two disjoint intervals (so p + q <= 1 is
required). Pairs that already lack a modality are never dropped further, so
a pair never ends with neither. The marginal drop rates over complete pairs
are exactly p and q. Identity for present modalities at inference.
"""

import keras
from keras import ops


def check_rates(image_rate, text_rate):
    """(p, q) as floats, or ValueError: each in [0, 1], p + q <= 1."""
    p, q = float(image_rate), float(text_rate)
    for name, rate in (("image_rate", p), ("text_rate", q)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"MissingModality: {name} must be in [0, 1], got {rate}.")
    if p + q > 1.0 + 1e-9:
        raise ValueError(
            "MissingModality: image_rate + text_rate must be <= 1 (a pair never loses "
            f"both modalities, so the two drops are exclusive), got {p} + {q}."
        )
    return p, q


@keras.saving.register_keras_serializable(package="crisis_keras")
class MissingModality(keras.layers.Layer):
    """Replaces absent modalities by learned embeddings; modality dropout in training.

    Args:
        image_rate: p, probability that training drops the image of a complete pair.
        text_rate: q, the same for the text (p + q <= 1; see module doc).
        seed: int or None, seed of the layer's `keras.random.SeedGenerator`.

    Call: `[image_features, text_features, mask]` -> `[image_features',
    text_features']`, same shapes and dtypes. Features of any rank (`[B, D]`,
    `[B, H, W, C]`) with fully known non-batch dimensions. `mask` is `[B, 2]`
    (float or bool: `[image_present, text_present]`, > 0.5 = present) or None
    (everything present). Weights `image_embedding` (the image features'
    shape) and `text_embedding`, initialized to zeros.
    """

    def __init__(self, image_rate=0.0, text_rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_rate, self.text_rate = check_rates(image_rate, text_rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3):
            raise ValueError(
                f"MissingModality '{self.name}' expects [image_features, text_features, "
                f"mask], got input shape {input_shape}."
            )
        shapes = {}
        for name, shape in (("image", input_shape[0]), ("text", input_shape[1])):
            feature = tuple(shape[1:])
            if not feature or any(d is None for d in feature):
                raise ValueError(
                    f"MissingModality '{self.name}': the {name} features need fully known "
                    f"non-batch dimensions, got shape {tuple(shape)}."
                )
            shapes[name] = feature
        if len(input_shape) == 3 and input_shape[2] is not None:
            mask = tuple(input_shape[2])
            if len(mask) != 2 or mask[-1] not in (2, None):
                raise ValueError(
                    f"MissingModality '{self.name}': the mask must be [batch, 2] "
                    f"([image_present, text_present]), got shape {mask}."
                )
        self.image_embedding = self.add_weight(
            name="image_embedding", shape=shapes["image"], initializer="zeros"
        )
        self.text_embedding = self.add_weight(
            name="text_embedding", shape=shapes["text"], initializer="zeros"
        )

    def presence(self, mask, batch_size, training=None):
        """(image_present, text_present), bool `[B]`, after modality dropout."""
        if mask is None:
            image = ops.ones((batch_size,), dtype="bool")
            text = ops.ones((batch_size,), dtype="bool")
        else:
            mask = ops.cast(mask, "float32")
            image, text = ops.greater(mask[:, 0], 0.5), ops.greater(mask[:, 1], 0.5)
        if training and (self.image_rate > 0.0 or self.text_rate > 0.0):
            u = keras.random.uniform((batch_size,), dtype="float32", seed=self.seed_generator)
            complete = ops.logical_and(image, text)
            drop_image = ops.logical_and(complete, ops.less(u, self.image_rate))
            drop_text = ops.logical_and(complete, ops.greater_equal(u, 1.0 - self.text_rate))
            image = ops.logical_and(image, ops.logical_not(drop_image))
            text = ops.logical_and(text, ops.logical_not(drop_text))
        return image, text

    @staticmethod
    def _select(features, present, embedding):
        rank = len(features.shape)
        present = ops.reshape(present, (-1,) + (1,) * (rank - 1))
        return ops.where(present, features, ops.cast(embedding, features.dtype)[None])

    def call(self, inputs, training=None):
        image, text = inputs[0], inputs[1]
        mask = inputs[2] if len(inputs) > 2 else None
        image_present, text_present = self.presence(mask, ops.shape(image)[0], training)
        return [
            self._select(image, image_present, self.image_embedding),
            self._select(text, text_present, self.text_embedding),
        ]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[0]), tuple(input_shape[1])]

    def get_config(self):
        config = super().get_config()
        config.update(
            {"image_rate": self.image_rate, "text_rate": self.text_rate, "seed": self.seed}
        )
        return config
