"""MultimodalBitransformer and ImageRegionPooling (MMBT, Kiela et al. 2019;
section 4.3's baseline): image embeddings as BERT input tokens. Checked against BertBackbone's own
forward pass and an explicit reference of the MMBT sequence; config and
.keras round trip."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from crisis_keras.layers import ImageRegionPooling, MultimodalBitransformer
from crisis_keras.layers.multimodal_bitransformer import region_bounds

CLS, SEP, PAD = 2, 3, 0
HIDDEN = 8
# two tweets of length L = 7: [CLS] t1 .. [SEP] [PAD] ...
TOKEN_IDS = np.array([[CLS, 11, 12, 13, SEP, PAD, PAD], [CLS, 21, 22, SEP, PAD, PAD, PAD]], "int32")
PADDING = (TOKEN_IDS != PAD).astype("int32")
# MMBT's text: no [CLS], no closing [SEP] (masked), no padding
TEXT_MASK = ((TOKEN_IDS != PAD) & (TOKEN_IDS != SEP))[:, 1:].astype("int32")
N = 3


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _backbone(seed=0):
    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone(
        vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=HIDDEN,
        intermediate_dim=16, max_sequence_length=32, dropout=0.0,
    )


def _tokens():
    return {"token_ids": TOKEN_IDS, "padding_mask": PADDING, "segment_ids": np.zeros_like(TOKEN_IDS)}


def _images(seed=1):
    return np.random.default_rng(seed).normal(size=(2, N, HIDDEN)).astype("float32")


def test_equals_bert_on_the_token_sequence_when_images_are_word_embeddings():
    # With zero position embeddings (positions out of the picture), image
    # embeddings that are the embeddings of words w_1..w_N make MMBT's input
    # [CLS] w_1..w_N [SEP] t_1 .. t_k (segments 0..0 1..1; the text's own
    # [SEP] masked like padding): BertBackbone's own forward pass on those ids
    # must give the same outputs.
    backbone = _backbone()
    table = backbone.position_embedding.position_embeddings
    table.assign(np.zeros(table.shape, "float32"))
    words = np.array([[5, 6, 7], [8, 9, 10]], "int32")
    images = _np(backbone.token_embedding(words))
    layer = MultimodalBitransformer(backbone, CLS, SEP)
    out = layer(_tokens(), images)

    ids = np.concatenate([np.full((2, 1), CLS), words, np.full((2, 1), SEP), TOKEN_IDS[:, 1:]], axis=1)
    segments = np.concatenate([np.zeros((2, N + 2)), np.ones((2, TOKEN_IDS.shape[1] - 1))], axis=1)
    mask = np.concatenate([np.ones((2, N + 2)), TEXT_MASK], axis=1)
    ref = backbone({"token_ids": ids.astype("int32"), "segment_ids": segments.astype("int32"),
                    "padding_mask": mask.astype("int32")})
    assert out["sequence_output"].shape == (2, N + 2 + TOKEN_IDS.shape[1] - 1, HIDDEN)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(_np(out[key]), _np(ref[key]), rtol=1e-5, atol=1e-5)


def test_each_part_numbers_its_positions_from_zero():
    # An explicit reference of the MMBT input embeddings, position ids written out.
    backbone = _backbone(seed=3)
    images = _images()
    layer = MultimodalBitransformer(backbone, CLS, SEP)
    out = _np(layer(_tokens(), images)["sequence_output"])

    tok = _np(backbone.token_embedding.embeddings)
    pos = _np(backbone.position_embedding.position_embeddings)
    seg = _np(backbone.segment_embedding.embeddings)
    image_part = np.concatenate([tok[[CLS]][None].repeat(2, 0), images, tok[[SEP]][None].repeat(2, 0)], axis=1)
    image_part = image_part + pos[np.arange(N + 2)] + seg[0]
    text_ids = TOKEN_IDS[:, 1:]
    text_part = tok[text_ids] + pos[np.arange(text_ids.shape[1])] + seg[1]
    x = backbone.embeddings_layer_norm(np.concatenate([image_part, text_part], axis=1).astype("float32"))
    mask = np.concatenate([np.ones((2, N + 2)), TEXT_MASK], axis=1).astype("int32")
    for transformer in backbone.transformer_layers:
        x = transformer(x, padding_mask=mask)
    np.testing.assert_allclose(out, _np(x), rtol=1e-5, atol=1e-5)


def test_padding_is_masked_and_images_matter():
    layer = MultimodalBitransformer(_backbone(), CLS, SEP)
    base = _np(layer(_tokens(), _images())["sequence_output"])
    other_pad = dict(_tokens(), token_ids=np.where(PADDING == 1, TOKEN_IDS, 17).astype("int32"))
    changed = _np(layer(other_pad, _images())["sequence_output"])
    kept = np.concatenate([np.ones((2, N + 2), bool), PADDING[:, 1:] == 1], axis=1)
    np.testing.assert_allclose(changed[kept], base[kept], atol=1e-6)
    # the [CLS] and text outputs attend to the image tokens (small random BERT: small effect)
    other_images = _np(layer(_tokens(), _images(seed=2))["sequence_output"])
    assert np.all(np.abs(other_images - base)[:, [0, N + 2]].max(axis=-1) > 1e-4)


def test_config_and_keras_save_load(tmp_path):
    layer = MultimodalBitransformer(_backbone(), CLS, SEP, name="text_backbone")
    config = layer.get_config()
    assert (config["cls_token_id"], config["sep_token_id"]) == (CLS, SEP)
    clone = MultimodalBitransformer.from_config(config)
    assert clone.backbone.hidden_dim == HIDDEN and clone.get_layer("pooled_dense") is not None

    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding = keras.Input((None,), dtype="int32", name="padding_mask")
    images = keras.Input((N, HIDDEN), name="images")
    out = layer({"token_ids": token_ids, "padding_mask": padding}, images)
    model = keras.Model([token_ids, padding, images], out["pooled_output"])
    path = tmp_path / "mmbt.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    data = [TOKEN_IDS, PADDING, _images()]
    np.testing.assert_array_equal(_np(model(data)), _np(loaded(data)))


def test_image_region_pooling_bands_as_adaptive_avg_pool():
    assert region_bounds(7, 3) == [(0, 3), (2, 5), (4, 7)]  # DenseNet's 7x7 map
    assert region_bounds(4, 3) == [(0, 2), (1, 3), (2, 4)] and region_bounds(6, 3) == [(0, 2), (2, 4), (4, 6)]
    fmap = np.arange(2 * 7 * 2 * 3, dtype="float32").reshape(2, 7, 2, 3)
    layer = ImageRegionPooling(3)
    out = _np(layer(fmap))
    assert out.shape == (2, 3, 3)
    for i, (start, end) in enumerate([(0, 3), (2, 5), (4, 7)]):
        np.testing.assert_allclose(out[:, i], fmap[:, start:end].mean(axis=(1, 2)), rtol=1e-6)
    # graph mode with an unknown batch (keras' AdaptiveAveragePooling2D fails here)
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, 8, 8, 3])])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(fn(x).numpy()[:, 1], x[:, 2:6].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert ImageRegionPooling.from_config(layer.get_config()).num_regions == 3
    with pytest.raises(ValueError, match="num_regions"):
        ImageRegionPooling(0)
    with pytest.raises(ValueError, match="height"):
        ImageRegionPooling(5)(np.zeros((1, 4, 4, 2), "float32"))
