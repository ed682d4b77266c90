"""Image decoding and the paper's augmentation, in pure TensorFlow.

Section 4.5 of the paper: "Images are resized such that the smallest side is
228 pixels, and then randomly cropped with a 224 x 224 patch. In addition, we
produce more images by randomly flipping the resulting image horizontally."
Evaluation uses the deterministic counterpart: the same resize and a center
224 x 224 crop, never a random one.

Every function here is graph-compatible, so the training pipeline
(`crisis_keras.data.pipeline`) and the exported serving signature call the very
same ops: what a model sees at evaluation time is what it sees when served.
Randomness uses stateless ops driven by an explicit `seed` tensor of shape
`[2]`, so a given seed always gives the same crop and flip.
"""

import tensorflow as tf

RESIZE_TO = 228
CROP_SIZE = 224


def decode_image(image_bytes):
    """Encoded bytes -> uint8 `[H, W, 3]`.

    JPEG, PNG, GIF (first frame) and BMP, chosen from the bytes' magic number
    (not the file name: CrisisMMD has PNG files named `.jpg`). Grayscale is
    repeated to RGB; an alpha channel is dropped (as PIL's `convert("RGB")`).
    """
    image = tf.io.decode_image(
        image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
    )
    image.set_shape([None, None, 3])
    return image


def resized_shape(height, width, shortest_side=RESIZE_TO):
    """`(new_height, new_width)` whose shorter side is `shortest_side`.

    The longer side keeps the aspect ratio, rounded half up in integer
    arithmetic (so a 640 x 320 image becomes 456 x 228 exactly).
    """
    height = tf.cast(height, tf.int64)
    width = tf.cast(width, tf.int64)
    side = tf.constant(shortest_side, tf.int64)
    short = tf.minimum(height, width)
    new_h = tf.maximum(side, (height * side + short // 2) // short)
    new_w = tf.maximum(side, (width * side + short // 2) // short)
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def resize_shortest_side(image, shortest_side=RESIZE_TO):
    """Resize `[H, W, C]` so min(H, W) == `shortest_side` -> float32 0..255.

    Bilinear with antialiasing (section 4.5 gives no kernel; antialiasing
    avoids aliasing when CrisisMMD's large photos are shrunk).
    """
    shape = tf.shape(image)
    new_h, new_w = resized_shape(shape[0], shape[1], shortest_side)
    resized = tf.image.resize(
        image, tf.stack([new_h, new_w]), method="bilinear", antialias=True
    )
    # Bilinear weights are non-negative, so this only removes rounding noise.
    return tf.clip_by_value(resized, 0.0, 255.0)


def center_crop(image, size=CROP_SIZE):
    """The central `size x size` patch of `[H, W, C]` (H, W >= size)."""
    shape = tf.shape(image)
    top = (shape[0] - size) // 2
    left = (shape[1] - size) // 2
    crop = image[top : top + size, left : left + size, :]
    crop.set_shape([size, size, image.shape[-1]])
    return crop


def random_crop_and_flip(image, seed, size=CROP_SIZE):
    """Random `size x size` crop, then a horizontal flip with probability 1/2.

    Args:
        image: `[H, W, C]` with H, W >= size.
        seed: int32/int64 tensor of shape `[2]`; the same seed gives the same
            crop and flip (stateless random ops).
        size: side of the square crop.
    """
    seed = tf.convert_to_tensor(seed)
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    channels = image.shape[-1] if image.shape[-1] is not None else 3
    crop = tf.image.stateless_random_crop(image, [size, size, channels], seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(crop, seed=flip_seed)


def _check_sizes(resize_to, crop):
    if crop > resize_to:
        raise ValueError(
            f"The crop size ({crop}) cannot exceed the resized shortest side "
            f"({resize_to})."
        )


def preprocess_for_eval(image_bytes, resize_to=RESIZE_TO, crop=CROP_SIZE):
    """Encoded bytes -> float32 `[crop, crop, 3]` in 0..255 (resize, center crop).

    Deterministic: used for dev/test evaluation and the serving signature.
    """
    _check_sizes(resize_to, crop)
    image = resize_shortest_side(decode_image(image_bytes), resize_to)
    return center_crop(image, crop)


def preprocess_for_training(image_bytes, seed, resize_to=RESIZE_TO, crop=CROP_SIZE):
    """Encoded bytes -> float32 `[crop, crop, 3]` in 0..255, augmented (sec. 4.5).

    Resize the shortest side to `resize_to`, random `crop x crop` patch, random
    horizontal flip; `seed` (shape `[2]`) fixes both.
    """
    _check_sizes(resize_to, crop)
    image = resize_shortest_side(decode_image(image_bytes), resize_to)
    return random_crop_and_flip(image, seed, crop)


def preprocess_batch_for_eval(image_bytes, resize_to=RESIZE_TO, crop=CROP_SIZE):
    """A batch `[B]` of encoded images -> float32 `[B, crop, crop, 3]`.

    `preprocess_for_eval` mapped over the batch (for serving signatures).
    """
    return tf.map_fn(
        lambda b: preprocess_for_eval(b, resize_to, crop),
        image_bytes,
        fn_output_signature=tf.TensorSpec([crop, crop, 3], tf.float32),
    )
