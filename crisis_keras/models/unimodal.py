"""Unimodal baselines of Tables 3-7 (section 4.3): fine-tuned DenseNet / BERT.

- `densenet`: image -> image_normalization -> image_backbone ->
  image_pooling (global average) -> head_dropout -> classifier.
- `bert`: text -> tweet_normalization -> text_preprocessor -> text_backbone ->
  text_cls ([CLS], section 3.2) -> head_dropout -> classifier.

"Fine-tuned network + classifier": no hidden layer by default
(`head_units=0`); set `head_units` to add one.
"""

import keras

from crisis_keras.models.crisis_model import CrisisModel
from crisis_keras.models.heads import classification_head
from crisis_keras.models.backbone_outputs import image_feature_map, text_embedding
from crisis_keras.models.registry import register_model
from crisis_keras.models.sse_cross import model_inputs


@register_model("densenet", description="DenseNet121 image classifier", head_units=0, sse=False)
def build_densenet(num_classes, config, name="densenet"):
    """Image-only classifier; input `image` float32 `[B, S, S, 3]` in 0..255."""
    inputs = model_inputs(config, text=False, image=True)
    f = image_feature_map(inputs, config)
    x = keras.layers.GlobalAveragePooling2D(name="image_pooling")(f)
    outputs = classification_head(x, num_classes, config.head_units, config.head_activation, config.dropout)
    return CrisisModel(inputs, outputs, name=name)


@register_model("bert", description="BERT text classifier ([CLS])", head_units=0, sse=False)
def build_bert(num_classes, config, name="bert"):
    """Text-only classifier; input `text` tf.string `[B]` (raw tweets)."""
    inputs = model_inputs(config, text=True, image=False)
    e = text_embedding(inputs, config)
    outputs = classification_head(e, num_classes, config.head_units, config.head_activation, config.dropout)
    return CrisisModel(inputs, outputs, name=name)
