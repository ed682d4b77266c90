"""f_i (eq. 1) and e_i (eq. 2) for every builder: from the backbones, or cached.

Each builder asks `image_feature_map(inputs, config)` and
`text_embedding(inputs, config)` for the backbones' outputs. With
`config.feature_inputs` False they run the backbones (`image_branch`,
`text_branch`); with it True they return the model inputs `image_features`
and `text_features`, which `crisis_keras.features` fills from a cache made by
the same frozen backbones. Every layer after this point is built by the same
code with the same names in both modes, so a head trained on cached features
carries over, by layer name, onto the backbones (`features.compose`).
"""

from crisis_keras.models.image_backbone import image_branch
from crisis_keras.models.text_backbone import text_branch

IMAGE_FEATURES = "image_features"
TEXT_FEATURES = "text_features"


def image_feature_map(inputs, config):
    """The image feature map f_i `[B, H, W, C]` (eq. 1); `[B, 1, 1, D]` for a
    TF Hub feature-vector model (`tfhub_backbone.TFHubImageModel`)."""
    if config.feature_inputs:
        return inputs[IMAGE_FEATURES]
    return image_branch(
        inputs["image"],
        config.image_backbone,
        config.image_weights,
        config.image_size,
        trainable=config.train_image_backbone,
        fused_batch_norm=config.fused_batch_norm,
    )


def text_embedding(inputs, config):
    """The sentence embedding e_i `[B, D]` (eq. 2, [CLS] or BERT's pooler), from a
    keras-hub BERT or a TF Hub encoder (`config.text_preprocessor`)."""
    if config.feature_inputs:
        return inputs[TEXT_FEATURES]
    return text_branch(
        inputs["text"],
        config.text_backbone,
        config.sequence_length,
        config.text_pooling,
        trainable=config.train_text_backbone,
        dropout=config.backbone_dropout,
        preprocessor=config.text_preprocessor,
        trim=config.trim_sequences,
    )
