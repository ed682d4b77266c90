"""Image decoding and the section 4.5 augmentation (crisis_keras.data.images)."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from crisis_keras.data import images


def _encode(array, fmt, mode=None, **kwargs):
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _pattern(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_resized_shape_rounds_and_keeps_aspect():
    for (h, w), expected in {
        (320, 640): (228, 456),
        (640, 320): (456, 228),
        (228, 228): (228, 228),
        (100, 150): (228, 342),
        (333, 500): (228, 342),  # 500 * 228 / 333 = 342.34
        (3, 1000): (228, 76000),
    }.items():
        got = tuple(int(v) for v in images.resized_shape(h, w, 228))
        assert got == expected, (h, w)


def test_geometry_640x320_to_456x228_then_224():
    data = _encode(_pattern(320, 640), "PNG")
    decoded = images.decode_image(data)
    assert decoded.shape == (320, 640, 3) and decoded.dtype == tf.uint8
    resized = images.resize_shortest_side(decoded, 228)
    assert resized.shape == (228, 456, 3) and resized.dtype == tf.float32
    assert float(tf.reduce_min(resized)) >= 0.0 and float(tf.reduce_max(resized)) <= 255.0
    evaluated = images.preprocess_for_eval(data)
    assert evaluated.shape == (224, 224, 3) and evaluated.dtype == tf.float32
    # The center crop of the resized image: rows 2..226, columns 116..340.
    np.testing.assert_array_equal(evaluated.numpy(), resized.numpy()[2:226, 116:340])
    trained = images.preprocess_for_training(data, tf.constant([1, 2], tf.int64))
    assert trained.shape == (224, 224, 3) and trained.dtype == tf.float32


def test_resize_is_antialiased_bilinear():
    # A 2x downscale with antialiasing averages: stripes of period 2 -> flat grey.
    stripes = np.zeros((456, 456, 3), np.uint8)
    stripes[:, ::2] = 200
    resized = images.resize_shortest_side(tf.constant(stripes), 228).numpy()
    assert resized.shape == (228, 228, 3)
    assert np.abs(resized[:, 2:-2] - 100.0).max() < 2.0


def test_eval_is_deterministic():
    data = _encode(_pattern(300, 200, seed=3), "JPEG", quality=90)
    first = images.preprocess_for_eval(data).numpy()
    second = images.preprocess_for_eval(data).numpy()
    np.testing.assert_array_equal(first, second)


def test_training_crops_follow_the_seed():
    data = _encode(_pattern(240, 330, seed=4), "PNG")
    seeds = [tf.constant([s, 7], tf.int64) for s in range(6)]
    outs = [images.preprocess_for_training(data, s).numpy() for s in seeds]
    again = [images.preprocess_for_training(data, s).numpy() for s in seeds]
    for a, b in zip(outs, again):
        np.testing.assert_array_equal(a, b)
    distinct = {o.tobytes() for o in outs}
    assert len(distinct) == len(outs)


def _find_window(image, crop):
    """(top, left, flipped) of `crop` inside `image`, or None."""
    size = crop.shape[0]
    for flipped, candidate in ((False, crop), (True, crop[:, ::-1])):
        for top in range(image.shape[0] - size + 1):
            for left in range(image.shape[1] - size + 1):
                if np.array_equal(image[top : top + size, left : left + size], candidate):
                    return top, left, flipped
    return None


def test_random_crop_and_flip_is_a_window_or_its_mirror():
    image = _pattern(20, 30, seed=5).astype(np.float32)
    found = []
    for s in range(60):
        crop = images.random_crop_and_flip(tf.constant(image), tf.constant([s, 0]), size=16)
        assert crop.shape == (16, 16, 3)
        where = _find_window(image, crop.numpy())
        assert where is not None, s
        found.append(where)
    flips = sum(f for _, _, f in found)
    assert 15 <= flips <= 45  # flip with probability 1/2
    assert len({(t, l) for t, l, _ in found}) > 10  # offsets vary


def test_center_crop_is_central():
    image = tf.reshape(tf.range(10 * 12 * 1), (10, 12, 1))
    crop = images.center_crop(image, 4).numpy()
    np.testing.assert_array_equal(crop, image.numpy()[3:7, 4:8])


def test_crop_larger_than_resize_is_rejected():
    with pytest.raises(ValueError, match="crop size"):
        images.preprocess_for_eval(b"", resize_to=200, crop=224)


class TestFormats:
    def test_jpeg(self):
        colour = np.full((40, 60, 3), (200, 30, 90), np.uint8)
        out = images.decode_image(_encode(colour, "JPEG", quality=95)).numpy()
        assert out.shape == (40, 60, 3)
        assert np.abs(out.astype(int) - colour).max() <= 4

    def test_png_with_alpha_drops_alpha(self):
        rgba = np.zeros((30, 20, 4), np.uint8)
        rgba[..., :3] = (10, 120, 240)
        rgba[..., 3] = np.arange(20, dtype=np.uint8)[None, :] * 10
        out = images.decode_image(_encode(rgba, "PNG", "RGBA")).numpy()
        assert out.shape == (30, 20, 3)
        np.testing.assert_array_equal(out, rgba[..., :3])

    def test_grayscale_png_and_jpeg_become_rgb(self):
        gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (10, 1))
        out = images.decode_image(_encode(gray, "PNG", "L")).numpy()
        assert out.shape == (10, 50, 3)
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], gray)
        out = images.decode_image(_encode(gray, "JPEG", "L", quality=95)).numpy()
        assert out.shape == (10, 50, 3)
        np.testing.assert_array_equal(out[..., 0], out[..., 2])

    def test_gif_first_frame(self):
        frames = [
            Image.fromarray(np.full((16, 24, 3), c, np.uint8)).convert("P")
            for c in ((255, 0, 0), (0, 0, 255))
        ]
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
        out = images.decode_image(buf.getvalue()).numpy()
        assert out.shape == (16, 24, 3)
        np.testing.assert_array_equal(out[0, 0], (255, 0, 0))

    def test_bmp(self):
        array = _pattern(12, 18, seed=6)
        out = images.decode_image(_encode(array, "BMP")).numpy()
        np.testing.assert_array_equal(out, array)

    def test_png_named_like_a_jpeg_is_read_by_content(self, tmp_path):
        array = _pattern(30, 30, seed=7)
        path = tmp_path / "looks_like.jpg"
        path.write_bytes(_encode(array, "PNG"))
        out = images.decode_image(tf.io.read_file(str(path))).numpy()
        np.testing.assert_array_equal(out, array)

    def test_garbage_raises(self):
        with pytest.raises(tf.errors.InvalidArgumentError):
            images.decode_image(b"this is not an image")


def test_batch_for_serving_matches_single():
    datas = [_encode(_pattern(230 + 10 * i, 250, seed=i), "PNG") for i in range(3)]
    batch = images.preprocess_batch_for_eval(tf.constant(datas)).numpy()
    assert batch.shape == (3, 224, 224, 3)
    for i, data in enumerate(datas):
        np.testing.assert_array_equal(batch[i], images.preprocess_for_eval(data).numpy())


def test_works_inside_tf_function():
    data = _encode(_pattern(250, 260), "JPEG", quality=90)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([2], tf.int64)])
    def both(b, seed):
        return images.preprocess_for_eval(b), images.preprocess_for_training(b, seed)

    ev, tr = both(tf.constant(data), tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(ev.numpy(), images.preprocess_for_eval(data).numpy())
    np.testing.assert_array_equal(
        tr.numpy(), images.preprocess_for_training(data, tf.constant([3, 4], tf.int64)).numpy()
    )
