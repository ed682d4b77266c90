"""`python -m crisis_keras.export --run-dir RUN --out DIR [--version N]`.

Writes the run's best model as a versioned TensorFlow SavedModel, the layout
TF Serving watches:

    DIR/<version>/            serving_default(text, image_bytes), token_ids(...), metadata()
    DIR/token_ids/<version>/  serving_default = token_ids(...), metadata()  (no TF Text ops)

`<version>` is `--version`, or 1 + the largest existing version (1 for a new
folder). The full SavedModel needs the TF Text ops (`import tensorflow_text`
before `tf.saved_model.load`): without them it does not load at all, not even
its token-ids signature, hence the second SavedModel for servers without TF
Text. Text normalization, tokenization, image decoding, the `resize_to`
shortest-side resize and the center `image_size` crop run inside the graph,
with the same functions as evaluation (`crisis_keras.data.images.
preprocess_for_eval`, the model's own `tweet_normalization` and
`text_preprocessor` layers). Weights are stored once per SavedModel
(`tf.saved_model.save` of a `tf.Module` holding the keras model; `model.export`
would store them twice). The class names, the task and the run's config
travel with it: `assets/{classes.json,config.json,vocab.txt}`, the `metadata`
signature and the `class_names`/`task`/`config_json` variables.

A run trained on cached features (`train --features`) is exported whole: the
cache's frozen backbones in front of the trained head
(`features.compose.compose_with_backbones`), so it serves raw posts too.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

CLASSES_FILE = "classes.json"
CONFIG_FILE = "config.json"
BEST_MODEL = "best_model.keras"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m crisis_keras.export",
                                description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="a run folder written by crisis_keras.train.")
    p.add_argument("--out", required=True, help="export folder (versions go in numbered subfolders).")
    p.add_argument("--version", type=int, default=None,
                   help="version number (default: 1 + the largest existing one, or 1).")
    p.add_argument("--no-token-ids", action="store_true",
                   help="skip the separate token-ids SavedModel (DIR/token_ids/<version>/).")
    return p


def dir_size(path) -> int:
    """Total bytes of the files under `path`."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def next_version(out: Path) -> int:
    from crisis_keras.serving.loading import TOKEN_IDS_SUBDIR, numeric_versions

    versions = numeric_versions(out) + numeric_versions(out / TOKEN_IDS_SUBDIR)
    return max(versions, default=0) + 1


def read_run(run_dir: Path):
    """(config dict, config.json text, task, class names) of a run folder."""
    for name in (CONFIG_FILE, CLASSES_FILE, BEST_MODEL):
        if not (run_dir / name).exists():
            raise FileNotFoundError(
                f"{run_dir / name} does not exist: is {run_dir} a finished training run?"
            )
    config_text = (run_dir / CONFIG_FILE).read_text()
    config = json.loads(config_text)
    classes = json.loads((run_dir / CLASSES_FILE).read_text())
    names = classes.get("class_names")
    if not isinstance(names, list) or not names:
        raise ValueError(f"{run_dir / CLASSES_FILE} has no 'class_names' list.")
    return config, config_text, classes.get("task", config.get("task", "")), names


def _save(module, target: Path) -> None:
    """tf.saved_model.save into a hidden staging folder, then rename (atomic for watchers)."""
    import tensorflow as tf

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def export_run(run_dir, out, version=None, token_ids=True) -> dict:
    """Exports `run_dir`'s best model to `out/<version>/` (+ `out/token_ids/<version>/`).

    Returns a summary dict: paths, version, signatures, sizes in bytes.
    """
    import keras

    import crisis_keras.layers  # noqa: F401  (registers the custom layers)
    import crisis_keras.models  # noqa: F401
    from crisis_keras.layers.tweet_normalization import TweetNormalization  # noqa: F401
    from crisis_keras.serving.loading import TOKEN_IDS_SUBDIR
    from crisis_keras.serving.signatures import ServingModule, vocabulary

    run_dir, out = Path(run_dir), Path(out)
    config, config_text, task, class_names = read_run(run_dir)
    version = next_version(out) if version is None else int(version)
    if version < 1:
        raise ValueError(f"--version must be a positive integer, got {version}.")
    full_dir = out / str(version)
    ids_dir = out / TOKEN_IDS_SUBDIR / str(version)
    for target in (full_dir, ids_dir):
        if target.exists():
            raise FileExistsError(f"{target} already exists; choose another --version.")

    # compile=False: no optimizer, so its slot variables (SGD momentum) stay out.
    # A run of TF Hub backbones holds their SavedModels: loading it runs their
    # graphs, which safe mode refuses (`models/tfhub_backbone.py`).
    from crisis_keras.models.tfhub_backbone import load_model_safe_mode

    model = keras.saving.load_model(
        run_dir / BEST_MODEL, compile=False, safe_mode=load_model_safe_mode(config)
    )
    if config.get("features_dir"):
        # Trained on cached features: put the cache's frozen backbones back
        # in front of the head, so the export takes raw text and image bytes.
        from crisis_keras.features.compose import compose_with_backbones
        from crisis_keras.features.store import FeatureStore

        model = compose_with_backbones(model, FeatureStore(config["features_dir"]), len(class_names))
    image_size = int(config.get("image_size", 224))
    resize_to = int(config.get("resize_to", 228))
    names = [t.name for t in model.inputs] if not isinstance(model.input, dict) else list(model.input)
    if "image" in names:
        shape = tuple(model.input["image"].shape if isinstance(model.input, dict)
                      else [t for t in model.inputs if t.name == "image"][0].shape)
        if tuple(shape[1:3]) != (image_size, image_size):
            raise ValueError(
                f"the model's image input is {shape[1:3]} but {run_dir / CONFIG_FILE} "
                f"says image_size={image_size}."
            )

    summary = {"run_dir": str(run_dir), "version": version, "task": task,
               "class_names": class_names, "keras_bytes": (run_dir / BEST_MODEL).stat().st_size}
    with tempfile.TemporaryDirectory() as assets_dir:
        assets = {}
        for name in (CONFIG_FILE, CLASSES_FILE):
            assets[name] = Path(assets_dir) / name
            shutil.copyfile(run_dir / name, assets[name])
        vocab = vocabulary(model)
        if vocab is not None:
            assets["vocab.txt"] = Path(assets_dir) / "vocab.txt"
            assets["vocab.txt"].write_text("".join(token + "\n" for token in vocab))

        def module(text_ops):
            return ServingModule(model, class_names, task, config_text, image_size,
                                 resize_to, text_ops=text_ops, assets=assets)

        full = module(True)
        _save(full, full_dir)
        summary["saved_model"] = str(full_dir)
        summary["signatures"] = sorted(full.signatures())
        summary["saved_model_variables_bytes"] = dir_size(full_dir / "variables")
        summary["saved_model_bytes"] = dir_size(full_dir)
        if token_ids and full.has_text:
            _save(module(False), ids_dir)
            summary["token_ids_saved_model"] = str(ids_dir)
            summary["token_ids_saved_model_bytes"] = dir_size(ids_dir)
    return summary


def main(argv=None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(build_parser(), argv)
    try:
        summary = export_run(args.run_dir, args.out, args.version, not args.no_token_ids)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"crisis_keras.export: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
