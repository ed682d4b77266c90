"""`TrimToLongest`: cut a padded token batch to its longest real sequence.

The preprocessor pads every tweet to `sequence_length` L (64), but CrisisMMD
tweets are much shorter, and BERT's cost grows with the length it is given
(linear in the dense layers, quadratic in attention). Padding sits at the end
of each row and is masked out of BERT's attention, so dropping the columns
that are padding in every row of the batch leaves the outputs at the real
tokens unchanged: the [CLS] embedding e_i of eq. 2, BERT's pooler on it and
the masked mean over real tokens are the same. keras-hub's `BertBackbone`
takes any length up to its `max_sequence_length` (its position embedding is
sliced to the input length), as do TF Hub encoders with `[None, None]` inputs.

The cut is computed inside the graph, per batch: n = max over the batch of
sum(padding_mask), at least `min_length` (2: [CLS] [SEP]) and at most L.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="crisis_keras")
class TrimToLongest(keras.layers.Layer):
    """`{"token_ids", "segment_ids", "padding_mask"}` `[B, L]` -> the same keys `[B, n]`.

    Args:
        min_length: the shortest cut (2 keeps [CLS] and [SEP] of an empty tweet).

    Every entry of the dict is sliced to its first n columns; the padding
    must be at the end of each row (keras-hub and TF Hub BERT preprocessors).
    """

    def __init__(self, min_length=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 1:
            raise ValueError(f"TrimToLongest: min_length must be an int >= 1, got {min_length!r}.")
        self.min_length = min_length

    def call(self, inputs):
        if "padding_mask" not in inputs:
            raise ValueError(f"TrimToLongest needs a 'padding_mask' entry, got {sorted(inputs)}.")
        mask = inputs["padding_mask"]
        full = ops.shape(mask)[1]
        longest = ops.max(ops.sum(ops.cast(mask, "int32"), axis=1), initial=0)
        n = ops.minimum(ops.maximum(longest, self.min_length), full)
        batch = ops.shape(mask)[0]
        return {key: ops.slice(value, [0, 0], [batch, n]) for key, value in inputs.items()}

    def compute_output_spec(self, inputs):
        return {
            key: keras.KerasTensor((value.shape[0], None), dtype=value.dtype)
            for key, value in inputs.items()
        }

    def get_config(self):
        config = super().get_config()
        config["min_length"] = self.min_length
        return config
