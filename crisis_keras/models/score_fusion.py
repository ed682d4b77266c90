"""Score Fusion baseline of Tables 3-7 (section 4.3): "averages the
predictions of separate networks trained on the different modalities".

One `CrisisModel` holding both unimodal baselines (`densenet`, `bert` of
`unimodal.py`), each ending in its own softmax:

    image -> image_normalization -> image_backbone -> image_pooling (GAP)
          -> image_head_dropout -> image_classifier        p_image
    text  -> tweet_normalization -> text_preprocessor -> text_backbone -> text_cls
          -> text_head_dropout -> text_classifier          p_text
    [p_image, p_text, sse_label] -> score_fusion: (p_image + p_text) / 2

Training: the branches share no parameter, so training them together on
CE(p_image, y) + CE(p_text, y) equals training each alone (same gradients,
tested); `ScoreFusion` adds that sum in training and stops the gradient of
the compiled loss on the average. It needs the labels: the optional
`sse_label` input (the trainer feeds it to every model that has it); it is
ignored at inference, so `predict`, evaluation and export see one averaged
probability output. Default head as the unimodal baselines: no hidden layer
(`head_units=0`), dropout 0.5.
"""

import keras

from crisis_keras.layers import ScoreFusion
from crisis_keras.models.crisis_model import CrisisModel
from crisis_keras.models.heads import classification_head
from crisis_keras.models.backbone_outputs import image_feature_map, text_embedding
from crisis_keras.models.registry import register_model
from crisis_keras.models.sse_cross import model_inputs


@register_model(
    "score_fusion",
    description="Score Fusion: average of DenseNet and BERT softmax outputs (section 4.3)",
    head_units=0, sse=False, image_pooling="avg", attention="none", self_attention=False,
)
def build_score_fusion(num_classes, config, name="score_fusion"):
    """Inputs `text` tf.string `[B]`, `image` float32 `[B, S, S, 3]` in 0..255,
    `sse_label` int32 `[B]` (training labels; required in training, optional
    otherwise); output the averaged softmax `[B, num_classes]` (float32)."""
    inputs = model_inputs(config, sse_label=True)
    f = image_feature_map(inputs, config)
    x = keras.layers.GlobalAveragePooling2D(name="image_pooling")(f)
    p_image = classification_head(
        x, num_classes, config.head_units, config.head_activation, config.dropout, prefix="image_"
    )
    e = text_embedding(inputs, config)
    p_text = classification_head(
        e, num_classes, config.head_units, config.head_activation, config.dropout, prefix="text_"
    )
    outputs = ScoreFusion(name="score_fusion")([p_image, p_text, inputs["sse_label"]])
    return CrisisModel(inputs, outputs, name=name)
