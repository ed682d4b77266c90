"""Analytic FLOP counts and this machine's matmul peak, for `throughput.py`.

Forward FLOPs per example = 2 x multiply-adds: every Conv2D / DepthwiseConv2D
/ Dense layer outside BERT (the image backbone of eq. 1, the projections of
eq. 3-4, the head) from its static output shape, plus BERT at n tokens:
per layer n (4 h^2 + 2 h f) for the Q/K/V/output and feed-forward matmuls
and 2 n^2 h for the attention scores and weighted values (e_i of eq. 2).
A training step is counted as 3 x forward (backward = 2 x forward).
DenseNet121 at 224 gives ~2.87 GFLOPs; BERT-base ~2 x 85M x n (+ n^2 terms).
"""

import math
import time

import keras
import tensorflow as tf


def _positions(layer):
    shape = tuple(layer.output.shape)[1:-1]
    return math.prod(d for d in shape if d is not None) if shape else 1


def _layer_flops(layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, cin, mult = layer.depthwise_kernel.shape
        return 2 * kh * kw * cin * mult * _positions(layer)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * kh * kw * cin * cout * _positions(layer)
    if isinstance(layer, keras.layers.Dense):
        cin, cout = layer.kernel.shape
        return 2 * cin * cout * _positions(layer)
    return 0


def _walk(layer, skip):
    if layer.name in skip:
        return 0
    inner = [l for l in getattr(layer, "layers", [])] if isinstance(layer, keras.Model) else []
    if inner:
        return sum(_walk(l, skip) for l in inner)
    return _layer_flops(layer)


def bert_flops(backbone, n):
    """Forward FLOPs of a keras-hub BertBackbone (or MMBT's wrapped one) on n tokens."""
    bb = getattr(backbone, "backbone", backbone)
    h, f, layers = bb.hidden_dim, bb.intermediate_dim, bb.num_layers
    return 2 * layers * (n * (4 * h * h + 2 * h * f) + 2 * n * n * h)


def forward_flops(model, n):
    """Forward FLOPs of one example whose text has n tokens after the cut."""
    other = sum(_walk(l, {"text_backbone"}) for l in model.layers)
    try:
        text = bert_flops(model.get_layer("text_backbone"), n)
    except ValueError:
        text = 0
    return other + text


def matmul_peak(dtype="float32", size=1024, iters=20, repeats=5):
    """GFLOP/s of a `size` x `size` tf.matmul loop, the best of `repeats` timings
    (one timing varies by 1.5x on a shared machine); None if the dtype fails."""
    try:
        a = tf.random.normal((size, size), dtype=tf.float32)
        a = tf.cast(a, dtype)
        b = tf.cast(tf.random.normal((size, size)), dtype)

        @tf.function
        def loop(x, y):
            acc = tf.zeros((size, size), dtype)
            for _ in tf.range(iters):
                acc += tf.matmul(x, y)
            return acc

        loop(a, b).numpy()
        seconds = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            loop(a, b).numpy()
            seconds = min(seconds, time.perf_counter() - start)
    except (tf.errors.OpError, TypeError, ValueError):
        return None
    return 2 * size ** 3 * iters / seconds / 1e9
