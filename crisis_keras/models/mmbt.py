"""MMBT baseline of Tables 3-5 (section 4.3, "MMBT [37]"; Kiela et al. 2019,
"Supervised Multimodal Bitransformers for Classifying Images and Text").

    image -> image_normalization -> image_backbone (DenseNet map, 7x7x1024)
          -> image_regions [B, N, C] (N horizontal bands averaged, as MMBT's
             AdaptiveAvgPool2d((N, 1)) on ResNet-152)
          -> image_token_projection (Dense to BERT's hidden size)
    text  -> tweet_normalization -> text_preprocessor -> text_trim (the batch
             cut to its longest tweet, `trim_sequences`; same outputs)
    [tokens, image tokens] -> text_backbone (`MultimodalBitransformer`:
          BERT over [CLS] img_1..img_N [SEP] text-tokens [SEP])
          -> text_cls (BERT's pooler on the [CLS] token, MMBT's classifier
             input) -> head_dropout -> classifier

Differences from Kiela et al., by design of this project: DenseNet121 instead
of ResNet-152 (the same image network as every other row of the tables),
and the number of image tokens is `ModelConfig.mmbt_image_tokens` (default
N = 3, pooling the 7x7 map into 3 overlapping horizontal bands of 3 rows).
The default head is MMBT's (`MultimodalBertClf`): a linear classifier on
BERT's pooled output (`text_pooling="pooled"`, `head_units=0`, `dropout=0`;
BERT's internal dropout stays). Kiela et al. train it with Adam (BertAdam,
warm-up); the project's trainer uses SGD for every row.

The combined layer keeps the name "text_backbone" and takes the token dict
as its first argument, so the serving code that finds the token inputs
there works unchanged. Inputs: `text`, `image` (no `sse_label`).
"""

import keras

from crisis_keras.layers import (
    ImageRegionPooling, MultimodalBitransformer, TrimToLongest, TweetNormalization,
)
from crisis_keras.models.config import is_tfhub_spec
from crisis_keras.models.crisis_model import CrisisModel
from crisis_keras.models.heads import classification_head
from crisis_keras.models.image_backbone import build_image_backbone, image_normalization_for
from crisis_keras.models.registry import register_model
from crisis_keras.models.sse_cross import model_inputs
from crisis_keras.models.text_backbone import TextEmbedding, freeze_unused_pooler, load_text_encoder


@register_model(
    "mmbt",
    description="MMBT (Kiela et al. 2019): N pooled DenseNet regions as BERT input tokens",
    head_units=0, dropout=0.0, sse=False, text_pooling="pooled", attention="none", self_attention=False,
)
def build_mmbt(num_classes, config, name="mmbt"):
    """Inputs `text` tf.string `[B]`, `image` float32 `[B, S, S, 3]` in 0..255;
    output softmax `[B, num_classes]` (float32). It cannot run on cached
    features: its image regions enter BERT's token sequence."""
    if config.feature_inputs:
        raise ValueError(
            "mmbt cannot train on cached features: it feeds DenseNet regions into "
            "BERT as input tokens, so BERT must run on every step (cached [CLS] "
            "embeddings do not contain them). Fine-tune it without --features."
        )
    if is_tfhub_spec(config.text_backbone):
        raise ValueError(
            f"mmbt cannot use the TF Hub text backbone {config.text_backbone!r}: it feeds "
            "image tokens into BERT's embeddings, which a SavedModel encoder (token ids in) "
            "does not expose. Use a keras-hub BERT."
        )
    inputs = model_inputs(config)
    image_backbone = build_image_backbone(config.image_backbone, config.image_weights,
                                          config.image_size, fused_batch_norm=config.fused_batch_norm)
    image_backbone.trainable = bool(config.train_image_backbone)
    f = image_backbone(image_normalization_for(config.image_backbone)(inputs["image"]))
    regions = ImageRegionPooling(config.mmbt_image_tokens, name="image_regions")(f)

    if config.text_pooling == "mean":
        raise ValueError("mmbt: text_pooling='mean' is not supported (its sequence holds "
                         "image tokens too); use 'pooled' (Kiela et al.) or 'cls'.")
    preprocessor, bert = load_text_encoder(
        config.text_backbone, config.sequence_length, config.backbone_dropout
    )
    bert.trainable = bool(config.train_text_backbone)
    if config.train_text_backbone:
        freeze_unused_pooler(bert, config.text_pooling)
    image_tokens = keras.layers.Dense(bert.hidden_dim, name="image_token_projection")(regions)
    tokenizer = preprocessor.tokenizer
    tokens = preprocessor(TweetNormalization(name="tweet_normalization")(inputs["text"]))
    if config.trim_sequences:  # the text part cut to the batch's longest tweet
        tokens = TrimToLongest(name="text_trim")(tokens)
    outputs = MultimodalBitransformer(
        bert, tokenizer.cls_token_id, tokenizer.sep_token_id, name="text_backbone"
    )(tokens, image_tokens)
    e = TextEmbedding(config.text_pooling, name="text_cls")(outputs)
    outputs = classification_head(e, num_classes, config.head_units, config.head_activation, config.dropout)
    return CrisisModel(inputs, outputs, name=name)
