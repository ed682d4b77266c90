"""Projection of an image feature map or a sentence embedding to K dims (eq. 3-4)."""

import math

import keras
from keras import ops


def flat_dim(shape, what="input"):
    """Number of features of one sample of `shape` ([B, D] or [B, W, H, C])."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(
            f"{what} must have a batch axis and at least one feature axis, "
            f"got shape {shape}."
        )
    dims = shape[1:]
    if any(d is None for d in dims):
        raise ValueError(
            f"{what} needs fully known non-batch dimensions to be flattened, "
            f"got shape {shape}."
        )
    return int(math.prod(dims))


def flatten_features(x, dim):
    """[B, ...] -> [B, dim]: vec(f) of eq. 3 (identity on vectors)."""
    if len(x.shape) == 2:
        return x
    return ops.reshape(x, (-1, dim))


@keras.saving.register_keras_serializable(package="crisis_keras")
class Projection(keras.layers.Layer):
    """Fully-connected projection `F(W^T vec(f) + b)` (paper eq. 3 and 4).

    Eq. 3 projects the image feature map `f_i` (W x H x C) and eq. 4 the
    sentence embedding `e_i` to `K = 100` dimensions with a ReLU `F`. A
    feature map `[B, W, H, C]` is flattened (the literal `W^T f` of eq. 3);
    a vector `[B, D]` is used as is.

    Args:
        units: int, the projection size K (paper: 100).
        activation: the activation F (paper: "relu").
        kernel_initializer, bias_initializer: initializers of `W` and `b`.

    Call: `inputs` `[B, D]` or `[B, d1, ..., dn]` -> `[B, units]`.
    Weights: `kernel` `[prod(d), units]`, `bias` `[units]`.
    """

    def __init__(
        self,
        units=100,
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"Projection: units must be positive, got {units}.")
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        self.input_dim = flat_dim(input_shape, f"Projection '{self.name}' input")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.input_dim, self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer=self.bias_initializer
        )

    def call(self, inputs):
        x = flatten_features(ops.cast(inputs, self.compute_dtype), self.input_dim)
        y = ops.matmul(x, ops.cast(self.kernel, self.compute_dtype))
        y = ops.add(y, ops.cast(self.bias, self.compute_dtype))
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
