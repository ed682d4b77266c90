"""CompactBilinearPooling (MCB, Fukui et al. 2016; section 4.3's baseline): the
count sketch and FFT convolution against a direct count sketch of the outer
product, signed sqrt + L2, hashes from the seed, config and .keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.layers import CompactBilinearPooling
from crisis_keras.layers.compact_bilinear_pooling import circular_convolution, count_sketch


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _hashes(layer):
    return [_np(v) for v in (layer.hash_1, layer.sign_1, layer.hash_2, layer.sign_2)]


def _sketch_of_outer_product(x, y, h1, s1, h2, s2, d):
    """Count sketch of vec(x ⊗ y) with H(i, j) = (h1[i] + h2[j]) mod d,
    S(i, j) = s1[i] s2[j], written out entry by entry (float64)."""
    out = np.zeros((x.shape[0], d))
    for i in range(x.shape[1]):
        for j in range(y.shape[1]):
            out[:, (h1[i] + h2[j]) % d] += s1[i] * s2[j] * x[:, i] * y[:, j]
    return out


def test_count_sketch_and_circular_convolution_by_hand():
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], "float32")
    h = np.array([0, 2, 0], "int32")
    s = np.array([1.0, -1.0, 1.0], "float32")
    # entry 0: x0 + x2, entry 1: nothing, entry 2: -x1
    np.testing.assert_allclose(_np(count_sketch(x, h, s, 3)), [[4.0, 0.0, -2.0], [-1.0, 0.0, -0.5]])
    a = np.array([[1.0, 2.0, 3.0, 4.0]], "float32")
    shift_by_one = np.array([[0.0, 1.0, 0.0, 0.0]], "float32")
    np.testing.assert_allclose(_np(circular_convolution(a, shift_by_one)), [[4.0, 1.0, 2.0, 3.0]], atol=1e-6)
    b = np.array([[1.0, 0.0, -1.0, 2.0]], "float32")
    direct = [sum(a[0, k] * b[0, (t - k) % 4] for k in range(4)) for t in range(4)]
    np.testing.assert_allclose(_np(circular_convolution(a, b)), [direct], atol=1e-5)


@pytest.mark.parametrize("n,m,d,seed", [(3, 4, 5, 0), (6, 2, 8, 1), (5, 7, 16, 2), (4, 4, 3, 3)])
def test_mcb_is_the_count_sketch_of_the_outer_product(n, m, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, n)).astype("float32")
    y = rng.normal(size=(3, m)).astype("float32")
    layer = CompactBilinearPooling(d, normalize=False, seed=seed)
    z = _np(layer([x, y]))
    h1, s1, h2, s2 = _hashes(layer)
    assert set(np.unique(s1)) <= {-1.0, 1.0} and h1.min() >= 0 and h1.max() < d
    expected = _sketch_of_outer_product(x, y, h1, s1, h2, s2, d)
    assert z.shape == (3, d)
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)


def test_signed_sqrt_and_l2_normalization():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 5)).astype("float32")
    y = rng.normal(size=(2, 3)).astype("float32")
    raw = CompactBilinearPooling(11, normalize=False, seed=9)
    normalized = CompactBilinearPooling(11, seed=9)
    z = _np(raw([x, y]))
    expected = np.sign(z) * np.sqrt(np.abs(z))
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    out = _np(normalized([x, y]))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(_np(normalized([np.zeros_like(x), y]))))


def test_hashes_are_fixed_non_trainable_and_follow_the_seed():
    x = np.ones((1, 6), "float32")
    y = np.ones((1, 4), "float32")
    a, b, c = (CompactBilinearPooling(32, seed=s) for s in (5, 5, 6))
    for layer in (a, b, c):
        layer([x, y])
    assert not a.trainable_weights and len(a.non_trainable_weights) == 4
    assert [w.path.split("/")[-1] for w in a.weights] == ["hash_1", "sign_1", "hash_2", "sign_2"]
    assert _np(a.hash_1).dtype == np.int32
    for u, v in zip(_hashes(a), _hashes(b)):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(_hashes(a), _hashes(c)))
    # seed=None draws a seed and records it: the config rebuilds the same hashes
    drawn = CompactBilinearPooling(32)
    assert isinstance(drawn.get_config()["seed"], int)
    clone = CompactBilinearPooling.from_config(drawn.get_config())
    for layer in (drawn, clone):
        layer([x, y])
    for u, v in zip(_hashes(drawn), _hashes(clone)):
        np.testing.assert_array_equal(u, v)


def test_gradients_are_bilinear():
    # d MCB / d x is linear in y: doubling y doubles the gradient of <w, MCB>
    layer = CompactBilinearPooling(16, normalize=False, seed=1)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 5)), tf.float32)
    y = tf.constant(rng.normal(size=(2, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(2, 16)), tf.float32)

    def grad(y_value):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(w * layer([x, y_value]))
        return tape.gradient(value, x).numpy()

    g = grad(y)
    assert np.abs(g).sum() > 0
    np.testing.assert_allclose(grad(2.0 * y), 2.0 * g, rtol=1e-5, atol=1e-6)


def test_bad_arguments_and_mixed_precision():
    with pytest.raises(ValueError, match="output_dim"):
        CompactBilinearPooling(0)
    with pytest.raises(ValueError, match=r"\[x, y\]"):
        CompactBilinearPooling(8)(np.ones((1, 3), "float32"))
    x = np.random.default_rng(1).normal(size=(2, 6)).astype("float32")
    y = np.random.default_rng(2).normal(size=(2, 4)).astype("float32")
    ref = _np(CompactBilinearPooling(64, seed=3)([x, y]))
    out = CompactBilinearPooling(64, seed=3, dtype="mixed_bfloat16")([x, y])
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(_np(keras.ops.cast(out, "float32")), ref, atol=0.03)


def test_config_and_keras_save_load(tmp_path):
    layer = CompactBilinearPooling(40, normalize=True, seed=11, name="compact_bilinear_pooling")
    config = layer.get_config()
    assert (config["output_dim"], config["normalize"], config["seed"]) == (40, True, 11)
    assert CompactBilinearPooling.from_config(config).get_config() == config

    image = keras.Input((6,), name="image_vector")
    text = keras.Input((5,), name="text_vector")
    out = keras.layers.Dense(3)(CompactBilinearPooling(40, seed=None, name="mcb")([image, text]))
    model = keras.Model([image, text], out)
    rng = np.random.default_rng(3)
    data = [rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=(4, 5)).astype("float32")]
    path = tmp_path / "mcb.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for u, v in zip(_hashes(model.get_layer("mcb")), _hashes(loaded.get_layer("mcb"))):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(_np(model(data)), _np(loaded(data)))
