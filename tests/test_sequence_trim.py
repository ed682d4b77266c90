"""`TrimToLongest` (issue 11, item 3): the batch cut to its longest real
sequence before BERT changes no output: the [CLS] embedding of eq. 2, the
pooler, the masked mean, the full models and the SavedModel signatures."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.layers import TrimToLongest
from crisis_keras.models import build_model
from crisis_keras.models.config import tiny_config
from crisis_keras.serving.signatures import ServingModule, sequence_length, token_tensors

ATOL = 1e-5
TEXTS = [
    "Flood",
    "Bridge collapsed near the river, rescue teams on site #flood http://t.co/x",
    "",
    "RT @user: donate water and food to the shelter now, families need help tonight!!",
    "power out",
]


def _tokens(mask_rows, length=6):
    mask = np.array(mask_rows, bool)
    ids = np.arange(mask.size, dtype="int32").reshape(mask.shape) + 100
    return {"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids) + 1}


def test_cuts_to_longest_row():
    out = TrimToLongest()(_tokens([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]]))
    np.testing.assert_array_equal(out["token_ids"], [[100, 101, 102, 103], [106, 107, 108, 109]])
    np.testing.assert_array_equal(out["padding_mask"], [[1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(out["segment_ids"], np.ones((2, 4)))


def test_minimum_and_full_length():
    short = TrimToLongest()(_tokens([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]))
    assert tuple(short["token_ids"].shape) == (2, 2)  # [CLS] [SEP] kept
    assert tuple(TrimToLongest(min_length=1)(_tokens([[1, 0, 0, 0, 0, 0]]))["token_ids"].shape) == (1, 1)
    full = TrimToLongest(min_length=9)(_tokens([[1, 1, 0, 0, 0, 0]]))
    assert tuple(full["token_ids"].shape) == (1, 6)  # never past L
    with pytest.raises(ValueError, match="min_length"):
        TrimToLongest(min_length=0)


def test_dynamic_length_in_one_graph():
    layer = TrimToLongest()
    spec = tf.TensorSpec([None, 6], tf.int32)
    traces = []

    @tf.function(input_signature=[spec, spec])
    def cut(ids, mask):
        traces.append(1)
        return layer({"token_ids": ids, "padding_mask": mask, "segment_ids": ids})["token_ids"]

    for rows in ([[1, 1, 1, 0, 0, 0]], [[1, 1, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0]]):
        t = _tokens(rows)
        out = cut(t["token_ids"], t["padding_mask"].astype("int32"))
        assert out.shape[1] == max(2, max(map(sum, rows)))
    assert len(traces) == 1


def test_config_and_keras_round_trip(tmp_path):
    ids = keras.Input((6,), dtype="int32", name="token_ids")
    mask = keras.Input((6,), dtype="bool", name="padding_mask")
    seg = keras.Input((6,), dtype="int32", name="segment_ids")
    out = TrimToLongest(min_length=3, name="text_trim")(
        {"token_ids": ids, "padding_mask": mask, "segment_ids": seg})
    model = keras.Model([ids, mask, seg], [out["token_ids"], out["padding_mask"]])
    assert TrimToLongest.from_config(model.get_layer("text_trim").get_config()).min_length == 3
    model.save(tmp_path / "trim.keras")
    loaded = keras.saving.load_model(tmp_path / "trim.keras")
    t = _tokens([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    args = [t["token_ids"], t["padding_mask"], t["segment_ids"]]
    for a, b in zip(model(args), loaded(args)):
        np.testing.assert_array_equal(a, b)
    assert model(args)[0].shape == (2, 4)


def _pair(name, **overrides):
    """The same model (same weights) built with and without the cut."""
    keras.utils.set_random_seed(0)
    trimmed = build_model(name, 3, tiny_config(seed=0, trim_sequences=True, **overrides))
    full = build_model(name, 3, tiny_config(seed=0, trim_sequences=False, **overrides))
    full.set_weights(trimmed.get_weights())
    return trimmed, full


def _features(model, batch):
    rng = np.random.default_rng(0)
    names = [t.name for t in model.inputs] if not isinstance(model.input, dict) else list(model.input)
    out = {"text": tf.constant(TEXTS[:batch])}
    if "image" in names:
        out["image"] = tf.constant(rng.uniform(0, 255, (batch, 64, 64, 3)).astype("float32"))
    if "sse_label" in names:
        out["sse_label"] = tf.constant(rng.integers(0, 3, batch), tf.int32)
    return out


@pytest.mark.parametrize("name,overrides", [
    ("bert", {}), ("bert", {"text_pooling": "mean"}), ("bert", {"text_pooling": "pooled"}),
    ("sse_cross", {}), ("mmbt", {}),
])
def test_same_probabilities_with_and_without_cut(name, overrides):
    trimmed, full = _pair(name, **overrides)
    assert "text_trim" in [layer.name for layer in trimmed.layers]
    assert "text_trim" not in [layer.name for layer in full.layers]
    for batch in (5, 1):  # the single "Flood" row cuts to 3 of 32 tokens
        x = _features(trimmed, batch)
        p, q = trimmed(x, training=False).numpy(), full(x, training=False).numpy()
        assert p.shape == (batch, 3) and np.all(p > 0)
        np.testing.assert_allclose(p, q, atol=ATOL)
        assert np.abs(p - p.mean(0)).max() > 1e-4 or batch == 1  # rows really differ


def test_keras_file_of_trimmed_model(tmp_path):
    trimmed, _ = _pair("bert")
    trimmed.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = _features(trimmed, 5)
    np.testing.assert_allclose(loaded(x), trimmed(x), atol=ATOL)
    assert isinstance(loaded.get_layer("text_trim"), TrimToLongest)


def test_train_step_does_not_retrace_per_length():
    trimmed, _ = _pair("bert")
    trimmed.compile(keras.optimizers.SGD(1e-3), keras.losses.SparseCategoricalCrossentropy())
    labels = np.array([0, 1, 2, 1, 0])
    layer = trimmed.get_layer("text_trim")
    traces, call = [], layer.call
    layer.call = lambda inputs: traces.append(1) or call(inputs)  # runs once per trace
    trimmed.train_on_batch({"text": tf.constant(TEXTS)}, labels)
    first = len(traces)
    for texts in (["a"] * 5, ["two words"] * 5, [TEXTS[3]] * 5):  # cuts of 3, 4, 22+ tokens
        trimmed.train_on_batch({"text": tf.constant(texts)}, labels)
    assert first >= 1 and len(traces) == first


def test_serving_signatures_match_keras_model():
    trimmed, full = _pair("sse_cross")
    assert sequence_length(trimmed) == 32  # fixed-length token_ids signature
    assert token_tensors(trimmed)["token_ids"].shape[1] == 32
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (5, 64, 64, 3)).astype("uint8")
    jpegs = tf.constant([tf.io.encode_png(p).numpy() for p in pixels])
    module = ServingModule(trimmed, ["a", "b", "c"], "severity", "{}", 64, 64)
    sigs = module.signatures()
    served = sigs["serving_default"](text=tf.constant(TEXTS), image_bytes=jpegs)["probabilities"]
    images = module._images(jpegs)
    expected = full({"text": tf.constant(TEXTS), "image": images, "sse_label": tf.zeros(5, tf.int32)},
                    training=False)
    np.testing.assert_allclose(served, expected, atol=ATOL)
    tokens = trimmed.get_layer("text_preprocessor")(
        trimmed.get_layer("tweet_normalization")(tf.constant(TEXTS)))
    by_ids = sigs["token_ids"](
        token_ids=tokens["token_ids"], padding_mask=tf.cast(tokens["padding_mask"], tf.int32),
        segment_ids=tokens["segment_ids"], image_bytes=jpegs)["probabilities"]
    np.testing.assert_allclose(by_ids, expected, atol=ATOL)
