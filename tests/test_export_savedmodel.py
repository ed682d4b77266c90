"""Export of a trained tiny run: layout, weights stored once, metadata, and the
acceptance tests: the SavedModel in a fresh process that never imports
crisis_keras gives evaluate_run's probabilities from raw tweets + JPEG bytes
(with tensorflow_text), and from token ids (without tensorflow_text)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from crisis_keras import export
from crisis_keras.serving.loading import TOKEN_IDS_SUBDIR

ATOL = 1e-5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained one epoch on small demo data, evaluate_run's dev
    predictions for it, and its export."""
    from crisis_keras.data.demo import make_demo_data
    from crisis_keras.evaluate import evaluate_run
    from crisis_keras.training import trainer
    from crisis_keras.training.config import TrainConfig

    root = tmp_path_factory.mktemp("export_savedmodel")
    data = make_demo_data(root / "demo", sizes={"train": 24, "dev": 12})
    config = TrainConfig(
        task="severity", data_dir=str(data), model="sse_cross", text_backbone="tiny",
        image_backbone="tiny", image_weights=None, image_size=64, resize_to=68,
        sequence_length=32, batch_size=8, epochs=1, output_dir=str(root), run_name="run",
    )
    run_dir = trainer.train(config, announce=lambda *_: None)
    metrics, frame = evaluate_run(run_dir, split="dev")
    table = trainer.load_data(config).splits["dev"]
    summary = export.export_run(run_dir, root / "export")
    return {"root": root, "run_dir": run_dir, "frame": frame, "table": table,
            "summary": summary, "out": root / "export"}


def _run_isolated(script, request, tmp_path):
    """Runs `script` with `python -I` from a folder where crisis_keras is not importable."""
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, "-I", "script.py", "request.json"], cwd=tmp_path,
        capture_output=True, text=True, timeout=240,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "result.json").read_text())


def _expected(trained):
    frame, table = trained["frame"], trained["table"]
    class_names = trained["summary"]["class_names"]
    assert list(frame["image_id"]) == list(table["image_id"])
    return frame[[f"p_{c}" for c in class_names]].to_numpy(), list(frame["predicted"])


def _token_ids(trained, texts):
    import keras
    import tensorflow as tf

    import crisis_keras.models  # noqa: F401  (custom objects)

    model = keras.saving.load_model(trained["run_dir"] / "best_model.keras")
    normalized = model.get_layer("tweet_normalization")(tf.constant(texts))
    tokens = model.get_layer("text_preprocessor")(normalized)
    return {k: keras.ops.convert_to_numpy(v).astype("int32").tolist() for k, v in tokens.items()}


def test_layout_assets_and_weights_stored_once(trained):
    out, summary, run_dir = trained["out"], trained["summary"], trained["run_dir"]
    assert summary["version"] == 1
    assert summary["signatures"] == ["metadata", "serving_default", "token_ids"]
    for folder in (out / "1", out / TOKEN_IDS_SUBDIR / "1"):
        assert (folder / "saved_model.pb").is_file()
        for name in ("classes.json", "config.json", "vocab.txt"):
            assert (folder / "assets" / name).is_file()
    assert (out / "1" / "assets" / "config.json").read_text() == (run_dir / "config.json").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]
    # Weights once (and no optimizer slots): variables/ ~ the weights' bytes, not twice.
    import keras

    model = keras.saving.load_model(run_dir / "best_model.keras", compile=False)
    weight_bytes = sum(keras.ops.convert_to_numpy(w).nbytes for w in model.weights)
    assert weight_bytes <= summary["saved_model_variables_bytes"] < 1.1 * weight_bytes
    assert summary["saved_model_variables_bytes"] <= summary["keras_bytes"]


def test_versions_increment_and_never_overwrite(trained, tmp_path):
    out = tmp_path / "export"
    (out / "1").mkdir(parents=True)
    (out / "4").mkdir()
    (out / "notes").mkdir()
    assert export.next_version(out) == 5
    with pytest.raises(FileExistsError, match="already exists"):
        export.export_run(trained["run_dir"], trained["out"], version=1)


def test_cli_reports_missing_run(tmp_path, capsys):
    assert export.main(["--run-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "config.json does not exist" in capsys.readouterr().err


def test_fresh_process_with_tensorflow_text_matches_evaluate_run(trained, tmp_path):
    table = trained["table"]
    texts = list(table["tweet_text"])
    request = {
        "saved_model": str(trained["out"] / "1"),
        "texts": texts,
        "images": list(table["image_path"]),
        "tokens": _token_ids(trained, texts),
    }
    result = _run_isolated(
        """
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the TF Text ops)

        request = json.load(open(sys.argv[1]))
        model = tf.saved_model.load(request["saved_model"])
        images = [open(p, "rb").read() for p in request["images"]]
        out = model.signatures["serving_default"](
            text=tf.constant(request["texts"]), image_bytes=tf.constant(images))
        tokens = {k: tf.constant(v, tf.int32) for k, v in request["tokens"].items()}
        by_ids = model.signatures["token_ids"](image_bytes=tf.constant(images), **tokens)
        meta = model.signatures["metadata"]()
        json.dump({
            "probabilities": out["probabilities"].numpy().tolist(),
            "class_name": [c.decode() for c in out["class_name"].numpy()],
            "class_id": out["class_id"].numpy().tolist(),
            "token_probabilities": by_ids["probabilities"].numpy().tolist(),
            "class_names": [c.decode() for c in meta["class_names"].numpy()],
            "variable_class_names": [c.decode() for c in model.class_names.numpy()],
            "task": meta["task"].numpy().decode(),
            "config": json.loads(meta["config_json"].numpy().decode()),
            "sizes": [int(meta["image_size"]), int(meta["resize_to"]), int(meta["sequence_length"])],
            "crisis_keras_imported": any(m.startswith("crisis_keras") for m in sys.modules),
        }, open("result.json", "w"))
        """,
        request, tmp_path,
    )
    expected, predicted = _expected(trained)
    assert not result["crisis_keras_imported"]
    np.testing.assert_allclose(result["probabilities"], expected, atol=ATOL)
    np.testing.assert_allclose(result["token_probabilities"], expected, atol=ATOL)
    assert result["class_name"] == predicted
    assert result["class_id"] == list(np.argmax(expected, axis=-1))
    names = trained["summary"]["class_names"]
    assert result["class_names"] == result["variable_class_names"] == names
    assert result["task"] == "severity"
    assert result["config"] == json.loads((trained["run_dir"] / "config.json").read_text())
    assert result["sizes"] == [64, 68, 32]


def test_token_ids_export_without_tensorflow_text_matches(trained, tmp_path):
    table = trained["table"]
    request = {
        "full": str(trained["out"] / "1"),
        "token_ids": str(trained["out"] / TOKEN_IDS_SUBDIR / "1"),
        "images": list(table["image_path"]),
        "tokens": _token_ids(trained, list(table["tweet_text"])),
    }
    result = _run_isolated(
        """
        import json, sys
        import tensorflow as tf

        request = json.load(open(sys.argv[1]))
        try:
            tf.saved_model.load(request["full"])
            full_error = None
        except Exception as err:  # expected: the TF Text ops are not registered
            full_error = str(err)
        model = tf.saved_model.load(request["token_ids"])
        images = tf.constant([open(p, "rb").read() for p in request["images"]])
        tokens = {k: tf.constant(v, tf.int32) for k, v in request["tokens"].items()}
        out = model.signatures["serving_default"](image_bytes=images, **tokens)
        same = model.signatures["token_ids"](image_bytes=images, **tokens)
        json.dump({
            "full_error": full_error,
            "probabilities": out["probabilities"].numpy().tolist(),
            "token_ids_signature": same["probabilities"].numpy().tolist(),
            "class_names": [c.decode() for c in model.signatures["metadata"]()["class_names"].numpy()],
            "tensorflow_text_imported": "tensorflow_text" in sys.modules,
        }, open("result.json", "w"))
        """,
        request, tmp_path,
    )
    expected, _ = _expected(trained)
    assert not result["tensorflow_text_imported"]
    assert result["full_error"] is not None and "Op type not registered" in result["full_error"]
    np.testing.assert_allclose(result["probabilities"], expected, atol=ATOL)
    np.testing.assert_allclose(result["token_ids_signature"], expected, atol=ATOL)
    assert result["class_names"] == trained["summary"]["class_names"]
