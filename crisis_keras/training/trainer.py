"""One training run, end to end: data, model, SGD, callbacks, reports.

Section 4.5 of the paper: SGD from a base learning rate of 2e-3, reduced 10x
when the dev loss saturates (`ReduceLROnPlateau`), batch size 32, both
backbones fine-tuned. The best model by dev loss is kept; early stopping ends
the run once the dev loss has stopped improving. `select_by="macro_f1"` makes
all three follow dev macro F1 instead (`dev_macro_f1.py`), and
`class_weight="balanced"` weights the training loss (`class_weights.py`).

Each epoch is one `fit` call on a dataset built for that epoch, so that
Setting B's forced SSE transitions (p0 = 1, eq. 9-10) are drawn afresh every
epoch from the original table and never accumulate, and so that a killed run
resumes from its last finished epoch with the same result.
"""

import contextlib
import io
import sys
import time
from pathlib import Path
from typing import Dict

import keras
import pandas as pd
import tensorflow as tf

from crisis_keras.data.crisismmd import CrisisMMD, load_crisismmd
from crisis_keras.data.demo import ensure_demo_data
from crisis_keras.data.medic import require_image_only
from crisis_keras.data.pipeline import check_images, drop_bad_images, make_dataset
from crisis_keras.data.setting_b import setting_b_training_table
from crisis_keras.evaluation import reports
from crisis_keras.evaluation.metrics import classification_metrics
from crisis_keras.models import build_model
from crisis_keras.models.crisis_model import MODALITY_MASK, model_input_names, model_modalities
from crisis_keras.models.tfhub_backbone import load_model_safe_mode, tfhub_layers
from crisis_keras.training import class_weights as cw
from crisis_keras.training import distribute, resume
from crisis_keras.training.keras_distribute import adapt_model
from crisis_keras.training.config import TrainConfig
from crisis_keras.training.dev_macro_f1 import VAL_MACRO_F1, DevMacroF1

BEST_MODEL = "best_model.keras"
TIMING_FILE = "timing.json"  # wall-clock seconds of the run (data, training, evaluation)
CLASSES_FILE = "classes.json"


class _StopAfterOneEpoch(keras.callbacks.Callback):
    """Ends each `fit` after one epoch while the progress bar shows `e/N`."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class RunConfigMismatch(ValueError):
    """The run folder holds a run with another configuration."""


def data_seed(config: TrainConfig) -> int:
    """The seed of the data's own random splits (MEDIC's dev split, Setting C, `split="paper"`):
    `split_seed`, or the run's seed when it is None."""
    return config.seed if config.split_seed is None else config.split_seed


def load_data(config: TrainConfig) -> CrisisMMD:
    """The run's tables: CrisisMMD (the embedded demo data without a data dir)
    or, with `data_format="medic"`, a MEDIC folder (`data/medic.py`); then
    restricted to `config.events` when given (`data/events.py`)."""
    from crisis_keras.data.events import filter_events
    from crisis_keras.data.medic import DATA_FORMATS, load_medic

    if config.data_format not in DATA_FORMATS:
        raise ValueError(
            f"Unknown data_format {config.data_format!r}; expected one of {DATA_FORMATS}."
        )
    if config.data_format == "medic":
        if config.data_dir is None:
            raise ValueError(
                "--data-format medic needs --data-dir (a folder holding <name>_train.tsv)."
            )
        data = load_medic(
            config.data_dir,
            config.task,
            image_root=config.image_root,
            humanitarian_labels=config.humanitarian_labels,
            setting=config.setting,
            seed=data_seed(config),
            announce=lambda message: print(f"crisis_keras: {message}", file=sys.stderr),
            allow_outside_root=config.allow_outside_root,
        )
    else:
        data_dir = config.data_dir
        if data_dir is None:
            data_dir = str(ensure_demo_data())
        data = load_crisismmd(
            data_dir,
            config.task,
            setting=config.setting,
            image_root=config.image_root,
            humanitarian_labels=config.humanitarian_labels,
            setting_c_experiment=config.experiment,
            seed=data_seed(config),
            setting_c_reading=config.setting_c_reading, split=config.split,
            allow_outside_root=config.allow_outside_root,
        )
    return filter_events(data, config.events) if config.events else data


def fail_on_missing_images(data: CrisisMMD, config: TrainConfig) -> None:
    """Stops before training when image files are missing or unreadable."""
    if config.on_bad_image != "error":
        return
    cache = None
    if config.image_cache_dir:  # its manifest knows the bad images; a stale one is refused here
        from crisis_keras.data.image_cache import as_image_cache

        cache = as_image_cache(config.image_cache_dir)
    bad = []
    for table in data.splits.values():
        bad.extend((cache.check_images(table) if cache else check_images(table)).bad)
    if bad:
        shown = "\n  ".join(b.describe() for b in bad[:5])
        raise FileNotFoundError(
            f"{len(bad)} image files are missing or unreadable under "
            f"{data.image_root}; the first ones:\n  {shown}\n"
            + ("Check the MEDIC image folder (see data/README.md), pass --image-root, "
               "or use --on-bad-image drop."
               if config.data_format == "medic" else
               "Download the CrisisMMD images (see data/README.md), pass "
               "--image-root, use --on-bad-image drop, or train a text-only "
               "model (--model bert).")
        )


def feature_store(config: TrainConfig):
    """The run's feature cache (`--features DIR`), or None when fine-tuning."""
    if not config.features_dir:
        return None
    from crisis_keras.features.store import FeatureStore

    return FeatureStore(config.features_dir)


def build_run_model(config: TrainConfig, num_classes: int, store=None):
    """The run's registered model; on cached features when `store` is given,
    after checking that the cache was made by the run's backbones."""
    overrides = dict(
        text_backbone=config.text_backbone,
        image_weights=config.image_weights,
        image_backbone=config.image_backbone,
        sequence_length=config.sequence_length,
        image_size=config.image_size,
    )
    if config.text_preprocessor is not None:
        overrides["text_preprocessor"] = config.text_preprocessor
    if config.text_pooling is not None:
        overrides["text_pooling"] = config.text_pooling
    if config.trim_sequences:
        overrides["trim_sequences"] = True
    if not config.fused_batch_norm:
        overrides["fused_batch_norm"] = False
    if config.sse_p0 is not None:
        overrides["sse_p0"] = config.sse_p0
    if config.sse_rho is not None:
        overrides["sse_rho"] = config.sse_rho
    if config.missing_image_rate or config.missing_text_rate:
        # modality dropout (issue 13); both 0 leaves the model as it was
        overrides.update(missing_image_rate=config.missing_image_rate,
                         missing_text_rate=config.missing_text_rate)
    if store is None:
        return build_model(config.model, num_classes, **overrides)
    from crisis_keras.features.run import check_run_against_cache, feature_model_overrides

    model = build_model(config.model, num_classes, **overrides, **feature_model_overrides(store))
    check_run_against_cache(store, config, model.model_config, model_modalities(model))
    return model


def compile_model(model, config: TrainConfig) -> None:
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=config.momentum
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def dataset_for(model, table: pd.DataFrame, config: TrainConfig, *, training, seed,
                split="train", store=None, with_rows=False):
    """Batches of `table` for `model`: from images and text, or, with a feature
    `store`, from the cached features of `split` (`features.dataset`; with
    `with_rows`, `(batches, rows kept)`). Models with a `modality_mask` input
    get it (issue 13). `config.image_cache_dir`: images from the decoded-image
    cache (`data/image_cache.py`)."""
    names = model_input_names(model)
    if store is not None:
        from crisis_keras.features.dataset import make_feature_dataset

        ds, kept = make_feature_dataset(
            store, split, table, training=training, batch_size=config.batch_size,
            seed=seed, modalities=model_modalities(model),
            sse_labels="sse_label" in names, on_missing=config.on_bad_image,
            modality_mask=MODALITY_MASK in names,
        )
        return (ds, kept) if with_rows else ds
    return make_dataset(
        table,
        training=training,
        batch_size=config.batch_size,
        seed=seed,
        modalities=model_modalities(model),
        image_size=config.image_size,
        resize_to=config.resize_to,
        sse_labels="sse_label" in names,
        on_bad_image=config.on_bad_image,
        modality_mask=MODALITY_MASK in names,
        image_cache=config.image_cache_dir,
    )


def _check_or_write_config(run_dir: Path, config: TrainConfig, started: bool) -> None:
    """Writes config.json, or checks it against a run that has trained.

    A folder whose run never finished an epoch (a failed start) takes the
    new configuration; one with training progress refuses a different one.
    """
    path = run_dir / "config.json"
    if path.exists() and started:
        saved = TrainConfig.from_json_file(path).to_dict()
        current = config.to_dict()
        differing = sorted(k for k in current if saved.get(k) != current[k])
        if differing:
            raise RunConfigMismatch(
                f"{run_dir} holds a run with another configuration "
                f"(differs in {differing}); choose another --run-name or "
                "--output-dir instead of mixing runs."
            )
        return
    tmp = path.with_name("config.json.tmp")
    tmp.write_text(config.to_json() + "\n")
    tmp.replace(path)


def _write_summary(model, path: Path) -> None:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        model.summary(line_length=120, expand_nested=False)
    path.write_text(buffer.getvalue())


def _write_history_csv(state: resume.TrainingState, path: Path) -> None:
    if state.history:
        pd.DataFrame(state.history).to_csv(path, index=False)


def _write_wall_time(path: Path, seconds: float) -> None:
    """`timing.json`: wall-clock seconds of the invocation that finished the run
    (data loading, training and evaluation; a resumed run counts its last part)."""
    reports.write_json_atomic(path, {"wall_seconds": round(seconds, 1)})


def selection_monitor(config: TrainConfig):
    """(monitor, mode) of the best-model checkpoint, LR reduction and early stop."""
    return (VAL_MACRO_F1, "max") if config.select_by == "macro_f1" else ("val_loss", "min")


def training_labels(train_table: pd.DataFrame, modalities, config: TrainConfig):
    """The class ids a run trains on, for its class weights: in Setting B a
    unimodal model's own labels (`data/setting_b.py`), the same every epoch."""
    if not train_table["disagree"].any():
        return train_table["label_id"]
    return setting_b_training_table(
        train_table, modalities, config.setting_b_unimodal,
        seed=resume.epoch_seed(config.seed, 0, "setting-b"),
    )["label_id"]


def per_class_f1_line(metrics: Dict) -> str:
    """`per-class F1: a 0.81, b 0.00 (!)`: zero-F1 classes flagged, absent ones n/a."""
    parts = []
    for name, values in metrics["per_class"].items():
        if values["support"] == 0:
            parts.append(f"{name} n/a (absent)")
        else:
            parts.append(f"{name} {values['f1']:.2f}" + (" (!)" if values["f1"] == 0 else ""))
    return "  per-class F1: " + ", ".join(parts)


def evaluation_dataset(model, table: pd.DataFrame, config: TrainConfig, split, store=None):
    """(batches, the rows they hold, in order) of one split, for evaluation."""
    if store is not None:
        return dataset_for(model, table, config, training=False, seed=config.seed,
                           split=split, store=store, with_rows=True)
    if "image" in model_modalities(model):
        table, _ = drop_bad_images(table, config.on_bad_image)
    ds = dataset_for(model, table, config, training=False, seed=config.seed)
    return ds, ds.table


def evaluate_model(model, data: CrisisMMD, config: TrainConfig, splits, store=None) -> Dict:
    """Metrics and predictions of `model` on each of `splits` present."""
    results, frames = {}, []
    for split in splits:
        table = data.splits.get(split)
        if table is None or len(table) == 0:
            continue
        ds, table = evaluation_dataset(model, table, config, split, store)
        probabilities = model.predict(ds, verbose=0)
        kept = table
        predicted = probabilities.argmax(axis=-1)
        results[split] = classification_metrics(
            kept["label_id"].to_numpy(), predicted, data.class_names
        )
        frame = reports.predictions_frame(kept, probabilities, data.class_names)
        frame.insert(0, "split", split)
        frames.append(frame)
    return results, frames


def write_evaluation(run_dir: Path, results, frames, data: CrisisMMD) -> None:
    payload = {"task": data.task.name, "class_names": list(data.class_names)}
    payload.update(results)
    reports.write_json_atomic(run_dir / "metrics.json", payload)
    if frames:
        reports.write_predictions_tsv(
            run_dir / "predictions.tsv", pd.concat(frames, ignore_index=True)
        )
    for split, metrics in results.items():
        reports.save_confusion_matrix_png(
            run_dir / f"confusion_matrix_{split}.png",
            metrics["confusion_matrix"],
            data.class_names,
            title=f"{data.task.name}: {split} (acc {metrics['accuracy']:.3f}, "
            f"macro F1 {metrics['macro_f1']:.3f})",
        )


@contextlib.contextmanager
def _dtype_policy(mixed_precision, announce=None):
    """The run's policy (`training/precision.py`: off, bf16, or auto, which
    `announce`s its choice) for the duration of a run, then the caller's."""
    from crisis_keras.training.precision import choose_precision

    choice = choose_precision(mixed_precision)
    if announce is not None and choice.mode != "off":
        announce(f"crisis_keras: {choice.describe()}")
    previous = keras.config.dtype_policy()
    if choice.bf16:
        keras.config.set_dtype_policy(choice.policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def train(config: TrainConfig, *, announce=print, extra_callbacks=()) -> Path:
    """Runs (or resumes) the training run of `config`; returns its folder.

    `extra_callbacks` are added to every epoch's `fit` (progress hooks, or a
    test that interrupts a run). Under `config.distribute` (training/distribute.py)
    a non-chief worker returns its scratch folder.
    """
    distribute.strategy_for(config.distribute)  # first: multi-worker precedes any TF op
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    with _dtype_policy(config.mixed_precision, announce):
        return _train(config, announce, extra_callbacks)


def _train(config: TrainConfig, announce, extra_callbacks) -> Path:
    started = time.perf_counter()
    strategy = distribute.strategy_for(config.distribute)
    run_dir = distribute.worker_dir(config.run_dir(), strategy)  # the chief's: the run folder
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = run_dir / "checkpoint"
    state = resume.TrainingState.load(checkpoint_dir)
    if distribute.num_workers(strategy) > 1:  # every worker resumes from the same epoch
        state = resume.agree_on_epoch(
            state, checkpoint_dir, lambda values: distribute.gather_ints(strategy, values))
    _check_or_write_config(
        run_dir, config, started=state.completed_epochs > 0 or state.finished
    )
    distribute.check_layout(run_dir, distribute.layout(strategy, config.batch_size),
                            started=state.completed_epochs > 0 or state.finished)
    if state.finished:
        announce(f"crisis_keras: {run_dir} is already complete; see metrics.json.")
        return run_dir

    data = load_data(config)
    if "train" not in data.splits or "dev" not in data.splits:
        raise ValueError(
            f"{data.data_dir} has no train and dev splits for task {config.task}."
        )
    reports.write_json_atomic(
        run_dir / CLASSES_FILE,
        {"task": data.task.name, "class_names": list(data.class_names)},
    )
    store = feature_store(config)
    if distribute.is_distributed(strategy):
        announce(f"crisis_keras: {distribute.describe(strategy, config.batch_size)}")
    with strategy.scope():  # the variables are mirrored on every replica
        model = build_run_model(config, len(data.class_names), store)
        require_image_only(model_modalities(model), config.data_format, config.model)
        compile_model(model, config)
    adapt_model(model, strategy)
    _write_summary(model, run_dir / "model_summary.txt")
    hub_lines = [layer.describe() for layer in tfhub_layers(model)]  # fine-tuned? (issue 16)
    for line in hub_lines:
        announce(f"crisis_keras: {line}")
    if hub_lines:
        with open(run_dir / "model_summary.txt", "a") as summary:
            summary.write("\n" + "\n".join(hub_lines) + "\n")
    if store is None and "image" in model_modalities(model):
        fail_on_missing_images(data, config)

    train_table = data.splits["train"]
    if config.max_train_examples:
        train_table = train_table.sample(
            n=min(config.max_train_examples, len(train_table)),
            random_state=config.seed,
        ).sort_index()
    class_weights = None
    if config.class_weight != "none":
        labels = training_labels(train_table, model_modalities(model), config)
        class_weights = cw.run_class_weights(config.class_weight, labels, data.class_names)
        cw.write_class_weights(
            run_dir / cw.CLASS_WEIGHTS_FILE, class_weights, labels, data.class_names
        )
        announce(
            f"crisis_keras: class weights (balanced, {len(labels)} training examples): "
            + cw.describe_class_weights(class_weights)
        )
    dev_ds = distribute.shard_by_batch(dataset_for(
        model, data.splits["dev"], config, training=False, seed=config.seed,
        split="dev", store=store,
    ), strategy)

    monitor, mode = selection_monitor(config)
    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor=monitor,
        mode=mode,
        factor=config.reduce_lr_factor,
        patience=config.reduce_lr_patience,
        min_lr=config.min_learning_rate,
        verbose=1,
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=config.early_stopping_patience, verbose=1
    )
    best_checkpoint = keras.callbacks.ModelCheckpoint(
        str(run_dir / BEST_MODEL), monitor=monitor, mode=mode, save_best_only=True, verbose=1
    )
    stateful = [reduce_lr, early_stopping, best_checkpoint]
    callbacks = [
        # First: the callbacks after it read the val_macro_f1 it adds to the logs.
        *([DevMacroF1(dev_ds, data.class_names)] if monitor == VAL_MACRO_F1 else []),
        resume.EpochSeeding(config.seed),
        *stateful,
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        *extra_callbacks,
        _StopAfterOneEpoch(),
        resume.RestoreCallbackState(stateful, state),
    ]

    if state.completed_epochs:
        with strategy.scope():
            resume.restore_checkpoint(model, state, checkpoint_dir)
        announce(
            f"crisis_keras: resuming {run_dir} after epoch {state.completed_epochs}."
        )
    epoch = state.completed_epochs
    while epoch < config.epochs and not state.stopped_early:
        epoch_table = train_table
        if train_table["disagree"].any():
            # Setting B (section 4.2, data/setting_b.py): a unimodal model takes
            # its modality's own rows and labels; a multimodal one makes each
            # disagreeing pair consistent anew every epoch (SSE with p0 = 1).
            # Built from the original table each epoch; nothing is written back.
            epoch_table = setting_b_training_table(
                train_table, model_modalities(model), config.setting_b_unimodal,
                seed=resume.epoch_seed(config.seed, epoch, "setting-b"),
            )
        train_ds = distribute.shard_by_batch(dataset_for(
            model, epoch_table, config, training=True,
            seed=resume.epoch_seed(config.seed, epoch, "pipeline"), store=store,
        ), strategy)
        history = model.fit(
            train_ds,
            validation_data=dev_ds,
            initial_epoch=epoch,
            epochs=config.epochs,
            callbacks=callbacks,
            class_weight=cw.keras_class_weight(class_weights, data.class_names),
            shuffle=False,  # the dataset is shuffled, seeded per epoch
            verbose=1 if sys.stdout.isatty() else 2,
        )
        logs = {k: float(v[-1]) for k, v in history.history.items()}
        logs["epoch"] = epoch + 1
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(model.optimizer.learning_rate)
        )
        epoch += 1
        state.completed_epochs = epoch
        state.history.append(logs)
        state.stopped_early = early_stopping.stopped_epoch > 0
        state.capture_callbacks(stateful)
        resume.save_checkpoint(model, state, checkpoint_dir, distribute.barrier(strategy))
        _write_history_csv(state, run_dir / "history.csv")

    if not distribute.is_chief(strategy):  # the chief evaluates and writes the run folder
        state.finished = True
        state.save(checkpoint_dir)
        announce(f"crisis_keras: {distribute.task(strategy)} done; the chief writes "
                 f"{config.run_dir()}")
        return run_dir
    best = keras.saving.load_model(run_dir / BEST_MODEL, safe_mode=load_model_safe_mode(config))
    results, frames = evaluate_model(best, data, config, ("dev", "test"), store)
    write_evaluation(run_dir, results, frames, data)
    if MODALITY_MASK in model_input_names(best):  # trained with modality dropout (issue 13)
        from crisis_keras.training import missing_modalities as missing

        missing.write_missing_metrics(
            run_dir / missing.METRICS_FILE,
            missing.evaluate_missing_modalities(best, data, config, ("dev", "test"), store),
            data,
        )
    state.finished = True
    _write_wall_time(run_dir / TIMING_FILE, time.perf_counter() - started)
    state.save(checkpoint_dir)
    for split, metrics in results.items():
        announce(
            f"{split}: accuracy {metrics['accuracy']:.4f}  macro F1 "
            f"{metrics['macro_f1']:.4f}  weighted F1 {metrics['weighted_f1']:.4f}"
            f"  ({metrics['num_examples']} pairs)"
        )
        announce(per_class_f1_line(metrics))
    announce(f"crisis_keras: run folder {run_dir}")
    return run_dir
