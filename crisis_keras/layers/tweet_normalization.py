"""In-graph tweet normalization (paper section 4.5) as a Keras layer.

Wraps `crisis_keras.data.normalize.normalize_tweet_tf` (lowercase, links ->
"link", runs of whitespace -> one space, strip) so a model that takes raw
tweet strings normalizes them exactly like the training pipeline does, also
after export to a SavedModel.
"""

import keras


@keras.saving.register_keras_serializable(package="crisis_keras")
class TweetNormalization(keras.layers.Layer):
    """Normalize tweet strings in-graph (section 4.5); no weights.

    Call: `tf.string` tensor of any shape -> normalized `tf.string`, same shape.
    Normalizing an already normalized string is the identity.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # Strings are not backend tensors: keep tf tensors as they come.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def call(self, inputs):
        from crisis_keras.data.normalize import normalize_tweet_tf

        return normalize_tweet_tf(inputs)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="string")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
