"""Issue 12: the REST server under hostile input.

Every hostile input of the issue (decompression bombs in five formats, a
truncated JPEG, a zero-byte image, 100,000-character / non-UTF-8 / empty
text, JSON nested 10,000 deep, 100,000 instances, wrong types in every
field, duplicate keys, a body above the limit, a client sending a byte at a
time) gets its 4xx and a JSON error naming the problem, and the next valid
request is served. Image modes TensorFlow decodes (CMYK JPEG, 16-bit PNG,
grayscale, palette, alpha, animated GIF, WebP, BMP) are classified, decoded
as PIL sees them. Memory: the peak RSS (VmHWM) of this process, which runs
the server, grows by less than MEMORY_BOUND_MB over all of them (decoding
the PNG bomb alone would take 2.7 GB).
"""

import base64
import json
import select
import socket
import time

import numpy as np
import pytest

from crisis_keras import export
from crisis_keras.serving.limits import Limits
from crisis_keras.serving.rest_server import RestServer
from support_hostile import bombs, formats, pil_rgb, png_bomb, truncated_jpeg
from support_http import connect, post_head, proc_status_mb, read_response, send_raw
from support_rest import b64, call
from support_runs import encode_image, write_untrained_run

PREDICT = "/v1/models/crisis:predict"
LIMITS = Limits(max_body_bytes=4 * 1024 * 1024, read_timeout=2.0, workers=2, queue_depth=4)
MEMORY_BOUND_MB = 100
GOOD_TEXT = "bridge collapsed after the flood"
GOOD_IMAGE = encode_image(3)


def _json(obj):
    return json.dumps(obj).encode("utf-8")


def _one(text=GOOD_TEXT, image=GOOD_IMAGE):
    """A one-row request; `image` bytes are base64-encoded, other values sent as they are."""
    image = b64(image) if isinstance(image, bytes) else image
    return {"instances": [{"text": text, "image_bytes": image}]}


_IMAGE_B64 = json.dumps(b64(GOOD_IMAGE))
_BOMB_SIZE = {"png": "PNG declares 30000 x 30000 = 900,000,000 pixels",
              "jpeg": "JPEG declares 30000 x 30000", "gif": "GIF declares 30000 x 30000",
              "bmp": "BMP declares 30000 x 30000", "webp": "WebP declares 16383 x 16383"}

# (case, request body, expected status, words the error must contain)
HOSTILE = [
    *[(f"bomb_{fmt}", _json(_one(image=data)), 413,
       f"image_bytes[0]: {_BOMB_SIZE[fmt]}") for fmt, data in bombs().items()],
    # TensorFlow itself refuses 30000 x 30000 but decodes this one (768 MB of pixels)
    ("bomb_png_16000", _json(_one(image=png_bomb(16_000, 16_000))), 413,
     "PNG declares 16000 x 16000 = 256,000,000 pixels, above the limit of 16,777,216"),
    ("truncated_jpeg", _json(_one(image=truncated_jpeg())), 400,
     "image_bytes[0]: the image does not decode"),
    ("zero_byte_image", _json(_one(image=b"")), 400, "image_bytes[0] is empty"),
    ("text_100000_chars", _json(_one(text="a" * 100_000)), 413,
     "text[0] has 100,000 characters, above the limit of 10,000"),
    ("text_not_utf8", _json(_one(text={"b64": base64.b64encode(b"\xff\xfe flood").decode()})),
     400, "text[0] is not valid UTF-8"),
    ("body_not_utf8", b'{"instances": [{"text": "caf\xe9", "image_bytes": ' +
     _IMAGE_B64.encode() + b"}]}", 400, "the request body is not valid UTF-8"),
    ("text_lone_surrogate", b'{"instances": [{"text": "\\ud800", "image_bytes": ' +
     _IMAGE_B64.encode() + b"}]}", 400, "text[0] is not valid Unicode"),
    ("empty_text", _json(_one(text="")), 400, "text[0] is empty"),
    ("json_nested_10000", b'{"instances": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400,
     "nests JSON arrays/objects too deeply"),
    ("batch_100000", _json({"instances": [{"text": "a"}] * 100_000}), 413,
     "'instances' has 100,000 rows; this server takes at most 256"),
    ("columnar_100000", _json({"inputs": {"text": ["a"] * 100_000,
                                          "image_bytes": [b64(GOOD_IMAGE)]}}), 413,
     "inputs['text'] has 100,000 rows"),
    ("duplicate_top_key", ('{"instances": [], "instances": [{"text": "a", "image_bytes": '
                           + _IMAGE_B64 + "}]}").encode(), 400, "duplicate key 'instances'"),
    ("duplicate_row_key", ('{"instances": [{"text": "a", "text": "b", "image_bytes": '
                           + _IMAGE_B64 + "}]}").encode(), 400, "duplicate key 'text'"),
    # wrong types, field by field
    ("body_array", b"[1, 2]", 400, "must be a JSON object"),
    ("body_string", b'"instances"', 400, "must be a JSON object"),
    ("signature_name_int", _json(dict(_one(), signature_name=5)), 400,
     "'signature_name' must be a string, got int"),
    ("signature_name_list", _json(dict(_one(), signature_name=[])), 400,
     "'signature_name' must be a string, got list"),
    ("instances_string", _json({"instances": "abc"}), 400, "'instances' must be a non-empty list"),
    ("instances_empty", _json({"instances": []}), 400, "'instances' must be a non-empty list"),
    ("instance_number", _json({"instances": [5]}), 400, "instances[0] must be an object"),
    ("text_number", _json(_one(text=5)), 400, "text[0]: expected a string, got int"),
    ("text_bool", _json(_one(text=True)), 400, "text[0]: expected a string, got bool"),
    ("text_null", _json(_one(text=None)), 400, "text[0]: expected a string, got NoneType"),
    ("text_list", _json(_one(text=["a"])), 400, "text[0]: expected a string, got list"),
    ("image_number", _json(_one(image=5)), 400, "must be base64 objects"),
    ("image_plain_string", _json(_one(image="photo.jpg")), 400, "must be base64 objects"),
    ("image_b64_number", _json(_one(image={"b64": 5})), 400, 'image_bytes[0]: expected {"b64"'),
    ("image_b64_extra_key", _json(_one(image={"b64": "", "x": 1})), 400,
     'image_bytes[0]: expected {"b64"'),
    ("image_bad_base64", _json(_one(image={"b64": "@@not base64@@"})), 400, "invalid base64"),
    ("inputs_number", _json({"inputs": 5}), 400, "'inputs' must be an object"),
    ("inputs_column_string", _json({"inputs": {"text": "a", "image_bytes": [b64(GOOD_IMAGE)]}}),
     400, "inputs['text'] must be a non-empty list"),
    ("instances_and_inputs", _json(dict(_one(), inputs={})), 400, "exactly one of"),
    ("unknown_request_field", _json(dict(_one(), extra=1)), 400,
     "unknown request field(s) ['extra']"),
    ("unknown_row_field", _json({"instances": [dict(_one()["instances"][0], colour=1)]}), 400,
     "unknown field(s) ['colour']"),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import tensorflow as tf

    from crisis_keras.data.images import preprocess_batch_for_eval

    root = tmp_path_factory.mktemp("serving_hostile")
    model = write_untrained_run(root / "run")
    export.export_run(root / "run", root / "export", token_ids=False)

    def expected(texts, images):
        pixels = preprocess_batch_for_eval(tf.constant(images), resize_to=68, crop=64)
        return model({"text": tf.constant(texts), "image": pixels}, training=False).numpy()

    return {"export": root / "export", "expected": expected,
            "good": expected([GOOD_TEXT], [GOOD_IMAGE])[0]}


@pytest.fixture(scope="module")
def served(exported):
    server = RestServer(exported["export"], port=0, limits=LIMITS).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


def _assert_still_serving(url, exported):
    status, body = call(url, PREDICT, _one())
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"][0]["probabilities"], exported["good"],
                               atol=1e-5)


@pytest.mark.parametrize("case, body, status, message", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_request_gets_4xx_and_the_server_keeps_serving(served, exported, case, body,
                                                               status, message):
    got, payload = call(served.url, PREDICT, raw=body)
    assert got == status, payload
    assert message in payload["error"], payload["error"]
    _assert_still_serving(served.url, exported)


@pytest.mark.parametrize("name", sorted(formats()))
def test_image_modes_and_formats_are_classified_as_pil_decodes_them(served, exported, name):
    from crisis_keras.data.images import decode_image

    data = formats()[name]
    status, body = call(served.url, PREDICT, _one(image=data))
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"][0]["probabilities"],
                               exported["expected"]([GOOD_TEXT], [data])[0], atol=1e-5)
    # what the export's graph decodes is what PIL shows (JPEG IDCTs differ by a few levels)
    decoded = decode_image(data).numpy().astype(int)
    assert decoded.shape == (72, 88, 3)
    assert np.abs(decoded - pil_rgb(data).astype(int)).max() <= 4


def test_body_above_the_limit_is_refused_from_its_content_length(served, exported):
    start = time.monotonic()
    status, _, payload = send_raw(served.url, post_head(PREDICT, 10**9))  # no body sent
    assert status == 413 and "1,000,000,000 bytes, above the limit of 4,194,304" in \
        payload["error"]
    assert time.monotonic() - start < 5
    # a real body above the limit: read away (bounded), then 413, not a reset connection
    status, payload = call(served.url, PREDICT, raw=b" " * (5 * 1024 * 1024))
    assert status == 413 and "--max-body-bytes" in payload["error"]
    _assert_still_serving(served.url, exported)


@pytest.mark.parametrize("case, data, status, message", [
    ("no_content_length", b"POST /v1/models/crisis:predict HTTP/1.1\r\nHost: x\r\n\r\n", 411,
     "Content-Length header is required"),
    ("chunked", b"POST /v1/models/crisis:predict HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "Transfer-Encoding is not supported"),
    ("bad_content_length", post_head(PREDICT, "-5"), 400, "invalid Content-Length"),
    ("garbage_request_line", b"HELLO\r\n\r\n", 400, "Bad request syntax"),
    ("unknown_method", b"PUT /v1/models/crisis HTTP/1.1\r\nHost: x\r\n\r\n", 501,
     "Unsupported method"),
    ("unknown_path", post_head("/v2/anything", 2) + b"{}", 404, "no such endpoint"),
    ("unknown_model", post_head("/v1/models/other:predict", 2) + b"{}", 404,
     "Servable not found"),
])
def test_malformed_http_gets_a_json_error(served, exported, case, data, status, message):
    got, _, payload = send_raw(served.url, data)
    assert got == status and message in payload["error"], payload
    _assert_still_serving(served.url, exported)


def test_body_shorter_than_its_content_length(served, exported):
    with connect(served.url) as sock:
        sock.sendall(post_head(PREDICT, 100) + b'{"instances"')
        sock.shutdown(socket.SHUT_WR)
        status, _, payload = read_response(sock)
    assert status == 400 and "the body ended after 12 of the 100 bytes" in payload["error"]
    _assert_still_serving(served.url, exported)


@pytest.mark.parametrize("part", ["body", "headers"])
def test_slow_client_gets_408_after_the_read_timeout(served, exported, part):
    body = _json(_one())
    head = post_head(PREDICT, len(body))
    start = time.monotonic()
    with connect(served.url) as sock:
        fast, slow = (head, body) if part == "body" else (b"", head + body)
        sock.sendall(fast)
        for i in range(10):  # a byte every 0.5 s: 5 s in all, the timeout is 2 s
            sock.sendall(slow[i:i + 1])
            if select.select([sock], [], [], 0.5)[0]:
                break  # the server has answered
        status, _, payload = read_response(sock)
    assert status == 408 and "not received within 2 s (--read-timeout)" in payload["error"]
    assert time.monotonic() - start < 4.5
    _assert_still_serving(served.url, exported)


def test_memory_stays_bounded_over_every_hostile_input(served, exported):
    """Peak RSS (VmHWM) and RSS of the serving process: every hostile body three
    times, after one round that lets the allocators settle."""

    def round_of_hostile_requests():
        for _, body, status, _ in HOSTILE:
            assert call(served.url, PREDICT, raw=body)[0] == status
        assert send_raw(served.url, post_head(PREDICT, 10**9))[0] == 413

    round_of_hostile_requests()
    peak, rss = proc_status_mb("VmHWM"), proc_status_mb("VmRSS")
    for _ in range(3):
        round_of_hostile_requests()
    _assert_still_serving(served.url, exported)
    grown_peak = proc_status_mb("VmHWM") - peak
    grown_rss = proc_status_mb("VmRSS") - rss
    print(f"VmHWM {peak:.0f} MB (+{grown_peak:.0f}), VmRSS {rss:.0f} MB (+{grown_rss:.0f})")
    assert grown_peak < MEMORY_BOUND_MB and grown_rss < MEMORY_BOUND_MB
