"""One call of every signature before a server reports the model AVAILABLE.

The first call of a loaded SavedModel function is slow (graph optimization,
kernel creation: about 0.7 s for the tiny test model, seconds for the full
one); TF Serving runs warm-up requests before it marks a version available.
`warm_up` does the same with a one-row input per signature: the text "warm
up", an 8 x 8 PNG for `*_bytes`, zeros for token ids (ones for
`padding_mask`). A failing call fails the load.
"""

import time

import tensorflow as tf

WARM_UP_TEXT = "warm up"


def warm_up_inputs(specs):
    """One-row tensors for a signature's `TensorSpec`s."""
    image = tf.io.encode_png(tf.fill([8, 8, 3], tf.constant(128, tf.uint8)))
    inputs = {}
    for name, spec in specs.items():
        if spec.dtype == tf.string:
            inputs[name] = tf.reshape(image, [1]) if name.endswith("_bytes") \
                else tf.constant([WARM_UP_TEXT])
            continue
        shape = [1] + [d if d is not None else 1 for d in spec.shape.as_list()[1:]]
        fill = tf.ones if name == "padding_mask" else tf.zeros
        inputs[name] = fill(shape, spec.dtype)
    return inputs


def warm_up(signatures) -> float:
    """Calls each signature once (`{key: concrete function}`); returns the seconds taken."""
    start = time.monotonic()
    for key, fn in signatures.items():
        try:
            fn(**warm_up_inputs(fn.structured_input_signature[1]))
        except Exception as err:
            raise RuntimeError(f"the warm-up call of signature {key!r} failed: "
                               f"{type(err).__name__}: {err}") from err
    return time.monotonic() - start
