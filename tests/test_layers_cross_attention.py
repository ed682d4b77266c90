"""CrossAttention (paper eq. 5-6, prose reading by default): hand-checked numbers,
cross vs self gating, concat vs add, config, .keras round trip."""

import keras
import numpy as np
import pytest

from crisis_keras.layers import CrossAttention

K = 2
RNG = np.random.default_rng(0)
IMAGE_PROJ = RNG.uniform(0, 2, size=(3, K)).astype("float32")
TEXT_PROJ = RNG.uniform(0, 2, size=(3, K)).astype("float32")
IMAGE_SOURCE = RNG.normal(size=(3, 2, 2, 1)).astype("float32")  # map, 4 features
TEXT_SOURCE = RNG.normal(size=(3, 3)).astype("float32")  # vector, 3 features


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _inputs(image_source=IMAGE_SOURCE, text_source=TEXT_SOURCE):
    return [IMAGE_PROJ, TEXT_PROJ, image_source, text_source]


def _layer(gating, combine="concat"):
    layer = CrossAttention(units=K, gating=gating, combine=combine)
    layer.build([IMAGE_PROJ.shape, TEXT_PROJ.shape, IMAGE_SOURCE.shape, TEXT_SOURCE.shape])
    rng = np.random.default_rng(1)
    for var in layer.weights:
        var.assign(rng.normal(size=var.shape).astype("float32"))
    return layer


def _weights(layer):
    return {v.path.split("/")[-1]: np.asarray(v) for v in layer.weights}


def test_cross_gating_masks_come_from_the_other_modality():
    layer = _layer("cross")
    w = _weights(layer)
    assert set(w) == {"image_mask_kernel", "image_mask_bias", "text_mask_kernel", "text_mask_bias"}
    assert w["image_mask_kernel"].shape == (3, K)  # fed by the TEXT source
    assert w["text_mask_kernel"].shape == (4, K)  # fed by the IMAGE source (flattened map)
    alpha_v = _sigmoid(TEXT_SOURCE @ w["image_mask_kernel"] + w["image_mask_bias"])
    alpha_e = _sigmoid(IMAGE_SOURCE.reshape(3, 4) @ w["text_mask_kernel"] + w["text_mask_bias"])
    expected = np.concatenate([alpha_v * IMAGE_PROJ, alpha_e * TEXT_PROJ], axis=-1)
    np.testing.assert_allclose(layer(_inputs()), expected, rtol=1e-5, atol=1e-6)

    masks = layer.attention_masks(_inputs())
    other_image = _inputs(image_source=IMAGE_SOURCE + 5.0)
    other_masks = layer.attention_masks(other_image)
    # the image mask depends only on the text source ...
    np.testing.assert_array_equal(masks[0], other_masks[0])
    assert not np.allclose(masks[1], other_masks[1])
    # ... and the text mask only on the image source
    other_text_masks = layer.attention_masks(_inputs(text_source=TEXT_SOURCE - 3.0))
    np.testing.assert_array_equal(masks[1], other_text_masks[1])
    assert not np.allclose(masks[0], other_text_masks[0])


def test_self_gating_is_eq_5_6_as_printed():
    layer = _layer("self")
    w = _weights(layer)
    assert w["image_mask_kernel"].shape == (4, K)
    assert w["text_mask_kernel"].shape == (3, K)
    alpha_v = _sigmoid(IMAGE_SOURCE.reshape(3, 4) @ w["image_mask_kernel"] + w["image_mask_bias"])
    alpha_e = _sigmoid(TEXT_SOURCE @ w["text_mask_kernel"] + w["text_mask_bias"])
    expected = np.concatenate([alpha_v * IMAGE_PROJ, alpha_e * TEXT_PROJ], axis=-1)
    np.testing.assert_allclose(layer(_inputs()), expected, rtol=1e-5, atol=1e-6)
    masks = layer.attention_masks(_inputs())
    other_masks = layer.attention_masks(_inputs(image_source=IMAGE_SOURCE + 5.0))
    assert not np.allclose(masks[0], other_masks[0])  # image gates itself
    np.testing.assert_array_equal(masks[1], other_masks[1])


def test_concat_vs_add():
    concat = _layer("cross", "concat")
    add = _layer("cross", "add")
    add.set_weights(concat.get_weights())
    out_concat = np.asarray(concat(_inputs()))
    out_add = np.asarray(add(_inputs()))
    assert out_concat.shape == (3, 2 * K) and out_add.shape == (3, K)
    np.testing.assert_allclose(out_add, out_concat[:, :K] + out_concat[:, K:], rtol=1e-6)
    assert concat.compute_output_shape(
        [(None, K), (None, K), (None, 2, 2, 1), (None, 3)]
    ) == (None, 2 * K)
    assert add.compute_output_shape([(None, K), (None, K), (None, 2, 2, 1), (None, 3)]) == (None, K)


def test_bad_arguments():
    with pytest.raises(ValueError, match="gating"):
        CrossAttention(units=K, gating="both")
    with pytest.raises(ValueError, match="combine"):
        CrossAttention(units=K, combine="mul")
    with pytest.raises(ValueError, match="units"):
        CrossAttention(units=3).build([(None, 2), (None, 2), (None, 4), (None, 3)])
    with pytest.raises(ValueError, match="4 inputs"):
        CrossAttention(units=2).build([(None, 2), (None, 2)])


def test_mixed_bfloat16():
    ref = _layer("cross")
    layer = CrossAttention(units=K, dtype="mixed_bfloat16")
    layer.build([IMAGE_PROJ.shape, TEXT_PROJ.shape, IMAGE_SOURCE.shape, TEXT_SOURCE.shape])
    layer.set_weights(ref.get_weights())
    out = layer(_inputs())
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(
        np.asarray(keras.ops.cast(out, "float32")), ref(_inputs()), atol=0.05, rtol=0.05
    )


@pytest.mark.parametrize("gating,combine", [("cross", "concat"), ("self", "add")])
def test_config_and_keras_save_load(tmp_path, gating, combine):
    layer = CrossAttention(units=K, gating=gating, combine=combine, name="cross_attention")
    config = layer.get_config()
    assert config["gating"] == gating and config["combine"] == combine and config["units"] == K
    assert CrossAttention.from_config(config).get_config() == config

    image_source = keras.Input((2, 2, 1), name="image_source")
    text_source = keras.Input((3,), name="text_source")
    image_proj = keras.layers.Dense(K, name="image_proj")(keras.layers.Flatten()(image_source))
    text_proj = keras.layers.Dense(K, name="text_proj")(text_source)
    out = CrossAttention(units=K, gating=gating, combine=combine, name="cross_attention")(
        [image_proj, text_proj, image_source, text_source]
    )
    model = keras.Model([image_source, text_source], out)
    path = tmp_path / "cross.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("cross_attention").gating == gating
    np.testing.assert_array_equal(
        model([IMAGE_SOURCE, TEXT_SOURCE]), loaded([IMAGE_SOURCE, TEXT_SOURCE])
    )
