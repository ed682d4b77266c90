"""CoAttention (paper eq. 7-8): masks from the concatenation [f | e]."""

import keras
import numpy as np

from crisis_keras.layers import CoAttention, CrossAttention
from crisis_keras.layers.cross_attention import GatedFusion

K = 2
RNG = np.random.default_rng(3)
IMAGE_PROJ = RNG.uniform(0, 2, size=(3, K)).astype("float32")
TEXT_PROJ = RNG.uniform(0, 2, size=(3, K)).astype("float32")
IMAGE_SOURCE = RNG.normal(size=(3, 2, 2, 1)).astype("float32")
TEXT_SOURCE = RNG.normal(size=(3, 3)).astype("float32")
INPUTS = [IMAGE_PROJ, TEXT_PROJ, IMAGE_SOURCE, TEXT_SOURCE]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_co_attention_masks_from_the_concatenation():
    layer = CoAttention(units=K, combine="concat")
    layer.build([x.shape for x in INPUTS])
    assert isinstance(layer, GatedFusion) and not isinstance(layer, CrossAttention)
    rng = np.random.default_rng(4)
    for var in layer.weights:
        var.assign(rng.normal(size=var.shape).astype("float32"))
    w = {v.path.split("/")[-1]: np.asarray(v) for v in layer.weights}
    assert w["image_mask_kernel"].shape == (4 + 3, K)
    assert w["text_mask_kernel"].shape == (4 + 3, K)
    joint = np.concatenate([IMAGE_SOURCE.reshape(3, 4), TEXT_SOURCE], axis=-1)  # [f | e]
    alpha_v = _sigmoid(joint @ w["image_mask_kernel"] + w["image_mask_bias"])
    alpha_e = _sigmoid(joint @ w["text_mask_kernel"] + w["text_mask_bias"])
    expected = np.concatenate([alpha_v * IMAGE_PROJ, alpha_e * TEXT_PROJ], axis=-1)
    np.testing.assert_allclose(layer(INPUTS), expected, rtol=1e-5, atol=1e-6)

    # both masks react to either source
    masks = layer.attention_masks(INPUTS)
    moved = layer.attention_masks([IMAGE_PROJ, TEXT_PROJ, IMAGE_SOURCE + 1.0, TEXT_SOURCE])
    assert not np.allclose(masks[0], moved[0]) and not np.allclose(masks[1], moved[1])

    add = CoAttention(units=K, combine="add")
    add.build([x.shape for x in INPUTS])
    add.set_weights(layer.get_weights())
    expected_add = alpha_v * IMAGE_PROJ + alpha_e * TEXT_PROJ
    np.testing.assert_allclose(add(INPUTS), expected_add, rtol=1e-5, atol=1e-6)


def test_co_attention_config_and_keras_save_load(tmp_path):
    layer = CoAttention(units=K, combine="add", name="co_attention")
    config = layer.get_config()
    assert config["combine"] == "add" and config["units"] == K and "gating" not in config
    assert CoAttention.from_config(config).get_config() == config

    image_source = keras.Input((2, 2, 1))
    text_source = keras.Input((3,))
    image_proj = keras.layers.Dense(K)(keras.layers.Flatten()(image_source))
    text_proj = keras.layers.Dense(K)(text_source)
    out = CoAttention(units=K, name="co_attention")(
        [image_proj, text_proj, image_source, text_source]
    )
    model = keras.Model([image_source, text_source], out)
    path = tmp_path / "co.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("co_attention"), CoAttention)
    np.testing.assert_array_equal(
        model([IMAGE_SOURCE, TEXT_SOURCE]), loaded([IMAGE_SOURCE, TEXT_SOURCE])
    )
