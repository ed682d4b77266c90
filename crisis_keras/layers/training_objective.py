"""Training objectives the compiled loss cannot express, added from inside the graph.

The project's trainer compiles every model with one
`SparseCategoricalCrossentropy` on its single probability output (and
`predict` returns that output). Two baselines need another objective:

- Score Fusion (section 4.3): the sum of the two branches' cross-entropies,
  i.e. each unimodal network trained on its own (`ScoreFusion`).
- Mix-up (Table 8; Zhang et al., ICLR 2018): lambda CE(y_i) + (1 - lambda)
  CE(y_j) on mixed features (`MixUpLoss`).

Mechanism (one place): in training the layer adds its objective with
`add_loss` and returns `stop_gradient(output)`. Keras' `compute_loss` sums the
compiled loss and `model.losses`, so the gradient is exactly that of the added
objective whatever the compiled loss is; the compiled loss (CE of the output)
is still computed and logged, without gradient. Training `loss` in the logs is
therefore CE(output) + objective; `val_loss` (no added loss at inference) is
the plain CE of the output. The labels come in through the models' optional
`sse_label` input, which the trainer feeds whenever a model has it.
"""

import keras
from keras import ops


def mean_sparse_crossentropy(labels, probabilities, weights=None):
    """Batch mean of (weighted) `keras.losses.sparse_categorical_crossentropy`
    on probabilities: the function the compiled `SparseCategoricalCrossentropy`
    uses, so the two agree exactly."""
    per_sample = keras.losses.sparse_categorical_crossentropy(
        ops.cast(labels, "int32"), ops.cast(probabilities, "float32")
    )
    if weights is not None:
        per_sample = per_sample * ops.cast(weights, "float32")
    return ops.mean(per_sample)


def require_labels(layer, labels):
    """Raise when a layer whose training objective needs labels gets none."""
    if labels is None:
        raise ValueError(
            f"layer '{layer.name}' ({type(layer).__name__}) needs the training labels "
            "in training: feed them as the model's `sse_label` input "
            "(the trainer does; `make_dataset(..., sse_labels=True)`)."
        )


def replace_objective(layer, output, objective):
    """`layer.add_loss(objective)`; return `stop_gradient(output)` (see module doc)."""
    layer.add_loss(objective)
    return ops.stop_gradient(output)
