"""StochasticSharedEmbedding (paper eq. 9-10): the transition matrix, measured
transition frequencies, training-only behaviour, config and .keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.layers import StochasticSharedEmbedding, transition_probabilities

LABELS = np.array([0, 0, 1, 1, 1, 2], "int32")
N = len(LABELS)
# sample j's image features are all j, its text features all 100 + j
IMAGE = np.arange(N, dtype="float32")[:, None, None, None] * np.ones((1, 2, 2, 3), "float32")
TEXT = 100.0 + np.arange(N, dtype="float32")[:, None] * np.ones((1, 5), "float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _expected_matrix(labels, p0, rho):
    """Eq. 9-10 written out by hand, row by row."""
    n = len(labels)
    p = np.zeros((n, n))
    for j in range(n):
        others = [k for k in range(n) if k != j]
        if not others:
            p[j, j] = 1.0
            continue
        w = {k: (rho if labels[j] >= 0 and labels[k] == labels[j] else 1.0) for k in others}
        for k in others:
            p[j, k] = p0 * w[k] / sum(w.values())
        p[j, j] = 1.0 - p0
    return p


@pytest.mark.parametrize("p0,rho", [(0.1, 100.0), (0.5, 4.0), (1.0, 20000.0), (0.3, 1.0)])
def test_transition_probabilities_eq_9_10(p0, rho):
    labels = np.array([0, 0, 1, 1, 1, 2, -1, -1], "int32")
    p = _np(transition_probabilities(labels, p0, rho))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.diag(p), 1.0 - p0, rtol=1e-6)  # eq. 10
    # eq. 9: same-class / other-class ratio is rho (rows 0 and 2)
    np.testing.assert_allclose(p[0, 1] / p[0, 2], rho, rtol=1e-5)
    np.testing.assert_allclose(p[2, 3] / p[2, 0], rho, rtol=1e-5)
    # unknown labels (-1) are never same-class, not even with each other
    np.testing.assert_allclose(p[6, 7], p[6, 0], rtol=1e-6)
    np.testing.assert_allclose(p[0, 6], p[0, 2], rtol=1e-6)
    np.testing.assert_allclose(p, _expected_matrix(labels, p0, rho), rtol=1e-5, atol=1e-7)


def test_transition_probabilities_edge_cases():
    np.testing.assert_allclose(_np(transition_probabilities([4], 0.7, 10.0)), [[1.0]])
    # rho = inf: all of p0 on same-class partners when there are any
    p = _np(transition_probabilities([0, 0, 1], 1.0, float("inf")))
    np.testing.assert_allclose(p, [[0, 1, 0], [1, 0, 0], [0.5, 0.5, 0]])
    # [B, 1] labels and graph mode with unknown batch size
    fn = tf.function(
        lambda y: transition_probabilities(y, 0.5, 4.0),
        input_signature=[tf.TensorSpec([None, 1], tf.int32)],
    )
    np.testing.assert_allclose(
        _np(fn(LABELS[:, None])), _expected_matrix(LABELS, 0.5, 4.0), rtol=1e-5
    )
    with pytest.raises(ValueError, match="p0"):
        transition_probabilities(LABELS, 1.5, 10.0)
    with pytest.raises(ValueError, match="rho"):
        StochasticSharedEmbedding(p0=0.1, rho=0.5)


def _count_draws(layer, draws):
    """Run the layer `draws` times in one graph; count where each side went."""

    @tf.function
    def run():
        image_counts = tf.zeros([N, N])
        text_counts = tf.zeros([N, N])
        both_moved = tf.zeros([])
        for _ in tf.range(draws):
            image, text = layer([IMAGE, TEXT, LABELS], training=True)
            image_src = tf.cast(image[:, 0, 0, 0], tf.int32)
            text_src = tf.cast(text[:, 0] - 100.0, tf.int32)
            image_counts += tf.one_hot(image_src, N)
            text_counts += tf.one_hot(text_src, N)
            own = tf.range(N)
            both_moved += tf.reduce_sum(
                tf.cast((image_src != own) & (text_src != own), tf.float32)
            )
        return image_counts, text_counts, both_moved

    return [t.numpy() for t in run()]


def test_empirical_transition_frequencies_match_eq_9_10():
    p0, rho, draws = 0.5, 4.0, 20000
    layer = StochasticSharedEmbedding(p0=p0, rho=rho, seed=7)
    image_counts, text_counts, both_moved = _count_draws(layer, draws)
    p = _expected_matrix(LABELS, p0, rho)
    # each side moves j -> k with probability p(j, k) / 2 (side chosen 50/50)
    expected = draws * p / 2.0
    np.fill_diagonal(expected, draws * (1.0 - p0 / 2.0))
    q = expected / draws
    se = np.sqrt(draws * q * (1.0 - q))
    for counts in (image_counts, text_counts):
        assert counts.sum(axis=1).tolist() == [draws] * N
        assert np.all(np.abs(counts - expected) <= 4.0 * se), (counts, expected)
    assert both_moved == 0  # a pair transitions on one side only
    # side choice: among moved samples, half image / half text
    moved_image = image_counts.sum() - np.trace(image_counts)
    moved_text = text_counts.sum() - np.trace(text_counts)
    total = moved_image + moved_text
    assert abs(moved_image / total - 0.5) <= 4.0 * np.sqrt(0.25 / total)


def test_identity_at_inference_without_labels_and_with_p0_zero():
    layer = StochasticSharedEmbedding(p0=1.0, rho=10.0, seed=0)
    for out in (
        layer([IMAGE, TEXT, LABELS]),
        layer([IMAGE, TEXT, LABELS], training=False),
        layer([IMAGE, TEXT, None], training=True),
        layer([IMAGE, TEXT], training=True),
    ):
        np.testing.assert_array_equal(out[0], IMAGE)
        np.testing.assert_array_equal(out[1], TEXT)
    image_counts, text_counts, _ = _count_draws(StochasticSharedEmbedding(p0=0.0, seed=0), 200)
    np.testing.assert_array_equal(image_counts, 200 * np.eye(N))
    np.testing.assert_array_equal(text_counts, 200 * np.eye(N))


def test_p0_one_always_moves_one_side_and_batch_of_one_keeps():
    layer = StochasticSharedEmbedding(p0=1.0, rho=1e9, seed=3)
    for _ in range(5):
        image, text = layer([IMAGE, TEXT, LABELS], training=True)
        src_image = _np(image)[:, 0, 0, 0].astype(int)
        src_text = (_np(text)[:, 0] - 100).astype(int)
        own = np.arange(N)
        moved = np.where(src_image != own, src_image, src_text)
        assert np.all((src_image != own) ^ (src_text != own))
        # with a huge rho the partner shares the class whenever one exists (not sample 5)
        assert np.all(LABELS[moved[:5]] == LABELS[:5])
    image, text = layer([IMAGE[:1], TEXT[:1], LABELS[:1]], training=True)
    np.testing.assert_array_equal(image, IMAGE[:1])
    np.testing.assert_array_equal(text, TEXT[:1])


def test_graph_mode_unknown_batch_in_a_functional_model_fit():
    image_in = keras.Input((2, 2, 3), name="image")
    text_in = keras.Input((5,), name="text")
    label_in = keras.Input((), dtype="int32", name="sse_label", optional=True)
    image, text = StochasticSharedEmbedding(p0=1.0, rho=10.0, seed=1, name="sse")(
        [image_in, text_in, label_in]
    )
    x = keras.layers.Concatenate()([keras.layers.Flatten()(image), text])
    model = keras.Model(
        {"image": image_in, "text": text_in, "sse_label": label_in}, keras.layers.Dense(3)(x)
    )
    data = {"image": IMAGE, "text": TEXT, "sse_label": LABELS}
    assert not np.allclose(model(data, training=True), model(data, training=False))
    no_labels = {"image": IMAGE, "text": TEXT, "sse_label": None}  # optional input left out
    np.testing.assert_array_equal(
        model(no_labels, training=True), model(data, training=False)
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=loss)
    history = model.fit(data, LABELS, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_mixed_precision_features_keep_their_dtype():
    layer = StochasticSharedEmbedding(p0=1.0, rho=10.0, seed=2, dtype="mixed_bfloat16")
    image, text = layer([IMAGE, TEXT, LABELS], training=True)
    assert keras.backend.standardize_dtype(image.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(text.dtype) == "bfloat16"


def test_config_seed_and_keras_save_load(tmp_path):
    layer = StochasticSharedEmbedding(p0=0.4, rho=50.0, seed=123, name="sse")
    config = layer.get_config()
    assert (config["p0"], config["rho"], config["seed"]) == (0.4, 50.0, 123)
    clone = StochasticSharedEmbedding.from_config(config)
    assert clone.get_config() == config
    # the seed survives the config: same draws
    for _ in range(3):
        a = layer([IMAGE, TEXT, LABELS], training=True)
        b = clone([IMAGE, TEXT, LABELS], training=True)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])

    image_in = keras.Input((2, 2, 3))
    text_in = keras.Input((5,))
    label_in = keras.Input((), dtype="int32")
    image, text = StochasticSharedEmbedding(p0=0.4, rho=50.0, seed=123, name="sse")(
        [image_in, text_in, label_in]
    )
    out = keras.layers.Concatenate()([keras.layers.Flatten()(image), keras.layers.Dense(4)(text)])
    model = keras.Model([image_in, text_in, label_in], out)
    path = tmp_path / "sse.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("sse").get_config()["seed"] == 123
    np.testing.assert_array_equal(
        model([IMAGE, TEXT, LABELS]), loaded([IMAGE, TEXT, LABELS])
    )
