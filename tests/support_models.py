"""Test support: the tiny model configuration and a fixed 4-pair batch."""

import numpy as np
import tensorflow as tf

from crisis_keras.models import tiny_config

IMAGE_SIZE = 32
BATCH = 4
TEXTS = [
    "Flood waters rising in Houston https://t.co/x1",
    "donate  to the RED cross now",
    "earthquake damage: buildings collapsed",
    "just a sunny day at the beach",
]
LABELS = [0, 1, 0, 1]


def tiny(**overrides):
    """`tiny_config()` at 32 px and 16 tokens, seeded."""
    values = dict(image_size=IMAGE_SIZE, sequence_length=16, seed=0)
    values.update(overrides)
    return tiny_config(**values)


def batch(labels=True):
    """(features, labels) of the four TEXTS with seeded random 32 px images."""
    rng = np.random.default_rng(0)
    features = {
        "text": tf.constant(TEXTS),
        "image": tf.constant(rng.uniform(0, 255, (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)), tf.float32),
    }
    if labels:
        features["sse_label"] = tf.constant(LABELS, tf.int32)
    return features, tf.constant(LABELS, tf.int32)
