"""Backbones, the SSE-Cross-BERT-DenseNet model and its baselines, by registered name.

    from crisis_keras.models import build_model, tiny_config
    model = build_model("sse_cross", "informative", tiny_config())

Full-size model (DenseNet121 + BERT-base shapes, random weights, no download,
~126.8 M parameters, builds in ~7 s on 2 CPU cores):

    python -c "from crisis_keras.models import build_model, full_size_random_config; build_model('sse_cross', 'humanitarian', full_size_random_config()).summary()"

Models take a dict `{"text": tf.string [B], "image": float32 [B, S, S, 3] in
0..255, "sse_label": int32 [B] (optional)}`; see `build_sse_cross`.
"""

from crisis_keras.models.config import ModelConfig, full_size_random_config, tiny_config
from crisis_keras.models.crisis_model import CrisisModel
from crisis_keras.models.image_backbone import (
    build_image_backbone,
    densenet121_feature_extractor,
    tiny_cnn_feature_extractor,
)
from crisis_keras.models.registry import (
    MODEL_NAMES,
    build_model,
    get_entry,
    model_names,
    register_model,
    register_variant,
    resolve_config,
    unregister_model,
)
from crisis_keras.models.sse_cross import build_sse_cross
from crisis_keras.models.text_backbone import (
    InlineVocabularyBertTokenizer,
    TextEmbedding,
    load_text_encoder,
)
from crisis_keras.models.unimodal import build_bert, build_densenet
from crisis_keras.models import variants  # noqa: F401  (registers the variants)
from crisis_keras.models.compact_bilinear import (
    build_compact_bilinear_gated_pooling,
    build_compact_bilinear_pooling,
)
from crisis_keras.models.feature_augmentation import (
    build_ablation_mixup,
    build_ablation_shuffle_within_class,
)
from crisis_keras.models.mmbt import build_mmbt
from crisis_keras.models.score_fusion import build_score_fusion

__all__ = [
    "CrisisModel",
    "InlineVocabularyBertTokenizer",
    "MODEL_NAMES",
    "ModelConfig",
    "TextEmbedding",
    "build_ablation_mixup",
    "build_ablation_shuffle_within_class",
    "build_bert",
    "build_compact_bilinear_gated_pooling",
    "build_compact_bilinear_pooling",
    "build_densenet",
    "build_image_backbone",
    "build_mmbt",
    "build_model",
    "build_score_fusion",
    "build_sse_cross",
    "densenet121_feature_extractor",
    "full_size_random_config",
    "get_entry",
    "load_text_encoder",
    "model_names",
    "register_model",
    "register_variant",
    "resolve_config",
    "tiny_cnn_feature_extractor",
    "tiny_config",
    "unregister_model",
]
