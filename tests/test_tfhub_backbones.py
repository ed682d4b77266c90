"""TF Hub backbones (issue 16): `tfhub:HANDLE_OR_DIR` text encoders, preprocessors
and image models, loaded by `tensorflow_hub.resolve` from tiny local SavedModels
in TF Hub's formats (`support_tfhub.py`); trained, saved, reloaded and exported."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.models import build_model
from crisis_keras.models.config import ModelConfig
from crisis_keras.models.tfhub_backbone import (
    TFHubImageModel,
    TFHubTextEncoder,
    TFHubTextPreprocessor,
    tfhub_layers,
)
from crisis_keras.models.tiny_vocabulary import tiny_vocabulary
from support_models import batch, tiny
from support_tfhub import save_bert_encoder, save_bert_preprocessor, save_image_model

hub = pytest.importorskip("tensorflow_hub")
SENTENCES = ["flood waters in the city", "donate to the red cross", "a b c"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Local SavedModels: BERT encoder, its preprocessors, image vector and map models."""
    root = tmp_path_factory.mktemp("tfhub")
    return {
        "encoder": str(save_bert_encoder(root / "bert_encoder")),
        "preprocessor": str(save_bert_preprocessor(root / "bert_preprocess")),
        "fixed16": str(save_bert_preprocessor(root / "fixed16", default_seq_length=16,
                                              pack_inputs=False)),
        "vector": str(save_image_model(root / "image_vector")),
        "map": str(save_image_model(root / "image_map", feature_map=True)),
        "root": root,
    }


@pytest.fixture(autouse=True)
def hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub_cache"))


def tfhub_config(models, preprocessor=True, **overrides):
    values = dict(text_backbone=f"tfhub:{models['encoder']}",
                  text_preprocessor=f"tfhub:{models['preprocessor']}" if preprocessor else None,
                  image_backbone=f"tfhub:{models['vector']}")
    values.update(overrides)
    return tiny(**values)


def test_encoder_follows_the_tfhub_bert_api(models):
    assert hub.resolve(models["encoder"]) == models["encoder"]
    encoder = TFHubTextEncoder(models["encoder"], trainable=True)
    assert encoder.accepts_training and encoder.trainable_weights
    ids = tf.constant([[2, 40, 41, 3, 0]], tf.int32)
    mask = tf.constant([[1, 1, 1, 1, 0]], tf.int32)
    saved = tf.saved_model.load(models["encoder"])
    expected = saved({"input_word_ids": ids, "input_mask": mask, "input_type_ids": 0 * ids})
    for feed in ({"input_word_ids": ids, "input_mask": mask, "input_type_ids": 0 * ids},
                 {"token_ids": ids, "padding_mask": mask > 0, "segment_ids": 0 * ids}):
        out = encoder(feed)
        assert sorted(out) == ["pooled_output", "sequence_output"]
        for key in out:
            np.testing.assert_allclose(out[key], expected[key], atol=1e-6)
    # training=True reaches the SavedModel (its dropout) only when fine-tuned.
    feed = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": 0 * ids}
    halved = 0.5 * expected["sequence_output"]
    np.testing.assert_allclose(encoder(feed, training=True)["sequence_output"], halved, atol=1e-6)
    frozen = TFHubTextEncoder(models["encoder"], trainable=False)
    no_dropout = TFHubTextEncoder(models["encoder"], trainable=True, training_argument=False)
    for layer in (frozen, no_dropout):
        np.testing.assert_allclose(layer(feed, training=True)["sequence_output"],
                                   expected["sequence_output"], atol=1e-6)
    assert not frozen.trainable_weights
    vocab, lowercase = encoder.vocabulary()
    assert vocab == tiny_vocabulary() and lowercase
    with pytest.raises(ValueError, match="input_mask"):
        encoder({"input_word_ids": ids})


def test_preprocessor_packs_the_run_sequence_length(models):
    saved = tf.saved_model.load(models["preprocessor"])
    default = saved(tf.constant(SENTENCES))
    assert default["input_word_ids"].shape == (3, 128)
    layer = TFHubTextPreprocessor(models["preprocessor"], sequence_length=12)
    assert layer.packs_inputs
    tokens = layer(tf.constant(SENTENCES))
    assert {k: tuple(v.shape) for k, v in tokens.items()} == {
        "token_ids": (3, 12), "padding_mask": (3, 12), "segment_ids": (3, 12)}
    assert tokens["padding_mask"].dtype == tf.bool
    np.testing.assert_array_equal(tokens["token_ids"], default["input_word_ids"][:, :12])
    # Without bert_pack_inputs: the default call, whose length must be the run's.
    fixed = TFHubTextPreprocessor(models["fixed16"], sequence_length=16)
    assert not fixed.packs_inputs and fixed(tf.constant(SENTENCES))["token_ids"].shape == (3, 16)
    with pytest.raises(ValueError, match="--sequence-length 16"):
        TFHubTextPreprocessor(models["fixed16"], sequence_length=32)


def test_vocab_txt_gives_the_keras_hub_wordpiece_the_same_tokens(models):
    from crisis_keras.models.text_backbone import load_text_encoder

    keras_hub_pre, encoder = load_text_encoder(f"tfhub:{models['encoder']}", 12)
    assert isinstance(encoder, TFHubTextEncoder)
    ours = keras_hub_pre(tf.constant(SENTENCES))
    theirs = TFHubTextPreprocessor(models["preprocessor"], 12)(tf.constant(SENTENCES))
    for key in ("token_ids", "padding_mask", "segment_ids"):
        np.testing.assert_array_equal(ours[key], theirs[key])
    with pytest.raises(ValueError, match="dropout rate is fixed"):
        load_text_encoder(f"tfhub:{models['encoder']}", 12, dropout=0.2)


@pytest.mark.parametrize("pooling", ["cls", "pooled", "mean"])
def test_text_pooling_of_eq_2(models, pooling):
    from crisis_keras.models.text_backbone import text_branch

    text = keras.Input(shape=(), dtype="string", name="text")
    model = keras.Model(text, text_branch(text, f"tfhub:{models['encoder']}", 12, pooling,
                                          preprocessor=f"tfhub:{models['preprocessor']}"))
    tokens = model.get_layer("text_preprocessor")(
        model.get_layer("tweet_normalization")(tf.constant(SENTENCES)))
    out = model.get_layer("text_backbone")(tokens)
    mask = tf.cast(tokens["padding_mask"], tf.float32)[:, :, None]
    expected = {
        "cls": out["sequence_output"][:, 0],
        "pooled": out["pooled_output"],
        "mean": tf.reduce_sum(out["sequence_output"] * mask, 1) / tf.reduce_sum(mask, 1),
    }[pooling]
    np.testing.assert_allclose(model(tf.constant(SENTENCES)), expected, atol=1e-6)
    pooler = [v for v in model.get_layer("text_backbone").trainable_weights if "pooler" in v.name]
    assert bool(pooler) == (pooling == "pooled")  # an unused pooler is frozen


def test_image_models_give_a_map_or_a_1x1_vector_map(models):
    from crisis_keras.models.image_backbone import image_feature_shape, image_normalization_for

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    unit = image_normalization_for(f"tfhub:{models['vector']}")(pixels)
    np.testing.assert_allclose(unit, pixels / 255.0, rtol=1e-6)  # TF Hub: [0, 1]
    vector = TFHubImageModel(models["vector"], image_size=32)
    expected = tf.saved_model.load(models["vector"])(unit)
    assert vector.feature_shape == (1, 1, 8) and not vector.accepts_training
    np.testing.assert_allclose(vector(unit), tf.reshape(expected, [2, 1, 1, 8]), atol=1e-6)
    assert image_feature_shape(f"tfhub:{models['map']}", 32) == (8, 8, 8)
    fixed = save_image_model(models["root"] / "image_48", size=48)
    with pytest.raises(ValueError, match="takes 48x48 images: use --image-size 48"):
        TFHubImageModel(str(fixed), image_size=32)
    # On a 1x1 map, eq. 3's flatten and average pooling are the same model.
    flat, avg = (build_model("sse_cross", 3, tfhub_config(models, image_pooling=p))
                 for p in ("flatten", "avg"))
    assert flat.get_layer("image_backbone").output.shape == (None, 1, 1, 8)
    for layer in flat.layers:
        if layer.weights:
            avg.get_layer(layer.name).set_weights(layer.get_weights())
    x, _ = batch()
    np.testing.assert_allclose(avg.predict(x, verbose=0), flat.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="carries its own weights"):
        build_model("sse_cross", 3, tfhub_config(models, image_weights="/x.weights.h5"))


def test_configs_round_trip_and_keras_save_load_is_identical(models, tmp_path):
    x, _ = batch()
    for layer in (TFHubTextEncoder(models["encoder"], trainable=True, training_argument=False),
                  TFHubTextPreprocessor(models["preprocessor"], 12),
                  TFHubImageModel(models["map"], image_size=32)):
        config = layer.get_config()
        assert "filepath" not in config and config["handle"] == layer.handle
        again = type(layer).from_config(config, safe_mode=False)
        assert again.get_config() == config
    for preprocessor in (True, False):
        model = build_model("sse_cross", 3, tfhub_config(models, preprocessor))
        expected = model.predict(x, verbose=0)
        path = tmp_path / f"model{preprocessor}.keras"
        model.save(path)
        with pytest.raises(ValueError, match="safe_mode=False"):
            keras.saving.load_model(path)
        restored = keras.saving.load_model(path, safe_mode=False)
        np.testing.assert_array_equal(restored.predict(x, verbose=0), expected)
        assert [type(layer) for layer in tfhub_layers(restored)] == [
            type(layer) for layer in tfhub_layers(model)]


def test_config_checks():
    with pytest.raises(ValueError, match="text_preprocessor"):
        ModelConfig(text_preprocessor="tfhub:/x")  # a keras-hub text backbone
    with pytest.raises(ValueError, match="names no TF Hub handle"):
        ModelConfig(image_backbone="tfhub: ")
    with pytest.raises(ValueError, match="HANDLE_OR_DIR"):
        ModelConfig(image_backbone="resnet")


def test_feature_cache_fingerprints_the_savedmodel_files(models, tmp_path):
    from crisis_keras.features.manifest import text_fingerprint, weights_fingerprint

    image = f"tfhub:{models['vector']}"
    assert weights_fingerprint("imagenet", image) == weights_fingerprint(None, image)
    other = save_image_model(tmp_path / "other", seed=1)
    assert weights_fingerprint(None, f"tfhub:{other}") != weights_fingerprint(None, image)
    text = f"tfhub:{models['encoder']}"
    assert text_fingerprint(text) == weights_fingerprint(text) is not None
    assert text_fingerprint(text, f"tfhub:{models['preprocessor']}") != text_fingerprint(text)


ISOLATED = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the TF Hub preprocessor's ops)

request = json.load(open(sys.argv[1]))
model = tf.saved_model.load(request["saved_model"])
images = tf.constant([open(p, "rb").read() for p in request["images"]])
out = model.signatures["serving_default"](text=tf.constant(request["texts"]), image_bytes=images)
tokens = {k: tf.constant(v, tf.int32) for k, v in request["tokens"].items()}
by_ids = model.signatures["token_ids"](image_bytes=images, **tokens)
json.dump({"probabilities": out["probabilities"].numpy().tolist(),
           "token_probabilities": by_ids["probabilities"].numpy().tolist(),
           "crisis_keras_imported": any(m.startswith("crisis_keras") for m in sys.modules)},
          open("result.json", "w"))
"""


def test_train_one_epoch_export_matches_evaluate(models, tmp_path):
    from crisis_keras import export
    from crisis_keras.data.demo import make_demo_data
    from crisis_keras.evaluate import evaluate_run
    from crisis_keras.training import trainer
    from crisis_keras.training.config import TrainConfig

    hub_dir = tmp_path / "hub"  # a copy, deleted before the export is loaded
    for name in ("encoder", "preprocessor", "vector"):
        shutil.copytree(models[name], hub_dir / name)
    data = make_demo_data(tmp_path / "demo", sizes={"train": 16, "dev": 8})
    config = TrainConfig(
        task="severity", data_dir=str(data), model="sse_cross",
        text_backbone=f"tfhub:{hub_dir / 'encoder'}",
        text_preprocessor=f"tfhub:{hub_dir / 'preprocessor'}",
        image_backbone=f"tfhub:{hub_dir / 'vector'}", image_size=32, resize_to=36,
        sequence_length=16, batch_size=8, epochs=1, output_dir=str(tmp_path), run_name="run",
    )
    log = []
    run_dir = trainer.train(config, announce=log.append)
    assert any("TF Hub text_backbone" in line and "trainable (" in line for line in log), log
    assert any("TF Hub image_backbone" in line and "trainable (" in line for line in log), log
    assert "TF Hub text_backbone" in (run_dir / "model_summary.txt").read_text()
    _, frame = evaluate_run(run_dir, split="dev")
    table = trainer.load_data(config).splits["dev"]
    summary = export.export_run(run_dir, tmp_path / "export")
    assert summary["signatures"] == ["metadata", "serving_default", "token_ids"]

    model = keras.saving.load_model(run_dir / "best_model.keras", safe_mode=False)
    texts = list(table["tweet_text"])
    tokens = model.get_layer("text_preprocessor")(
        model.get_layer("tweet_normalization")(tf.constant(texts)))
    shutil.rmtree(hub_dir)
    request = {"saved_model": str(tmp_path / "export" / "1"), "texts": texts,
               "images": list(table["image_path"]),
               "tokens": {k: np.asarray(v).astype("int32").tolist() for k, v in tokens.items()}}
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "script.py").write_text(textwrap.dedent(ISOLATED))
    done = subprocess.run([sys.executable, "-I", "script.py", "request.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    expected = frame[[f"p_{c}" for c in summary["class_names"]]].to_numpy()
    assert list(frame["image_id"]) == list(table["image_id"])
    assert not result["crisis_keras_imported"]
    np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(result["token_probabilities"], expected, atol=1e-5)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    from crisis_keras.data.demo import make_demo_data

    return make_demo_data(tmp_path_factory.mktemp("demo"), sizes={"train": 8, "dev": 4})


def _train_args(demo, out, **flags):
    args = ["--task", "severity", "--data-dir", str(demo), "--image-backbone", "tiny",
            "--image-weights", "none", "--text-backbone", "tiny", "--image-size", "32",
            "--resize-to", "36", "--sequence-length", "16", "--epochs", "1",
            "--output-dir", str(out)]
    for flag, value in flags.items():
        args += [f"--{flag.replace('_', '-')}", value]
    return args


def test_unreachable_handle_exits_2_naming_it(small_demo, tmp_path):
    handle = "https://tfhub.dev/google/nonexistent/1"
    done = subprocess.run(
        [sys.executable, "-m", "crisis_keras.train",
         *_train_args(small_demo, tmp_path, text_backbone=f"tfhub:{handle}")],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert handle in done.stderr and "local path" in done.stderr
    assert "tfhub:/" in done.stderr  # the local-path form


@pytest.mark.parametrize("flags", [
    {"image_backbone": "tfhub:https://www.kaggle.com/models/google/nonexistent/tensorFlow2/x/1"},
    {"image_backbone": "tfhub:/nonexistent/tfhub/folder"},
])
def test_unreachable_handles_in_process(small_demo, tmp_path, capsys, flags):
    from crisis_keras import train as train_cli

    assert train_cli.main(_train_args(small_demo, tmp_path, **flags)) == 2
    err = capsys.readouterr().err
    assert flags["image_backbone"][len("tfhub:"):] in err and "local path" in err


def test_feature_cache_of_tfhub_backbones_trains_and_exports(models, small_demo, tmp_path, capsys):
    from crisis_keras import export
    from crisis_keras import train as train_cli
    from crisis_keras.features import __main__ as features_cli
    from crisis_keras.features.manifest import read_manifest, weights_fingerprint

    hub_flags = ["--text-backbone", f"tfhub:{models['encoder']}",
                 "--text-preprocessor", f"tfhub:{models['preprocessor']}",
                 "--image-backbone", f"tfhub:{models['vector']}"]
    geometry = ["--image-size", "32", "--resize-to", "36", "--sequence-length", "16"]
    cache = tmp_path / "cache"
    assert features_cli.main(["extract", "--task", "severity", "--data-dir", str(small_demo),
                              *hub_flags, *geometry, "--out", str(cache)]) == 0
    spec = read_manifest(cache)["spec"]
    assert spec["text_preprocessor"] == f"tfhub:{models['preprocessor']}"
    assert spec["image_weights_sha256"] == weights_fingerprint(None, f"tfhub:{models['vector']}")
    assert train_cli.main(["--task", "severity", "--data-dir", str(small_demo), "--features",
                           str(cache), "--epochs", "1", "--output-dir", str(tmp_path),
                           "--run-name", "run"]) == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["text_preprocessor"] == spec["text_preprocessor"]
    summary = export.export_run(tmp_path / "run", tmp_path / "export", token_ids=False)
    assert "serving_default" in summary["signatures"]  # raw text + image bytes again
