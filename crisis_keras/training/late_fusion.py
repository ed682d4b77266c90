"""Setting B's Score Fusion as a run folder: two finished unimodal runs averaged.

Section 4.2: in Setting B the unimodal models are trained "separately on
images and texts" (`data/setting_b.py`) and score level fusion is "an average
of their prediction in the testing stage". `fuse_runs(image_run, text_run,
config)` trains nothing: it loads the two runs' `best_model.keras`, composes
them (`models.late_fusion.compose_score_fusion`), saves the result as the
new run's `best_model.keras` and evaluates it on dev and test exactly as the
trainer evaluates a trained model. The folder then holds what a trained run
holds (`config.json`, `classes.json`, `best_model.keras`,
`model_summary.txt`, `metrics.json`, `predictions.tsv`, confusion matrices,
`checkpoint/state.json` marked finished), so the report reads it and
`crisis_keras.export` exports it, plus `late_fusion.json` naming the two
source runs and the SHA-256 of their models. A finished folder whose sources
are unchanged is left alone; otherwise it is composed again.
"""

import hashlib
import json
import time
from pathlib import Path

import keras

from crisis_keras.data.setting_b import OWN_LABELS
from crisis_keras.evaluation import reports
from crisis_keras.models.late_fusion import compose_score_fusion
from crisis_keras.models.tfhub_backbone import load_model_safe_mode
from crisis_keras.training import resume
from crisis_keras.training.config import TrainConfig
from crisis_keras.training.trainer import (
    BEST_MODEL,
    CLASSES_FILE,
    TIMING_FILE,
    _check_or_write_config,
    _dtype_policy,
    _write_summary,
    _write_wall_time,
    data_seed,
    evaluate_model,
    feature_store,
    load_data,
    write_evaluation,
)

LATE_FUSION_FILE = "late_fusion.json"
# TrainConfig fields that decide which rows are evaluated, and how: the two
# source runs and the fused run must agree on all of them.
DATA_FIELDS = ("task", "data_dir", "data_format", "events", "image_root", "setting",
               "experiment", "setting_c_reading", "split", "humanitarian_labels",
               "image_size", "resize_to", "on_bad_image", "features_dir", "mixed_precision")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finished_run(run_dir: Path, role: str) -> TrainConfig:
    state = resume.TrainingState.load(run_dir / "checkpoint")
    if not (state.finished and (run_dir / BEST_MODEL).exists()):
        raise FileNotFoundError(
            f"score fusion needs the finished {role} run {run_dir} "
            f"(its {BEST_MODEL} and a finished checkpoint/state.json); train it first."
        )
    return TrainConfig.from_json_file(run_dir / "config.json")


def _procedure(config: TrainConfig) -> str:
    return config.setting_b_unimodal or OWN_LABELS


def check_same_data(config: TrainConfig, sources) -> None:
    """Raises unless every source run saw the data `config` evaluates on."""
    for role, (run_dir, source) in sources.items():
        differing = {f: (getattr(source, f, None), getattr(config, f, None))
                     for f in DATA_FIELDS if getattr(source, f, None) != getattr(config, f, None)}
        if data_seed(source) != data_seed(config):
            differing["data seed"] = (data_seed(source), data_seed(config))
        if _procedure(source) != _procedure(config):
            differing["setting_b_unimodal"] = (_procedure(source), _procedure(config))
        if differing:
            raise ValueError(
                f"the {role} run {run_dir} differs from the score fusion run in "
                f"{differing} (source, fusion)."
            )


def fuse_runs(image_run, text_run, config: TrainConfig, *, announce=print) -> Path:
    """The run folder of `config` (model `score_fusion`) from two finished runs.

    Args:
        image_run: folder of a finished image-only run (e.g. `densenet`).
        text_run: folder of a finished text-only run (e.g. `bert`).
        config: the fused run's `TrainConfig` (its folder, data and
            evaluation settings; its optimization fields are unused).

    Returns:
        The fused run's folder.

    Raises:
        FileNotFoundError: a source run is not finished.
        ValueError: the sources saw other data, or cannot be composed.
        RunConfigMismatch: the folder holds a trained run of another config.
    """
    started = time.perf_counter()
    image_run, text_run = Path(image_run), Path(text_run)
    sources = {"image": (image_run, _finished_run(image_run, "image")),
               "text": (text_run, _finished_run(text_run, "text"))}
    check_same_data(config, sources)
    record = {role: {"run_dir": str(run_dir), "model": source.model,
                     "best_model_sha256": _sha256(run_dir / BEST_MODEL)}
              for role, (run_dir, source) in sources.items()}
    record["method"] = ("score level fusion (section 4.2): mean of the two runs' "
                        "softmax outputs; no training")
    run_dir = config.run_dir()
    state = resume.TrainingState.load(run_dir / "checkpoint")
    previous = _read_json(run_dir / LATE_FUSION_FILE)
    run_dir.mkdir(parents=True, exist_ok=True)
    # A folder holding another configuration's run raises; this one's is rewritten.
    _check_or_write_config(run_dir, config, started=state.finished or state.completed_epochs > 0)
    if state.finished and previous == record and (run_dir / "metrics.json").exists():
        announce(f"crisis_keras: {run_dir} is already complete; see metrics.json.")
        return run_dir

    data = load_data(config)
    reports.write_json_atomic(
        run_dir / CLASSES_FILE, {"task": data.task.name, "class_names": list(data.class_names)}
    )
    with _dtype_policy(config.mixed_precision, announce):
        fused = compose_score_fusion(
            keras.saving.load_model(image_run / BEST_MODEL,
                                    safe_mode=load_model_safe_mode(sources["image"][1])),
            keras.saving.load_model(text_run / BEST_MODEL,
                                    safe_mode=load_model_safe_mode(sources["text"][1])),
        )
        if int(fused.output.shape[-1]) != len(data.class_names):
            raise ValueError(
                f"the source runs have {int(fused.output.shape[-1])} classes, task "
                f"{data.task.name} has {len(data.class_names)}."
            )
        fused.save(run_dir / BEST_MODEL)
        _write_summary(fused, run_dir / "model_summary.txt")
        best = keras.saving.load_model(
            run_dir / BEST_MODEL,
            safe_mode=load_model_safe_mode(sources["image"][1])
            and load_model_safe_mode(sources["text"][1]),
        )
        results, frames = evaluate_model(best, data, config, ("dev", "test"),
                                         feature_store(config))
    write_evaluation(run_dir, results, frames, data)
    reports.write_json_atomic(run_dir / LATE_FUSION_FILE, record)
    (run_dir / "checkpoint").mkdir(exist_ok=True)
    resume.TrainingState(finished=True).save(run_dir / "checkpoint")
    _write_wall_time(run_dir / TIMING_FILE, time.perf_counter() - started)
    for split, metrics in results.items():
        announce(
            f"{split}: accuracy {metrics['accuracy']:.4f}  macro F1 "
            f"{metrics['macro_f1']:.4f}  weighted F1 {metrics['weighted_f1']:.4f}"
            f"  ({metrics['num_examples']} pairs)"
        )
    announce(f"crisis_keras: score fusion of {image_run} and {text_run} in {run_dir}")
    return run_dir


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
