"""MissingModality (issue 13): the mask picks the learned embeddings, training
drops modalities at rates p and q (never both), config and .keras round trip."""

import keras
import numpy as np
import pytest

from crisis_keras.layers import MissingModality

RNG = np.random.default_rng(0)
IMAGE = RNG.normal(size=(4, 2, 2, 3)).astype("float32")
TEXT = RNG.normal(size=(4, 5)).astype("float32")
MASK = np.array([[1, 1], [0, 1], [1, 0], [1, 1]], "float32")
IMAGE_EMBEDDING = np.full((2, 2, 3), 7.0, "float32")
TEXT_EMBEDDING = np.arange(5, dtype="float32") - 10.0


def _layer(**kwargs):
    layer = MissingModality(**kwargs)
    layer.build([IMAGE.shape, TEXT.shape, MASK.shape])
    layer.set_weights([IMAGE_EMBEDDING, TEXT_EMBEDDING])
    return layer


def test_mask_picks_the_embeddings():
    layer = _layer(image_rate=0.4, text_rate=0.4, seed=1)
    assert [w.path.split("/")[-1] for w in layer.weights] == ["image_embedding", "text_embedding"]
    expected_image, expected_text = IMAGE.copy(), TEXT.copy()
    expected_image[1] = IMAGE_EMBEDDING  # row 1 has no image
    expected_text[2] = TEXT_EMBEDDING  # row 2 has no text
    for mask in (MASK, MASK.astype(bool)):
        image, text = layer([IMAGE, TEXT, mask])  # inference: nothing else dropped
        np.testing.assert_array_equal(image, expected_image)
        np.testing.assert_array_equal(text, expected_text)
    image, text = layer([IMAGE, TEXT, None])  # no mask: everything present
    np.testing.assert_array_equal(image, IMAGE)
    np.testing.assert_array_equal(text, TEXT)


def test_zero_rates_drop_nothing_in_training():
    layer = _layer(seed=0)
    image, text = layer([IMAGE, TEXT, MASK], training=True)
    image_inf, text_inf = layer([IMAGE, TEXT, MASK])
    np.testing.assert_array_equal(image, image_inf)
    np.testing.assert_array_equal(text, text_inf)


def _dropped(layer, mask, n, training=True):
    """(image dropped, text dropped) per row, for features of ones."""
    image, text = layer([np.ones((n, 3), "float32"), np.ones((n, 2), "float32"), mask],
                        training=training)
    return (np.asarray(image) == 0).all(axis=1), (np.asarray(text) == 0).all(axis=1)


def test_training_drop_rates_and_never_both():
    n, p, q = 40000, 0.3, 0.2
    layer = MissingModality(image_rate=p, text_rate=q, seed=3)  # zero embeddings
    image, text = _dropped(layer, np.ones((n, 2), "float32"), n)
    tolerance = 4 * np.sqrt(0.25 / n)  # 4 standard deviations, at most
    assert abs(image.mean() - p) < tolerance
    assert abs(text.mean() - q) < tolerance
    assert not (image & text).any()
    # a new draw each call, the same with the same seed
    again, _ = _dropped(layer, np.ones((n, 2), "float32"), n)
    assert (again != image).any()
    twin, _ = _dropped(MissingModality(image_rate=p, text_rate=q, seed=3), np.ones((n, 2)), n)
    np.testing.assert_array_equal(twin, image)


def test_pairs_already_missing_a_modality_keep_the_other():
    n = 2000
    mask = np.ones((n, 2), "float32")
    mask[: n // 2, 1] = 0.0  # first half: no text
    mask[n // 2 :, 0] = 0.0  # second half: no image
    layer = MissingModality(image_rate=0.5, text_rate=0.5, seed=0)
    image, text = _dropped(layer, mask, n)
    np.testing.assert_array_equal(image[: n // 2], False)  # the image is all they have
    np.testing.assert_array_equal(text[n // 2 :], False)
    np.testing.assert_array_equal(image[n // 2 :], True)  # truly missing
    np.testing.assert_array_equal(text[: n // 2], True)
    # rates 0.5 + 0.5: every complete pair loses exactly one modality
    image, text = _dropped(layer, np.ones((n, 2), "float32"), n)
    np.testing.assert_array_equal(image ^ text, True)


def test_errors():
    with pytest.raises(ValueError, match="image_rate must be in"):
        MissingModality(image_rate=1.5)
    with pytest.raises(ValueError, match="<= 1"):
        MissingModality(image_rate=0.6, text_rate=0.5)
    with pytest.raises(ValueError, match="fully known"):
        MissingModality().build([(None, None), (None, 4), (None, 2)])
    with pytest.raises(ValueError, match=r"\[batch, 2\]"):
        MissingModality().build([(None, 3), (None, 4), (None, 3)])


def test_mixed_bfloat16_output_dtype():
    layer = MissingModality(dtype="mixed_bfloat16")
    image, text = layer([IMAGE, TEXT, MASK])
    assert layer.image_embedding.dtype == "float32"
    assert keras.backend.standardize_dtype(image.dtype) == "bfloat16"
    assert np.asarray(keras.ops.cast(image, "float32"))[1].max() == 0.0  # the zero stand-in


def test_config_and_keras_save_load(tmp_path):
    layer = MissingModality(image_rate=0.25, text_rate=0.5, seed=4, name="missing_modality")
    restored = MissingModality.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert restored.get_config()["image_rate"] == 0.25

    image = keras.Input((2, 2, 3), name="image_features")
    text = keras.Input((5,), name="text_features")
    mask = keras.Input((2,), name="modality_mask")
    out = MissingModality(0.25, 0.5, seed=4, name="missing_modality")([image, text, mask])
    model = keras.Model([image, text, mask], [keras.layers.Flatten()(out[0]), out[1]])
    model.get_layer("missing_modality").set_weights([IMAGE_EMBEDDING, TEXT_EMBEDDING])
    path = tmp_path / "missing.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for got, want in zip(loaded([IMAGE, TEXT, MASK]), model([IMAGE, TEXT, MASK])):
        np.testing.assert_array_equal(got, want)
    assert loaded.get_layer("missing_modality").get_config()["text_rate"] == 0.5
