"""Projection (paper eq. 3-4): hand-checked numbers, config, .keras round trip."""

import keras
import numpy as np
import pytest

from crisis_keras.layers import Projection


def _relu(x):
    return np.maximum(x, 0.0)


def test_projection_on_vector_matches_numpy():
    x = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]], "float32")
    w = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]], "float32")
    b = np.array([0.1, -0.2], "float32")
    layer = Projection(units=2)
    layer.build(x.shape)
    layer.set_weights([w, b])
    assert [v.path.split("/")[-1] for v in layer.weights] == ["kernel", "bias"]
    expected = _relu(x @ w + b)
    # some pre-activations are negative, so the ReLU matters
    assert (x @ w + b).min() < 0
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)


def test_projection_flattens_a_2x2xc_feature_map():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(3, 2, 2, 2)).astype("float32")  # [B, W, H, C]
    w = rng.normal(size=(8, 4)).astype("float32")
    b = rng.normal(size=(4,)).astype("float32")
    layer = Projection(units=4)
    layer.build(f.shape)
    assert tuple(layer.kernel.shape) == (8, 4)
    layer.set_weights([w, b])
    # eq. 3 literally: W^T vec(f) + b, vec = row-major flatten of (W, H, C)
    expected = _relu(f.reshape(3, 8) @ w + b)
    np.testing.assert_allclose(layer(f), expected, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((None, 2, 2, 2)) == (None, 4)


def test_projection_linear_activation_and_errors():
    x = np.array([[-1.0, 2.0]], "float32")
    layer = Projection(units=1, activation="linear")
    layer.build(x.shape)
    layer.set_weights([np.array([[3.0], [1.0]], "float32"), np.array([0.5], "float32")])
    np.testing.assert_allclose(layer(x), [[-0.5]])
    with pytest.raises(ValueError, match="fully known"):
        Projection(units=2).build((None, None, 3))
    with pytest.raises(ValueError, match="units"):
        Projection(units=0)


def test_projection_mixed_bfloat16():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 2, 2, 3)).astype("float32")
    ref = Projection(units=5)
    out32 = ref(f)
    layer = Projection(units=5, dtype="mixed_bfloat16")
    layer.build(f.shape)
    layer.set_weights(ref.get_weights())
    assert layer.kernel.dtype == "float32"
    out = layer(f)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(
        np.asarray(keras.ops.cast(out, "float32")), out32, atol=0.05, rtol=0.05
    )


def test_projection_config_and_keras_save_load(tmp_path):
    layer = Projection(units=3, activation="relu", name="image_projection")
    restored = Projection.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()

    inp = keras.Input((2, 2, 4), name="image_features")
    model = keras.Model(inp, Projection(units=3, name="image_projection")(inp))
    x = np.random.default_rng(2).normal(size=(5, 2, 2, 4)).astype("float32")
    path = tmp_path / "projection.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("image_projection"), Projection)
    np.testing.assert_array_equal(model(x), loaded(x))
