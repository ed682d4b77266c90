"""Self-attention over the fused vector (paper section 3.3, no equation given).

The paper: "The result of partially blocked features from both modalities is
later fed to a self-attention layer to decide which information should be
passed to the next layer", added "in the fully-connected networks" on the
concatenation [alpha_v * f~ | alpha_e * e~]. Our reading: a feature-wise gate
computed from the fused vector h itself, the same form as the cross-attention
masks of eq. 5-6 but with h as its own source:

    beta = sigmoid(W_s^T h + b_s),   output = beta * h        (activation="sigmoid")

The `"softmax"` variant normalises the scores over the features and rescales by
the width d, `beta = d * softmax(W_s^T h + b_s)`, so uniform scores give the
identity.
"""

import keras
from keras import ops

ACTIVATIONS = ("sigmoid", "softmax")


@keras.saving.register_keras_serializable(package="crisis_keras")
class SelfAttention(keras.layers.Layer):
    """Feature-wise self-attention gate `beta(h) * h` (see module docstring).

    Args:
        activation: "sigmoid" (default) or "softmax" (times the width d).
        kernel_initializer, bias_initializer: initializers of `W_s`, `b_s`.

    Call: `h` `[B, d]` (any rank; features on the last axis) -> same shape.
    Weights: `attention_kernel` `[d, d]`, `attention_bias` `[d]`.
    """

    def __init__(
        self,
        activation="sigmoid",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"SelfAttention: activation must be one of {ACTIVATIONS}, "
                f"got {activation!r}."
            )
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        dim = tuple(input_shape)[-1]
        if dim is None:
            raise ValueError(
                f"SelfAttention '{self.name}' needs a known last dimension, "
                f"got input shape {tuple(input_shape)}."
            )
        self.units = int(dim)
        self.attention_kernel = self.add_weight(
            name="attention_kernel",
            shape=(self.units, self.units),
            initializer=self.kernel_initializer,
        )
        self.attention_bias = self.add_weight(
            name="attention_bias",
            shape=(self.units,),
            initializer=self.bias_initializer,
        )

    def attention_weights(self, inputs):
        """`beta` (same shape as `inputs`)."""
        dtype = self.compute_dtype
        h = ops.cast(inputs, dtype)
        scores = ops.matmul(h, ops.cast(self.attention_kernel, dtype))
        scores = ops.add(scores, ops.cast(self.attention_bias, dtype))
        if self.activation == "sigmoid":
            return ops.cast(ops.sigmoid(scores), dtype)
        beta = ops.softmax(ops.cast(scores, "float32"), axis=-1) * float(self.units)
        return ops.cast(beta, dtype)

    def call(self, inputs):
        return ops.multiply(
            self.attention_weights(inputs), ops.cast(inputs, self.compute_dtype)
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
