"""TF Hub backbones (`tfhub:HANDLE_OR_DIR`) as `keras.layers.TFSMLayer`s.

A spec `tfhub:<handle>` names a TF2 SavedModel that `tensorflow_hub.resolve`
locates: a tfhub.dev / Kaggle URL (downloaded once into `TFHUB_CACHE_DIR`) or
a local folder holding `saved_model.pb`. The layers call the SavedModel's
reusable `__call__` (TF Hub's "reusable SavedModel" API), with
`training=True` while fitting when it takes a `training` argument (BERT's
dropout), and fine-tune its trainable variables when `trainable=True`:

- `TFHubTextEncoder` ("text_backbone"): TF Hub's BERT encoder API, inputs
  `input_word_ids`, `input_mask`, `input_type_ids` (int32 `[B, L]`) ->
  `sequence_output` `[B, L, H]`, `pooled_output` `[B, H]`; e_i of eq. 2 is
  then taken by `TextEmbedding` ([CLS] = `sequence_output[:, 0]`, pooled or
  mean). It also accepts the keras-hub names `token_ids`, `padding_mask`,
  `segment_ids`.
- `TFHubTextPreprocessor` ("text_preprocessor"): a TF Hub BERT preprocessor
  (`bert_en_uncased_preprocess` style): strings -> the keras-hub token dict at
  the run's sequence length, with `tokenize` + `bert_pack_inputs(...,
  seq_length=L)` when the SavedModel has them, else its default call (which
  must then give L tokens). Without one, `TFHubTextEncoder.vocabulary` reads
  the encoder's `assets/vocab.txt` for the keras-hub WordPiece preprocessor.
- `TFHubImageModel` ("image_backbone"): `[B, S, S, 3]` floats in [0, 1] (TF
  Hub's image convention) -> f_i of eq. 1: the model's feature map when it
  returns one (rank 4), else its feature vector as a 1 x 1 map `[B, 1, 1, D]`,
  so eq. 3's projection acts on the vector (flatten = average pooling there).

Saving: a `.keras` file stores the handle and the (fine-tuned) variable
values; loading it runs the SavedModel's graph again, which Keras' safe mode
refuses, as for `TFSMLayer`: load with `keras.saving.load_model(path,
safe_mode=False)` (`load_model_safe_mode(config)` says when the project does).
"""

import inspect
import os

import keras
import tensorflow as tf
from keras.src.saving import serialization_lib  # in_safe_mode(), as TFSMLayer reads it

from crisis_keras.models.config import TFHUB_PREFIX, is_tfhub_spec

ENCODER_INPUTS = {"input_word_ids": "token_ids", "input_mask": "padding_mask",
                  "input_type_ids": "segment_ids"}
ENCODER_OUTPUTS = ("sequence_output", "pooled_output")


def tfhub_handle(spec):
    """The handle of a `tfhub:` spec (a URL or a local folder)."""
    if not is_tfhub_spec(spec):
        raise ValueError(f"not a TF Hub spec (expected '{TFHUB_PREFIX}HANDLE_OR_DIR'): {spec!r}.")
    handle = os.fspath(spec)[len(TFHUB_PREFIX):].strip()
    if not handle:
        raise ValueError(f"{spec!r} names no TF Hub handle or folder after '{TFHUB_PREFIX}'.")
    return handle


def offline_hint(handle):
    """How to use a copy of `handle` when the model hubs are unreachable."""
    if "tfhub.dev" in handle:
        download = f"{handle}?tf-hub-format=compressed is a .tar.gz"
    elif "kaggle.com" in handle:
        download = "the model page's Download button, or kagglehub.model_download"
    else:
        download = "from tfhub.dev or Kaggle"
    return (
        "Model hubs may be unreachable (offline): download the model where they are "
        f"reachable ({download}), unpack it into a folder holding saved_model.pb and pass "
        f"that local path: {TFHUB_PREFIX}/path/to/folder."
    )


def resolve_handle(handle):
    """`tensorflow_hub.resolve(handle)`: the local SavedModel folder (downloaded if needed)."""
    handle = tfhub_handle(handle) if is_tfhub_spec(handle) else os.fspath(handle)
    try:
        import tensorflow_hub as hub
    except ImportError as error:
        raise ValueError(
            f"TF Hub backbone {handle!r} needs the tensorflow-hub package (pip install "
            "tensorflow-hub)."
        ) from error
    local = "://" not in handle
    if local and not os.path.exists(handle):
        raise FileNotFoundError(
            f"TF Hub model folder {handle!r} does not exist (expected a SavedModel folder "
            f"holding saved_model.pb). {offline_hint(handle)}"
        )
    try:
        path = hub.resolve(handle)
    except Exception as error:  # urllib errors, OSError, tf errors
        raise ValueError(
            f"could not resolve TF Hub handle {handle!r}: {error}. {offline_hint(handle)}"
        ) from error
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"TF Hub handle {handle!r} resolved to {path!r}, which holds no saved_model.pb "
            "(a TF2 SavedModel is needed; the TF1 Hub format is not supported)."
        )
    return path


def savedmodel_files(handle):
    """The files of the resolved SavedModel (relative path, absolute path), sorted."""
    path = resolve_handle(handle)
    files = []
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            files.append((os.path.relpath(full, path), full))
    return sorted(files)


def _load_text_ops():
    """TF Hub text SavedModels use TF Text ops: register them before loading."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass


def uses_tfhub(config):
    """True when a TrainConfig / ModelConfig (or its dict) names a TF Hub model."""
    values = config if isinstance(config, dict) else vars(config)
    fields = ("text_backbone", "text_preprocessor", "image_backbone")
    return any(is_tfhub_spec(values.get(field)) for field in fields)


def load_model_safe_mode(config):
    """`safe_mode` for `keras.saving.load_model` of a run with `config`: False
    for a run of TF Hub backbones (its SavedModels are the run's own inputs)."""
    return not uses_tfhub(config)


class TFHubLayer(keras.layers.TFSMLayer):
    """A TF Hub SavedModel's `__call__` as a Keras layer (see module doc).

    Args:
        handle: URL or local folder (`tensorflow_hub.resolve`).
        trainable: fine-tune the SavedModel's trainable variables.
        training_argument: pass `training=True` to the SavedModel while fitting
            (its dropout) when its `__call__` takes `training`; False keeps it
            in inference mode throughout (ModelConfig.backbone_dropout = 0).
    """

    def __init__(self, handle, trainable=False, training_argument=True, name=None, **kwargs):
        kwargs.pop("dtype", None)  # the SavedModel computes in its own (float32) dtype
        handle = os.fspath(handle)
        path = resolve_handle(handle)
        _load_text_ops()
        try:
            super().__init__(path, call_endpoint="__call__", trainable=trainable, name=name,
                             dtype="float32", **kwargs)
        except ValueError as error:
            raise ValueError(
                f"TF Hub model {handle!r} is not callable (no __call__): only TF2 "
                f"reusable SavedModels are supported ({error})."
            ) from error
        self.handle = handle
        self.training_argument = bool(training_argument)
        try:
            parameters = inspect.signature(self.call_endpoint_fn).parameters
            self.accepts_training = "training" in parameters
        except (TypeError, ValueError):
            self.accepts_training = False

    def _add_existing_weight(self, weight):
        """Track the SavedModel's variable itself (shared with its graph), named
        without ":0" and "/" (optimizer slots build scope names from it)."""
        variable = keras.Variable(
            initializer=weight, trainable=weight.trainable, dtype=weight.dtype,
            shape=weight.shape, name=weight.name.split(":")[0].replace("/", "_"),
        )
        self._track_variable(variable)

    def call_saved_model(self, inputs, training=False):
        """The SavedModel's `__call__(inputs[, training])`."""
        if not self.accepts_training:
            return self.call_endpoint_fn(inputs)
        training = bool(training) and self.trainable and self.training_argument
        return self.call_endpoint_fn(inputs, training=training)

    def call(self, inputs, training=False):
        return self.call_saved_model(inputs, training)

    def describe(self):
        """One line for the run log: what was loaded and whether it trains."""
        count = sum(int(v.numpy().size) for v in self.trainable_weights)
        total = sum(int(v.numpy().size) for v in self.weights)
        if self.trainable and count:
            state = f"trainable ({count:,} of {total:,} parameters fine-tuned)"
        elif self.trainable:
            state = "frozen: the SavedModel has no trainable variables"
        else:
            state = f"frozen ({total:,} parameters)"
        return f"TF Hub {self.name} {self.handle!r} ({self.filepath}): {state}"

    def get_config(self):
        config = super().get_config()
        for key in ("filepath", "call_endpoint", "call_training_endpoint", "dtype"):
            config.pop(key, None)
        config.update(handle=self.handle, training_argument=self.training_argument)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        if safe_mode is None:  # the scope `keras.saving.load_model(..., safe_mode=...)` sets
            safe_mode = serialization_lib.in_safe_mode()
        if safe_mode is not False:
            raise ValueError(
                f"the model holds the TF Hub SavedModel {config.get('handle')!r} "
                f"({cls.__name__} {config.get('name')!r}); loading it runs that SavedModel's "
                "graph, which Keras' safe mode refuses. If you trust it, load with "
                "keras.saving.load_model(path, safe_mode=False)."
            )
        return cls(**config)


@keras.saving.register_keras_serializable(package="crisis_keras")
class TFHubTextEncoder(TFHubLayer):
    """TF Hub BERT encoder: token dict -> `{"sequence_output", "pooled_output"}` (eq. 2).

    Call: a dict of int `[B, L]` tensors under TF Hub's names (`input_word_ids`,
    `input_mask`, `input_type_ids`) or keras-hub's (`token_ids`,
    `padding_mask`, `segment_ids`).
    """

    def call(self, inputs, training=False):
        feed = {}
        for hub_name, keras_name in ENCODER_INPUTS.items():
            value = inputs.get(hub_name, inputs.get(keras_name))
            if value is None:
                raise ValueError(
                    f"{self.name}: the token inputs need {hub_name!r} (or {keras_name!r}); "
                    f"got {sorted(inputs)}."
                )
            feed[hub_name] = tf.cast(value, tf.int32)
        outputs = self.call_saved_model(feed, training)
        missing = [k for k in ENCODER_OUTPUTS if not isinstance(outputs, dict) or k not in outputs]
        if missing:
            keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ValueError(
                f"TF Hub model {self.handle!r} is not a BERT encoder: its outputs {keys} "
                f"lack {missing} (TF Hub's text encoder API)."
            )
        return {k: tf.cast(outputs[k], tf.float32) for k in ENCODER_OUTPUTS}

    def freeze_pooler(self):
        """Mark the pooler's variables non-trainable (no gradient unless pooling="pooled")."""
        for variable in self.weights:
            if "pooler" in variable.name:
                variable.trainable = False

    def vocabulary(self):
        """(WordPiece tokens of the encoder's vocab file, lowercase) for keras-hub's tokenizer.

        The file: the SavedModel's `vocab_file` asset (TF Model Garden exports),
        else `assets/vocab.txt`. `lowercase`: its `do_lower_case` variable, else
        True unless some token has upper-case letters.
        """
        obj = self._reloaded_obj
        path = None
        if hasattr(obj, "vocab_file") and hasattr(obj.vocab_file, "asset_path"):
            path = obj.vocab_file.asset_path.numpy().decode("utf-8")
        if not path or not os.path.isfile(path):
            path = os.path.join(self.filepath, "assets", "vocab.txt")
        if not os.path.isfile(path):
            raise ValueError(
                f"TF Hub encoder {self.handle!r} ships no WordPiece vocab.txt in its assets: "
                "pass its preprocessor with --text-preprocessor tfhub:HANDLE_OR_DIR."
            )
        with open(path, encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f if line.rstrip("\n")]
        if hasattr(obj, "do_lower_case"):
            lowercase = bool(obj.do_lower_case.numpy())
        else:
            lowercase = not any(t != t.lower() for t in vocab if not t.startswith("["))
        return vocab, lowercase

    def accepts_any_length(self):
        """True if the encoder runs on a shorter batch (2 tokens) too: then
        `TrimToLongest` may cut its input; False for a fixed-length SavedModel."""
        try:
            self.check_sequence_length(2)
        except ValueError:
            return False
        return True

    def check_sequence_length(self, sequence_length):
        """Run the encoder once on `[1, sequence_length]` tokens; a clear error if it cannot."""
        shape = [1, int(sequence_length)]
        feed = {"input_word_ids": tf.zeros(shape, tf.int32), "input_mask": tf.ones(shape, tf.int32),
                "input_type_ids": tf.zeros(shape, tf.int32)}
        try:
            outputs = self.call(feed)
        except Exception as error:
            raise ValueError(
                f"TF Hub encoder {self.handle!r} fails on {sequence_length} tokens: {error}"
            ) from error
        return int(outputs["sequence_output"].shape[-1])


@keras.saving.register_keras_serializable(package="crisis_keras")
class TFHubTextPreprocessor(TFHubLayer):
    """TF Hub BERT preprocessor: strings `[B]` -> `{"token_ids", "padding_mask",
    "segment_ids"}` `[B, sequence_length]` (keras-hub's names, so the serving
    code finds the token inputs as for keras-hub BERT)."""

    def __init__(self, handle, sequence_length=128, name="text_preprocessor", **kwargs):
        kwargs["trainable"] = False
        super().__init__(handle, name=name, **kwargs)
        self.sequence_length = int(sequence_length)
        obj = self._reloaded_obj
        self.packs_inputs = hasattr(obj, "tokenize") and hasattr(obj, "bert_pack_inputs")
        if not self.packs_inputs:
            length = int(self.call(tf.constant(["a"]))["token_ids"].shape[-1])
            if length != self.sequence_length:
                raise ValueError(
                    f"TF Hub preprocessor {self.handle!r} gives {length} tokens and has no "
                    f"bert_pack_inputs to change that: use --sequence-length {length}."
                )

    def _pack(self, tokens):
        pack = self._reloaded_obj.bert_pack_inputs
        try:
            return pack([tokens], seq_length=tf.constant(self.sequence_length, tf.int32))
        except (TypeError, ValueError):  # traced with a Python seq_length
            return pack([tokens], seq_length=self.sequence_length)

    def call(self, inputs, training=False):
        if self.packs_inputs:
            packed = self._pack(self._reloaded_obj.tokenize(inputs))
        else:
            packed = self.call_saved_model(inputs)
        return {
            "token_ids": tf.cast(packed["input_word_ids"], tf.int32),
            "padding_mask": tf.cast(packed["input_mask"], tf.bool),
            "segment_ids": tf.cast(packed["input_type_ids"], tf.int32),
        }

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        config["sequence_length"] = self.sequence_length
        return config


def _image_output(outputs, key):
    if not isinstance(outputs, dict):
        return outputs
    return outputs[key]


@keras.saving.register_keras_serializable(package="crisis_keras")
class TFHubImageModel(TFHubLayer):
    """TF Hub image model: `[B, S, S, 3]` in [0, 1] -> f_i `[B, h, w, C]` (eq. 1).

    A feature-vector model's `[B, D]` becomes `[B, 1, 1, D]` (see module doc).
    Args: `image_size` S (checked against a fixed input size of the model);
    `output_key`: which output of a dict-returning model (default: the rank-4
    one, else the only or "default" one).
    """

    def __init__(self, handle, image_size=224, output_key=None, name="image_backbone", **kwargs):
        super().__init__(handle, name=name, **kwargs)
        self.image_size = int(image_size)
        self._check_input_size()
        size = self.image_size
        outputs = self.call_saved_model(tf.zeros([1, size, size, 3], tf.float32))
        self.output_key = output_key or self._choose_output(outputs)
        output = _image_output(outputs, self.output_key)
        rank = len(output.shape)
        if rank == 4:
            self.feature_shape = tuple(int(d) for d in output.shape[1:])
        elif rank == 2:
            self.feature_shape = (1, 1, int(output.shape[-1]))
        else:
            raise ValueError(
                f"TF Hub image model {self.handle!r} returns shape {tuple(output.shape)}: "
                "expected a feature map [B, H, W, C] or a feature vector [B, D]."
            )

    def _check_input_size(self):
        for concrete in getattr(self.call_endpoint_fn, "concrete_functions", ()):
            args = concrete.structured_input_signature[0]
            spec = args[0] if args else None
            shape = getattr(spec, "shape", None)
            if shape is not None and len(shape) == 4:
                h, w = shape[1], shape[2]
                if h is not None and w is not None and (h, w) != (self.image_size, self.image_size):
                    raise ValueError(
                        f"TF Hub image model {self.handle!r} takes {h}x{w} images: use "
                        f"--image-size {h}."
                    )

    def _choose_output(self, outputs):
        if not isinstance(outputs, dict):
            return None
        keys = sorted(outputs)
        maps = [k for k in keys if len(outputs[k].shape) == 4]
        if maps:
            return "feature_map" if "feature_map" in maps else maps[0]
        for key in ("default", "feature_vector"):
            if key in outputs:
                return key
        if len(keys) == 1:
            return keys[0]
        raise ValueError(
            f"TF Hub image model {self.handle!r} returns {keys}: none is a feature map and "
            "none is named 'default' or 'feature_vector'."
        )

    def call(self, inputs, training=False):
        output = tf.cast(_image_output(self.call_saved_model(inputs, training), self.output_key),
                         tf.float32)
        if len(output.shape) == 2:
            output = tf.reshape(output, [-1, *self.feature_shape])
        return output

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.feature_shape)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, output_key=self.output_key)
        return config


def tfhub_layers(model):
    """The `TFHubLayer`s of `model` (nested models included)."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, TFHubLayer):
            found.append(layer)
    return found
