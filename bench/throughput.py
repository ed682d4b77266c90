"""Throughput and memory of the full-size model: forward and training steps.

Builds `sse_cross` at full size with random weights (DenseNet121 + BERT-base
shapes, no downloads), feeds synthetic batches (224x224 images, tweet-length
texts) and prints forward and SGD training-step examples per second and the
process's peak resident memory, as JSON. `--model`, `--text-backbone` and
`--mixed-precision` measure the other configurations.

    python bench/throughput.py --steps 5
    python bench/throughput.py --model bert --text-backbone tiny --steps 20

Not run by CI.
"""

import argparse
import json
import resource
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sse_cross")
    p.add_argument("--text-backbone", default="bert_base_random")
    p.add_argument("--image-backbone", default="densenet121")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    p.add_argument("--mixed-precision", action="store_true")
    args = p.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from crisis_keras.models import build_model, full_size_random_config
    from crisis_keras.models.crisis_model import model_input_names

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    config = full_size_random_config().replace(
        text_backbone=args.text_backbone, image_backbone=args.image_backbone
    )
    model = build_model(args.model, 3, config)
    model.compile(keras.optimizers.SGD(2e-3, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy())

    rng = np.random.default_rng(0)
    words = "flood damage bridge collapsed rescue team shelter donate link water".split()
    texts = [" ".join(rng.choice(words, size=22)) for _ in range(args.batch_size)]
    names = model_input_names(model)
    size = config.image_size
    features = {}
    if "text" in names:
        features["text"] = tf.constant(texts)
    if "image" in names:
        features["image"] = tf.constant(
            rng.uniform(0, 255, (args.batch_size, size, size, 3)).astype("float32"))
    if "sse_label" in names:
        features["sse_label"] = tf.constant(rng.integers(0, 3, args.batch_size), tf.int32)
    labels = tf.constant(rng.integers(0, 3, args.batch_size), tf.int32)

    def timed(step):
        step()  # warm-up: tracing and first-call allocation
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        return args.steps * args.batch_size / (time.perf_counter() - start)

    predict = tf.function(lambda x: model(x, training=False))
    forward = timed(lambda: predict(features))
    train = timed(lambda: model.train_on_batch(features, labels))
    print(json.dumps({
        "model": args.model,
        "text_backbone": args.text_backbone,
        "image_backbone": args.image_backbone,
        "parameters": model.count_params(),
        "batch_size": args.batch_size,
        "mixed_precision": args.mixed_precision,
        "forward_examples_per_second": round(forward, 2),
        "train_step_examples_per_second": round(train, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
