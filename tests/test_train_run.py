"""End-to-end training runs on a tiny configuration (tiny BERT, tiny CNN)."""

import dataclasses
import json
import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from crisis_keras.data.demo import make_demo_data
from crisis_keras.evaluate import evaluate_run
from crisis_keras.training.config import TrainConfig
from crisis_keras.training.trainer import RunConfigMismatch, train


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return make_demo_data(root, sizes={"train": 48, "dev": 16, "test": 16})


def tiny_config(data_dir, output_dir, **overrides):
    values = dict(
        task="severity",
        data_dir=str(data_dir),
        model="sse_cross",
        text_backbone="tiny",
        image_backbone="tiny",
        image_weights=None,
        image_size=32,
        resize_to=36,
        sequence_length=16,
        batch_size=8,
        epochs=2,
        output_dir=str(output_dir),
        run_name="run",
    )
    values.update(overrides)
    return TrainConfig(**values)


def assert_metrics_equal(actual, expected, tol=1e-6):
    """Nested metric dicts equal to `tol` (pytest.approx does not nest)."""
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_metrics_equal(actual[key], value, tol)
        elif isinstance(value, list) and value and not isinstance(value[0], str):
            np.testing.assert_allclose(actual[key], value, atol=tol)
        elif isinstance(value, float):
            assert actual[key] == pytest.approx(value, abs=tol), key
        else:
            assert actual[key] == value, key


class Interrupt(keras.callbacks.Callback):
    """Stops the process-equivalent of a kill in the middle of an epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt("simulated kill")


@pytest.fixture(scope="module")
def finished_run(demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(tiny_config(demo_root, out, epochs=3), announce=lambda *_: None)


def test_run_folder_holds_everything(finished_run):
    names = {p.name for p in finished_run.iterdir()}
    for name in ("config.json", "classes.json", "model_summary.txt", "best_model.keras",
                 "metrics.json", "predictions.tsv", "history.csv",
                 "confusion_matrix_dev.png", "confusion_matrix_test.png", "logs"):
        assert name in names, name
    assert any((finished_run / "logs").rglob("*tfevents*"))
    summary = (finished_run / "model_summary.txt").read_text()
    for layer in ("text_backbone", "image_backbone", "cross_attention", "classifier"):
        assert layer in summary
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert metrics["class_names"] == ["severe_damage", "mild_damage", "little_or_no_damage"]
    for split in ("dev", "test"):
        assert set(metrics[split]) >= {"accuracy", "macro_f1", "weighted_f1", "per_class"}
        assert metrics[split]["num_examples"] == 16
    predictions = pd.read_csv(finished_run / "predictions.tsv", sep="\t")
    assert len(predictions) == 32
    assert list(predictions.columns[:5]) == ["split", "image_id", "tweet_id", "true", "predicted"]
    probs = predictions[[c for c in predictions.columns if c.startswith("p_")]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (finished_run / "confusion_matrix_test.png").read_bytes()[:4] == b"\x89PNG"
    history = pd.read_csv(finished_run / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"loss", "val_loss", "learning_rate"} <= set(history.columns)


def test_evaluate_reproduces_the_runs_metrics(finished_run):
    saved = json.loads((finished_run / "metrics.json").read_text())
    for split in ("dev", "test"):
        metrics, predictions = evaluate_run(finished_run, split)
        assert_metrics_equal(metrics, saved[split])
        assert len(predictions) == 16


def test_interrupted_run_resumes_to_the_same_result(demo_root, finished_run, tmp_path):
    config = tiny_config(demo_root, tmp_path, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(config, announce=lambda *_: None, extra_callbacks=[Interrupt(epoch=1, batch=2)])
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_epochs"] == 1
    written = (tmp_path / "run" / "best_model.keras").read_bytes()
    assert written  # the best model of epoch 1 is kept through the interruption

    messages = []
    train(config, announce=messages.append)
    assert any("resuming" in m for m in messages)
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    uninterrupted = json.loads((finished_run / "metrics.json").read_text())
    assert_metrics_equal(resumed, uninterrupted)
    a = pd.read_csv(tmp_path / "run" / "predictions.tsv", sep="\t")
    b = pd.read_csv(finished_run / "predictions.tsv", sep="\t")
    pd.testing.assert_frame_equal(a, b, atol=1e-5)
    history_a = pd.read_csv(tmp_path / "run" / "history.csv")
    history_b = pd.read_csv(finished_run / "history.csv")
    pd.testing.assert_frame_equal(history_a, history_b, atol=1e-6)


def test_a_finished_run_is_not_trained_again(demo_root, finished_run):
    config = TrainConfig.from_json_file(finished_run / "config.json")
    messages = []
    train(config, announce=messages.append)
    assert any("already complete" in m for m in messages)


def test_another_config_in_the_same_folder_is_refused(demo_root, finished_run):
    config = TrainConfig.from_json_file(finished_run / "config.json")
    config = dataclasses.replace(config, learning_rate=0.5)
    with pytest.raises(RunConfigMismatch, match="learning_rate"):
        train(config, announce=lambda *_: None)


def test_missing_images_stop_an_image_model_at_start(demo_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_root, data)
    table = pd.read_csv(
        data / "crisismmd_datasplit_all" / "task_damage_text_img_train.tsv", sep="\t"
    )
    removed = [data / image for image in table["image"].drop_duplicates()[:3]]
    for path in removed:
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"^3 image files") as error:
        train(tiny_config(data, tmp_path / "runs"), announce=lambda *_: None)
    assert str(removed[0]) in str(error.value)
    assert "task_damage_text_img_train.tsv:" in str(error.value)


def test_text_only_model_runs_on_real_rows_without_images(shared_crisismmd, tmp_path):
    config = tiny_config(
        shared_crisismmd / "settingA", tmp_path, task="informative", model="bert",
        epochs=1, batch_size=32, max_train_examples=128,
    )
    run_dir = train(config, announce=lambda *_: None)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dev"]["num_examples"] == 1573
    assert "test" not in metrics  # the test split is withheld here


def test_mixed_precision_run_trains_in_bfloat16_and_restores_the_policy(demo_root, tmp_path):
    said = []
    run_dir = train(
        tiny_config(demo_root, tmp_path, epochs=1, mixed_precision=True), announce=said.append,
    )
    assert "crisis_keras: mixed precision bf16: mixed_bfloat16 (asked for)" in said
    assert keras.config.dtype_policy().name == "float32"
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["test"]["num_examples"] == 16
    model = keras.saving.load_model(run_dir / "best_model.keras")
    assert model.get_layer("head_dense").dtype_policy.name == "mixed_bfloat16"
    probabilities = pd.read_csv(run_dir / "predictions.tsv", sep="\t").filter(like="p_")
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
