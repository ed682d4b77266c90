"""The full-size SSE-Cross-BERT-DenseNet (DenseNet121 + BERT-base shapes, random
weights, nothing downloaded). About 10 s on 2 CPU cores (build ~7 s)."""

import time

import numpy as np
import tensorflow as tf

from crisis_keras.models import build_model, full_size_random_config


def test_full_size_model_builds_with_the_paper_shapes():
    start = time.perf_counter()
    # The README snippet:
    # python -c "from crisis_keras.models import build_model, full_size_random_config;
    #            build_model('sse_cross', 'humanitarian', full_size_random_config()).summary()"
    model = build_model("sse_cross", "humanitarian", full_size_random_config())
    build_seconds = time.perf_counter() - start
    lines = []
    model.summary(print_fn=lambda line, **kw: lines.append(line))
    summary = "\n".join(lines)
    assert "text_backbone" in summary and "image_backbone" in summary

    def params(name):
        return model.get_layer(name).count_params()

    assert model.get_layer("image_backbone").output.shape == (None, 7, 7, 1024)  # f_i, eq. 1
    assert model.get_layer("text_cls").output.shape == (None, 768)  # e_i, eq. 2
    assert model.get_layer("text_preprocessor").tokenizer.vocabulary_size() == 30522
    assert params("image_backbone") == 7_037_504  # DenseNet121 without top
    assert params("text_backbone") == 109_482_240  # BERT-base uncased
    assert params("image_projection") == 7 * 7 * 1024 * 100 + 100  # eq. 3 on vec(f_i)
    assert params("text_projection") == 768 * 100 + 100  # eq. 4
    assert params("cross_attention") == (768 + 1) * 100 + (7 * 7 * 1024 + 1) * 100  # eq. 5-6
    assert params("self_attention") == 200 * 200 + 200
    assert params("head_dense") == 200 * 256 + 256 and params("classifier") == 256 * 5 + 5
    assert model.count_params() == 126_801_885
    assert build_seconds < 120, build_seconds

    y = model({"text": tf.constant(["Flooding in Houston https://t.co/x"]), "image": tf.zeros((1, 224, 224, 3))})
    assert y.shape == (1, 5) and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy().sum(), 1.0, rtol=1e-5)
