"""Cross-attention fusion (paper eq. 5-6) and the shared gated-fusion base.

The paper's prose (section 3.3) says "the attention mask alpha_v for the
image is completely dependent on the text embedding e_i, while the attention
mask alpha_e for the text is completely dependent on the image embedding f_i",
but eq. 5-6 as printed compute alpha_v from f_i and alpha_e from e_i. We
default to the prose (`gating="cross"`): it is what the name says and what
distinguishes it from co-attention (eq. 7-8). The printed equations are kept
as `gating="self"`.
"""

import keras
from keras import ops

from crisis_keras.layers.projection import flat_dim, flatten_features

GATINGS = ("cross", "self")
COMBINES = ("concat", "add")


class GatedFusion(keras.layers.Layer):
    """Base: mask the projected features with sigmoid gates, then combine.

    `alpha_v = sigmoid(W'_v^T x_v + b'_v)`, `alpha_e = sigmoid(W'_e^T x_e + b'_e)`,
    output `[alpha_v * f~ | alpha_e * e~]` (`combine="concat"`, `[B, 2K]`) or
    `alpha_v * f~ + alpha_e * e~` (`combine="add"`, `[B, K]`). Subclasses say
    which sources `x_v`, `x_e` the masks are computed from (`_mask_inputs`).

    Call: `[image_proj [B,K], text_proj [B,K], image_source, text_source]`;
    sources are vectors `[B, D]` or feature maps `[B, W, H, C]` (flattened).
    Weights: `image_mask_kernel`, `image_mask_bias`, `text_mask_kernel`,
    `text_mask_bias`.
    """

    def __init__(
        self,
        units=100,
        combine="concat",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"{type(self).__name__}: units must be positive, got {units}.")
        if combine not in COMBINES:
            raise ValueError(
                f"{type(self).__name__}: combine must be one of {COMBINES}, got {combine!r}."
            )
        self.units = int(units)
        self.combine = combine
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    # -- to override -------------------------------------------------------
    def _mask_input_dims(self, image_dim, text_dim):
        """(input size of the image mask, input size of the text mask)."""
        raise NotImplementedError

    def _mask_inputs(self, image_source, text_source):
        """(input of the image mask, input of the text mask), both [B, *]."""
        raise NotImplementedError

    # ----------------------------------------------------------------------
    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects 4 inputs "
                "[image_proj, text_proj, image_source, text_source], "
                f"got {input_shape}."
            )
        for what, shape in zip(("image_proj", "text_proj"), input_shape[:2]):
            shape = tuple(shape)
            if len(shape) != 2 or shape[-1] != self.units:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': {what} must have shape "
                    f"[B, {self.units}] (units), got {shape}."
                )

    def build(self, input_shape):
        self._check_inputs(input_shape)
        name = type(self).__name__ + f" '{self.name}'"
        self.image_source_dim = flat_dim(input_shape[2], f"{name} image_source")
        self.text_source_dim = flat_dim(input_shape[3], f"{name} text_source")
        image_in, text_in = self._mask_input_dims(
            self.image_source_dim, self.text_source_dim
        )
        self.image_mask_kernel = self.add_weight(
            name="image_mask_kernel",
            shape=(image_in, self.units),
            initializer=self.kernel_initializer,
        )
        self.image_mask_bias = self.add_weight(
            name="image_mask_bias",
            shape=(self.units,),
            initializer=self.bias_initializer,
        )
        self.text_mask_kernel = self.add_weight(
            name="text_mask_kernel",
            shape=(text_in, self.units),
            initializer=self.kernel_initializer,
        )
        self.text_mask_bias = self.add_weight(
            name="text_mask_bias",
            shape=(self.units,),
            initializer=self.bias_initializer,
        )

    def _gate(self, x, kernel, bias):
        dtype = self.compute_dtype
        logits = ops.matmul(ops.cast(x, dtype), ops.cast(kernel, dtype))
        return ops.cast(ops.sigmoid(ops.add(logits, ops.cast(bias, dtype))), dtype)

    def attention_masks(self, inputs):
        """The masks `(alpha_v, alpha_e)`, each `[B, units]`, for `inputs`."""
        _, _, image_source, text_source = inputs
        image_source = flatten_features(
            ops.cast(image_source, self.compute_dtype), self.image_source_dim
        )
        text_source = flatten_features(
            ops.cast(text_source, self.compute_dtype), self.text_source_dim
        )
        x_v, x_e = self._mask_inputs(image_source, text_source)
        alpha_v = self._gate(x_v, self.image_mask_kernel, self.image_mask_bias)
        alpha_e = self._gate(x_e, self.text_mask_kernel, self.text_mask_bias)
        return alpha_v, alpha_e

    def call(self, inputs):
        image_proj, text_proj = inputs[0], inputs[1]
        alpha_v, alpha_e = self.attention_masks(inputs)
        image_out = ops.multiply(alpha_v, ops.cast(image_proj, self.compute_dtype))
        text_out = ops.multiply(alpha_e, ops.cast(text_proj, self.compute_dtype))
        if self.combine == "concat":
            return ops.concatenate([image_out, text_out], axis=-1)
        return ops.add(image_out, text_out)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        width = 2 * self.units if self.combine == "concat" else self.units
        return (tuple(input_shape[0])[0], width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "combine": self.combine,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="crisis_keras")
class CrossAttention(GatedFusion):
    """Cross-attention (paper eq. 5-6): each modality gates the other one.

    `gating="cross"` (default, the paper's prose): `alpha_v = sigmoid(W'_v^T e + b'_v)`
    from the TEXT source `e`, `alpha_e = sigmoid(W'_e^T f + b'_e)` from the IMAGE
    source `f`. `gating="self"` (eq. 5-6 as printed): `alpha_v` from `f`,
    `alpha_e` from `e`. Output `[alpha_v * f~ | alpha_e * e~]` (`combine="concat"`,
    `[B, 2*units]`) or their sum (`combine="add"`, `[B, units]`).

    Call: `[image_proj [B,K], text_proj [B,K], image_source, text_source]`; the
    sources are the backbone outputs (vector `[B, D]` or map `[B, W, H, C]`,
    flattened), the projections come from `Projection` (eq. 3-4).
    """

    def __init__(self, units=100, gating="cross", combine="concat", **kwargs):
        if gating not in GATINGS:
            raise ValueError(
                f"CrossAttention: gating must be one of {GATINGS}, got {gating!r}."
            )
        super().__init__(units=units, combine=combine, **kwargs)
        self.gating = gating

    def _mask_input_dims(self, image_dim, text_dim):
        if self.gating == "cross":
            return text_dim, image_dim
        return image_dim, text_dim

    def _mask_inputs(self, image_source, text_source):
        if self.gating == "cross":
            return text_source, image_source
        return image_source, text_source

    def get_config(self):
        config = super().get_config()
        config["gating"] = self.gating
        return config
