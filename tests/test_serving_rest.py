"""The REST server (TF Serving's predict API) on 127.0.0.1: row and columnar
JSON with base64 images give the keras model's probabilities; bad requests get
HTTP 400/404 with a JSON error and the server keeps serving."""

import numpy as np
import pytest

from crisis_keras import export
from crisis_keras.serving.rest_server import RestServer
from support_rest import b64 as _b64
from support_rest import call as _call
from support_runs import encode_image, write_untrained_run

TEXTS = ["Flooding  in the CITY http://t.co/abc", "bridge destroyed by the quake", "ok"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import tensorflow as tf

    from crisis_keras.data.images import preprocess_batch_for_eval

    root = tmp_path_factory.mktemp("serving_rest")
    model = write_untrained_run(root / "run")
    export.export_run(root / "run", root / "export")
    images = [encode_image(1), encode_image(2, fmt="PNG"), encode_image(3, size=(64, 200))]
    pixels = preprocess_batch_for_eval(tf.constant(images), resize_to=68, crop=64)
    expected = model({"text": tf.constant(TEXTS), "image": pixels}, training=False).numpy()
    server = RestServer(root / "export", name="crisis", port=0).start()
    try:
        yield {"url": server.url, "images": images, "expected": expected, "root": root,
               "class_names": server.service.loaded.class_names}
    finally:
        server.shutdown()


def _instances(served):
    return [{"text": t, "image_bytes": _b64(b)} for t, b in zip(TEXTS, served["images"])]


def test_status_and_metadata(served):
    status, body = _call(served["url"], "/v1/models/crisis")
    assert status == 200
    assert body["model_version_status"][0] == {
        "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    status, body = _call(served["url"], "/v1/models/crisis/versions/1/metadata")
    assert status == 200
    sigs = body["metadata"]["signature_def"]
    assert sorted(sigs["serving_default"]["inputs"]) == ["image_bytes", "text"]
    assert sigs["serving_default"]["outputs"]["probabilities"]["shape"] == [None, 3]
    assert sorted(sigs["token_ids"]["inputs"]) == [
        "image_bytes", "padding_mask", "segment_ids", "token_ids"]
    assert body["metadata"]["class_names"] == served["class_names"]


def test_row_format_predict(served):
    status, body = _call(served["url"], "/v1/models/crisis:predict",
                         {"instances": _instances(served)})
    assert status == 200, body
    rows = body["predictions"]
    np.testing.assert_allclose([r["probabilities"] for r in rows], served["expected"], atol=1e-5)
    best = served["expected"].argmax(axis=-1)
    assert [r["class_id"] for r in rows] == best.tolist()
    assert [r["class_name"] for r in rows] == [served["class_names"][i] for i in best]


def test_columnar_format_predict_with_version(served):
    payload = {"signature_name": "serving_default",
               "inputs": {"text": TEXTS, "image_bytes": [_b64(b) for b in served["images"]]}}
    status, body = _call(served["url"], "/v1/models/crisis/versions/1:predict", payload)
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"]["probabilities"], served["expected"], atol=1e-5)
    assert len(body["outputs"]["class_name"]) == 3


@pytest.mark.parametrize(
    "case, status, message",
    [
        ("invalid_json", 400, "not valid JSON"),
        ("undecodable_image", 400, "Unknown image file format"),
        ("missing_field", 400, "lacks field(s) ['image_bytes']"),
        ("unknown_field", 400, "unknown field(s) ['colour']"),
        ("bad_base64", 400, "invalid base64"),
        ("plain_string_image", 400, "must be base64 objects"),
        ("unequal_columns", 400, "different numbers of rows"),
        ("unknown_signature", 400, "unknown signature_name"),
        ("wrong_model", 404, "Servable not found"),
    ],
)
def test_bad_request_gets_error_and_server_keeps_serving(served, case, status, message):
    good = _instances(served)[:1]
    path, payload, raw = "/v1/models/crisis:predict", None, None
    if case == "invalid_json":
        raw = b'{"instances": [ {"text": '
    elif case == "undecodable_image":
        payload = {"instances": good + [{"text": "x", "image_bytes": _b64(b"not an image")}]}
    elif case == "missing_field":
        payload = {"instances": [{"text": "x"}]}
    elif case == "unknown_field":
        payload = {"instances": [dict(good[0], colour="red")]}
    elif case == "bad_base64":
        payload = {"instances": [{"text": "x", "image_bytes": {"b64": "@@not base64@@"}}]}
    elif case == "plain_string_image":
        payload = {"instances": [{"text": "x", "image_bytes": "photo.jpg"}]}
    elif case == "unequal_columns":
        payload = {"inputs": {"text": TEXTS, "image_bytes": [_b64(served["images"][0])]}}
    elif case == "unknown_signature":
        payload = {"signature_name": "nope", "instances": good}
    elif case == "wrong_model":
        path, payload = "/v1/models/other:predict", {"instances": good}
    got_status, body = _call(served["url"], path, payload, raw)
    assert got_status == status
    assert message in body["error"]
    # The next good request is served normally.
    got_status, body = _call(served["url"], "/v1/models/crisis:predict",
                             {"instances": _instances(served)})
    assert got_status == 200
    np.testing.assert_allclose([r["probabilities"] for r in body["predictions"]],
                               served["expected"], atol=1e-5)


def test_token_ids_signature_over_rest(served):
    import keras
    import tensorflow as tf

    import crisis_keras.models  # noqa: F401

    model = keras.saving.load_model(served["root"] / "run" / "best_model.keras")
    tokens = model.get_layer("text_preprocessor")(
        model.get_layer("tweet_normalization")(tf.constant(TEXTS)))
    inputs = {k: keras.ops.convert_to_numpy(v).astype(int).tolist() for k, v in tokens.items()}
    inputs["image_bytes"] = [_b64(b) for b in served["images"]]
    status, body = _call(served["url"], "/v1/models/crisis:predict",
                         {"signature_name": "token_ids", "inputs": inputs})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"]["probabilities"], served["expected"], atol=1e-5)
