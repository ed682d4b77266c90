"""The SSE-Cross-BERT-DenseNet model and every registered model, tiny backbones."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from support_models import BATCH, TEXTS, batch, tiny

from crisis_keras.models import CrisisModel, build_model, model_names

READABLE_NAMES = [
    "tweet_normalization", "text_preprocessor", "text_backbone", "text_cls",
    "image_normalization", "image_backbone", "sse", "image_projection",
    "text_projection", "cross_attention", "self_attention", "head_dense",
    "head_dropout", "classifier",
]
BUILTIN = [
    "sse_cross", "densenet", "bert", "attention_variant_1", "attention_variant_2",
    "attention_variant_3", "co_attention", "feature_fusion", "ablation_no_self_attention",
    "ablation_no_cross_attention", "ablation_self_gating", "ablation_no_dropout",
    "ablation_no_sse",
]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model("sse_cross", 2, tiny())


def test_builtin_names_are_registered():
    assert set(BUILTIN) <= set(model_names())


@pytest.mark.parametrize("name", BUILTIN)
def test_each_registered_model_builds_and_runs(name):
    keras.utils.set_random_seed(0)
    m = build_model(name, 3, tiny())
    assert isinstance(m, CrisisModel) and m.name == name
    x, _ = batch()
    y = m(x).numpy()  # full feature dict: a model takes the keys it needs
    assert y.shape == (BATCH, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    layer_names = {layer.name for layer in m.layers}
    assert "classifier" in layer_names
    if name not in ("bert", "densenet"):
        assert {"image_projection", "text_projection"} <= layer_names
    expected_inputs = {"densenet": {"image"}, "bert": {"text"}}.get(name)
    if expected_inputs is None:
        expected_inputs = {"text", "image"} | ({"sse_label"} if m.model_config.sse else set())
    assert {t.name for t in m.inputs} == expected_inputs


def test_variant_graphs_differ_as_described():
    def layers(name):
        return {layer.name for layer in build_model(name, 2, tiny()).layers}

    assert "sse" not in layers("attention_variant_1")
    v2 = layers("attention_variant_2")
    assert "self_attention" not in v2 and "cross_attention" in v2
    co = layers("co_attention")
    assert "co_attention" in co and "cross_attention" not in co and "sse" in co
    ff = layers("feature_fusion")
    assert "fusion" in ff and not {"cross_attention", "self_attention", "sse"} & ff
    assert "head_dropout" not in layers("ablation_no_dropout")
    m3 = build_model("attention_variant_3", 2, tiny())
    assert m3.get_layer("cross_attention").gating == "self"


def test_summary_shows_readable_layer_names(model):
    lines = []
    model.summary(print_fn=lambda line, **kw: lines.append(line))
    text = "\n".join(lines)
    for name in READABLE_NAMES:
        assert name in text, name
    assert {t.name for t in model.inputs} == {"text", "image", "sse_label"}
    assert model.output.dtype == "float32"


def test_sse_label_is_optional_and_inference_ignores_it(model):
    x, _ = batch()
    with_labels = model(x, training=False).numpy()
    no_key = model({"text": x["text"], "image": x["image"]}).numpy()
    explicit_none = model(dict(x, sse_label=None)).numpy()
    np.testing.assert_allclose(no_key, with_labels, atol=1e-6)
    np.testing.assert_allclose(explicit_none, with_labels, atol=1e-6)
    np.testing.assert_allclose(model.predict({"text": x["text"], "image": x["image"]}, verbose=0), with_labels, atol=1e-5)
    with pytest.raises(ValueError, match=r"missing input\(s\) \['image'\]"):
        model({"text": x["text"]})


def test_plain_functional_model_needs_the_optional_key_explicitly():
    # Why CrisisModel exists: keras rejects a dict that lacks an optional input.
    a = keras.Input((2,), name="a")
    b = keras.Input((), dtype="int32", name="b", optional=True)
    plain = keras.Model({"a": a, "b": b}, keras.layers.Dense(1)(a))
    with pytest.raises(ValueError, match='Missing data for input "b"'):
        plain({"a": np.ones((1, 2), "float32")})
    assert plain({"a": np.ones((1, 2), "float32"), "b": None}).shape == (1, 1)


def test_raw_and_normalized_text_give_the_same_prediction(model):
    from crisis_keras.data.normalize import normalize_tweet

    x, _ = batch(labels=False)
    normalized = dict(x, text=tf.constant([normalize_tweet(t) for t in TEXTS]))
    np.testing.assert_allclose(model(x).numpy(), model(normalized).numpy(), atol=1e-6)


def test_get_config_from_config_round_trip(model):
    config = model.get_config()
    clone = CrisisModel.from_config(config)
    clone.set_weights(model.get_weights())
    x, _ = batch()
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), atol=1e-6)
    assert clone.model_config == model.model_config and clone.registered_name == "sse_cross"
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]


def test_keras_file_save_load_gives_identical_outputs(model, tmp_path):
    path = str(tmp_path / "sse_cross_tiny.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, CrisisModel)
    assert restored.model_config == model.model_config
    x, _ = batch()
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
    np.testing.assert_array_equal(restored({"text": x["text"], "image": x["image"]}).numpy(), model(x).numpy())
    # the unused BERT pooler stays frozen after reload ([CLS] pooling)
    assert not restored.get_layer("text_backbone").get_layer("pooled_dense").trainable


def _loss(m, x, y):
    return float(keras.losses.sparse_categorical_crossentropy(y, m(x, training=False)).numpy().mean())


def test_a_few_sgd_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    m = build_model("sse_cross", 2, tiny())
    x, y = batch()
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
              loss="sparse_categorical_crossentropy")
    before = _loss(m, x, y)
    for _ in range(10):
        m.train_on_batch(x, y)
    after = _loss(m, x, y)
    assert after < before - 0.05, (before, after)


def test_fit_on_a_dataset_without_sse_labels_runs():
    keras.utils.set_random_seed(0)
    m = build_model("sse_cross", 2, tiny())
    x, y = batch(labels=False)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    history = m.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


def test_gradients_reach_both_backbones(model):
    x, y = batch()
    for backbone_name, bottom in (("text_backbone", "token_embedding"), ("image_backbone", "conv1")):
        backbone = model.get_layer(backbone_name)
        assert backbone.trainable
        variables = backbone.trainable_variables
        assert variables
        grads = dict(zip([v.path for v in variables], _grads(model, x, y, variables)))
        assert all(g is not None for g in grads.values()), backbone_name
        norms = {p: float(tf.norm(tf.convert_to_tensor(g))) for p, g in grads.items()}
        assert sum(norms.values()) > 0
        assert any(n > 0 for p, n in norms.items() if bottom in p), (backbone_name, bottom)


def _grads(model, x, y, variables):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        )
    return tape.gradient(loss, variables)


def test_mixed_precision_output_is_float32():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        m = build_model("sse_cross", 2, tiny())
        x, _ = batch()
        y = m(x)
        assert m.get_layer("image_projection").compute_dtype == "bfloat16"
    finally:
        keras.config.set_dtype_policy(policy)
    assert y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_image_size_and_pooling_options():
    m = build_model("sse_cross", 2, tiny(image_size=64, image_pooling="avg", combine="add"))
    assert m.get_layer("image_pooling").output.shape == (None, 32)
    assert m.get_layer("cross_attention").output.shape == (None, 100)
    assert m.input["image"].shape == (None, 64, 64, 3)
    x, _ = batch()
    x = dict(x, image=tf.image.resize(x["image"], (64, 64)))
    assert m(x).shape == (BATCH, 2)
