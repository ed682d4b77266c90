"""`FusedBatchNormalization`: Keras' batch normalization on TensorFlow's fused kernel.

Keras 3's `BatchNormalization` computes the batch moments and the normalization
as a dozen separate ops, with bf16 inputs cast to float32 and back around
them. DenseNet121 has 120 of these layers on large feature maps, and on a CPU
they, not the convolutions, set the pace of a fine-tuning step. TensorFlow's
`FusedBatchNormV3` (oneDNN's kernel on x86) does the same arithmetic in one
op and its gradient in one more, reading bf16 and accumulating in float32.
Measured on the training step of DenseNet121 at 224, batch 32, 2 CPU cores:
1.8x (float32) and 2.1x (mixed bf16) the Keras layer (`bench/throughput.py`).

The equation is the Keras layer's (Ioffe & Szegedy 2015): in training,
y = gamma (x - mu_B) / sqrt(var_B + eps) + beta with the biased batch
variance, and moving = momentum * moving + (1 - momentum) * batch statistic;
otherwise the moving statistics normalize. The fused kernel returns the
unbiased batch variance for the moving average; it is rescaled by (n - 1) / n
to the biased one that Keras averages, so both layers keep the same moving
variance. Where the kernel does not apply (not a 4-D channels-last input, a
mask, renorm, synchronized statistics, epsilon below the kernel's 1.001e-5, a
non-TensorFlow backend) the layer is the Keras layer, unchanged.

The weights are the Keras layer's, in the same order: `fuse_batch_normalization`
swaps the layers of a built backbone and keeps its (e.g. ImageNet) weights.
"""

import keras

# The fused kernel's smallest epsilon (TensorFlow raises it to this value).
FUSED_MIN_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="crisis_keras")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by `tf.nn.fused_batch_norm`.

    Same arguments, weights and outputs as the Keras layer (to float
    rounding); see the module docstring for when it falls back to it.
    """

    def _fusable(self, inputs, training, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not self.renorm
            and not getattr(self, "synchronized", False)
            and self.epsilon >= FUSED_MIN_EPSILON
            and inputs.dtype in ("float32", "bfloat16", "float16")
            and training in (None, True, False)  # a Python bool, not a tensor
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels], "float32")
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels], "float32")
        if training and self.trainable:
            y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
            variance = unbiased * tf.maximum(n - 1.0, 1.0) / tf.maximum(n, 1.0)
            moving_mean = tf.cast(self.moving_mean, "float32")
            moving_variance = tf.cast(self.moving_variance, "float32")
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, data_format="NHWC", is_training=False,
            )
        return tf.cast(y, self.compute_dtype)


def fuse_batch_normalization(model):
    """`model` (functional) with every `BatchNormalization` a `FusedBatchNormalization`.

    A clone: same layers, names and weights (copied), same outputs to float
    rounding. Returned as is when it has no batch normalization.
    """
    if not any(type(layer) is keras.layers.BatchNormalization for layer in model.layers):
        return model

    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization:
            return FusedBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    fused = keras.models.clone_model(model, clone_function=clone)
    sources = {layer.name: layer for layer in model.layers}
    for target in fused.layers:
        if target.weights:  # layers keep their names in the clone (input layers aside)
            target.set_weights(sources[target.name].get_weights())
    return fused
