"""Posts without an image, images without text (issue 13), end to end.

(b) with both rates at 0 the model is today's, layer for layer; (c) a tiny
model trained one step with modality dropout exports, and its
serving_default classifies rows with a missing image or text, flagged in
`missing`; (d) the REST server answers such posts; (e) `predict` writes a
prediction for every row; (f) a model trained without dropout still refuses
a missing image (HTTP 400, error rows). Plus the pipelines' `modality_mask`
and the no_image / no_text evaluation on cached features.
"""

import json
import os

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from crisis_keras import export, predict
from crisis_keras.data.demo import make_demo_data
from crisis_keras.data.images import preprocess_batch_for_eval
from crisis_keras.data.pipeline import make_dataset
from crisis_keras.models import build_model
from crisis_keras.models.crisis_model import MODALITY_MASK, model_input_names
from crisis_keras.serving.loading import load_export
from crisis_keras.serving.rest_server import RestServer
from crisis_keras.training import trainer
from crisis_keras.training.config import TrainConfig
from support_models import batch, tiny
from support_rest import b64 as _b64
from support_rest import call
from support_runs import encode_image, write_untrained_run

SIZE, RESIZE, SEQ = 64, 68, 32
# The tiny sse_cross model's layers before issue 13 (raw inputs, then cached features).
TODAY_LAYERS = [
    "text", "tweet_normalization", "image", "text_preprocessor", "image_normalization",
    "text_backbone", "image_backbone", "text_cls", "sse_label", "sse", "image_projection",
    "text_projection", "cross_attention", "self_attention", "head_dense", "head_dropout",
    "classifier",
]
TODAY_FEATURE_LAYERS = [
    "image_features", "text_features", "sse_label", "sse", "image_projection",
    "text_projection", "cross_attention", "self_attention", "head_dense", "head_dropout",
    "classifier",
]
TEXTS = ["bridge collapsed after the flood http://t.co/x", "rescue teams at work", "",
         "roads blocked"]


def _config(data_dir, root, **overrides):
    values = dict(
        task="severity", data_dir=str(data_dir), model="sse_cross", text_backbone="tiny",
        image_backbone="tiny", image_weights=None, image_size=SIZE, resize_to=RESIZE,
        sequence_length=SEQ, batch_size=8, epochs=1, seed=0, output_dir=str(root),
    )
    values.update(overrides)
    return TrainConfig(**values)


# -- (b) rates at 0: today's model ---------------------------------------------------------
def _same_weights(a, b):
    assert [w.path for w in a.weights] == [w.path for w in b.weights]
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y))


def test_zero_rates_build_todays_model():
    features, _ = batch()
    keras.utils.set_random_seed(0)
    today = build_model("sse_cross", 3, tiny())
    keras.utils.set_random_seed(0)
    zero = build_model("sse_cross", 3, tiny(missing_image_rate=0.0, missing_text_rate=0.0))
    assert [layer.name for layer in today.layers] == TODAY_LAYERS
    assert [layer.name for layer in zero.layers] == TODAY_LAYERS
    assert MODALITY_MASK not in model_input_names(zero) and not zero.model_config.missing_modalities
    _same_weights(today, zero)
    np.testing.assert_allclose(zero(features, training=False), today(features, training=False),
                               atol=1e-6)

    # Through the trainer: a TrainConfig with both rates 0 builds the model it built before.
    keras.utils.set_random_seed(0)
    direct = build_model("sse_cross", 3, text_backbone="tiny", image_backbone="tiny",
                         image_weights=None, image_size=32, sequence_length=16)
    keras.utils.set_random_seed(0)
    run = trainer.build_run_model(TrainConfig(
        model="sse_cross", text_backbone="tiny", image_backbone="tiny", image_weights=None,
        image_size=32, sequence_length=16, missing_image_rate=0.0, missing_text_rate=0.0), 3)
    assert run.model_config == direct.model_config
    assert [layer.name for layer in run.layers] == TODAY_LAYERS
    _same_weights(direct, run)
    np.testing.assert_allclose(run(features, training=False), direct(features, training=False),
                               atol=1e-6)

    cached = dict(feature_inputs=True, image_feature_shape=(2, 2, 8), text_feature_dim=16)
    assert [layer.name for layer in build_model("sse_cross", 3, tiny(**cached)).layers] == \
        TODAY_FEATURE_LAYERS


def test_dropout_model_adds_one_input_and_one_layer_identity_when_present():
    features, _ = batch()
    keras.utils.set_random_seed(0)
    today = build_model("sse_cross", 3, tiny())
    dropout = build_model("sse_cross", 3, tiny(missing_image_rate=0.2, missing_text_rate=0.1))
    assert dropout.model_config.missing_modalities
    names = [layer.name for layer in dropout.layers]
    assert sorted(set(names) - set(TODAY_LAYERS)) == ["missing_modality", MODALITY_MASK]
    assert len(names) == len(TODAY_LAYERS) + 2
    for layer in today.layers:  # the same weights, by layer name
        if layer.weights:
            dropout.get_layer(layer.name).set_weights(layer.get_weights())
    expected = today(features, training=False)
    ones = dict(features, modality_mask=tf.ones((4, 2)))
    np.testing.assert_allclose(dropout(ones, training=False), expected, atol=1e-6)
    np.testing.assert_allclose(dropout(features, training=False), expected, atol=1e-6)  # no mask
    # an absent image changes the output (the stand-in replaces f_i)
    no_image = dict(features, modality_mask=tf.constant([[0, 1]] * 4, tf.float32))
    assert np.abs(dropout(no_image, training=False) - expected).max() > 1e-6


def test_config_errors_and_unsupported_models():
    config = tiny(missing_text_rate=0.3)
    assert config.missing_modalities and config.missing_image_rate == 0.0
    with pytest.raises(ValueError, match="<= 1"):
        tiny(missing_image_rate=0.7, missing_text_rate=0.4)
    with pytest.raises(ValueError, match="missing_image_rate must be in"):
        tiny(missing_image_rate=-0.1)
    with pytest.raises(ValueError, match="needs a model of both modalities"):
        build_model("bert", 3, tiny(missing_image_rate=0.2))
    with pytest.raises(ValueError, match="does not support missing_modalities"):
        build_model("score_fusion", 3, tiny(missing_image_rate=0.2))
    model = build_model("compact_bilinear_pooling", 3,
                        tiny(missing_image_rate=0.2, bilinear_dim=64))
    assert MODALITY_MASK in model_input_names(model)


# -- the input pipeline --------------------------------------------------------------------
def _table(tmp_path, texts, images):
    """A table of posts; images: bytes, or None for a file that does not exist."""
    paths = []
    for i, data in enumerate(images):
        path = tmp_path / f"{i}.jpg"
        if data is not None:
            path.write_bytes(data)
        paths.append(str(path))
    labels = [0, 1, 2, 0][: len(texts)]
    return pd.DataFrame({"text": texts, "image_path": paths, "label_id": labels})


def test_pipeline_feeds_the_mask_and_keeps_rows_without_image(tmp_path):
    table = _table(tmp_path, ["a flood", "a fire", "", "a quake"],
                   [encode_image(0), None, encode_image(2), b"not an image"])
    ds = make_dataset(table, training=True, batch_size=4, image_size=SIZE, resize_to=RESIZE,
                      on_bad_image="missing", modality_mask=True)
    (features, labels), = list(ds)
    assert ds.num_dropped == 0 and len(ds.table) == 4
    by_label_text = {(int(y), t.decode()): i for i, (y, t) in
                     enumerate(zip(labels.numpy(), features["text"].numpy()))}
    mask = features[MODALITY_MASK].numpy()
    image = features["image"].numpy()
    expected = {(0, "a flood"): [1, 1], (1, "a fire"): [0, 1], (2, ""): [1, 0],
                (0, "a quake"): [0, 1]}
    for key, row_mask in expected.items():
        i = by_label_text[key]
        np.testing.assert_array_equal(mask[i], row_mask)
        assert (image[i].max() == 0) == (row_mask[0] == 0)  # no image: zero pixels
    # complete rows: ones; a model without the input gets no mask
    ds = make_dataset(table.iloc[[0]], training=False, image_size=SIZE, resize_to=RESIZE,
                      modality_mask=True)
    np.testing.assert_array_equal(next(iter(ds))[0][MODALITY_MASK].numpy(), [[1, 1]])
    ds = make_dataset(table.iloc[[0]], training=False, image_size=SIZE, resize_to=RESIZE)
    assert MODALITY_MASK not in next(iter(ds))[0]
    with pytest.raises(ValueError, match="only a model trained with modality dropout"):
        make_dataset(table, training=False, image_size=SIZE, resize_to=RESIZE,
                     on_bad_image="missing")
    # neither image nor text: dropped
    (tmp_path / "both").mkdir()
    both = _table(tmp_path / "both", ["", "ok"], [None, encode_image(1)])
    ds = make_dataset(both, training=False, image_size=SIZE, resize_to=RESIZE,
                      on_bad_image="missing", modality_mask=True)
    assert ds.num_dropped == 1 and list(ds.table["text"]) == ["ok"]


# -- (c) train with dropout, export, serving_default ---------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained one step with modality dropout (one training image
    deleted: kept as a post without an image), and its export."""
    root = tmp_path_factory.mktemp("missing_modality")
    data_dir = make_demo_data(root / "demo", sizes={"train": 8, "dev": 8})
    config = _config(data_dir, root, run_name="run", missing_image_rate=0.3,
                     missing_text_rate=0.3, on_bad_image="missing")
    os.unlink(trainer.load_data(config).splits["train"]["image_path"].iloc[0])
    run_dir = trainer.train(config, announce=lambda *_: None)
    summary = export.export_run(run_dir, root / "export")
    images = [encode_image(1), b"", encode_image(3, fmt="PNG"), b""]
    return {"root": root, "run_dir": run_dir, "export": root / "export", "summary": summary,
            "images": images, "config": config}


def _expected(trained, texts, images):
    model = keras.saving.load_model(trained["run_dir"] / "best_model.keras")
    present = [bool(b) for b in images]
    stand_in = encode_image(0)  # any decodable image: replaced by the stand-in
    pixels = preprocess_batch_for_eval(tf.constant([b or stand_in for b in images]),
                                       resize_to=RESIZE, crop=SIZE)
    mask = tf.constant([[float(p), float(bool(t.strip()))] for p, t in zip(present, texts)])
    return model({"text": tf.constant(texts), "image": pixels, MODALITY_MASK: mask},
                 training=False).numpy()


def test_training_wrote_metrics_without_each_modality(trained):
    run_dir = trained["run_dir"]
    model = keras.saving.load_model(run_dir / "best_model.keras")
    assert MODALITY_MASK in model_input_names(model)
    assert model.get_layer("missing_modality").image_rate == 0.3
    payload = json.loads((run_dir / "metrics_missing.json").read_text())
    assert sorted(payload["dev"]) == ["both", "no_image", "no_text"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert payload["dev"]["both"]["accuracy"] == metrics["dev"]["accuracy"]
    for condition in ("no_image", "no_text"):
        assert payload["dev"][condition]["num_examples"] == metrics["dev"]["num_examples"]
    # the evaluate CLI computes the same for a finished run
    from crisis_keras import evaluate

    out = trained["root"] / "dev_missing.json"
    assert evaluate.main(["--run-dir", str(run_dir), "--split", "dev", "--missing-modalities",
                          "--output", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["split"] == "dev"
    for condition in ("both", "no_image", "no_text"):
        assert again[condition]["macro_f1"] == payload["dev"][condition]["macro_f1"]


def test_train_cli_options():
    from crisis_keras.train import build_parser, config_from_args

    args = build_parser().parse_args(["--task", "informative", "--missing-image-rate", "0.3",
                                      "--missing-text-rate", "0.1", "--on-bad-image", "missing"])
    config = config_from_args(args)
    assert (config.missing_image_rate, config.missing_text_rate) == (0.3, 0.1)
    assert config.on_bad_image == "missing"
    defaults = config_from_args(build_parser().parse_args(["--task", "informative"]))
    assert (defaults.missing_image_rate, defaults.missing_text_rate) == (0.0, 0.0)


def test_serving_default_answers_missing_image_and_missing_text(trained):
    signature = load_export(trained["export"]).signatures["serving_default"]
    assert "missing" in signature.structured_outputs
    out = signature(text=tf.constant(TEXTS), image_bytes=tf.constant(trained["images"]))
    assert [m.decode() for m in out["missing"].numpy()] == ["", "image", "text", "image"]
    probabilities = out["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities, _expected(trained, TEXTS, trained["images"]),
                               atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="neither text nor an image"):
        signature(text=tf.constant(["  "]), image_bytes=tf.constant([b""]))


def test_token_ids_signature_answers_missing_image(trained):
    signature = load_export(trained["export"]).signatures["token_ids"]
    model = keras.saving.load_model(trained["run_dir"] / "best_model.keras")
    tokens = model.get_layer("text_preprocessor")(
        model.get_layer("tweet_normalization")(tf.constant(TEXTS)))
    out = signature(**{k: tf.cast(v, tf.int32) for k, v in tokens.items()},
                    image_bytes=tf.constant(trained["images"]))
    assert [m.decode() for m in out["missing"].numpy()] == ["", "image", "text", "image"]
    np.testing.assert_allclose(out["probabilities"].numpy(),
                               _expected(trained, TEXTS, trained["images"]), atol=1e-5)


# -- (d) the REST server --------------------------------------------------------------------
def _call(url, payload):
    return call(url, "/v1/models/crisis:predict", payload)


def test_rest_server_answers_a_post_without_an_image(trained):
    with RestServer(trained["export"], port=0) as server:
        status, body = _call(server.url, {"instances": [
            {"text": TEXTS[0], "image_bytes": _b64(trained["images"][0])},
            {"text": TEXTS[1]},  # no image field
            {"image_bytes": _b64(trained["images"][2])},  # no text field
            {"text": TEXTS[3], "image_bytes": {"b64": ""}},
        ]})
        assert status == 200, body
        rows = body["predictions"]
        assert [r["missing"] for r in rows] == ["", "image", "text", "image"]
        np.testing.assert_allclose([r["probabilities"] for r in rows],
                                   _expected(trained, TEXTS, trained["images"]), atol=1e-5)
        status, body = _call(server.url, {"inputs": {"text": TEXTS[:2]}})  # columnar, no images
        assert status == 200, body
        assert body["outputs"]["missing"] == ["image", "image"]
        status, body = _call(server.url, {"instances": [{"text": ""}]})
        assert status == 400 and "neither text nor an image" in body["error"]


# -- (e) predict ------------------------------------------------------------------------------
def test_predict_writes_a_prediction_for_every_row(trained, tmp_path, capsys):
    (tmp_path / "ok.jpg").write_bytes(encode_image(1))
    (tmp_path / "png.jpg").write_bytes(trained["images"][2])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated, not a JPEG")
    lines = ["id\ttext\timage",
             f"a\t{TEXTS[0]}\tok.jpg",
             f"b\t{TEXTS[1]}\t",             # no image
             "c\t\tpng.jpg",                 # no text
             f"d\t{TEXTS[3]}\tgone.jpg",     # dead link
             "e\tcar swept away\tbroken.jpg"]  # undecodable
    posts = tmp_path / "posts.tsv"
    posts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.tsv"
    code = predict.main(["--model", str(trained["export"]), "--input", str(posts),
                         "--output", str(out), "--batch-size", "8", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert "posts.tsv:5: classified without its image" in err and "gone.jpg" in err
    assert "posts.tsv:6: classified without its image" in err
    frame = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert list(frame["id"]) == ["a", "b", "c", "d", "e"]
    assert list(frame["missing"]) == ["", "image", "text", "image", "image"]
    class_names = json.loads((trained["run_dir"] / "classes.json").read_text())["class_names"]
    probability_columns = [f"p_{c}" for c in class_names]
    assert list(frame.columns) == ["id", "predicted"] + probability_columns + ["missing"]
    texts = [TEXTS[0], TEXTS[1], "", TEXTS[3], "car swept away"]
    images = [encode_image(1), b"", trained["images"][2], b"", b""]
    np.testing.assert_allclose(frame[[f"p_{c}" for c in class_names]].to_numpy(),
                               _expected(trained, texts, images), atol=2e-6)
    assert pd.read_csv(str(out) + ".errors.tsv", sep="\t").empty


# -- (f) a model trained without modality dropout --------------------------------------------
@pytest.fixture(scope="module")
def without_dropout(tmp_path_factory):
    root = tmp_path_factory.mktemp("no_modality_dropout")
    write_untrained_run(root / "run")
    export.export_run(root / "run", root / "export", token_ids=False)
    return root / "export"


def test_model_without_dropout_refuses_a_missing_image(without_dropout, tmp_path):
    signature = load_export(without_dropout).signatures["serving_default"]
    assert "missing" not in signature.structured_outputs
    with RestServer(without_dropout, port=0) as server:
        status, body = _call(server.url, {"instances": [{"text": "flood"}]})
        assert status == 400 and "lacks field(s) ['image_bytes']" in body["error"]
        status, body = _call(server.url, {"instances": [
            {"text": "flood", "image_bytes": {"b64": ""}}]})
        assert status == 400 and "trained without modality dropout" in body["error"]
        status, body = _call(server.url, {"instances": [
            {"text": "flood", "image_bytes": _b64(encode_image(1))}]})
        assert status == 200 and "missing" not in body["predictions"][0]
    (tmp_path / "ok.jpg").write_bytes(encode_image(1))
    posts = tmp_path / "posts.tsv"
    posts.write_text("id\ttext\timage\na\tflood\tok.jpg\nb\tfire\t\nc\tquake\tgone.jpg\n")
    out = tmp_path / "out.tsv"
    written, skipped = predict.predict_file(without_dropout, posts, out, progress=False,
                                            err=open(tmp_path / "stderr.txt", "w"))
    assert (written, skipped) == (1, 2)
    assert "missing" not in pd.read_csv(out, sep="\t").columns
    errors = pd.read_csv(str(out) + ".errors.tsv", sep="\t")
    assert list(errors["id"]) == ["b", "c"]


# -- cached features: training rows without a cached image, evaluation without each modality
def test_features_run_marks_uncached_images_missing(tmp_path):
    from crisis_keras.features import FeatureSpec, FeatureStore
    from crisis_keras.features.compose import compose_with_backbones
    from crisis_keras.features.dataset import make_feature_dataset
    from crisis_keras.features.extract import extract_features

    data_dir = make_demo_data(tmp_path / "demo", sizes={"train": 8, "dev": 8})
    config = _config(data_dir, tmp_path, run_name="features")
    data = trainer.load_data(config)
    train = data.splits["train"]
    os.unlink(train["image_path"].iloc[0])  # this row is left out of the cache
    spec = FeatureSpec(image_backbone="tiny", image_weights=None, image_weights_sha256=None,
                       text_backbone="tiny", text_weights_sha256=None, text_pooling="cls",
                       sequence_length=SEQ, image_size=SIZE, resize_to=RESIZE, train_crops=2,
                       crop_seed=0, dtype="float16", modalities=["text", "image"])
    keras.utils.set_random_seed(0)
    cache = extract_features(data, tmp_path / "cache", spec, batch_size=8, progress=False,
                             on_bad_image="drop", announce=lambda *_: None)
    store = FeatureStore(cache)
    table = train.copy()
    table.iloc[1, table.columns.get_loc("image")] = "data_image/never_cached.jpg"
    ds, kept = make_feature_dataset(store, "train", table, training=False, batch_size=8,
                                    on_missing="missing", modality_mask=True)
    features, _ = next(iter(ds))
    # row 0 is in the cache with neither image nor text: dropped; row 1 lacks its image
    assert list(kept.index) == list(table.index[1:])
    mask = features[MODALITY_MASK].numpy()
    np.testing.assert_array_equal(mask[:, 1], 1.0)
    np.testing.assert_array_equal(mask[:, 0], [0.0] + [1.0] * 6)
    assert features["image_features"].numpy()[0].max() == 0.0
    assert features["image_features"].numpy()[1].max() > 0.0
    with pytest.raises(ValueError, match="modality dropout"):
        make_feature_dataset(store, "train", train, training=False, on_missing="missing")

    run_config = _config(data_dir, tmp_path, run_name="features", features_dir=str(cache),
                         missing_image_rate=0.25, missing_text_rate=0.25, on_bad_image="missing")
    run_dir = trainer.train(run_config, announce=lambda *_: None)
    payload = json.loads((run_dir / "metrics_missing.json").read_text())
    assert sorted(payload["dev"]) == ["both", "no_image", "no_text"]
    assert payload["dev"]["no_text"]["num_examples"] == 8
    assert payload["dev"]["both"] == json.loads((run_dir / "metrics.json").read_text())["dev"]
    # the head's stand-ins carry over onto the backbones (export of a features run)
    head = keras.saving.load_model(run_dir / "best_model.keras")
    full = compose_with_backbones(head, store, len(data.class_names))
    assert MODALITY_MASK in model_input_names(full)
    for got, want in zip(full.get_layer("missing_modality").get_weights(),
                         head.get_layer("missing_modality").get_weights()):
        np.testing.assert_array_equal(got, want)
