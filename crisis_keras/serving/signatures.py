"""The `tf.Module` saved by `crisis_keras.export` and its signatures.

`serving_default(text, image_bytes)`: a batch of raw tweets (tf.string `[B]`)
and encoded JPEG/PNG/GIF/BMP images (tf.string `[B]`). Inside the graph, in
the very same ops as evaluation: `crisis_keras.data.images.preprocess_for_eval`
(decode, shortest side -> `resize_to`, center `image_size` crop) and the
model's own `tweet_normalization` + `text_preprocessor` layers (section 4.5).
Returns `probabilities` float32 `[B, C]`, `class_id` int32 `[B]` and
`class_name` tf.string `[B]`.

`token_ids(token_ids, padding_mask, segment_ids, image_bytes)`: the same model
from the BERT preprocessor's outputs on (int32 `[B, L]` each; `padding_mask`
1 for real tokens, 0 for padding), so it contains no TF Text op. The keras
sub-model is built from the functional graph's intermediate tensors (the
inputs of the `text_backbone` layer), sharing every weight with the full model.

`metadata()`: `class_names` `[C]`, `task`, `config_json` (the run's
config.json text), `image_size`, `resize_to`, `sequence_length`.

Only the modalities the model takes appear as inputs (a text-only model has no
`image_bytes`, an image-only model no `text` and no `token_ids` signature).

Missing modalities (issue 13). For a model trained with modality dropout (a
`modality_mask` input), an empty `image_bytes` means "no image" (it is not
decoded) and an empty or blank `text` "no text" (in `token_ids`: no token
but [CLS] and [SEP]); both signatures then also return `missing`, tf.string
`[B]`: "", "image" or "text". A row with neither is an InvalidArgumentError.
A model trained without it keeps the signatures above: an empty image fails
to decode (InvalidArgumentError), as any undecodable one.
"""

import json

import keras
import tensorflow as tf

from crisis_keras.data.images import preprocess_batch_for_eval, preprocess_for_eval
from crisis_keras.models.crisis_model import MODALITY_MASK, model_input_names

TOKEN_INPUTS = ("token_ids", "padding_mask", "segment_ids")
SIGNATURE_SERVING = "serving_default"
SIGNATURE_TOKEN_IDS = "token_ids"
SIGNATURE_METADATA = "metadata"


def _model_input(model, name):
    if isinstance(model.input, dict):
        return model.input[name]
    for tensor in model.inputs:
        if tensor.name == name:
            return tensor
    raise KeyError(name)


def token_tensors(model):
    """The `text_backbone` layer's input KerasTensors, by name.

    These are the `text_preprocessor` outputs (`token_ids`, `padding_mask`,
    `segment_ids`, fixed length L) as the backbone receives them, or as a
    `TrimToLongest` layer receives them before it cuts them for the backbone
    (so the `token_ids` signature keeps its fixed-length inputs).
    """
    try:
        backbone = model.get_layer("text_backbone")
    except ValueError as err:
        raise ValueError(f"model {model.name!r} has no 'text_backbone' layer.") from err
    nodes = [n for n in backbone._inbound_nodes if n.arguments.args]
    if not nodes:
        raise ValueError("the 'text_backbone' layer is not called in the model graph.")
    tokens = nodes[0].arguments.args[0]
    if not isinstance(tokens, dict) or set(TOKEN_INPUTS) - set(tokens):
        raise ValueError(
            f"'text_backbone' is called on {tokens!r}, not a dict with {TOKEN_INPUTS}."
        )
    tokens = _before_trim(tokens)
    return {name: tokens[name] for name in TOKEN_INPUTS}


def _before_trim(tokens):
    """The inputs of the `TrimToLongest` layer that produced `tokens`, else `tokens`."""
    from crisis_keras.layers.sequence_trim import TrimToLongest

    history = getattr(tokens["token_ids"], "_keras_history", None)
    layer = history.operation if history is not None else None
    if not isinstance(layer, TrimToLongest):
        return tokens
    source = layer._inbound_nodes[history.node_index].arguments.args[0]
    return source if set(TOKEN_INPUTS) <= set(source) else tokens


def token_ids_submodel(model):
    """`keras.Model` from (token_ids, padding_mask, segment_ids[, image][, sse_label]).

    Same layers and weights as `model`, minus `tweet_normalization` and
    `text_preprocessor` (whose TF Text ops need `tensorflow_text`).
    """
    tokens = token_tensors(model)
    names = model_input_names(model)
    inputs = [tokens[name] for name in TOKEN_INPUTS]
    rest = [name for name in ("image", "sse_label", MODALITY_MASK) if name in names]
    inputs += [_model_input(model, name) for name in rest]
    outputs = model.output
    sub = keras.Model(inputs, outputs, name=f"{model.name}_from_token_ids")
    return sub, list(TOKEN_INPUTS) + rest


def sequence_length(model):
    return int(token_tensors(model)["token_ids"].shape[-1])


def vocabulary(model):
    """The WordPiece vocabulary of the model's `text_preprocessor`, or None."""
    try:
        preprocessor = model.get_layer("text_preprocessor")
    except ValueError:
        return None
    tokenizer = getattr(preprocessor, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "get_vocabulary"):
        return None
    return list(tokenizer.get_vocabulary())


class ServingModule(tf.Module):
    """Holds the keras model (weights saved once) and the serving functions.

    Args:
        model: the trained functional keras model (`text`/`image`[/`sse_label`] inputs).
        class_names: class names in class-id order.
        task: task name.
        config_json: the run's config.json text.
        image_size, resize_to: the run's evaluation image geometry.
        text_ops: True = full export (`serving_default` on raw text + `token_ids`);
            False = token-ids export: `serving_default` IS the token-ids
            function and the module holds no TF Text op.
        assets: {file name: path} copied into the SavedModel's assets/.
    """

    def __init__(self, model, class_names, task, config_json, image_size, resize_to,
                 text_ops=True, assets=None):
        super().__init__(name="crisis_serving")
        names = model_input_names(model)
        self.modalities = tuple(m for m in ("text", "image") if m in names)
        if not self.modalities:
            raise ValueError(f"model inputs {names} have neither 'text' nor 'image'.")
        self.image_size = int(image_size)
        self.resize_to = int(resize_to)
        self._class_names_list = [str(c) for c in class_names]
        num_classes = int(model.output.shape[-1])
        if num_classes != len(self._class_names_list):
            raise ValueError(
                f"the model has {num_classes} outputs but there are "
                f"{len(self._class_names_list)} class names {self._class_names_list}."
            )
        # tf.constant attributes are not saved by tf.saved_model.save: keep the
        # metadata as (non-trainable) string/int variables, readable as
        # `loaded.class_names.numpy()` etc., plus the `metadata` signature.
        self.class_names = tf.Variable(self._class_names_list, trainable=False, name="class_names")
        self.task = tf.Variable(str(task), trainable=False, name="task")
        self.config_json = tf.Variable(config_json, trainable=False, name="config_json")
        self.has_text = "text" in self.modalities
        # trained with modality dropout: empty inputs are "missing" (module doc)
        self.missing_modalities = MODALITY_MASK in names
        self.sequence_length = sequence_length(model) if self.has_text else 0
        self.assets = {
            key.replace(".", "_"): tf.saved_model.Asset(str(path))
            for key, path in (assets or {}).items()
        }
        self.text_ops = bool(text_ops) or not self.has_text
        # Only what the signatures use is tracked (and saved): the token-ids
        # export must not reference the text preprocessor's TF Text state.
        if self.text_ops:
            self.model = model
        else:
            self._untracked_model = lambda: model  # a closure: never tracked
        if self.has_text:
            self.token_model, self._token_input_names = token_ids_submodel(model)
        self._build_functions()

    def _keras_model(self):
        return self.model if self.text_ops else self._untracked_model()

    # -- graph pieces ---------------------------------------------------------------
    def _images(self, image_bytes):
        return preprocess_batch_for_eval(image_bytes, self.resize_to, self.image_size)

    def _images_or_blank(self, image_bytes, present):
        """`_images` for present rows; zeros (never decoded) for missing ones."""
        size = self.image_size

        def one(args):
            data, ok = args
            return tf.cond(
                ok,
                lambda: preprocess_for_eval(data, self.resize_to, size),
                lambda: tf.zeros([size, size, 3], tf.float32),
            )

        return tf.map_fn(
            one, (image_bytes, present),
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )

    @staticmethod
    def _presence(image_bytes, text_present):
        """(image_present, text_present, check): a row needs one of the two."""
        image_present = tf.strings.length(image_bytes) > 0
        check = tf.debugging.assert_equal(
            tf.logical_or(image_present, text_present), True,
            message="a row has neither text nor an image (both empty); send at least one",
        )
        return image_present, text_present, check

    @staticmethod
    def _modality_mask(image_present, text_present):
        return tf.cast(tf.stack([image_present, text_present], axis=-1), tf.float32)

    @staticmethod
    def _missing(image_present, text_present):
        """tf.string `[B]`: "image", "text" or "" (nothing missing)."""
        return tf.where(
            image_present, tf.where(text_present, tf.constant(""), tf.constant("text")),
            tf.constant("image"),
        )

    def _outputs(self, probabilities, presence=None):
        probabilities = tf.cast(probabilities, tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        class_name = tf.gather(self.class_names, class_id)
        out = {"probabilities": probabilities, "class_id": class_id, "class_name": class_name}
        if presence is not None:
            out["missing"] = self._missing(*presence)
        return out

    @staticmethod
    def _same_batch(tensors):
        first = tf.shape(tensors[0])[0]
        checks = [
            tf.debugging.assert_equal(
                tf.shape(t)[0], first,
                message="all inputs must have the same batch size (number of rows)",
            )
            for t in tensors[1:]
        ]
        return first, checks

    def _sse(self, names, batch):
        return tf.fill([batch], tf.constant(-1, tf.int32)) if "sse_label" in names else None

    def _build_functions(self):
        string_spec = tf.TensorSpec([None], tf.string)
        int_spec = tf.TensorSpec([None, self.sequence_length], tf.int32)
        model = self.model if self.text_ops else None
        model_names = model_input_names(self._keras_model())

        def run_raw(text=None, image_bytes=None):
            given = [t for t in (text, image_bytes) if t is not None]
            batch, checks = self._same_batch(given)
            presence = None
            if self.missing_modalities:
                with tf.control_dependencies(checks):  # equal batches first
                    text_present = tf.strings.length(tf.strings.strip(text)) > 0
                    *presence, check = self._presence(image_bytes, text_present)
                checks.append(check)
            with tf.control_dependencies(checks):
                features = {}
                if text is not None:
                    features["text"] = tf.identity(text)
                if presence is not None:
                    features["image"] = self._images_or_blank(image_bytes, presence[0])
                    features[MODALITY_MASK] = self._modality_mask(*presence)
                elif image_bytes is not None:
                    features["image"] = self._images(image_bytes)
                if "sse_label" in model_names:
                    features["sse_label"] = self._sse(model_names, batch)
                return self._outputs(model(features, training=False), presence)

        def run_tokens(token_ids, padding_mask, segment_ids, image_bytes=None):
            given = [token_ids, padding_mask, segment_ids]
            if image_bytes is not None:
                given.append(image_bytes)
            batch, checks = self._same_batch(given)
            presence = None
            if self.missing_modalities:
                with tf.control_dependencies(checks):  # equal batches first
                    # an empty text tokenizes to [CLS] [SEP] only
                    words = tf.reduce_sum(
                        tf.cast(tf.cast(padding_mask, tf.bool), tf.int32), axis=-1
                    )
                    *presence, check = self._presence(image_bytes, words > 2)
                checks.append(check)
            with tf.control_dependencies(checks):
                values = {
                    "token_ids": tf.identity(token_ids),
                    "padding_mask": tf.cast(padding_mask, tf.bool),
                    "segment_ids": segment_ids,
                }
                if presence is not None:
                    values["image"] = self._images_or_blank(image_bytes, presence[0])
                    values[MODALITY_MASK] = self._modality_mask(*presence)
                elif image_bytes is not None:
                    values["image"] = self._images(image_bytes)
                if "sse_label" in self._token_input_names:
                    values["sse_label"] = self._sse(self._token_input_names, batch)
                inputs = [values[name] for name in self._token_input_names]
                return self._outputs(self.token_model(inputs, training=False), presence)

        has_image = "image" in self.modalities
        if self.has_text and has_image:
            raw = tf.function(
                lambda text, image_bytes: run_raw(text, image_bytes),
                input_signature=[string_spec, string_spec],
            )
            tokens = tf.function(
                lambda token_ids, padding_mask, segment_ids, image_bytes: run_tokens(
                    token_ids, padding_mask, segment_ids, image_bytes
                ),
                input_signature=[int_spec, int_spec, int_spec, string_spec],
            )
        elif self.has_text:
            raw = tf.function(lambda text: run_raw(text=text), input_signature=[string_spec])
            tokens = tf.function(
                lambda token_ids, padding_mask, segment_ids: run_tokens(
                    token_ids, padding_mask, segment_ids
                ),
                input_signature=[int_spec, int_spec, int_spec],
            )
        else:
            raw = tf.function(
                lambda image_bytes: run_raw(image_bytes=image_bytes),
                input_signature=[string_spec],
            )
            tokens = None

        metadata_values = {
            "class_names": self.class_names,
            "task": self.task,
            "config_json": self.config_json,
        }
        ints = {
            "image_size": self.image_size if has_image else 0,
            "resize_to": self.resize_to if has_image else 0,
            "sequence_length": self.sequence_length,
        }

        def metadata():
            out = {k: tf.identity(v) for k, v in metadata_values.items()}
            out.update({k: tf.constant(v, tf.int32) for k, v in ints.items()})
            return out

        self.metadata = tf.function(metadata, input_signature=[])
        if self.text_ops:
            self.serve = raw
            self.serve_token_ids = tokens
        else:
            self.serve = tokens
            self.serve_token_ids = tokens

    def signatures(self):
        """{signature name: concrete function} for `tf.saved_model.save`."""
        sigs = {SIGNATURE_SERVING: self.serve.get_concrete_function()}
        if self.serve_token_ids is not None:
            sigs[SIGNATURE_TOKEN_IDS] = self.serve_token_ids.get_concrete_function()
        sigs[SIGNATURE_METADATA] = self.metadata.get_concrete_function()
        return sigs


def config_text(config_dict):
    return json.dumps(config_dict, indent=2, sort_keys=True)
