"""StochasticSharedEmbedding's options for Table 8's "- SSE + Shuffling Within
Class": `within_class=True` (same-class partners only, isolated samples keep)
and `side="image"`/`"text"`; the paper's SSE (the defaults) is unchanged."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.layers import StochasticSharedEmbedding, transition_probabilities

LABELS = np.array([0, 0, 1, 1, 1, 2, -1], "int32")
N = len(LABELS)
IMAGE = np.arange(N, dtype="float32")[:, None, None, None] * np.ones((1, 2, 2, 3), "float32")
TEXT = 100.0 + np.arange(N, dtype="float32")[:, None] * np.ones((1, 5), "float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_within_class_transition_matrix_by_hand():
    p0 = 0.6
    p = _np(transition_probabilities(LABELS, p0, 10.0, within_class=True))
    q = 1.0 - p0
    expected = np.array(
        [
            [q, p0, 0, 0, 0, 0, 0],
            [p0, q, 0, 0, 0, 0, 0],
            [0, 0, q, p0 / 2, p0 / 2, 0, 0],
            [0, 0, p0 / 2, q, p0 / 2, 0, 0],
            [0, 0, p0 / 2, p0 / 2, q, 0, 0],
            [0, 0, 0, 0, 0, 1, 0],  # alone in class 2: keeps
            [0, 0, 0, 0, 0, 0, 1],  # unknown label: keeps
        ]
    )
    np.testing.assert_allclose(p, expected, rtol=1e-6, atol=1e-7)
    # rho is irrelevant; rho = inf without within_class falls back to other classes
    np.testing.assert_allclose(
        _np(transition_probabilities(LABELS, p0, float("inf"), within_class=True)), expected, atol=1e-7
    )
    assert _np(transition_probabilities(LABELS, 1.0, float("inf")))[5, 5] == 0.0


def test_shuffle_moves_every_image_to_a_uniform_same_class_partner():
    draws = 4000
    layer = StochasticSharedEmbedding(p0=1.0, rho=float("inf"), seed=4, side="image", within_class=True)

    @tf.function
    def run():
        counts = tf.zeros([N, N])
        text_moved = tf.zeros([])
        for _ in tf.range(draws):
            image, text = layer([IMAGE, TEXT, LABELS], training=True)
            counts += tf.one_hot(tf.cast(image[:, 0, 0, 0], tf.int32), N)
            text_moved += tf.reduce_sum(tf.abs(text - TEXT))
        return counts, text_moved

    counts, text_moved = (t.numpy() for t in run())
    assert text_moved == 0.0  # the text side never moves
    expected = draws * _np(transition_probabilities(LABELS, 1.0, 1.0, within_class=True))
    np.testing.assert_array_equal(np.diag(counts)[:5], 0)  # p0 = 1: never keeps its own image...
    np.testing.assert_array_equal(counts[5:, 5:], draws * np.eye(2))  # ...unless it has no partner
    q = expected / draws
    assert np.all(np.abs(counts - expected) <= 4.0 * np.sqrt(draws * q * (1 - q)) + 1e-9), counts
    # the image always comes from the same class
    same = LABELS[:, None] == LABELS[None, :]
    assert counts[:5][~same[:5]].sum() == 0


def test_text_side_and_inference():
    layer = StochasticSharedEmbedding(p0=1.0, seed=2, side="text", within_class=True)
    image, text = layer([IMAGE, TEXT, LABELS], training=True)
    np.testing.assert_array_equal(_np(image), IMAGE)
    assert np.all(LABELS[(_np(text)[:, 0] - 100).astype(int)] == LABELS)
    for out in (layer([IMAGE, TEXT, LABELS]), layer([IMAGE, TEXT, None], training=True)):
        np.testing.assert_array_equal(_np(out[0]), IMAGE)
        np.testing.assert_array_equal(_np(out[1]), TEXT)
    with pytest.raises(ValueError, match="side"):
        StochasticSharedEmbedding(side="both")


def test_config_keeps_the_paper_keys_and_the_options_round_trip(tmp_path):
    default = StochasticSharedEmbedding(p0=0.2, rho=30.0, seed=1).get_config()
    assert "side" not in default and "within_class" not in default
    layer = StochasticSharedEmbedding(
        p0=1.0, rho=float("inf"), seed=8, side="image", within_class=True, name="within_class_shuffle"
    )
    config = layer.get_config()
    assert (config["side"], config["within_class"]) == ("image", True)
    assert StochasticSharedEmbedding.from_config(config).get_config() == config

    image_in = keras.Input((2, 2, 3))
    text_in = keras.Input((5,))
    label_in = keras.Input((), dtype="int32")
    image, text = layer([image_in, text_in, label_in])
    out = keras.layers.Concatenate()([keras.layers.Flatten()(image), text])
    model = keras.Model([image_in, text_in, label_in], out)
    path = tmp_path / "shuffle.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("within_class_shuffle").get_config() == config
    np.testing.assert_array_equal(_np(model([IMAGE, TEXT, LABELS])), _np(loaded([IMAGE, TEXT, LABELS])))
