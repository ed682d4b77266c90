"""Co-attention fusion (paper eq. 7-8), the baseline cross-attention is compared to."""

import keras
from keras import ops

from crisis_keras.layers.cross_attention import GatedFusion


@keras.saving.register_keras_serializable(package="crisis_keras")
class CoAttention(GatedFusion):
    """Co-attention (paper eq. 7-8): both masks from the concatenation `[f | e]`.

    `alpha_v = sigmoid(W'_v^T [f|e] + b'_v)`, `alpha_e = sigmoid(W'_e^T [f|e] + b'_e)`
    (sources flattened first), output `[alpha_v * f~ | alpha_e * e~]`
    (`combine="concat"`, `[B, 2*units]`) or their sum (`combine="add"`, `[B, units]`).

    Call: `[image_proj [B,K], text_proj [B,K], image_source, text_source]`.
    Weights: `image_mask_kernel` / `text_mask_kernel` `[D_f + D_e, units]` and biases.
    """

    def _mask_input_dims(self, image_dim, text_dim):
        return image_dim + text_dim, image_dim + text_dim

    def _mask_inputs(self, image_source, text_source):
        joint = ops.concatenate([image_source, text_source], axis=-1)
        return joint, joint
