#!/usr/bin/env python
"""Training-pipeline images/s from JPEG files and from the decoded-image cache.

    python bench/image_cache.py [--images DIR] [--cache DIR] [--batch-size 32]
        [--train-pairs-per-second 3.16]

Builds the image cache (`crisis_keras.data.image_cache`, as `python -m
crisis_keras.data cache-images` does) of every image under `--images`
(default: the real Sri Lanka floods photos of ../shared/crisismmd; the
embedded demo data when absent), then runs the training pipeline
(`make_dataset(training=True)`: 228 resize, random 224 crop + flip, batches
of 32, image only) over every image after a warm-up of a few batches, from
the JPEG files and from the cache, with op determinism on as in training
(the fastest of `--passes` full passes; both read files the OS has cached).
Prints both speeds, the CPU time per image, their ratio, the cache's size and, with
`--train-pairs-per-second` (the full model's training step, `bench/
throughput.py`), how many times that the cache can feed.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "crisismmd" / "data_image" / "srilanka_floods"
SUFFIXES = (".jpg", ".jpeg", ".png")


def image_table(folder: Path):
    import pandas as pd

    paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    return pd.DataFrame({"image_path": paths, "text": "", "label_id": 0,
                         "source_file": str(folder), "source_line": range(1, len(paths) + 1)})


def images_per_second(ds, warmup_batches: int, passes: int) -> tuple:
    """(images/s, CPU ms per image, images) of the fastest of `passes` full
    passes, after `warmup_batches` batches. CPU time is the process's (every
    thread): what the pipeline takes from a training step on the same cores."""
    for _ in ds.take(warmup_batches):
        pass
    best = None
    for _ in range(passes):
        count, started, cpu = 0, time.perf_counter(), time.process_time()
        for features, _ in ds:
            count += int(features["image"].shape[0])
        rate = count / (time.perf_counter() - started)
        cpu_ms = 1000 * (time.process_time() - cpu) / count
        if best is None or rate > best[0]:
            best = (rate, cpu_ms, count)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(SHARED_IMAGES),
                   help="folder of images (searched recursively); default the Sri Lanka floods photos")
    p.add_argument("--cache", default=None, help="image cache folder (default: a temporary one)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup-batches", type=int, default=3)
    p.add_argument("--passes", type=int, default=2, help="full passes each; the fastest counts")
    p.add_argument("--workers", type=int, default=None, help="parallel decodes when building")
    p.add_argument("--train-pairs-per-second", type=float, default=None,
                   help="the full model's training-step pairs/s (bench/throughput.py) to compare with")
    args = p.parse_args(argv)

    import tensorflow as tf

    from crisis_keras.data.image_cache import ImageCache, build_image_cache
    from crisis_keras.data.pipeline import make_dataset

    folder = Path(args.images)
    if not folder.is_dir():
        from crisis_keras.data.demo import ensure_demo_data

        folder = ensure_demo_data() / "data_image"
        print(f"{args.images} not found: using the demo images in {folder}")
    table = image_table(folder)
    if not len(table):
        print(f"no images under {folder}", file=sys.stderr)
        return 2
    tmp = None
    if args.cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="image_cache_bench_")
        args.cache = os.path.join(tmp.name, "cache")
    report = build_image_cache(args.cache, table, on_bad_image="drop", workers=args.workers)
    print(report.describe())
    cache = ImageCache(args.cache)
    size_mb = sum(os.path.getsize(Path(args.cache) / n) for n in cache.manifest["shards"]) / 1e6

    tf.config.experimental.enable_op_determinism()  # as in training
    common = dict(training=True, batch_size=args.batch_size, seed=0, modalities=("image",),
                  on_bad_image="drop")
    jpeg, jpeg_cpu, n = images_per_second(make_dataset(table, **common), args.warmup_batches,
                                          args.passes)
    cached, cached_cpu, _ = images_per_second(make_dataset(table, image_cache=cache, **common),
                                              args.warmup_batches, args.passes)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}; {n} images from {folder}")
    print(f"training pipeline (228 resize, 224 crop + flip, batch {args.batch_size}): "
          f"JPEG {jpeg:.1f} images/s ({jpeg_cpu:.1f} CPU ms/image), cache {cached:.1f} "
          f"images/s ({cached_cpu:.2f} CPU ms/image), ratio {cached / jpeg:.1f}x")
    print(f"cache: {len(cache)} images, {size_mb:.1f} MB in {len(cache.manifest['shards'])} "
          f"shards; build {report.images_per_second:.1f} images/s")
    if args.train_pairs_per_second:
        print(f"the cache feeds {cached / args.train_pairs_per_second:.0f}x the training step's "
              f"{args.train_pairs_per_second:g} pairs/s (JPEG: "
              f"{jpeg / args.train_pairs_per_second:.1f}x)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
