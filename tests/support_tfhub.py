"""Test support: tiny SavedModels in TF Hub's formats, written with plain TensorFlow.

- `save_bert_encoder`: the BERT encoder API of TF Hub
  (https://www.tensorflow.org/hub/common_saved_model_apis/text): a reusable
  `__call__(inputs, training)` on `{"input_word_ids", "input_mask",
  "input_type_ids"}` (int32 `[B, L]`) returning `pooled_output` `[B, H]`,
  `sequence_output` `[B, L, H]` (halved with `training=True`, a stand-in for
  dropout) and `encoder_outputs` (a list), trainable
  variables, a `serving_default` signature, `vocab_file` (assets/vocab.txt)
  and `do_lower_case`, as TF Model Garden's export_tfhub writes them.
- `save_bert_preprocessor`: the matching preprocessor: `__call__(strings)` ->
  the three int32 inputs at `default_seq_length`, plus `tokenize` and
  `bert_pack_inputs(segments, seq_length=...)` (TF Text WordPiece).
- `save_image_model`: an image feature-vector model (`[B, H, W, 3]` floats in
  [0, 1] -> `[B, D]`) or, with `feature_map=True`, a feature-map model
  (-> `[B, H/4, W/4, D]`); `size` fixes its input size, as many TF Hub image
  models do.
"""

from pathlib import Path

import tensorflow as tf

from crisis_keras.models.tiny_vocabulary import tiny_vocabulary

INT_SPEC = tf.TensorSpec([None, None], tf.int32)
ENCODER_SPEC = {"input_word_ids": INT_SPEC, "input_mask": INT_SPEC, "input_type_ids": INT_SPEC}


def _normal(generator, shape, scale=0.5):
    return generator.normal(shape) * scale


class _BertEncoder(tf.Module):
    """Embeddings -> one tanh layer (masked) = sequence_output; tanh pooler on [CLS]."""

    def __init__(self, vocab_file, vocab_size, hidden, max_length, seed):
        super().__init__(name="tiny_tfhub_bert")
        g = tf.random.Generator.from_seed(seed)
        self.word_embeddings = tf.Variable(_normal(g, [vocab_size, hidden]), name="word_embeddings")
        self.type_embeddings = tf.Variable(_normal(g, [2, hidden]), name="type_embeddings")
        self.position_embeddings = tf.Variable(_normal(g, [max_length, hidden]),
                                               name="position_embeddings")
        self.transform_kernel = tf.Variable(_normal(g, [hidden, hidden]), name="transform/kernel")
        self.pooler_kernel = tf.Variable(_normal(g, [hidden, hidden]),
                                         name="pooler_transform/kernel")
        self.vocab_file = tf.saved_model.Asset(str(vocab_file))
        self.do_lower_case = tf.Variable(True, trainable=False, name="do_lower_case")

    def _encode(self, inputs):
        ids = inputs["input_word_ids"]
        mask = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]
        length = tf.shape(ids)[1]
        x = (tf.gather(self.word_embeddings, ids)
             + tf.gather(self.type_embeddings, inputs["input_type_ids"])
             + self.position_embeddings[:length][None])
        sequence = tf.tanh(tf.einsum("blh,hk->blk", x, self.transform_kernel)) * mask
        pooled = tf.tanh(tf.matmul(sequence[:, 0], self.pooler_kernel))
        return {"pooled_output": pooled, "sequence_output": sequence}

    @tf.function
    def __call__(self, inputs, training=False):
        outputs = self._encode(inputs)
        if training:  # a deterministic stand-in for BERT's dropout
            outputs["sequence_output"] = 0.5 * outputs["sequence_output"]
        return {**outputs, "encoder_outputs": [outputs["sequence_output"]]}

    @tf.function(input_signature=[INT_SPEC, INT_SPEC, INT_SPEC])
    def serve(self, input_word_ids, input_mask, input_type_ids):
        return self._encode({"input_word_ids": input_word_ids, "input_mask": input_mask,
                             "input_type_ids": input_type_ids})


def write_vocab(path, vocab=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(t + "\n" for t in (vocab or tiny_vocabulary())), encoding="utf-8")
    return path


def save_bert_encoder(path, vocab=None, hidden=16, max_length=128, seed=0) -> Path:
    """A trainable tiny BERT encoder SavedModel at `path` (see module doc)."""
    vocab = vocab or tiny_vocabulary()
    path = Path(path)
    vocab_file = write_vocab(path.parent / f"{path.name}-vocab" / "vocab.txt", vocab)
    module = _BertEncoder(vocab_file, len(vocab), hidden, max_length, seed)
    for training in (False, True):
        module.__call__.get_concrete_function(ENCODER_SPEC, training=training)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


class _Packer(tf.Module):
    """`bert_pack_inputs(segments, seq_length)`: [CLS] a [SEP] (b [SEP]), padded."""

    def __init__(self, cls_id, sep_id, default_seq_length):
        super().__init__(name="bert_pack_inputs")
        self.cls_id, self.sep_id = int(cls_id), int(sep_id)
        default = int(default_seq_length)

        @tf.function
        def pack(inputs, seq_length=default):
            import tensorflow_text as text

            segments = [t.merge_dims(-2, -1) if t.ragged_rank == 2 else t for t in inputs]
            budget = seq_length - len(segments) - 1  # [CLS] and one [SEP] per segment
            trimmed = text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
            ids, types = text.combine_segments(
                trimmed, start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id
            )
            word_ids, mask = text.pad_model_inputs(ids, max_seq_length=seq_length)
            type_ids, _ = text.pad_model_inputs(types, max_seq_length=seq_length)
            return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}

        self.__call__ = pack
        for ragged_rank in (1, 2):
            spec = tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32, ragged_rank=ragged_rank)
            pack.get_concrete_function([spec], seq_length=tf.TensorSpec([], tf.int32))


class _Preprocessor(tf.Module):
    def __init__(self, vocab, default_seq_length, pack_inputs):
        super().__init__(name="tiny_tfhub_preprocess")
        import tensorflow_text as text

        ids = tf.range(len(vocab), dtype=tf.int64)
        self.table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(vocab), ids), num_oov_buckets=1
        )
        self._tokenizer = text.BertTokenizer(self.table, token_out_type=tf.int32, lower_case=True)
        self._default = int(default_seq_length)
        self._packer = _Packer(vocab.index("[CLS]"), vocab.index("[SEP]"), default_seq_length)
        string_spec = tf.TensorSpec([None], tf.string)
        self.tokenize = tf.function(self._tokenizer.tokenize, input_signature=[string_spec])
        if pack_inputs:
            self.bert_pack_inputs = self._packer
        self.__call__ = tf.function(
            lambda sentences: self._packer.__call__(
                [self._tokenizer.tokenize(sentences)], self._default),
            input_signature=[string_spec],
        )


def save_bert_preprocessor(path, vocab=None, default_seq_length=128, pack_inputs=True) -> Path:
    """A TF Text WordPiece preprocessor SavedModel at `path` (see module doc)."""
    module = _Preprocessor(vocab or tiny_vocabulary(), default_seq_length, pack_inputs)
    tf.saved_model.save(module, str(path))
    return Path(path)


class _ImageModel(tf.Module):
    def __init__(self, dim, feature_map, seed, size):
        super().__init__(name="tiny_tfhub_image")
        g = tf.random.Generator.from_seed(seed)
        self.kernel = tf.Variable(_normal(g, [3, dim], 1.0), name="kernel")
        self.feature_map = bool(feature_map)
        spec = tf.TensorSpec([None, size, size, 3], tf.float32)
        self.__call__ = tf.function(self._features, input_signature=[spec])

    def _features(self, images):
        if self.feature_map:
            x = tf.nn.avg_pool2d(images, 4, 4, "SAME")
            return tf.tanh(tf.einsum("bhwc,cd->bhwd", x - 0.5, self.kernel))
        return tf.tanh(tf.matmul(tf.reduce_mean(images, axis=[1, 2]) - 0.5, self.kernel))


def save_image_model(path, dim=8, feature_map=False, seed=0, size=None) -> Path:
    """An image feature-vector (or feature-map) SavedModel at `path`; `size`: a
    fixed input size (None: any)."""
    module = _ImageModel(dim, feature_map, seed, size)
    tf.saved_model.save(module, str(path),
                        signatures={"serving_default": module.__call__.get_concrete_function()})
    return Path(path)
