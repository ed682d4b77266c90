"""Stochastic Shared Embeddings, SSE-Graph over the batch (paper eq. 9-10).

Section 3.4: the graph links two samples iff they have the same class. The
features of sample j move to sample k with probability p(j, k), where

    p(j, j) = 1 - p0                               (eq. 10)
    p(j, k) / p(j, l) = rho   if j ~ k and j !~ l  (eq. 9)
    sum_k p(j, k) = 1,

so for k != j: p(j, k) = p0 * w(j, k) / sum_{m != j} w(j, m) with w = rho for
same-class partners and 1 otherwise. For each image-text pair one side (image
or text, equal chance) is subject to the transition. We draw partners among the
other samples of the current batch (the graph restricted to the batch), which
keeps the layer stateless: nothing is ever written back to the dataset.
Under a tf.distribute strategy (`--distribute`, `training/distribute.py`)
the batch is the replica's: with R replicas a sample's partners come from
its own replica's `batch_size / R` samples, never from another replica's
(tests/test_distribute.py).

Two options (defaults = the paper's SSE) express Table 8's "- SSE + Shuffling
Within Class" with this same layer (`models/feature_augmentation.py`):
`within_class=True` restricts partners to same-class samples (a sample with
none in the batch keeps its features; rho is then irrelevant) and
`side="image"` always moves the image side. With p0 = 1 every image moves to
another same-class image of the batch: the image-text pairs are re-drawn
within each class.
"""

import math

import keras
from keras import ops


SIDES = ("random", "image", "text")


def _check_hyperparameters(p0, rho):
    p0, rho = float(p0), float(rho)
    if not 0.0 <= p0 <= 1.0:
        raise ValueError(f"SSE: p0 must be in [0, 1] (eq. 10), got {p0}.")
    if math.isnan(rho) or rho < 1.0:
        raise ValueError(
            f"SSE: rho must be >= 1 (eq. 9; the paper uses rho > 1, rho = 1 is "
            f"uniform over the batch, rho = inf same-class only), got {rho}."
        )
    return p0, rho


def transition_probabilities(labels, p0, rho, within_class=False):
    """The SSE-Graph transition matrix of eq. 9-10 over a batch.

    Args:
        labels: int `[B]` (or `[B, 1]`) class ids; values < 0 mean unknown and
            are never same-class (not even with each other).
        p0: the SSE probability (probability of leaving sample j).
        rho: same-class / other-class probability ratio (eq. 9); `inf` puts all
            of p0 on same-class partners when the row has any.
        within_class: partners are same-class samples only (not the paper's
            SSE; Table 8's within-class shuffling): p0 is spread uniformly over
            them and a row without any (or with an unknown label) is
            `e_j` (keep). `rho` is then ignored.

    Returns:
        float32 `[B, B]`, row j = p(j, .). Diagonal `1 - p0`; a row with no
        possible partner (B = 1; no same-class sample when `within_class`) is
        `e_j`. Rows sum to 1.
    """
    p0, rho = _check_hyperparameters(p0, rho)
    labels = ops.reshape(ops.cast(ops.convert_to_tensor(labels), "int32"), (-1,))
    n = ops.shape(labels)[0]
    eye = ops.eye(n, dtype="float32")
    off_diagonal = 1.0 - eye
    known = ops.greater_equal(labels, 0)
    same = ops.logical_and(
        ops.equal(labels[:, None], labels[None, :]),
        ops.logical_and(known[:, None], known[None, :]),
    )
    same = ops.cast(same, "float32") * off_diagonal
    other = off_diagonal - same
    if within_class:
        weights = same
    elif math.isinf(rho):
        has_same = ops.sum(same, axis=1, keepdims=True) > 0
        weights = ops.where(has_same, same, other)
    else:
        weights = rho * same + other
    total = ops.sum(weights, axis=1, keepdims=True)
    has_partner = ops.greater(total, 0.0)
    leave = p0 * weights / ops.where(has_partner, total, 1.0)
    stay = ops.where(has_partner, 1.0 - p0, 1.0)
    return leave + eye * stay


@keras.saving.register_keras_serializable(package="crisis_keras")
class StochasticSharedEmbedding(keras.layers.Layer):
    """SSE-Graph regularisation of paired image/text features (eq. 9-10).

    Training only: for each sample j, pick the image or the text side with
    probability 1/2 (`side="random"`), draw a partner k from row j of
    `transition_probabilities(labels, p0, rho)` (categorical sampling; k = j
    with probability 1 - p0) and replace that side's features of j by those of
    k. Identity at inference (`training` False/None), when `labels` is None,
    when p0 = 0, or when the batch holds a single sample.

    Args:
        p0: SSE probability (paper tunes it in [0, 1]).
        rho: same-class ratio of eq. 9 (paper: [10, 20000]).
        seed: int or None, seed of the layer's `keras.random.SeedGenerator`.
        side: "random" (the paper: image or text, equal chance), "image" or
            "text" (always that side moves).
        within_class: draw partners among same-class samples only (see
            `transition_probabilities`); not the paper's SSE.

    Call: `[image_features, text_features, labels]` (labels int `[B]`, < 0 =
    unknown; may be omitted or None) -> `[image_features', text_features']`,
    same shapes/dtypes; features of any rank (`[B, D]`, `[B, W, H, C]`, ...).
    """

    def __init__(self, p0=0.1, rho=100.0, seed=None, side="random", within_class=False, **kwargs):
        super().__init__(**kwargs)
        self.p0, self.rho = _check_hyperparameters(p0, rho)
        if side not in SIDES:
            raise ValueError(f"SSE: side must be one of {SIDES}, got {side!r}.")
        self.side = side
        self.within_class = bool(within_class)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3):
            raise ValueError(
                f"StochasticSharedEmbedding '{self.name}' expects "
                "[image_features, text_features, labels], got input shape "
                f"{input_shape}."
            )

    def sample_transitions(self, labels):
        """Draw `(partner [B] int32, image_side [B] bool)` for a batch."""
        probs = transition_probabilities(labels, self.p0, self.rho, self.within_class)
        partner = keras.random.categorical(
            ops.log(probs), 1, dtype="int32", seed=self.seed_generator
        )[:, 0]
        n = ops.shape(probs)[0]
        if self.side != "random":
            return partner, ops.full((n,), self.side == "image", dtype="bool")
        image_side = ops.less(
            keras.random.uniform((n,), dtype="float32", seed=self.seed_generator),
            0.5,
        )
        return partner, image_side

    @staticmethod
    def _replace(features, partner, selected):
        rank = len(features.shape)
        selected = ops.reshape(selected, (-1,) + (1,) * (rank - 1))
        return ops.where(selected, ops.take(features, partner, axis=0), features)

    def call(self, inputs, training=None):
        image, text = inputs[0], inputs[1]
        labels = inputs[2] if len(inputs) > 2 else None
        if not training or labels is None or self.p0 == 0.0:
            return [image, text]
        partner, image_side = self.sample_transitions(labels)
        image = self._replace(image, partner, image_side)
        text = self._replace(text, partner, ops.logical_not(image_side))
        return [image, text]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[0]), tuple(input_shape[1])]

    def get_config(self):
        config = super().get_config()
        config.update({"p0": self.p0, "rho": self.rho, "seed": self.seed})
        if self.side != "random" or self.within_class:
            # only when set: the paper's SSE keeps its original config keys
            config.update({"side": self.side, "within_class": self.within_class})
        return config
