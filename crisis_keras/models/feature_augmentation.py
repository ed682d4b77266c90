"""Table 8's "- SSE + X" ablations (section 5.4): SSE-Cross-BERT-DenseNet with
SSE replaced by another augmentation of the backbone features, at SSE's
place (between the backbones and the projections, training only):

- `ablation_mixup`, "- SSE + Mix-up [68]" (Zhang et al., ICLR 2018): `mixup`
  mixes (f_i, e_i) with those of a shuffled partner in the batch, one
  lambda ~ Beta(mixup_alpha, mixup_alpha) per batch, and `mixup_loss` at the
  output trains on lambda CE(y_i) + (1 - lambda) CE(y_j) (see
  `layers/mixup.py`).
- `ablation_shuffle_within_class`, "- SSE + Shuffling Within Class": in
  training every sample's image features f_i are replaced by those of another
  same-class sample of the batch (uniformly), re-pairing images and texts
  within each class; a sample alone in its class in the batch keeps its own.
  This is `StochasticSharedEmbedding` with p0 = 1, same-class partners only
  (rho = inf without SSE's fallback to other classes) and the image side
  always (`within_class_shuffle` layer). Reading: the paper does not say
  which side is shuffled; moving either side alone re-pairs images and texts
  within the class, and we move the images (the text side would be
  `side="text"` of the same layer). Each sample draws its donor
  independently (SSE's sampling), so this is a shuffle with replacement,
  not a permutation within the class.

Both keep cross-attention, self-attention and dropout (config as
`ablation_no_sse`: `sse=False`), take `sse_label` (the training labels,
which the trainer feeds; ignored at inference; without them in training
mix-up raises and the shuffle is the identity, like SSE) and ignore
`sse_p0`/`sse_rho`.
"""

from crisis_keras.layers import MixUp, MixUpLoss, StochasticSharedEmbedding
from crisis_keras.models.crisis_model import CrisisModel
from crisis_keras.models.heads import classification_head
from crisis_keras.models.registry import register_model
from crisis_keras.models.sse_cross import backbone_features, fuse, model_inputs


@register_model("ablation_mixup", description="- SSE + Mix-up (Zhang et al. 2018) on the backbone features", sse=False)
def build_ablation_mixup(num_classes, config, name="ablation_mixup"):
    """Inputs `text`, `image`, `sse_label` (int32 labels, required in
    training); output softmax `[B, num_classes]` (float32)."""
    inputs = model_inputs(config, sse_label=True)
    f, e = backbone_features(inputs, config)
    f, e, partner_labels, mix = MixUp(config.mixup_alpha, seed=config.seed, name="mixup")(
        [f, e, inputs["sse_label"]]
    )
    h = fuse(f, e, config)
    probabilities = classification_head(
        h, num_classes, config.head_units, config.head_activation, config.dropout
    )
    outputs = MixUpLoss(name="mixup_loss")([probabilities, inputs["sse_label"], partner_labels, mix])
    return CrisisModel(inputs, outputs, name=name)


@register_model(
    "ablation_shuffle_within_class",
    description="- SSE + Shuffling Within Class (image features re-drawn within the class)",
    sse=False,
)
def build_ablation_shuffle_within_class(num_classes, config, name="ablation_shuffle_within_class"):
    """Inputs `text`, `image`, `sse_label` (int32 labels; without them in
    training the shuffle is the identity, like SSE); output softmax
    `[B, num_classes]` (float32)."""
    inputs = model_inputs(config, sse_label=True)
    f, e = backbone_features(inputs, config)
    f, e = StochasticSharedEmbedding(
        p0=1.0, rho=float("inf"), seed=config.seed, side="image", within_class=True,
        name="within_class_shuffle",
    )([f, e, inputs["sse_label"]])
    h = fuse(f, e, config)
    outputs = classification_head(
        h, num_classes, config.head_units, config.head_activation, config.dropout
    )
    return CrisisModel(inputs, outputs, name=name)
