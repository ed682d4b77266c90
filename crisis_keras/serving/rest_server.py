"""A small HTTP server speaking TF Serving's REST predict API, for an export.

    python -m crisis_keras.serving.rest_server --model DIR [--name crisis] [--port 8501]

Endpoints (as TF Serving's, https://www.tensorflow.org/tfx/serving/api_rest):

- `GET  /v1/models/<name>[/versions/<v>]`: version status.
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
with neither gets 400. A model trained without it answers an absent field or
an empty image with 400 and an error naming the row.

A bad request (invalid JSON, a missing or unknown field, bad base64, an image
that does not decode, unequal batch sizes) gets HTTP 400 and `{"error": "..."}`;
the server keeps serving. It binds 127.0.0.1 by default. The SavedModel is loaded
with `tf.saved_model.load` after `import tensorflow_text` (when installed), so it
serves the full export (`DIR`) or, without TF Text, the token-ids one
(`DIR/token_ids`).
"""

import argparse
import base64
import binascii
import json
import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf

from crisis_keras.serving.loading import error_summary, load_export

MAX_BODY_BYTES = 64 * 1024 * 1024
_MODEL_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")
_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:([a-z]+)$")


class RequestError(Exception):
    """A client error: answered with `status` and `{"error": message}`."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def _check_fields(obj, names, where):
    """RequestError unless `obj` has exactly the fields `names`."""
    missing = [n for n in names if n not in obj]
    extra = sorted(set(obj) - set(names))
    if missing:
        raise RequestError(f"{where} lacks field(s) {missing}.")
    if extra:
        raise RequestError(f"{where} has unknown field(s) {extra}; expected {names}.")


def _first_line(err):
    text = getattr(err, "message", None) or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


class PredictionService:
    """The protocol logic (JSON in, JSON out), independent of HTTP."""

    def __init__(self, loaded, name="crisis"):
        self.loaded = loaded
        self.name = name
        self.version = loaded.version
        self.signatures = {
            key: fn for key, fn in loaded.signatures.items() if key != "metadata"
        }

    # -- routing helpers ------------------------------------------------------------
    def check_model(self, name, version):
        if name != self.name or (version is not None and version != self.version):
            shown = name if version is None else f"{name} version {version}"
            raise RequestError(
                f"Servable not found for request: {shown} (this server has "
                f"'{self.name}' version {self.version})", HTTPStatus.NOT_FOUND)

    def status(self):
        return {"model_version_status": [{
            "version": self.version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        sigs = {}
        for key, fn in self.signatures.items():
            inputs = fn.structured_input_signature[1]
            sigs[key] = {
                "inputs": {k: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
                           for k, s in sorted(inputs.items())},
                "outputs": {k: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
                            for k, s in sorted(fn.structured_outputs.items())},
            }
        return {"model_spec": {"name": self.name, "version": self.version},
                "metadata": {"signature_def": sigs, "class_names": self.loaded.class_names,
                             "task": self.loaded.task}}

    # -- predict ----------------------------------------------------------------------
    def predict(self, body: bytes):
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RequestError(f"the request body is not valid JSON: {err}") from None
        if not isinstance(request, dict):
            raise RequestError("the request body must be a JSON object.")
        signature = request.get("signature_name", "serving_default")
        if signature not in self.signatures:
            raise RequestError(
                f"unknown signature_name {signature!r}; this model has "
                f"{sorted(self.signatures)}.")
        fn = self.signatures[signature]
        specs = fn.structured_input_signature[1]
        unknown = sorted(set(request) - {"signature_name", "instances", "inputs"})
        if unknown:
            raise RequestError(f"unknown request field(s) {unknown}.")
        if ("instances" in request) == ("inputs" in request):
            raise RequestError("the request must have exactly one of 'instances' or 'inputs'.")
        row_format = "instances" in request
        # Trained with modality dropout: a modality may be absent from a row.
        optional = ({n for n, spec in specs.items() if spec.dtype == tf.string}
                    if "missing" in fn.structured_outputs else set())
        columns = (self._columns_from_instances(request["instances"], specs, optional)
                   if row_format
                   else self._columns_from_inputs(request["inputs"], specs, optional))
        tensors = {name: self._tensor(name, values, specs[name], bool(optional))
                   for name, values in columns.items()}
        try:
            outputs = fn(**tensors)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
            raise RequestError(f"the model rejected the input: {error_summary(err)}") from None
        outputs = {k: _to_json(v.numpy()) for k, v in outputs.items()}
        if row_format:
            rows = len(next(iter(outputs.values())))
            return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(rows)]}
        return {"outputs": outputs}

    @staticmethod
    def _columns_from_instances(instances, specs, optional=()):
        if not isinstance(instances, list) or not instances:
            raise RequestError("'instances' must be a non-empty list.")
        names = sorted(specs)
        if len(names) == 1 and not all(isinstance(x, dict) and names[0] in x for x in instances):
            return {names[0]: instances}
        columns = {name: [] for name in names}
        for i, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise RequestError(f"instances[{i}] must be an object with keys {names}.")
            absent = [n for n in optional if n not in instance]
            _check_fields({n: None for n in absent} | instance, names, f"instances[{i}]")
            for name in names:
                columns[name].append(instance.get(name))
        return columns

    @staticmethod
    def _columns_from_inputs(inputs, specs, optional=()):
        names = sorted(specs)
        if not isinstance(inputs, dict):
            if len(names) == 1:
                inputs = {names[0]: inputs}
            else:
                raise RequestError(f"'inputs' must be an object with keys {names}.")
        given = [n for n in names if n in inputs]
        if optional and given and len(given) < len(names):
            # a whole modality absent: every row lacks it
            if not isinstance(inputs[given[0]], list):
                raise RequestError(
                    f"inputs[{given[0]!r}] must be a non-empty list (one value a row).")
            rows = len(inputs[given[0]])
            inputs = {**{n: [None] * rows for n in optional if n not in inputs}, **inputs}
        _check_fields(inputs, names, "'inputs'")
        lengths = set()
        for name in names:
            if not isinstance(inputs[name], list) or not inputs[name]:
                raise RequestError(f"inputs[{name!r}] must be a non-empty list (one value a row).")
            lengths.add(len(inputs[name]))
        if len(lengths) > 1:
            raise RequestError(f"the inputs have different numbers of rows: "
                               f"{ {n: len(inputs[n]) for n in names} }.")
        return {name: inputs[name] for name in names}

    @staticmethod
    def _tensor(name, values, spec, missing_ok=False):
        if spec.dtype == tf.string:
            out = []
            for i, value in enumerate(values):
                if value is None and missing_ok:
                    out.append(b"")  # absent: the model's missing-modality stand-in
                    continue
                if isinstance(value, dict):
                    if set(value) != {"b64"} or not isinstance(value["b64"], str):
                        raise RequestError(f"{name}[{i}]: expected {{\"b64\": \"...\"}}.")
                    try:
                        out.append(base64.b64decode(value["b64"], validate=True))
                    except (binascii.Error, ValueError) as err:
                        raise RequestError(f"{name}[{i}]: invalid base64 ({err}).") from None
                elif isinstance(value, str) and not name.endswith("_bytes"):
                    out.append(value.encode("utf-8"))
                elif value == "" and missing_ok:
                    out.append(b"")
                elif name.endswith("_bytes"):
                    raise RequestError(
                        f"{name}[{i}]: binary inputs (names ending in _bytes) must be "
                        "base64 objects {\"b64\": \"...\"}.")
                else:
                    raise RequestError(f"{name}[{i}]: expected a string, got "
                                       f"{type(value).__name__}.")
                if name.endswith("_bytes") and not out[-1] and not missing_ok:
                    raise RequestError(
                        f"{name}[{i}] is empty: this model was trained without modality "
                        "dropout and needs an image for every row (a model trained with "
                        "--missing-image-rate > 0 takes posts without one).")
            return tf.constant(out, dtype=tf.string)
        try:
            array = np.asarray(values, dtype=spec.dtype.as_numpy_dtype)
        except (TypeError, ValueError, OverflowError) as err:
            raise RequestError(f"{name}: not a rectangular array of {spec.dtype.name} "
                               f"({err}).") from None
        if not spec.shape.is_compatible_with(array.shape):
            raise RequestError(f"{name}: shape {list(array.shape)} does not match "
                               f"{spec.shape.as_list()} (None = any).")
        return tf.constant(array)


def _to_json(array):
    if array.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                for v in array.tolist()]
    return array.tolist()


class _Handler(BaseHTTPRequestHandler):
    service: PredictionService = None  # set on the subclass made per server
    quiet = True
    server_version = "crisis_keras-rest/1"

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, status, payload):
        body = json.dumps(payload).encode("utf-8")
        self.send_response(int(status))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, action):
        try:
            status, payload = HTTPStatus.OK, action()
        except RequestError as err:
            status, payload = err.status, {"error": str(err)}
        except Exception as err:  # Keep serving; report the failure.
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {
                "error": f"{type(err).__name__}: {_first_line(err)}"}
        self._send(status, payload)

    def do_GET(self):  # noqa: N802 (stdlib name)
        def action():
            match = _MODEL_PATH.match(self.path)
            if not match:
                raise RequestError(f"no such endpoint: GET {self.path}", HTTPStatus.NOT_FOUND)
            name, version, meta = match.groups()
            self.service.check_model(name, version)
            return self.service.metadata() if meta else self.service.status()
        self._handle(action)

    def do_POST(self):  # noqa: N802
        def action():
            match = _PREDICT_PATH.match(self.path)
            if not match:
                raise RequestError(f"no such endpoint: POST {self.path}", HTTPStatus.NOT_FOUND)
            name, version, verb = match.groups()
            self.service.check_model(name, version)
            if verb != "predict":
                raise RequestError(f"only :predict is supported, not :{verb}.",
                                   HTTPStatus.NOT_IMPLEMENTED)
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise RequestError("a Content-Length header is required.",
                                   HTTPStatus.LENGTH_REQUIRED)
            if int(length) > MAX_BODY_BYTES:
                self.close_connection = True
                raise RequestError(f"the body exceeds {MAX_BODY_BYTES} bytes.",
                                   HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return self.service.predict(self.rfile.read(int(length)))
        self._handle(action)


class RestServer:
    """Serves one export on `host:port` (port 0 = an ephemeral port) in a thread.

        with RestServer("exports/severity", port=0) as server:
            url = server.url  # http://127.0.0.1:<port>
    """

    def __init__(self, model_dir, name="crisis", host="127.0.0.1", port=8501, quiet=True):
        self.service = PredictionService(load_export(model_dir), name)
        handler = type("Handler", (_Handler,), {"service": self.service, "quiet": quiet})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = None

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def shutdown(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

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
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--verbose", action="store_true", help="log every request on stderr.")
    return p


def main(argv=None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(build_parser(), argv)
    server = RestServer(args.model, args.name, args.host, args.port, quiet=not args.verbose)
    print(f"serving {server.service.loaded.path} as '{args.name}' version "
          f"{server.service.version} at {server.url}/v1/models/{args.name}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
