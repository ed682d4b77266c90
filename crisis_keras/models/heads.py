"""Classification head shared by all models: [dense] -> [dropout] -> softmax.

Section 3.3: the fused vector goes through "two-layer fully-connected
networks" with "the standard softmax cross-entropy loss"; dropout on hidden
units (section 3.4). The classifier runs in float32 so the softmax output is
float32 under mixed precision too.
"""

import keras


def classification_head(x, num_classes, head_units=256, head_activation="relu", dropout=0.5, prefix=""):
    """Layers `head_dense` (if head_units > 0), `head_dropout` (if dropout > 0),
    `classifier` (softmax over `num_classes`, float32); their names start with
    `prefix` (e.g. "image_" for the branches of `score_fusion`)."""
    if head_units:
        x = keras.layers.Dense(head_units, activation=head_activation, name=f"{prefix}head_dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{prefix}head_dropout")(x)
    return keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name=f"{prefix}classifier"
    )(x)
