"""`FusedBatchNormalization` (issue 11): Keras' batch normalization on TensorFlow's
fused kernel. The equation by hand, the Keras layer's outputs, moving statistics
and gradients, the fall-backs, serialization, and the swapped backbones."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras import train as train_cli
from crisis_keras.layers import FusedBatchNormalization, fuse_batch_normalization
from crisis_keras.models import build_model
from crisis_keras.models.image_backbone import build_image_backbone

EPS = 1.001e-5


def _x(shape=(3, 2, 2, 2), seed=0):
    return np.random.default_rng(seed).normal(1.5, 2.0, shape).astype("float32")


def _pair(momentum=0.9, epsilon=EPS, channels=2, ndim=4, **kwargs):
    """A Keras and a fused layer with the same (non-trivial) weights."""
    layers = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(momentum=momentum, epsilon=epsilon, **kwargs)
        layer.build((None,) * (ndim - 1) + (channels,))
        if layer.scale:
            layer.gamma.assign(np.linspace(0.5, 2.0, channels))
        if layer.center:
            layer.beta.assign(np.linspace(-1.0, 1.0, channels))
        layer.moving_mean.assign(np.linspace(0.1, 0.3, channels))
        layer.moving_variance.assign(np.linspace(1.5, 2.5, channels))
        layers.append(layer)
    return layers


def test_training_step_matches_the_equation_by_hand():
    x = _x()
    _, fused = _pair(momentum=0.8)
    y = fused(x, training=True).numpy()
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))  # biased, as Ioffe & Szegedy normalize
    gamma, beta = np.array([0.5, 2.0]), np.array([-1.0, 1.0])
    np.testing.assert_allclose(y, gamma * (x - mean) / np.sqrt(var + EPS) + beta, atol=1e-5)
    # moving = momentum * moving + (1 - momentum) * batch statistic, biased variance as Keras
    np.testing.assert_allclose(fused.moving_mean.numpy(), 0.8 * np.array([0.1, 0.3]) + 0.2 * mean,
                               rtol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(),
                               0.8 * np.array([1.5, 2.5]) + 0.2 * var, rtol=1e-6)


def test_inference_uses_the_moving_statistics():
    x = _x()
    _, fused = _pair()
    y = fused(x, training=False).numpy()
    expected = (np.array([0.5, 2.0]) * (x - np.array([0.1, 0.3])) / np.sqrt(np.array([1.5, 2.5]) + EPS)
                + np.array([-1.0, 1.0]))
    np.testing.assert_allclose(y, expected, atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), [0.1, 0.3])  # untouched


@pytest.mark.parametrize("center,scale", [(True, True), (False, False)])
def test_outputs_statistics_and_gradients_match_the_keras_layer(center, scale):
    reference, fused = _pair(channels=5, center=center, scale=scale)
    upstream = tf.constant(np.random.default_rng(1).normal(size=(4, 3, 3, 5)), "float32")
    results = []
    for layer in (reference, fused):
        for step in range(2):  # two steps: the moving statistics compound
            x = tf.constant(_x((4, 3, 3, 5), seed=step))
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x] + layer.trainable_weights)
        results.append((y.numpy(), [g.numpy() for g in grads], layer.moving_mean.numpy(),
                        layer.moving_variance.numpy(), layer(x, training=False).numpy()))
    (y0, g0, m0, v0, i0), (y1, g1, m1, v1, i1) = results
    np.testing.assert_allclose(y1, y0, atol=1e-5)
    assert len(g1) == len(g0) == 1 + 2 * scale
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(m1, m0, rtol=1e-6)
    np.testing.assert_allclose(v1, v0, rtol=1e-5)
    np.testing.assert_allclose(i1, i0, atol=1e-5)


def test_frozen_layer_normalizes_with_moving_statistics_in_training():
    reference, fused = _pair()
    reference.trainable = fused.trainable = False
    x = _x()
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True), atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), [0.1, 0.3])


def test_bf16_inputs_run_on_the_kernel_with_float32_statistics():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        reference, fused = _pair(channels=4)
        x = _x((4, 3, 3, 4))
        y = fused(x, training=True)
        assert y.dtype == "bfloat16"
        assert fused.moving_variance.dtype == "float32"
        np.testing.assert_allclose(np.asarray(y, "float32"),
                                   np.asarray(reference(x, training=True), "float32"), atol=3e-2)
        np.testing.assert_allclose(fused.moving_variance.numpy(), reference.moving_variance.numpy(),
                                   rtol=1e-2)
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("case", ["2d", "epsilon", "mask"])
def test_falls_back_to_the_keras_layer_where_the_kernel_does_not_apply(case, monkeypatch):
    calls = []
    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm",
                        lambda *a, **k: calls.append(1) or pytest.fail("fused kernel used"))
    epsilon = 1e-6 if case == "epsilon" else EPS
    reference, fused = _pair(epsilon=epsilon, ndim=2 if case == "2d" else 4)
    x = _x((6, 2)) if case == "2d" else _x()
    mask = np.array([[[1, 0], [1, 1]]] * 3, bool) if case == "mask" else None
    np.testing.assert_array_equal(fused(x, training=True, mask=mask),
                                  reference(x, training=True, mask=mask))
    assert not calls


def test_get_config_and_keras_file_round_trip(tmp_path):
    _, fused = _pair(channels=3, momentum=0.7)
    restored = FusedBatchNormalization.from_config(fused.get_config())
    assert restored.get_config() == fused.get_config()
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, fused(inputs))
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[-1], FusedBatchNormalization)
    x = _x((2, 2, 2, 3))
    for training in (False, True):
        np.testing.assert_array_equal(loaded(x, training=training), model(x, training=training))


def test_fused_backbone_keeps_the_weights_and_outputs():
    keras.utils.set_random_seed(0)
    plain = build_image_backbone("efficientnet_lite0", None, 64)
    fused = fuse_batch_normalization(plain)
    kinds = {type(layer) for layer in fused.layers}
    assert FusedBatchNormalization in kinds and keras.layers.BatchNormalization not in kinds
    assert fused.name == plain.name
    assert [w.path for w in fused.weights] == [w.path for w in plain.weights]
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(fused(x), plain(x), atol=1e-5)
    # 50 layers deep, float rounding is amplified where a batch's variance is small
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-3)
    tiny = build_image_backbone("tiny", None, 32)
    assert fuse_batch_normalization(tiny) is tiny  # no batch normalization: as is


def test_models_fuse_by_default_and_the_flag_turns_it_off():
    def batch_norms(model):
        backbone = model.get_layer("image_backbone")
        return {type(layer).__name__ for layer in backbone.layers
                if isinstance(layer, keras.layers.BatchNormalization)}

    small = dict(image_backbone="efficientnet_lite0", image_weights=None, image_size=32)
    assert batch_norms(build_model("densenet", 3, **small)) == {"FusedBatchNormalization"}
    assert batch_norms(build_model("densenet", 3, **small, fused_batch_norm=False)) == {
        "BatchNormalization"}
    parse = train_cli.build_parser().parse_args
    assert train_cli.config_from_args(parse(["--task", "severity"])).fused_batch_norm is True
    assert train_cli.config_from_args(
        parse(["--task", "severity", "--no-fused-batch-norm"])).fused_batch_norm is False
