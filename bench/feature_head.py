#!/usr/bin/env python
"""Head training speed on a frozen-backbone feature cache, and extraction speed.

    python bench/feature_head.py --features FEATURES_DIR --task informative \\
        --data-dir CRISISMMD [--events srilanka_floods] [--model sse_cross] [--epochs 6]

Trains the registered model (default `sse_cross`, eq. 3 on the flattened
7 x 7 map) on the cache's training rows with the trainer's own dataset, model
and optimizer (SGD, batch 32), and prints training pairs/s over the epochs
after the first (which includes tracing), run as one `fit` call. It also prints the extraction
speed that `python -m crisis_keras.features extract` recorded in the cache's
manifest (rows of every pass over the elapsed seconds).
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--data-format", default="crisismmd")
    p.add_argument("--events", default=None)
    p.add_argument("--setting", default="A")
    p.add_argument("--model", default="sse_cross")
    p.add_argument("--epochs", type=int, default=11)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)

    import keras

    from crisis_keras.features.manifest import read_manifest
    from crisis_keras.train import fill_from_feature_cache
    from crisis_keras.training import trainer
    from crisis_keras.training.config import TrainConfig

    values = dict(task=args.task, data_dir=args.data_dir, setting=args.setting,
                  model=args.model, batch_size=args.batch_size, features_dir=args.features)
    if args.data_format != "crisismmd":
        values["data_format"] = args.data_format
    if args.events:
        values["events"] = args.events
    config = TrainConfig.from_dict(fill_from_feature_cache(values, set()))
    data = trainer.load_data(config)
    store = trainer.feature_store(config)
    model = trainer.build_run_model(config, len(data.class_names), store)
    trainer.compile_model(model, config)
    table = data.splits["train"]
    ds = trainer.dataset_for(model, table, config, training=True, seed=0, store=store)
    started = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)  # traces the step
    first = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(ds, epochs=args.epochs - 1, verbose=0, shuffle=False)
    pairs_per_second = len(table) * (args.epochs - 1) / (time.perf_counter() - started)
    manifest = read_manifest(args.features)
    spec = manifest["spec"]
    rows = sum(s["rows"] for s in manifest["splits"].values())
    rows += manifest["splits"].get("train", {}).get("rows", 0) * spec.get("train_crops", 0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"keras {keras.__version__}")
    print(f"model {args.model} on cached features {store.image_feature_shape} + "
          f"({store.text_feature_dim},): {model.count_params():,} parameters")
    print(f"head training: {pairs_per_second:,.0f} pairs/s ({len(table)} training pairs, "
          f"batch {args.batch_size}, epochs 2-{args.epochs} in one fit; first epoch "
          f"{first:.2f} s with tracing)")
    if manifest.get("seconds"):
        print(f"extraction: {rows / manifest['seconds']:.1f} rows/s ({rows} rows of "
              f"{', '.join(spec['modalities'])} in {manifest['seconds']:.0f} s; "
              f"{spec.get('image_backbone')} + {spec.get('text_backbone')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
