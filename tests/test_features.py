"""The frozen-backbone feature cache: extraction, resume, refusal, training, export.

Tiny backbones on small demo data. The export test states the tolerance
between the SavedModel (backbones run in float32) and `evaluate` on the
cache (features stored as float16): measured below 2e-3 on these models.
"""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.data.demo import make_demo_data
from crisis_keras.features import FeatureCacheMismatch, FeatureSpec, FeatureStore
from crisis_keras.features.extract import build_feature_extractor, extract_features, extractor_config
from crisis_keras.features.dataset import make_feature_dataset
from crisis_keras.features.run import feature_model_overrides
from crisis_keras.models import build_model, model_names
from crisis_keras.training import trainer
from crisis_keras.training.config import TrainConfig

EXPORT_ATOL = 2e-3  # float16 cache vs float32 backbones in the export
SIZE, RESIZE, SEQ = 48, 56, 24


def _spec(**overrides):
    values = dict(
        image_backbone="tiny", image_weights=None, image_weights_sha256=None,
        text_backbone="tiny", text_weights_sha256=None, text_pooling="cls",
        sequence_length=SEQ, image_size=SIZE, resize_to=RESIZE, train_crops=2,
        crop_seed=0, dtype="float16", modalities=["text", "image"],
    )
    values.update(overrides)
    return FeatureSpec(**values)


def _config(data_dir, **overrides):
    values = dict(
        task="severity", data_dir=str(data_dir), model="sse_cross", text_backbone="tiny",
        image_backbone="tiny", image_weights=None, image_size=SIZE, resize_to=RESIZE,
        sequence_length=SEQ, batch_size=8, epochs=2, seed=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    data_dir = make_demo_data(root / "demo", sizes={"train": 24, "dev": 12, "test": 12})
    data = trainer.load_data(_config(data_dir))
    keras.utils.set_random_seed(0)
    out = extract_features(data, root / "cache", _spec(), batch_size=8, progress=False,
                           announce=lambda *_: None)
    return {"root": root, "data_dir": data_dir, "data": data, "dir": out}


def test_layout_manifest_and_center_crop_features(cache):
    store = FeatureStore(cache["dir"])
    manifest = json.loads((cache["dir"] / "manifest.json").read_text())
    assert manifest["complete"] and manifest["spec"]["train_crops"] == 2
    assert set(manifest["splits"]) == {"train", "dev", "test"}
    assert store.image_feature_shape == (SIZE // 8, SIZE // 8, 32)  # tiny CNN map
    assert store.text_feature_dim == 32
    train = cache["data"].splits["train"]
    assert list(store.index("train")["image_id"]) == list(train["image_id"])
    assert store.array("train", "image").dtype == np.float16
    assert store.array("train", "image_crops").shape[:2] == (len(train), 2)
    assert store.array("dev", "image_crops") is None  # crops for training only
    # The cached rows are what the saved backbones give on center crops (eq. 1-2).
    extractor = build_feature_extractor(extractor_config(store.spec))
    extractor.load_weights(cache["dir"] / "backbones.weights.h5")
    from crisis_keras.data.pipeline import make_dataset

    x, _ = next(iter(make_dataset(train.iloc[:8], training=False, batch_size=8,
                                  image_size=SIZE, resize_to=RESIZE)))
    out = extractor.predict_on_batch(x)
    np.testing.assert_allclose(store.array("train", "image")[:8], out["image_features"],
                               rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(store.array("train", "text")[:8], out["text_features"],
                               rtol=1e-2, atol=1e-3)
    # The stored crops are random crops + flips: not the center crop, and not each other.
    crops = store.array("train", "image_crops")
    assert not np.allclose(crops[:, 0], crops[:, 1])


def test_resume_after_a_kill_recomputes_no_finished_chunk(cache, tmp_path):
    class Killed(Exception):
        pass

    seen = []

    def kill_after_first(split, pass_name, rows):
        seen.append((split, pass_name, rows))
        if len(seen) == 1:
            raise Killed

    out = tmp_path / "cache"
    keras.utils.set_random_seed(1)  # other random backbones: resume must reload them
    with pytest.raises(Killed):
        extract_features(cache["data"], out, _spec(), batch_size=8, chunk_rows=8,
                         progress=False, on_chunk=kill_after_first)
    assert json.loads((out / "progress.json").read_text()) == {"train/center": 8}
    resumed = []
    extract_features(cache["data"], out, _spec(), batch_size=8, chunk_rows=8, progress=False,
                     announce=lambda *_: None,
                     on_chunk=lambda *a: resumed.append(a))
    assert resumed[0] == ("train", "center", 16)  # rows 0-7 were not computed again
    once = tmp_path / "once"
    keras.utils.set_random_seed(1)
    extract_features(cache["data"], once, _spec(), batch_size=8, progress=False,
                     announce=lambda *_: None)
    for split in ("train", "dev", "test"):
        for name in ("image", "text"):
            np.testing.assert_array_equal(FeatureStore(out).array(split, name),
                                          FeatureStore(once).array(split, name))
    np.testing.assert_array_equal(FeatureStore(out).array("train", "image_crops"),
                                  FeatureStore(once).array("train", "image_crops"))


def test_a_cache_of_another_configuration_is_refused(cache, tmp_path):
    with pytest.raises(FeatureCacheMismatch, match="sequence_length: cache has 24, requested 16"):
        extract_features(cache["data"], cache["dir"], _spec(sequence_length=16), progress=False)
    # One manifest field changed: training refuses the cache and names the field.
    edited = tmp_path / "edited"
    shutil.copytree(cache["dir"], edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["spec"]["resize_to"] = 64
    (edited / "manifest.json").write_text(json.dumps(manifest))
    config = _config(cache["data_dir"], features_dir=str(edited), output_dir=str(tmp_path))
    with pytest.raises(FeatureCacheMismatch, match="resize_to: cache has 64, requested 56"):
        trainer.train(config, announce=lambda *_: None)
    # An unfinished cache is refused too.
    manifest["complete"] = False
    (edited / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FeatureCacheMismatch, match="unfinished"):
        FeatureStore(edited)


def test_train_on_features_then_export_matches_evaluate(cache, tmp_path):
    from crisis_keras import export
    from crisis_keras.evaluate import evaluate_run

    config = _config(cache["data_dir"], features_dir=str(cache["dir"]), output_dir=str(tmp_path))
    run_dir = trainer.train(config, announce=lambda *_: None)
    assert run_dir.name == "severity-sse_cross-settingA-features-seed0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"dev", "test"} <= set(metrics)
    summary = (run_dir / "model_summary.txt").read_text()
    assert "image_features" in summary and "cross_attention" in summary
    _, frame = evaluate_run(run_dir, split="dev")
    exported = export.export_run(run_dir, tmp_path / "export")
    import tensorflow_text  # noqa: F401  (the export's tokenizer ops)

    served = tf.saved_model.load(exported["saved_model"]).signatures["serving_default"]
    table = cache["data"].splits["dev"]
    images = [tf.io.read_file(p) for p in table["image_path"]]
    out = served(text=tf.constant(list(table["tweet_text"])), image_bytes=tf.stack(images))
    class_names = exported["class_names"]
    expected = frame[[f"p_{c}" for c in class_names]].to_numpy()
    probabilities = out["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, expected, atol=EXPORT_ATOL)


def test_every_model_but_mmbt_trains_on_features(cache):
    store = FeatureStore(cache["dir"])
    table = cache["data"].splits["train"]
    from crisis_keras.models.crisis_model import model_input_names, model_modalities

    for name in model_names():
        overrides = dict(text_backbone="tiny", image_backbone="tiny", image_weights=None,
                         image_size=SIZE, sequence_length=SEQ, seed=0)
        if name == "mmbt":
            with pytest.raises(ValueError, match="mmbt cannot train on cached features"):
                build_model(name, 3, **overrides, **feature_model_overrides(store))
            continue
        model = build_model(name, 3, **overrides, **feature_model_overrides(store))
        trainer.compile_model(model, _config(cache["data_dir"]))
        ds, _ = make_feature_dataset(store, "train", table, training=True, batch_size=8,
                                     modalities=model_modalities(model),
                                     sse_labels="sse_label" in model_input_names(model))
        history = model.fit(ds.take(2), epochs=1, verbose=0, shuffle=False)
        assert np.isfinite(history.history["loss"][0]), name


def test_training_draws_stored_crops_and_evaluation_the_center(cache):
    store = FeatureStore(cache["dir"])
    table = cache["data"].splits["train"]
    crops, center = store.array("train", "image_crops"), store.array("train", "image")
    ds, kept = make_feature_dataset(store, "train", table, training=False, batch_size=24,
                                    modalities=("image",))
    x, _ = next(iter(ds))
    np.testing.assert_array_equal(x["image_features"].numpy(), center[:].astype(np.float32))
    ds, _ = make_feature_dataset(store, "train", table, training=True, batch_size=24,
                                 modalities=("image",), seed=3)
    x, y = next(iter(ds))
    got = x["image_features"].numpy()
    # every training element is one of its row's stored crops, never the center crop
    for value, label in zip(got, y.numpy()):
        matches = [(r, c) for r in range(len(table)) for c in range(2)
                   if np.array_equal(value, crops[r, c].astype(np.float32))]
        assert matches and table["label_id"].iloc[matches[0][0]] == label


def _sse_expected(labels, p0, rho):
    n = len(labels)
    p = np.zeros((n, n))
    for j in range(n):
        w = np.array([rho if labels[k] == labels[j] else 1.0 for k in range(n)])
        w[j] = 0.0
        p[j] = p0 * w / w.sum()
        p[j, j] = 1.0 - p0
    return p


def test_sse_transition_statistics_on_cached_features(cache):
    """Eq. 9-10 measured on cached features through the model's own `sse` layer."""
    store = FeatureStore(cache["dir"])
    p0, rho, draws = 0.5, 4.0, 3000
    model = build_model("sse_cross", 3, text_backbone="tiny", image_backbone="tiny",
                        image_weights=None, image_size=SIZE, sequence_length=SEQ,
                        sse_p0=p0, sse_rho=rho, seed=5, **feature_model_overrides(store))
    table = cache["data"].splits["train"]
    ds, _ = make_feature_dataset(store, "train", table, training=False, batch_size=len(table),
                                 modalities=("image", "text"), sse_labels=True)
    x, labels = next(iter(ds))
    # Six rows whose cached image and text features are all distinct, so
    # that each output row names the row it came from.
    rows, seen_images, seen_texts = [], set(), set()
    for r in range(len(table)):
        key_i, key_t = x["image_features"][r].numpy().tobytes(), x["text_features"][r].numpy().tobytes()
        if key_i not in seen_images and key_t not in seen_texts:
            rows.append(r)
            seen_images.add(key_i)
            seen_texts.add(key_t)
    rows = rows[:6]
    assert len(rows) == 6
    labels = labels.numpy()[rows]
    sse_label = tf.constant(labels)
    sse = model.get_layer("sse")
    image, text = tf.gather(x["image_features"], rows), tf.gather(x["text_features"], rows)
    flat = tf.reshape(image, [6, -1])

    def sources(moved, source):
        same = tf.reduce_all(tf.equal(moved[:, None, :], source[None, :, :]), axis=-1)
        return tf.cast(same, tf.float32)

    @tf.function
    def run():
        image_counts, text_counts = tf.zeros([6, 6]), tf.zeros([6, 6])
        for _ in tf.range(draws):
            f, e = sse([image, text, sse_label], training=True)
            image_counts += sources(tf.reshape(f, [6, -1]), flat)
            text_counts += sources(e, text)
        return image_counts, text_counts

    n = len(labels)
    p = _sse_expected(labels, p0, rho)
    expected = draws * p / 2.0
    np.fill_diagonal(expected, draws * (1.0 - p0 / 2.0))
    q = expected / draws
    se = np.sqrt(draws * q * (1 - q)) + 1e-9
    for counts in run():
        counts = counts.numpy()
        assert counts.sum(axis=1).tolist() == [draws] * n  # each row came from exactly one
        assert np.all(np.abs(counts - expected) <= 4.0 * se + 1.0), (counts, expected)
