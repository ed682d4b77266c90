"""TF Serving's predict protocol (JSON in, JSON out) over a loaded export, without HTTP.

`PredictionService.predict(body)` parses a request body, checks it against
the `Limits` before anything large is built (rows counted before any value
is converted, each image's header read before any pixel is decoded, texts
checked for UTF-8 and length), calls the signature, and returns the JSON
response. A bad request raises `RequestError`, whose `status` is 400 for a
malformed request and 413 for one above a limit, with a message naming the
field and row.
"""

import base64
import binascii
import re
from http import HTTPStatus

import numpy as np
import tensorflow as tf

from crisis_keras.serving import strict_json
from crisis_keras.serving.image_limits import ImageHeaderError, ImageTooLarge, check_image
from crisis_keras.serving.limits import Limits
from crisis_keras.serving.loading import error_summary
from crisis_keras.serving.text_limits import TextRejected, TextTooLong, check_text

_TF_PREFIX = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$")


class RequestError(Exception):
    """A client error: answered with `status` and `{"error": message}`."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def _too_large(message):
    return RequestError(message, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


def _check_fields(obj, names, where):
    """RequestError unless `obj` has exactly the fields `names`."""
    missing = [n for n in names if n not in obj]
    extra = sorted(set(obj) - set(names))
    if missing:
        raise RequestError(f"{where} lacks field(s) {missing}.")
    if extra:
        raise RequestError(f"{where} has unknown field(s) {extra}; expected {names}.")


def _tf_message(err):
    return _TF_PREFIX.sub("", error_summary(err)).strip()


def _to_json(array):
    if array.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                for v in array.tolist()]
    return array.tolist()


class PredictionService:
    """The protocol logic for one loaded export (`loading.LoadedExport`)."""

    def __init__(self, loaded, name="crisis", limits=None):
        self.loaded = loaded
        self.name = name
        self.version = loaded.version
        self.limits = limits or Limits()
        self.signatures = {
            key: fn for key, fn in loaded.signatures.items() if key != "metadata"
        }

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
            request = strict_json.loads(body, "the request body")
        except strict_json.JSONError as err:
            raise RequestError(f"{err}.") from None
        if not isinstance(request, dict):
            raise RequestError("the request body must be a JSON object.")
        signature = request.get("signature_name", "serving_default")
        if not isinstance(signature, str):
            raise RequestError(f"'signature_name' must be a string, got "
                               f"{type(signature).__name__}.")
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
        raw, pixels = {}, 0
        for name, values in columns.items():
            raw[name], used = self._convert(name, values, specs[name], bool(optional))
            pixels += used
        if pixels > self.limits.max_request_pixels:
            raise _too_large(
                f"the request's images declare {pixels:,} pixels in all, above the limit of "
                f"{self.limits.max_request_pixels:,} (--max-request-pixels); send fewer "
                "images a request.")
        tensors = {name: tf.constant(value) if isinstance(value, np.ndarray)
                   else tf.constant(value, dtype=tf.string) for name, value in raw.items()}
        try:
            outputs = fn(**tensors)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
            culprit = self._undecodable(raw)
            raise RequestError(culprit or f"the model rejected the input: "
                               f"{_tf_message(err)}") from None
        outputs = {k: _to_json(v.numpy()) for k, v in outputs.items()}
        if row_format:
            rows = len(next(iter(outputs.values())))
            return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(rows)]}
        return {"outputs": outputs}

    def _check_rows(self, rows, where):
        if rows > self.limits.max_instances:
            raise _too_large(f"{where} has {rows:,} rows; this server takes at most "
                             f"{self.limits.max_instances:,} a request (--max-instances).")

    def _columns_from_instances(self, instances, specs, optional=()):
        if not isinstance(instances, list) or not instances:
            raise RequestError("'instances' must be a non-empty list.")
        self._check_rows(len(instances), "'instances'")
        names = sorted(specs)
        if len(names) == 1 and not all(isinstance(x, dict) and names[0] in x for x in instances):
            return {names[0]: instances}
        columns = {name: [] for name in names}
        for i, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise RequestError(f"instances[{i}] must be an object with keys {names}, "
                                   f"got {type(instance).__name__}.")
            absent = [n for n in optional if n not in instance]
            _check_fields({n: None for n in absent} | instance, names, f"instances[{i}]")
            for name in names:
                columns[name].append(instance.get(name))
        return columns

    def _columns_from_inputs(self, inputs, specs, optional=()):
        names = sorted(specs)
        if not isinstance(inputs, dict):
            if len(names) == 1:
                inputs = {names[0]: inputs}
            else:
                raise RequestError(f"'inputs' must be an object with keys {names}, got "
                                   f"{type(inputs).__name__}.")
        for name, values in inputs.items():
            if isinstance(values, list):
                self._check_rows(len(values), f"inputs[{name!r}]")
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

    def _convert(self, name, values, spec, missing_ok=False):
        """(list of bytes or a numpy array, pixels its images declare) of one input."""
        if spec.dtype != tf.string:
            try:
                array = np.asarray(values, dtype=spec.dtype.as_numpy_dtype)
            except (TypeError, ValueError, OverflowError) as err:
                raise RequestError(f"{name}: not a rectangular array of {spec.dtype.name} "
                                   f"({err}).") from None
            if not spec.shape.is_compatible_with(array.shape):
                raise RequestError(f"{name}: shape {list(array.shape)} does not match "
                                   f"{spec.shape.as_list()} (None = any).")
            return array, 0
        out, pixels, is_image = [], 0, name.endswith("_bytes")
        for i, value in enumerate(values):
            data = self._value_bytes(name, i, value, missing_ok)
            if is_image and data:
                pixels += self._image_pixels(name, i, data)
            elif not is_image:
                data = self._text(name, i, data)
            if not (data if is_image else data.strip()) and not missing_ok:
                what = "an image" if is_image else "a text"
                raise RequestError(
                    f"{name}[{i}] is empty: this model was trained without modality "
                    f"dropout and needs {what} for every row (a model trained with "
                    f"--missing-{'image' if is_image else 'text'}-rate > 0 takes posts "
                    "without one).")
            out.append(data)
        return out, pixels

    @staticmethod
    def _value_bytes(name, i, value, missing_ok):
        """The bytes (base64 decoded) or str of one string-input value."""
        if value is None and missing_ok:
            return b""  # absent: the model's missing-modality stand-in
        if isinstance(value, dict):
            if set(value) != {"b64"} or not isinstance(value["b64"], str):
                raise RequestError(f"{name}[{i}]: expected {{\"b64\": \"...\"}}.")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError) as err:
                raise RequestError(f"{name}[{i}]: invalid base64 ({err}).") from None
        if isinstance(value, str) and not name.endswith("_bytes"):
            return value
        if value == "" and missing_ok:
            return b""
        if name.endswith("_bytes"):
            raise RequestError(
                f"{name}[{i}]: binary inputs (names ending in _bytes) must be "
                "base64 objects {\"b64\": \"...\"}, got " + type(value).__name__ + ".")
        raise RequestError(f"{name}[{i}]: expected a string, got {type(value).__name__}.")

    def _text(self, name, i, value):
        try:
            return check_text(value, self.limits.max_text_chars)
        except TextTooLong as err:
            raise _too_large(f"{name}[{i}] {err}.") from None
        except TextRejected as err:
            raise RequestError(f"{name}[{i}] {err}.") from None

    def _image_pixels(self, name, i, data):
        try:
            return check_image(data, self.limits.max_pixels)
        except ImageTooLarge as err:
            raise _too_large(f"{name}[{i}]: {err}.") from None
        except ImageHeaderError as err:
            raise RequestError(f"{name}[{i}]: the image does not decode: {err}.") from None

    @staticmethod
    def _undecodable(raw):
        """`"image_bytes[i]: ..."` for the first image TensorFlow cannot decode, or None."""
        from crisis_keras.data.images import decode_image

        for name, values in raw.items():
            if not name.endswith("_bytes") or isinstance(values, np.ndarray):
                continue
            for i, data in enumerate(values):
                if not data:
                    continue
                try:
                    decode_image(tf.constant(data))
                except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
                    return f"{name}[{i}]: the image does not decode: {_tf_message(err)}"
        return None
