"""Score Fusion (paper section 4.3, Tables 3-7): "averages the predictions of
separate networks trained on the different modalities" (late fusion of
class probabilities, e.g. Snoek et al., ACM MM 2005, "Early versus late
fusion in semantic video analysis").

`ScoreFusion` averages the softmax outputs of the DenseNet and BERT branches.
The two branches share no parameter, so training them jointly on the SUM of
their cross-entropies gives each exactly the gradients it would get trained
alone (tested): in training the layer adds CE(p_image, y) + CE(p_text, y) and
returns the average without gradient (`training_objective.py`), so the
compiled loss on the average does not train anything.
"""

import keras
from keras import ops

from crisis_keras.layers.training_objective import (
    mean_sparse_crossentropy,
    replace_objective,
    require_labels,
)


@keras.saving.register_keras_serializable(package="crisis_keras")
class ScoreFusion(keras.layers.Layer):
    """Average of per-modality class probabilities; per-branch losses in training.

    Call: `[p_1, ..., p_M, labels]`, each `p_m` float `[B, C]` (softmax
    outputs), labels int `[B]` (or None at inference) -> `(p_1 + ... + p_M) / M`
    float32 `[B, C]`.
    Training (`training=True`): adds `sum_m mean_B CE(p_m, labels)` with
    `add_loss` and returns the average under `stop_gradient`; raises without
    labels. Inference: the average, nothing added.
    """

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 3:
            raise ValueError(
                f"ScoreFusion '{self.name}' expects [p_1, ..., p_M, labels] with M >= 2, "
                f"got input shape {input_shape}."
            )

    def call(self, inputs, training=None):
        probabilities = [ops.cast(p, "float32") for p in inputs[:-1]]
        labels = inputs[-1]
        average = ops.mean(ops.stack(probabilities, axis=0), axis=0)
        if not training:
            return average
        require_labels(self, labels)
        objective = ops.sum(
            ops.stack([mean_sparse_crossentropy(labels, p) for p in probabilities])
        )
        return replace_objective(self, average, objective)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor(inputs[0].shape, dtype="float32")
