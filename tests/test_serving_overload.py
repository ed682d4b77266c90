"""Issue 12: the REST server's bounded work, readiness and graceful stop.

- Overload: with `--workers 1 --queue-depth 1`, two requests hold both
  places (their bodies half sent), a third gets 503 with Retry-After at once,
  and the two then finish with 200; `--max-connections` refuses one more
  connection with 503. A flood of concurrent requests gets only 200s and
  503s.
- Readiness: the status reads START, then LOADING while the loaded model is
  warmed up, AVAILABLE only after; predict answers 503 until then.
- SIGTERM (`python -m crisis_keras.serving.rest_server` in a subprocess):
  a request in flight when the signal arrives is answered, new connections
  are refused, and the process exits 0.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crisis_keras import export
from crisis_keras.serving.limits import Limits
from crisis_keras.serving.rest_server import RestServer
from support_http import connect, post_head, read_response
from support_rest import b64, call
from support_runs import encode_image, write_untrained_run

PREDICT = "/v1/models/crisis:predict"
BODY = json.dumps({"instances": [{"text": "flooded road", "image_bytes": b64(encode_image(1))}]
                  }).encode("utf-8")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_overload")
    write_untrained_run(root / "run")
    export.export_run(root / "run", root / "export", token_ids=False)
    return root / "export"


def _wait_for(condition, timeout=60.0):  # generous: CI may share the CPU with training jobs
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.02)


def _half_sent(url):
    """A connection that has sent the headers and half the body of a valid request."""
    sock = connect(url)
    sock.sendall(post_head(PREDICT, len(BODY)) + BODY[: len(BODY) // 2])
    return sock


def _finish(sock):
    with sock:
        sock.sendall(BODY[len(BODY) // 2:])
        return read_response(sock)


def test_full_queue_gets_503_with_retry_after(export_dir):
    limits = Limits(workers=1, queue_depth=1, max_connections=4, read_timeout=20)
    with RestServer(export_dir, port=0, limits=limits) as server:
        held = [_half_sent(server.url) for _ in range(2)]
        _wait_for(lambda: server.pool.taken == 2)  # one running (reading), one waiting
        started = time.monotonic()
        with connect(server.url) as sock:
            sock.sendall(post_head(PREDICT, len(BODY)) + BODY)
            status, headers, payload = read_response(sock)
        assert status == 503 and headers["retry-after"] == "1"
        assert "1 worker(s) running and 1 request(s) waiting" in payload["error"]
        assert time.monotonic() - started < 5  # answered at once, not queued (read_timeout 20)
        # --max-connections: 2 held + 2 idle connections are open; a fifth is refused
        idle = [connect(server.url) for _ in range(2)]
        _wait_for(lambda: server._connections == 4)
        with connect(server.url) as sock:
            status, headers, payload = read_response(sock)
        assert status == 503 and headers["retry-after"] == "1"
        assert "4 open connections (--max-connections)" in payload["error"]
        for sock in idle:
            sock.close()
        for sock in held:  # the two admitted requests complete normally
            status, _, payload = _finish(sock)
            assert status == 200 and len(payload["predictions"]) == 1
        _wait_for(lambda: server.pool.taken == 0)
        assert call(server.url, PREDICT, raw=BODY)[0] == 200


def test_concurrent_flood_gets_only_200_and_503(export_dir):
    limits = Limits(workers=1, queue_depth=1)
    batch = json.dumps({"instances": [json.loads(BODY)["instances"][0]] * 32}).encode()
    results = []

    def client():
        for _ in range(4):
            with connect(server.url) as sock:
                sock.sendall(post_head(PREDICT, len(batch)) + batch)
                status, headers, _ = read_response(sock)
                results.append((status, headers.get("retry-after")))

    with RestServer(export_dir, port=0, limits=limits) as server:
        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert len(results) == 32
    assert {s for s, _ in results} <= {200, 503} and (200, None) in results
    assert all(retry == "1" for s, retry in results if s == 503)


def test_status_is_available_only_after_load_and_warm_up(export_dir, monkeypatch):
    from crisis_keras.serving import rest_server

    server = RestServer(export_dir, port=0, load=False).start()
    seen_during_warm_up = {}

    def watched_warm_up(signatures):
        seen_during_warm_up["state"] = _state(server.url)
        seen_during_warm_up["predict"] = call(server.url, PREDICT, raw=BODY)
        return real_warm_up(signatures)

    real_warm_up = rest_server.warm_up
    monkeypatch.setattr(rest_server, "warm_up", watched_warm_up)
    try:
        assert _state(server.url) == "START"
        status, body = call(server.url, PREDICT, raw=BODY)
        assert status == 503 and "not available yet (state START)" in body["error"]
        server.load()
        # loaded, not yet warmed up: still LOADING, and predict is refused
        assert seen_during_warm_up["state"] == "LOADING"
        status, body = seen_during_warm_up["predict"]
        assert status == 503 and "state LOADING" in body["error"]
        assert server.warm_up_seconds > 0
        status, body = call(server.url, "/v1/models/crisis")
        assert body["model_version_status"][0] == {
            "version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}
        assert call(server.url, PREDICT, raw=BODY)[0] == 200
    finally:
        server.shutdown(timeout=5)


def _state(url):
    return call(url, "/v1/models/crisis")[1]["model_version_status"][0]["state"]


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(export_dir, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    stderr = open(tmp_path / "stderr.txt", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "crisis_keras.serving.rest_server", "--model", str(export_dir),
         "--port", "0", "--read-timeout", "30"],
        stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    try:
        first = process.stdout.readline()
        assert first.startswith("listening at http://127.0.0.1:"), first
        url = first.split()[2].split("/v1/")[0]
        _wait_for(lambda: _state(url) == "AVAILABLE", timeout=120)
        sock = _half_sent(url)
        time.sleep(0.5)  # the server has the headers: the request is in flight
        process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        with pytest.raises(ConnectionRefusedError):
            connect(url, timeout=5)  # no new connections while draining
        assert process.poll() is None  # still waiting for the request in flight
        status, _, payload = _finish(sock)
        assert status == 200 and len(payload["predictions"]) == 1
        assert process.wait(timeout=30) == 0
        out = process.stdout.read()
        assert "AVAILABLE" in out and "draining" in out and "stopped" in out, out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.close()
