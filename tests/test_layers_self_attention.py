"""SelfAttention over the fused vector (section 3.3): sigmoid and softmax readings."""

import keras
import numpy as np
import pytest

from crisis_keras.layers import SelfAttention

H = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]], "float32")
W = np.random.default_rng(5).normal(size=(4, 4)).astype("float32")
B = np.array([0.1, -0.3, 0.0, 0.2], "float32")


def _layer(activation):
    layer = SelfAttention(activation=activation)
    layer.build(H.shape)
    layer.set_weights([W, B])
    return layer


def test_sigmoid_gate_matches_numpy():
    layer = _layer("sigmoid")
    assert [v.path.split("/")[-1] for v in layer.weights] == ["attention_kernel", "attention_bias"]
    beta = 1.0 / (1.0 + np.exp(-(H @ W + B)))
    np.testing.assert_allclose(layer(H), beta * H, rtol=1e-5, atol=1e-6)


def test_softmax_gate_matches_numpy_and_uniform_is_identity():
    layer = _layer("softmax")
    s = H @ W + B
    beta = np.exp(s - s.max(-1, keepdims=True))
    beta = 4.0 * beta / beta.sum(-1, keepdims=True)
    np.testing.assert_allclose(layer(H), beta * H, rtol=1e-5, atol=1e-6)
    layer.set_weights([np.zeros((4, 4), "float32"), np.zeros(4, "float32")])
    np.testing.assert_allclose(layer(H), H, rtol=1e-6)


def test_bad_activation_and_mixed_precision():
    with pytest.raises(ValueError, match="activation"):
        SelfAttention(activation="tanh")
    layer = SelfAttention(dtype="mixed_bfloat16")
    layer.build(H.shape)
    layer.set_weights([W, B])
    out = layer(H)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(
        np.asarray(keras.ops.cast(out, "float32")), _layer("sigmoid")(H), atol=0.05, rtol=0.05
    )


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_config_and_keras_save_load(tmp_path, activation):
    layer = SelfAttention(activation=activation, name="self_attention")
    config = layer.get_config()
    assert config["activation"] == activation
    assert SelfAttention.from_config(config).get_config() == config

    inp = keras.Input((4,))
    model = keras.Model(inp, SelfAttention(activation=activation, name="self_attention")(inp))
    path = tmp_path / "self_attention.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("self_attention").activation == activation
    np.testing.assert_array_equal(model(H), loaded(H))
