"""Paper layers: projection (eq. 3-4), cross-/co-attention (eq. 5-8),
self-attention (section 3.3), SSE-Graph (eq. 9-10), and the in-graph input
steps (tweet normalization of section 4.5, DenseNet's image normalization)."""

from crisis_keras.layers.co_attention import CoAttention
from crisis_keras.layers.cross_attention import CrossAttention, GatedFusion
from crisis_keras.layers.image_normalization import ImageNormalization
from crisis_keras.layers.projection import Projection
from crisis_keras.layers.self_attention import SelfAttention
from crisis_keras.layers.sse import StochasticSharedEmbedding, transition_probabilities
from crisis_keras.layers.tweet_normalization import TweetNormalization

__all__ = [
    "CoAttention",
    "CrossAttention",
    "GatedFusion",
    "ImageNormalization",
    "Projection",
    "SelfAttention",
    "StochasticSharedEmbedding",
    "TweetNormalization",
    "transition_probabilities",
]
