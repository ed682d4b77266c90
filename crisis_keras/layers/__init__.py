"""Paper layers: projection (eq. 3-4), cross-/co-attention (eq. 5-8),
self-attention (section 3.3), SSE-Graph (eq. 9-10), and the in-graph input
steps (tweet normalization of section 4.5, DenseNet's image normalization,
the cut of a token batch to its longest tweet), and batch normalization on
TensorFlow's fused kernel (issue 11).
Baseline layers (section 4.3, Table 8): compact bilinear pooling (Fukui et al.
2016), score fusion, mix-up (Zhang et al. 2018), MMBT's multimodal BERT
(Kiela et al. 2019). Missing modalities (issue 13): learned stand-ins and
modality dropout."""

from crisis_keras.layers.co_attention import CoAttention
from crisis_keras.layers.compact_bilinear_pooling import CompactBilinearPooling
from crisis_keras.layers.cross_attention import CrossAttention, GatedFusion
from crisis_keras.layers.fused_batch_normalization import (
    FusedBatchNormalization,
    fuse_batch_normalization,
)
from crisis_keras.layers.image_normalization import ImageNormalization
from crisis_keras.layers.mixup import MixUp, MixUpLoss
from crisis_keras.layers.modality_dropout import MissingModality
from crisis_keras.layers.multimodal_bitransformer import ImageRegionPooling, MultimodalBitransformer
from crisis_keras.layers.projection import Projection
from crisis_keras.layers.score_fusion import ScoreFusion
from crisis_keras.layers.self_attention import SelfAttention
from crisis_keras.layers.sequence_trim import TrimToLongest
from crisis_keras.layers.sse import StochasticSharedEmbedding, transition_probabilities
from crisis_keras.layers.tweet_normalization import TweetNormalization

__all__ = [
    "CoAttention",
    "CompactBilinearPooling",
    "CrossAttention",
    "FusedBatchNormalization",
    "GatedFusion",
    "ImageNormalization",
    "ImageRegionPooling",
    "MissingModality",
    "MixUp",
    "MixUpLoss",
    "MultimodalBitransformer",
    "Projection",
    "ScoreFusion",
    "SelfAttention",
    "StochasticSharedEmbedding",
    "TrimToLongest",
    "TweetNormalization",
    "fuse_batch_normalization",
    "transition_probabilities",
]
