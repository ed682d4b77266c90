"""`python -m crisis_keras.evaluate --run-dir RUN --split test`: recompute metrics.

Loads the run's best model and configuration, reads the split from
`--data-dir` (default: the run's own data) and prints accuracy, macro F1,
weighted F1 and per-class figures as JSON. The run's own files are left as
they are; `--output` writes the JSON (and `--predictions` the TSV) elsewhere.

`--missing-modalities` (a run trained with modality dropout, issue 13):
the metrics with the data as given (`both`), with every image removed
(`no_image`) and with every text removed (`no_text`), as one JSON object
(the trainer writes the same for dev and test to `metrics_missing.json`).
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crisis_keras.evaluate",
                                description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="a folder written by crisis_keras.train.")
    p.add_argument("--data-dir", default=None,
                   help="CrisisMMD split folder or dataset root (default: the run's).")
    p.add_argument("--image-root", default=None)
    p.add_argument("--split", default="test", choices=("train", "dev", "test"))
    p.add_argument("--output", default=None, help="also write the metrics JSON here.")
    p.add_argument("--predictions", default=None, help="also write predictions TSV here.")
    p.add_argument("--missing-modalities", action="store_true",
                   help="metrics with both modalities, without images and without texts "
                   "(keys both/no_image/no_text; a run trained with --missing-image-rate / "
                   "--missing-text-rate).")
    return p


def load_run(run_dir, split="test", data_dir=None, image_root=None):
    """(model, data, config, feature store or None) of a saved run, checked for `split`."""
    import keras

    from crisis_keras.training import trainer
    from crisis_keras.training.config import TrainConfig

    run_dir = Path(run_dir)
    config = TrainConfig.from_json_file(run_dir / "config.json")
    overrides = {}
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    if image_root is not None:
        overrides["image_root"] = str(image_root)
    config = dataclasses.replace(config, **overrides)
    model_path = run_dir / trainer.BEST_MODEL
    if not model_path.exists():
        raise FileNotFoundError(f"{model_path} does not exist: has the run finished an epoch?")
    from crisis_keras.models.tfhub_backbone import load_model_safe_mode

    model = keras.saving.load_model(model_path, safe_mode=load_model_safe_mode(config))
    data = trainer.load_data(config)
    if split not in data.splits:
        raise ValueError(
            f"{data.data_dir} has no {split} split for task {config.task} "
            f"(found: {sorted(data.splits)})."
        )
    # A run trained on cached features is evaluated on them (see `features`).
    return model, data, config, trainer.feature_store(config)


def evaluate_run(run_dir, split="test", data_dir=None, image_root=None):
    """(metrics dict, predictions frame) of a saved run on one split."""
    from crisis_keras.training import trainer

    model, data, config, store = load_run(run_dir, split, data_dir, image_root)
    results, frames = trainer.evaluate_model(model, data, config, (split,), store)
    return results[split], frames[0]


def evaluate_run_missing(run_dir, split="dev", data_dir=None, image_root=None):
    """{"both", "no_image", "no_text": metrics} of a run trained with modality dropout."""
    from crisis_keras.training.missing_modalities import evaluate_missing_modalities

    model, data, config, store = load_run(run_dir, split, data_dir, image_root)
    return evaluate_missing_modalities(model, data, config, (split,), store)[split]


def main(argv=None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(build_parser(), argv)
    if args.missing_modalities and args.predictions:
        print("crisis_keras.evaluate: error: --predictions does not go with "
              "--missing-modalities.", file=sys.stderr)
        return 2
    try:
        if args.missing_modalities:
            metrics = evaluate_run_missing(args.run_dir, args.split, args.data_dir,
                                           args.image_root)
            metrics = {"split": args.split, **metrics}
        else:
            metrics, predictions = evaluate_run(
                args.run_dir, args.split, args.data_dir, args.image_root
            )
    except (ValueError, FileNotFoundError) as err:
        print(f"crisis_keras.evaluate: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(metrics, indent=2, sort_keys=True)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    if args.predictions:
        predictions.to_csv(args.predictions, sep="\t", index=False, float_format="%.6f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
