"""Export of the unimodal baselines: only the model's own modality is a
signature input (text-only: `text` + a token-ids export; image-only:
`image_bytes`, no token-ids export), with the keras model's outputs."""

import numpy as np
import pytest
import tensorflow as tf

from crisis_keras import export
from crisis_keras.data.images import preprocess_batch_for_eval
from crisis_keras.serving.loading import TOKEN_IDS_SUBDIR, load_export
from support_runs import encode_image, write_untrained_run


def _inputs(fn):
    return sorted(fn.structured_input_signature[1])


@pytest.mark.parametrize("model_name", ["bert", "densenet"])
def test_unimodal_export(model_name, tmp_path):
    model = write_untrained_run(tmp_path / "run", model=model_name)
    summary = export.export_run(tmp_path / "run", tmp_path / "export")
    loaded = load_export(tmp_path / "export")
    serve = loaded.signatures["serving_default"]
    texts = tf.constant(["Flood  http://t.co/x", "fire"])
    images = [encode_image(1), encode_image(2, fmt="PNG")]
    if model_name == "bert":
        assert _inputs(serve) == ["text"]
        assert summary["signatures"] == ["metadata", "serving_default", "token_ids"]
        assert (tmp_path / "export" / TOKEN_IDS_SUBDIR / "1" / "saved_model.pb").is_file()
        got = serve(text=texts)
        expected = model({"text": texts}, training=False)
    else:
        assert _inputs(serve) == ["image_bytes"]
        assert summary["signatures"] == ["metadata", "serving_default"]
        assert "token_ids_saved_model" not in summary
        assert not (tmp_path / "export" / TOKEN_IDS_SUBDIR).exists()
        got = serve(image_bytes=tf.constant(images))
        pixels = preprocess_batch_for_eval(tf.constant(images), resize_to=68, crop=64)
        expected = model({"image": pixels}, training=False)
    np.testing.assert_allclose(got["probabilities"].numpy(), np.asarray(expected), atol=1e-5)
    best = np.asarray(expected).argmax(axis=-1)
    assert [c.decode() for c in got["class_name"].numpy()] == [loaded.class_names[i] for i in best]
    assert loaded.task == "severity"
