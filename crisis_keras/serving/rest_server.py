"""A small HTTP server speaking TF Serving's REST predict API, for an export.

    python -m crisis_keras.serving.rest_server --model DIR [--name crisis] [--port 8501]
        [--workers 2] [--queue-depth 8] [--max-body-bytes ...] [--max-pixels ...] ...

Endpoints (as TF Serving's, https://www.tensorflow.org/tfx/serving/api_rest):

- `GET  /v1/models/<name>[/versions/<v>]`: version status: `LOADING` until the
  model is loaded and warmed up (one call of each signature), then `AVAILABLE`.
- `GET  /v1/models/<name>[/versions/<v>]/metadata`: signatures and class names.
- `POST /v1/models/<name>[/versions/<v>]:predict` with a JSON body, either row
  format `{"signature_name": "serving_default", "instances": [{"text": "...",
  "image_bytes": {"b64": "..."}}, ...]}` -> `{"predictions": [{"probabilities":
  [...], "class_id": 2, "class_name": "..."}, ...]}`, or columnar format
  `{"inputs": {"text": [...], "image_bytes": [{"b64": ...}, ...]}}` ->
  `{"outputs": {"probabilities": [[...]], "class_id": [...], "class_name": [...]}}`.
  Inputs whose names end in `_bytes` are base64 objects `{"b64": "..."}`.

Posts without an image or text (issue 13). A model trained with modality
dropout (its signature returns `missing`) takes rows whose `image_bytes` or
`text` is absent, null, `{"b64": ""}` or `""`: the row is classified from the
other modality and its `missing` says which one was absent ("" = none); a row
with neither gets 400. A model trained without it answers an absent field, an
empty image or an empty text with 400 and an error naming the row.

Errors and limits (issue 12). Every error is JSON `{"error": "..."}` naming the
problem, and no request can stop the server. 400: a malformed request
(invalid JSON or UTF-8, duplicate keys, nesting too deep, a missing, unknown
or mistyped field, bad base64, an image that does not decode, text that is
not UTF-8). 408: headers and body not received within `--read-timeout`.
411: no Content-Length. 413: above a limit (`--max-body-bytes`, checked on
Content-Length before reading; `--max-instances`, counted before any value
is converted; `--max-pixels` / `--max-request-pixels`, read from the image
headers before decoding; `--max-text-chars`). 503 with Retry-After: the
model is still loading, `--workers` are busy and `--queue-depth` requests
wait, `--max-connections` are open, or the server is shutting down. Image
formats: whatever `tf.io.decode_image` takes, decoded in the export's graph
(JPEG incl. CMYK and progressive, PNG incl. 16-bit, grayscale, palette and
alpha, GIF (first frame), BMP, WebP); nothing is converted here.

SIGTERM (or Ctrl-C): stop accepting connections, close idle keep-alive ones,
let in-flight requests finish (up to `--drain-timeout`), exit 0.

It binds 127.0.0.1 by default. The SavedModel is loaded with
`tf.saved_model.load` after `import tensorflow_text` (when installed), so it
serves the full export (`DIR`) or, without TF Text, the token-ids one
(`DIR/token_ids`).
"""

import argparse
import io
import json
import re
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from crisis_keras.serving.deadline_reader import DeadlineReader
from crisis_keras.serving.limits import Limits, add_limit_flags, limits_from_args
from crisis_keras.serving.loading import load_export, resolve_version_dir
from crisis_keras.serving.prediction_service import PredictionService, RequestError
from crisis_keras.serving.warmup import warm_up
from crisis_keras.serving.worker_pool import Overloaded, WorkerPool

__all__ = ["PredictionService", "RequestError", "RestServer", "main"]

_MODEL_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")
_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:([a-z]+)$")
_DISCARD_BYTES = 64 * 1024 * 1024  # most unread body bytes read away before closing
_DISCARD_SECONDS = 2.0


def _first_line(err):
    text = getattr(err, "message", None) or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


class _Unavailable(RequestError):
    """503 with Retry-After."""

    def __init__(self, message):
        super().__init__(message, HTTPStatus.SERVICE_UNAVAILABLE)


class _Handler(BaseHTTPRequestHandler):
    app: "RestServer" = None  # set on the subclass made per server
    quiet = True
    server_version = "crisis_keras-rest/1"
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if not self.quiet:
            super().log_message(format, *args)

    # -- connection: reads under a deadline ------------------------------------------
    def setup(self):
        super().setup()
        self._reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader, 64 * 1024)
        self._unread = 0

    def handle_one_request(self):
        self._responded = False
        timeout = self.app.limits.read_timeout
        self._reader.start(timeout)  # an idle keep-alive connection waits this long
        if not self.app._set_idle(self, True):
            self.close_connection = True
            return
        try:
            arrived = self.rfile.peek(1)
        except OSError:  # the idle deadline passed, the client or a drain closed it
            arrived = b""
        finally:
            self.app._set_idle(self, False)
        if not arrived:
            self.close_connection = True
            return
        self._reader.start(timeout)  # the request line, headers and body
        # what parse_request would set: a 408 may be sent before it has run
        self.requestline, self.request_version, self.command = "", "HTTP/1.0", ""
        super().handle_one_request()
        if self._reader.timed_out and not self._responded:  # cut short in its headers
            self._timeout_response()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        if self._unread:
            self._discard_unread()

    def _discard_unread(self):
        """Reads away (a bounded part of) an unread body, so that closing the socket
        does not reset the connection before the client has read the response."""
        sock, left = self.connection, min(self._unread, _DISCARD_BYTES)
        end = time.monotonic() + _DISCARD_SECONDS
        try:
            sock.shutdown(socket.SHUT_WR)
            while left > 0 and time.monotonic() < end:
                sock.settimeout(max(0.01, end - time.monotonic()))
                chunk = sock.recv(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    # -- responses --------------------------------------------------------------------
    def _send(self, status, payload, headers=()):
        body = json.dumps(payload).encode("utf-8")
        if self.app.draining or self._unread:
            self.close_connection = True
        try:
            self.connection.settimeout(self.app.limits.read_timeout)  # the write's bound
            self.send_response(int(status))
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True
        self._responded = True

    def send_error(self, code, message=None, explain=None):
        """The stdlib's errors (bad request line, too many headers, ...) as JSON too."""
        if self.request_version == "HTTP/0.9":  # unparsed: answer with a status line
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        self._send(code, {"error": message or HTTPStatus(code).phrase})

    def _timeout_response(self):
        # read away what the slow client still sends, so the close does not reset the 408
        self.close_connection, self._unread = True, _DISCARD_BYTES
        self._send(HTTPStatus.REQUEST_TIMEOUT, {
            "error": f"the request was not received within {self.app.limits.read_timeout:g} "
                     "s (--read-timeout)"})

    def _handle(self, action):
        try:
            status, payload, headers = HTTPStatus.OK, action(), ()
        except RequestError as err:
            status, payload, headers = err.status, {"error": str(err)}, ()
            if err.status == HTTPStatus.SERVICE_UNAVAILABLE:
                headers = (("Retry-After", str(self.app.limits.retry_after)),)
        except TimeoutError:
            self._timeout_response()
            return
        except Exception as err:  # Keep serving; report the failure.
            status, payload, headers = HTTPStatus.INTERNAL_SERVER_ERROR, {
                "error": f"{type(err).__name__}: {_first_line(err)}"}, ()
        self._send(status, payload, headers)

    # -- endpoints --------------------------------------------------------------------
    def do_GET(self):  # noqa: N802 (stdlib name)
        def action():
            match = _MODEL_PATH.match(self.path)
            if not match:
                raise RequestError(f"no such endpoint: GET {self.path}", HTTPStatus.NOT_FOUND)
            name, version, meta = match.groups()
            self.app.check_model(name, version)
            if not meta:
                return self.app.status()
            return self.app.ready_service().metadata()
        self._handle(action)

    def do_POST(self):  # noqa: N802
        def action():
            match = _PREDICT_PATH.match(self.path)
            if not match:
                raise RequestError(f"no such endpoint: POST {self.path}", HTTPStatus.NOT_FOUND)
            name, version, verb = match.groups()
            self.app.check_model(name, version)
            if verb != "predict":
                raise RequestError(f"only :predict is supported, not :{verb}.",
                                   HTTPStatus.NOT_IMPLEMENTED)
            length = self._content_length()
            self._unread = length
            service = self.app.ready_service()
            limit = self.app.limits.max_body_bytes
            if length > limit:
                raise RequestError(f"the body has {length:,} bytes, above the limit of "
                                   f"{limit:,} (--max-body-bytes).",
                                   HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            try:
                reservation = self.app.pool.reserve()
            except Overloaded as err:
                raise _Unavailable(f"{err}; retry later.") from None
            with reservation:
                body = self.rfile.read(length)
                self._unread = 0 if len(body) == length else length - len(body)
                if len(body) < length:
                    raise RequestError(f"the body ended after {len(body):,} of the "
                                       f"{length:,} bytes its Content-Length announced.")
                return reservation.run(lambda: service.predict(body))
        self._handle(action)

    def _content_length(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError("Transfer-Encoding is not supported: send a Content-Length.",
                               HTTPStatus.LENGTH_REQUIRED)
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise RequestError("a Content-Length header is required.",
                               HTTPStatus.LENGTH_REQUIRED)
        if not length.strip().isdigit():
            self.close_connection = True
            raise RequestError(f"invalid Content-Length {length!r}.")
        return int(length)


class _HTTPServer(ThreadingHTTPServer):
    """One thread a connection, at most `max_connections` of them; quiet errors."""

    daemon_threads = True
    block_on_close = False  # RestServer.shutdown waits for the connections itself

    def __init__(self, address, handler, app):
        self.app = app
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.app._open_connection():
            self._refuse(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.app._close_connection()

    def _refuse(self, request):
        body = json.dumps({"error": f"the server has {self.app.limits.max_connections} "
                                    "open connections (--max-connections); retry later."})
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: {self.app.limits.retry_after}"
                "\r\nConnection: close\r\n\r\n")
        try:
            request.settimeout(1.0)
            request.sendall((head + body).encode("utf-8"))
        except OSError:
            pass

    def handle_error(self, request, client_address):
        if not self.app.quiet:
            super().handle_error(request, client_address)


class RestServer:
    """Serves one export on `host:port` (port 0 = an ephemeral port) in threads.

        with RestServer("exports/severity", port=0) as server:
            url = server.url  # http://127.0.0.1:<port>

    With `load=True` (the default) the model is loaded and warmed up before the
    constructor returns; with `load=False` call `load()` (e.g. on another thread
    after `start()`: the status reads LOADING meanwhile, predict answers 503).
    """

    def __init__(self, model_dir, name="crisis", host="127.0.0.1", port=8501, quiet=True,
                 limits=None, load=True):
        self.limits = limits or Limits()
        self.model_dir = model_dir
        self.name = name
        self.quiet = quiet
        version_dir = resolve_version_dir(model_dir)
        self.version = version_dir.name if version_dir.name.isdigit() else "1"
        self.state, self.error, self.service = "START", "", None
        self.warm_up_seconds = None
        self.draining = False
        self.pool = WorkerPool(self.limits.workers, self.limits.queue_depth)
        self._lock = threading.Condition()
        self._connections = 0
        self._idle = set()
        self._thread = None
        handler = type("Handler", (_Handler,), {"app": self, "quiet": quiet})
        self.httpd = _HTTPServer((host, port), handler, self)
        if load:
            self.load()

    # -- the model ------------------------------------------------------------------
    def load(self):
        """Loads and warms up the model; the status is AVAILABLE after, END on failure."""
        self.state = "LOADING"
        try:
            service = PredictionService(load_export(self.model_dir), self.name, self.limits)
            self.warm_up_seconds = warm_up(service.signatures)
        except Exception as err:
            self.state, self.error = "END", f"{type(err).__name__}: {_first_line(err)}"
            raise
        self.service, self.state = service, "AVAILABLE"
        return service

    def check_model(self, name, version):
        if name != self.name or (version is not None and version != self.version):
            shown = name if version is None else f"{name} version {version}"
            raise RequestError(
                f"Servable not found for request: {shown} (this server has "
                f"'{self.name}' version {self.version})", HTTPStatus.NOT_FOUND)

    def status(self):
        """TF Serving's model status JSON."""
        return {"model_version_status": [{
            "version": self.version, "state": self.state,
            "status": {"error_code": "UNKNOWN" if self.error else "OK",
                       "error_message": self.error}}]}

    def ready_service(self) -> PredictionService:
        if self.draining:
            raise _Unavailable("the server is shutting down; retry on another replica.")
        if self.service is None:
            raise _Unavailable(f"the model is not available yet (state {self.state}"
                               + (f": {self.error}" if self.error else "") + ").")
        return self.service

    # -- connections ------------------------------------------------------------------
    def _open_connection(self) -> bool:
        with self._lock:
            if self._connections >= self.limits.max_connections:
                return False
            self._connections += 1
            return True

    def _close_connection(self):
        with self._lock:
            self._connections -= 1
            self._lock.notify_all()

    def _set_idle(self, handler, idle: bool) -> bool:
        """Marks a connection idle (waiting for a request) or busy; False when draining."""
        with self._lock:
            if not idle:
                self._idle.discard(handler)
                return True
            if self.draining:
                return False
            self._idle.add(handler)
            return True

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="rest-accept")
        self._thread.start()
        return self

    def shutdown(self, timeout=None) -> bool:
        """Stops accepting, closes idle connections, lets in-flight requests finish
        (up to `timeout`, default `--drain-timeout` s). True if all finished."""
        timeout = self.limits.drain_timeout if timeout is None else timeout
        end = time.monotonic() + timeout
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()  # new connections are refused from here on
        with self._lock:
            self.draining = True
            if self.state == "AVAILABLE":
                self.state = "UNLOADING"
            idle = list(self._idle)
        for handler in idle:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            done = self._lock.wait_for(lambda: self._connections == 0,
                                       max(0.0, end - time.monotonic()))
        done = self.pool.drain(max(0.0, end - time.monotonic())) and done
        self.state = "END"
        return done

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.shutdown()


def build_parser():
    p = argparse.ArgumentParser(prog="python -m crisis_keras.serving.rest_server",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help="export folder (newest version) or one version folder.")
    p.add_argument("--name", default="crisis", help="model name in the URL (default: crisis).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501, help="0: an ephemeral port.")
    p.add_argument("--verbose", action="store_true", help="log every request on stderr.")
    add_limit_flags(p)
    return p


def main(argv=None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(build_parser(), argv)
    try:
        limits = limits_from_args(args)
        server = RestServer(args.model, args.name, args.host, args.port,
                            quiet=not args.verbose, limits=limits, load=False)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"crisis_keras.serving.rest_server: error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"listening at {server.url}/v1/models/{args.name} (loading)", flush=True)
    loader = threading.Thread(target=_load, args=(server,), daemon=True, name="model-loader")
    loader.start()
    while loader.is_alive() and not stop.wait(0.1):
        pass
    if server.state == "END":
        print(f"crisis_keras.serving.rest_server: error: {server.error}", file=sys.stderr)
        server.shutdown(timeout=1)
        return 1
    if server.state == "AVAILABLE":
        print(f"serving {server.service.loaded.path} as '{args.name}' version "
              f"{server.version} at {server.url}/v1/models/{args.name} (AVAILABLE, warm-up "
              f"{server.warm_up_seconds:.2f} s)", flush=True)
    while not stop.wait(0.5):
        pass
    print("draining: finishing in-flight requests", flush=True)
    done = server.shutdown()
    print("stopped" + ("" if done else f" (--drain-timeout {limits.drain_timeout:g} s passed "
                                       "with requests unfinished)"), flush=True)
    return 0


def _load(server):
    try:
        server.load()
    except Exception:  # noqa: BLE001 (reported by main through server.error)
        pass


if __name__ == "__main__":
    sys.exit(main())
