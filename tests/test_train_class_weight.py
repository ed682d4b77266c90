"""The rare classes: balanced class weights, selection by dev macro F1, per-class F1.

Tiny runs (tiny BERT, tiny CNN) on small demo data; the loss check uses a
one-layer model on a text feature cache, whose forward pass is deterministic.
"""

import json
import types

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from crisis_keras.data.demo import make_demo_data
from crisis_keras.features import FeatureSpec, FeatureStore
from crisis_keras.features.dataset import make_feature_dataset
from crisis_keras.features.extract import extract_features
from crisis_keras.train import build_parser, config_from_args
from crisis_keras.training import trainer
from crisis_keras.training.class_weights import balanced_class_weights, keras_class_weight
from crisis_keras.training.config import TrainConfig
from crisis_keras.training.trainer import load_data, per_class_f1_line, train
from test_train_run import Interrupt, assert_metrics_equal, tiny_config

CLASS_NAMES = ["severe_damage", "mild_damage", "little_or_no_damage"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return make_demo_data(root, sizes={"train": 48, "dev": 16, "test": 16})


def f1_config(demo_root, output_dir, **overrides):
    # At this learning rate the tiny run's dev loss falls every epoch while its
    # dev macro F1 stays flat: selection by F1 keeps epoch 1, by loss epoch 3.
    values = dict(epochs=3, class_weight="balanced", select_by="macro_f1",
                  max_train_examples=40, learning_rate=0.1)
    values.update(overrides)
    return tiny_config(demo_root, output_dir, **values)


@pytest.fixture(scope="module")
def f1_run(demo_root, tmp_path_factory):
    """An uninterrupted balanced, macro-F1-selected run; records what `fit` got."""
    out = tmp_path_factory.mktemp("runs")
    messages, class_weights = [], []
    fit = keras.Model.fit

    def spy(self, *args, **kwargs):
        class_weights.append(kwargs.get("class_weight"))
        return fit(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", spy)
        run_dir = train(f1_config(demo_root, out), announce=messages.append)
    return types.SimpleNamespace(dir=run_dir, messages=messages, class_weights=class_weights)


def test_defaults_are_the_papers_and_unknown_values_are_refused():
    config = TrainConfig()
    assert (config.class_weight, config.select_by) == ("none", "loss")
    with pytest.raises(ValueError, match=r"TrainConfig\.class_weight .*'inverse'"):
        TrainConfig(class_weight="inverse")
    with pytest.raises(ValueError, match=r"TrainConfig\.select_by .*'f1'"):
        TrainConfig.from_dict({"select_by": "f1"})
    args = build_parser().parse_args(
        ["--task", "damage", "--class-weight", "balanced", "--select-by", "macro_f1"])
    config = config_from_args(args)
    assert (config.class_weight, config.select_by) == ("balanced", "macro_f1")
    assert config.resolved_run_name() == "severity-sse_cross-settingA-balanced-by-macro-f1-seed0"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--task", "severity", "--class-weight", "inverse"])


def test_a_class_without_training_example_is_an_error_naming_it():
    weights = balanced_class_weights([0, 0, 0, 1], CLASS_NAMES[:2])
    assert weights == {"severe_damage": 4 / 6, "mild_damage": 4 / 2}
    with pytest.raises(ValueError, match=r"\['little_or_no_damage'\] have no training example"):
        balanced_class_weights([0, 0, 1], CLASS_NAMES)


def test_class_weights_are_the_inverse_frequencies_of_the_training_split(demo_root, f1_run):
    config = f1_config(demo_root, f1_run.dir.parent)
    # The rows the run trains on: max_train_examples=40 of the 48 training pairs.
    table = load_data(config).splits["train"].sample(n=40, random_state=config.seed)
    counts = table["label_id"].value_counts().reindex(range(3), fill_value=0).to_numpy()
    assert counts.min() > 0 and len(set(counts)) > 1  # unequal, so weights differ
    by_hand = 40 / (3 * counts)
    np.testing.assert_allclose(
        by_hand, compute_class_weight("balanced", classes=np.arange(3), y=table["label_id"]))

    saved = json.loads((f1_run.dir / "class_weights.json").read_text())
    assert saved["num_train_examples"] == 40
    assert saved["counts"] == dict(zip(CLASS_NAMES, counts.tolist()))
    np.testing.assert_allclose([saved["weights"][c] for c in CLASS_NAMES], by_hand)
    # Every epoch's fit got them, by class id.
    assert len(f1_run.class_weights) == 3
    for passed in f1_run.class_weights:
        assert passed.keys() == {0, 1, 2}
        np.testing.assert_allclose([passed[i] for i in range(3)], by_hand)
    logged = [m for m in f1_run.messages if "class weights" in m]
    assert len(logged) == 1 and f"severe_damage {by_hand[0]:.3f}" in logged[0]


def test_setting_b_weights_follow_what_each_model_trains_on(demo_root):
    from crisis_keras.data.setting_b import unimodal_training_table

    config = TrainConfig(task="informative", setting="B", data_dir=str(demo_root))
    table = load_data(config).splits["train"]
    assert table["disagree"].any()
    # Multimodal: the consistency draw keeps every pair and its pair label.
    pairs = trainer.training_labels(table, ("text", "image"), config)
    np.testing.assert_array_equal(pairs, table["label_id"])
    # Unimodal (own_labels): each image once, with its image label.
    images = trainer.training_labels(table, ("image",), config)
    np.testing.assert_array_equal(images, unimodal_training_table(table, "image")["label_id"])
    texts = unimodal_training_table(table, "text")["label_id"]
    np.testing.assert_array_equal(trainer.training_labels(table, ("text",), config), texts)
    counts = np.bincount(texts, minlength=2)
    assert (counts != np.bincount(table["label_id"], minlength=2)).any()
    expected = dict(zip(["informative", "not_informative"], len(texts) / (2 * counts)))
    assert balanced_class_weights(texts, list(expected)) == pytest.approx(expected)


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    data_dir = make_demo_data(root / "demo", sizes={"train": 24, "dev": 8, "test": 8})
    data = load_data(TrainConfig(data_dir=str(data_dir), text_backbone="tiny",
                                 image_weights=None, image_backbone="tiny"))
    spec = FeatureSpec(
        image_backbone=None, image_weights=None, image_weights_sha256=None,
        text_backbone="tiny", text_weights_sha256=None, text_pooling="cls",
        sequence_length=16, image_size=32, resize_to=36, train_crops=0, crop_seed=0,
        dtype="float32", modalities=["text"])
    keras.utils.set_random_seed(0)
    out = extract_features(data, root / "cache", spec, splits=("train",), batch_size=8,
                           progress=False, announce=lambda *_: None)
    return FeatureStore(out), data


def test_balanced_weights_reach_the_loss_and_the_gradient(text_cache):
    store, data = text_cache
    ds, kept = make_feature_dataset(store, "train", data.splits["train"], training=True,
                                    batch_size=64, seed=3, modalities=("text",))
    labels = kept["label_id"].to_numpy()
    weights = balanced_class_weights(labels, CLASS_NAMES)
    x, y = next(iter(ds))  # one batch: the whole split
    assert len(y) == len(labels)

    keras.utils.set_random_seed(0)
    inputs = {"text_features": keras.Input((store.text_feature_dim,), name="text_features")}
    outputs = keras.layers.Dense(3, activation="softmax")(inputs["text_features"])
    model = keras.Model(inputs, outputs)
    config = TrainConfig(learning_rate=0.5)
    trainer.compile_model(model, config)
    before = [v.numpy() for v in model.trainable_variables]

    per_example = tf.constant([weights[CLASS_NAMES[i]] for i in y.numpy()])
    with tf.GradientTape() as tape:
        probabilities = model(x)
        cross_entropy = -tf.math.log(tf.gather(probabilities, y, batch_dims=1))
        by_hand = tf.reduce_sum(per_example * cross_entropy) / len(labels)
    gradients = tape.gradient(by_hand, model.trainable_variables)
    assert float(by_hand) != pytest.approx(float(tf.reduce_mean(cross_entropy)), rel=1e-3)

    history = model.fit(ds, epochs=1, shuffle=False, verbose=0,
                        class_weight=keras_class_weight(weights, CLASS_NAMES))
    assert history.history["loss"][0] == pytest.approx(float(by_hand), rel=1e-5)
    # First SGD step (momentum buffer still zero): w - lr * gradient of the weighted loss.
    for variable, start, gradient in zip(model.trainable_variables, before, gradients):
        np.testing.assert_allclose(variable.numpy(), start - 0.5 * gradient.numpy(), atol=1e-6)


def test_selection_by_macro_f1_keeps_the_best_dev_macro_f1_epoch(f1_run):
    history = pd.read_csv(f1_run.dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert history["val_macro_f1"].between(0, 1).all()
    metrics = json.loads((f1_run.dir / "metrics.json").read_text())
    assert metrics["dev"]["macro_f1"] == pytest.approx(history["val_macro_f1"].max(), abs=1e-9)
    state = json.loads((f1_run.dir / "checkpoint" / "state.json").read_text())
    assert state["callbacks"]["ModelCheckpoint"]["best"] == history["val_macro_f1"].max()
    assert state["callbacks"]["EarlyStopping"]["best"] == history["val_macro_f1"].max()
    best_epoch = int(history["val_macro_f1"].to_numpy().argmax())  # first maximum
    assert state["callbacks"]["EarlyStopping"]["best_epoch"] == best_epoch
    # best_model.keras is that epoch's model: its dev loss is that epoch's val_loss.
    dev = pd.read_csv(f1_run.dir / "predictions.tsv", sep="\t").query("split == 'dev'")
    p_true = [row[f"p_{row['true']}"] for _, row in dev.iterrows()]
    kept_loss = float(np.mean(-np.log(p_true)))
    assert kept_loss == pytest.approx(history["val_loss"].iloc[best_epoch], abs=1e-4)


def test_interrupted_macro_f1_run_resumes_to_the_same_choice(demo_root, f1_run, tmp_path):
    config = f1_config(demo_root, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(config, announce=lambda *_: None, extra_callbacks=[Interrupt(epoch=1, batch=2)])
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    first = pd.read_csv(tmp_path / "run" / "history.csv")["val_macro_f1"].iloc[0]
    assert state["completed_epochs"] == 1
    for name in ("ModelCheckpoint", "EarlyStopping", "ReduceLROnPlateau"):
        assert state["callbacks"][name]["best"] == first  # the max so far, unnegated

    messages = []
    train(config, announce=messages.append)
    assert any("resuming" in m for m in messages)
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    uninterrupted = json.loads((f1_run.dir / "metrics.json").read_text())
    assert_metrics_equal(resumed, uninterrupted)
    # Same kept model (not only the same argmax), same LR schedule and early stop.
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "predictions.tsv", sep="\t"),
                                  pd.read_csv(f1_run.dir / "predictions.tsv", sep="\t"),
                                  atol=1e-5)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "history.csv"),
                                  pd.read_csv(f1_run.dir / "history.csv"), atol=1e-6)


def test_the_summary_prints_per_class_f1_and_flags_zero(f1_run):
    metrics = json.loads((f1_run.dir / "metrics.json").read_text())
    lines = [m for m in f1_run.messages if m.startswith("  per-class F1: ")]
    assert len(lines) == 2  # dev and test
    for split, line in zip(("dev", "test"), lines):
        for name, values in metrics[split]["per_class"].items():
            flag = " (!)" if values["f1"] == 0 else ""
            assert f"{name} {values['f1']:.2f}{flag}" in line

    line = per_class_f1_line({"per_class": {
        "severe_damage": {"f1": 0.8123, "support": 5},
        "mild_damage": {"f1": 0.0, "support": 3},
        "little_or_no_damage": {"f1": 0.0, "support": 0},
    }})
    assert line == ("  per-class F1: severe_damage 0.81, mild_damage 0.00 (!), "
                    "little_or_no_damage n/a (absent)")


def test_the_paper_tables_runner_takes_both_options(tmp_path):
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from experiments import paper_tables

    lines = []
    code = paper_tables.main(["run", "--table", "4", "--dry-run", "--output-dir", str(tmp_path),
                              "--class-weight", "balanced", "--select-by", "macro_f1"],
                             out=lines.append)
    assert code == 0
    configs = [line for line in lines if "config: " in line]
    assert configs and all("class_weight=balanced select_by=macro_f1" in c for c in configs)
