"""Mix-up (Zhang et al., ICLR 2018, "mixup: Beyond Empirical Risk
Minimization") for Table 8's ablation "- SSE + Mix-up [68]" (section 5.4).

Zhang et al. train on convex combinations of pairs of examples and of their
one-hot labels, x~ = lambda x_i + (1 - lambda) x_j, y~ = lambda y_i +
(1 - lambda) y_j, lambda ~ Beta(alpha, alpha), pairing each mini-batch with a
shuffled copy of itself and one lambda per mini-batch (their reference code).
Raw tweets cannot be mixed, so `MixUp` mixes what SSE acts on in the paper's
model: the backbone outputs f_i (DenseNet feature map) and e_i (BERT [CLS]),
both modalities with the same lambda and the same partner, so each mixed
image-text pair has one mixed label. Cross-entropy is linear in the target,
so CE(p, y~) = lambda CE(p, y_i) + (1 - lambda) CE(p, y_j): `MixUpLoss`, at
the output, adds that objective (the trainer's loss takes hard integer
labels; see `training_objective.py`). Both layers are the identity at
inference.
"""

import keras
from keras import ops

from crisis_keras.layers.training_objective import (
    mean_sparse_crossentropy,
    replace_objective,
    require_labels,
)


@keras.saving.register_keras_serializable(package="crisis_keras")
class MixUp(keras.layers.Layer):
    """Mix each sample's features with those of a shuffled partner (training only).

    Args:
        alpha: the Beta(alpha, alpha) parameter (> 0; Zhang et al. use
            0.1-0.4 on ImageNet).
        seed: int or None, seed of the layer's `keras.random.SeedGenerator`.

    Call: `[x_1, ..., x_K, labels]`: K feature tensors `[B, ...]` and int
    labels `[B]` -> `[x_1~, ..., x_K~, partner_labels, mix]` where, in
    training, `perm` is a random permutation of the batch, `lambda ~ Beta`
    (one per batch), `x_k~ = lambda x_k + (1 - lambda) x_k[perm]`,
    `partner_labels = labels[perm]` and `mix = [lambda] * B` (float32). At
    inference the features pass unchanged, `partner_labels = labels` (zeros
    when labels is None) and `mix = 1`. Raises in training without labels.
    """

    def __init__(self, alpha=0.2, seed=None, **kwargs):
        super().__init__(**kwargs)
        alpha = float(alpha)
        if not alpha > 0.0:
            raise ValueError(f"MixUp: alpha must be > 0, got {alpha}.")
        self.alpha = alpha
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2:
            raise ValueError(
                f"MixUp '{self.name}' expects [x_1, ..., x_K, labels], got input shape {input_shape}."
            )

    def sample(self, n):
        """Draw `(perm [n] int32, lambda scalar float32)`."""
        perm = keras.random.shuffle(ops.arange(n, dtype="int32"), seed=self.seed_generator)
        lam = keras.random.beta((), self.alpha, self.alpha, dtype="float32", seed=self.seed_generator)
        return perm, lam

    def call(self, inputs, training=None):
        features, labels = list(inputs[:-1]), inputs[-1]
        n = ops.shape(features[0])[0]
        if not training:
            if labels is None:
                labels = ops.zeros((n,), "int32")
            return features + [ops.cast(labels, "int32"), ops.ones((n,), "float32")]
        require_labels(self, labels)
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        perm, lam = self.sample(n)
        mixed = []
        for x in features:
            weight = ops.cast(lam, x.dtype)
            mixed.append(weight * x + (1.0 - weight) * ops.take(x, perm, axis=0))
        return mixed + [ops.take(labels, perm, axis=0), ops.full((n,), lam, "float32")]

    def compute_output_spec(self, inputs, training=None):
        features = inputs[:-1]
        batch = features[0].shape[0]
        specs = [keras.KerasTensor(x.shape, dtype=x.dtype) for x in features]
        return specs + [keras.KerasTensor((batch,), dtype="int32"), keras.KerasTensor((batch,), dtype="float32")]

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="crisis_keras")
class MixUpLoss(keras.layers.Layer):
    """The mix-up objective at the output (training only).

    Call: `[probabilities [B, C], labels [B], partner_labels [B], mix [B]]`
    -> probabilities (float32). Training: adds
    `mean_B(mix CE(p, labels) + (1 - mix) CE(p, partner_labels))` and returns
    the probabilities under `stop_gradient`; raises without labels.
    Inference: identity.
    """

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 4:
            raise ValueError(
                f"MixUpLoss '{self.name}' expects [probabilities, labels, partner_labels, mix], "
                f"got input shape {input_shape}."
            )

    def call(self, inputs, training=None):
        probabilities, labels, partner_labels, mix = inputs
        probabilities = ops.cast(probabilities, "float32")
        if not training:
            return probabilities
        require_labels(self, labels)
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        mix = ops.cast(mix, "float32")
        objective = mean_sparse_crossentropy(labels, probabilities, mix) + mean_sparse_crossentropy(
            partner_labels, probabilities, 1.0 - mix
        )
        return replace_objective(self, probabilities, objective)

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor(inputs[0].shape, dtype="float32")
