"""ScoreFusion (section 4.3) and MixUp / MixUpLoss (Table 8; Zhang et al.
2018): hand-made numbers, the training objective they add, training-only
behaviour, config and .keras round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.layers import MixUp, MixUpLoss, ScoreFusion

P_IMAGE = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
P_TEXT = np.array([[0.5, 0.4, 0.1], [0.3, 0.6, 0.1]], "float32")
LABELS = np.array([0, 1], "int32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _ce(p, y):
    return -np.log(p[np.arange(len(y)), y])


# -- ScoreFusion -------------------------------------------------------------


def test_score_fusion_averages_and_adds_branch_losses_in_training_only():
    layer = ScoreFusion()
    average = [[0.6, 0.3, 0.1], [0.2, 0.35, 0.45]]
    np.testing.assert_allclose(_np(layer([P_IMAGE, P_TEXT, LABELS])), average, rtol=1e-6)
    np.testing.assert_allclose(_np(layer([P_IMAGE, P_TEXT, None])), average, rtol=1e-6)
    assert not layer.losses

    out = layer([P_IMAGE, P_TEXT, LABELS], training=True)
    np.testing.assert_allclose(_np(out), average, rtol=1e-6)
    (added,) = layer.losses
    # CE(p_image) + CE(p_text), each a batch mean: (-log .7 - log .1)/2 + (-log .5 - log .6)/2
    expected = _ce(P_IMAGE, LABELS).mean() + _ce(P_TEXT, LABELS).mean()
    np.testing.assert_allclose(float(added), expected, rtol=1e-6)
    np.testing.assert_allclose(expected, (-np.log(0.7) - np.log(0.1) - np.log(0.5) - np.log(0.6)) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="sse_label"):
        layer([P_IMAGE, P_TEXT, None], training=True)


def test_score_fusion_gradients_come_from_the_branch_losses_only():
    p_image = tf.Variable(P_IMAGE)
    p_text = tf.Variable(P_TEXT)
    layer = ScoreFusion()
    with tf.GradientTape(persistent=True) as tape:
        out = layer([p_image, p_text, LABELS], training=True)
        compiled = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(LABELS, out))
        added = layer.losses[0]
    # the output is stop_gradient-ed: the compiled loss trains nothing
    assert tape.gradient(compiled, p_image) is None
    g = tape.gradient(added, p_image).numpy()
    # keras' crossentropy renormalizes p: d/dp mean(-log(p_y / sum p)) = (-e_y / p_y + 1) / B
    expected = (-np.eye(3)[LABELS] / P_IMAGE + 1.0) / 2.0
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


def test_score_fusion_keras_save_load(tmp_path):
    a = keras.Input((3,), name="a")
    b = keras.Input((3,), name="b")
    y = keras.Input((), dtype="int32", name="y", optional=True)
    pa = keras.layers.Dense(3, activation="softmax")(a)
    pb = keras.layers.Dense(3, activation="softmax")(b)
    model = keras.Model({"a": a, "b": b, "y": y}, ScoreFusion(name="score_fusion")([pa, pb, y]))
    data = {"a": P_IMAGE, "b": P_TEXT, "y": LABELS}
    path = tmp_path / "score_fusion.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert ScoreFusion.from_config(loaded.get_layer("score_fusion").get_config()).name == "score_fusion"
    np.testing.assert_array_equal(_np(model(data)), _np(loaded(data)))
    np.testing.assert_array_equal(_np(model(dict(data, y=None))), _np(loaded(data)))


# -- MixUp ---------------------------------------------------------------------

N = 6
# sample j's features are j (image, rank 4) and 100 + j (text)
IMAGE = np.arange(N, dtype="float32")[:, None, None, None] * np.ones((1, 2, 2, 3), "float32")
TEXT = 100.0 + np.arange(N, dtype="float32")[:, None] * np.ones((1, 4), "float32")
MIX_LABELS = np.array([0, 0, 1, 1, 2, 2], "int32")


def test_mixup_is_identity_at_inference():
    layer = MixUp(alpha=0.4, seed=0)
    for labels in (MIX_LABELS, None):
        image, text, partner, mix = layer([IMAGE, TEXT, labels])
        np.testing.assert_array_equal(_np(image), IMAGE)
        np.testing.assert_array_equal(_np(text), TEXT)
        np.testing.assert_array_equal(_np(partner), MIX_LABELS if labels is not None else np.zeros(N))
        np.testing.assert_array_equal(_np(mix), np.ones(N))
    with pytest.raises(ValueError, match="sse_label"):
        layer([IMAGE, TEXT, None], training=True)
    with pytest.raises(ValueError, match="alpha"):
        MixUp(alpha=0.0)


def test_mixup_mixes_both_modalities_with_one_lambda_and_a_permutation():
    layer = MixUp(alpha=0.4, seed=3)
    for _ in range(5):
        image, text, partner, mix = (_np(t) for t in layer([IMAGE, TEXT, MIX_LABELS], training=True))
        lam = mix[0]
        np.testing.assert_array_equal(mix, np.full(N, lam))  # one lambda per batch
        assert 0.0 <= lam <= 1.0
        # x~_j = lam * j + (1 - lam) * perm[j]: recover perm from the partner labels
        # and check with the features of both modalities
        own = np.arange(N)
        if lam < 0.999:
            perm = np.rint((image[:, 0, 0, 0] - lam * own) / (1.0 - lam)).astype(int)
            assert sorted(perm) == list(range(N))  # a permutation of the batch
            np.testing.assert_allclose(image, lam * IMAGE + (1 - lam) * IMAGE[perm], atol=1e-4)
            np.testing.assert_allclose(text, lam * TEXT + (1 - lam) * TEXT[perm], atol=1e-3)
            np.testing.assert_array_equal(partner, MIX_LABELS[perm])


def test_mixup_lambda_follows_beta_alpha_alpha():
    alpha, draws = 0.4, 3000
    layer = MixUp(alpha=alpha, seed=1)

    @tf.function
    def run():
        lams = tf.TensorArray(tf.float32, size=draws)
        for i in tf.range(draws):
            lams = lams.write(i, layer([TEXT, MIX_LABELS], training=True)[2][0])
        return lams.stack()

    lams = run().numpy()
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert abs(lams.mean() - 0.5) < 4 * np.sqrt(1 / (4 * (2 * alpha + 1)) / draws)
    np.testing.assert_allclose(lams.var(), 1 / (4 * (2 * alpha + 1)), rtol=0.1)


def test_mixup_loss_is_the_mixed_label_cross_entropy():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], "float32")
    labels = np.array([0, 2], "int32")
    partner = np.array([1, 0], "int32")
    mix = np.array([0.75, 0.75], "float32")
    layer = MixUpLoss()
    np.testing.assert_array_equal(_np(layer([probs, labels, partner, mix])), probs)
    assert not layer.losses
    p = tf.Variable(probs)
    with tf.GradientTape(persistent=True) as tape:
        out = layer([p, labels, partner, mix], training=True)
        compiled = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, out))
        (added,) = layer.losses
    # CE against the mixed one-hot target y~ = 0.75 y_i + 0.25 y_j
    target = 0.75 * np.eye(3)[labels] + 0.25 * np.eye(3)[partner]
    expected = np.mean(-(target * np.log(probs)).sum(axis=1))
    np.testing.assert_allclose(float(added), expected, rtol=1e-6)
    assert tape.gradient(compiled, p) is None
    expected_grad = (-target / probs + 1.0) / 2.0  # keras renormalizes p (sum p = 1 here)
    np.testing.assert_allclose(tape.gradient(added, p).numpy(), expected_grad, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sse_label"):
        layer([probs, None, partner, mix], training=True)


def test_mixup_config_and_keras_save_load(tmp_path):
    layer = MixUp(alpha=0.3, seed=5, name="mixup")
    config = layer.get_config()
    assert (config["alpha"], config["seed"]) == (0.3, 5)
    clone = MixUp.from_config(config)
    assert clone.get_config() == config
    a = layer([IMAGE, TEXT, MIX_LABELS], training=True)
    b = clone([IMAGE, TEXT, MIX_LABELS], training=True)
    for u, v in zip(a, b):  # the seed survives the config: same draws
        np.testing.assert_array_equal(_np(u), _np(v))

    text = keras.Input((4,), name="text")
    y = keras.Input((), dtype="int32", name="y", optional=True)
    mixed, partner, mix = MixUp(alpha=0.3, seed=5, name="mixup")([text, y])
    probs = keras.layers.Dense(3, activation="softmax")(mixed)
    out = MixUpLoss(name="mixup_loss")([probs, y, partner, mix])
    model = keras.Model({"text": text, "y": y}, out)
    path = tmp_path / "mixup.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("mixup").get_config() == model.get_layer("mixup").get_config()
    data = {"text": TEXT, "y": MIX_LABELS}
    np.testing.assert_array_equal(_np(model(data)), _np(loaded(data)))
    np.testing.assert_array_equal(_np(loaded(dict(data, y=None))), _np(loaded(data)))


# -- graph mode, as the trainer runs fit ---------------------------------------


def test_graph_mode_fit_logs_the_compiled_plus_the_added_loss():
    rng = np.random.default_rng(0)
    a_in = keras.Input((4,), name="a")
    b_in = keras.Input((5,), name="b")
    y_in = keras.Input((), dtype="int32", name="sse_label", optional=True)
    pa = keras.layers.Dense(3, activation="softmax", name="pa")(a_in)
    pb = keras.layers.Dense(3, activation="softmax", name="pb")(b_in)
    model = keras.Model({"a": a_in, "b": b_in, "sse_label": y_in}, ScoreFusion()([pa, pb, y_in]))
    data = {
        "a": rng.normal(size=(8, 4)).astype("float32"),
        "b": rng.normal(size=(8, 5)).astype("float32"),
        "sse_label": rng.integers(0, 3, 8).astype("int32"),
    }
    y = data["sse_label"]
    p_a = _np(model.get_layer("pa")(data["a"]))
    p_b = _np(model.get_layer("pb")(data["b"]))
    expected = (_ce((p_a + p_b) / 2, y) + _ce(p_a, y) + _ce(p_b, y)).mean()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy())
    history = model.fit(data, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    assert history.history["loss"][1] < history.history["loss"][0]

    mixed, partner, mix = MixUp(alpha=0.4, seed=0)([a_in, y_in])
    probs = keras.layers.Dense(3, activation="softmax")(mixed)
    mix_model = keras.Model({"a": a_in, "sse_label": y_in}, MixUpLoss()([probs, y_in, partner, mix]))
    mix_model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy())
    history = mix_model.fit({"a": data["a"], "sse_label": y}, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
