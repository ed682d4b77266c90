"""`python -m crisis_keras.data summary ...`: reproducible split sizes.

Prints JSON with two views of the data, so numbers quoted from the raw files
and numbers after the paper's label mapping can both be checked:

- `files`: each split file as it is on disk, read with the task's label set:
  `rows` (every data row), `label_counts_raw` (the file's `label` strings),
  `disagree_raw` (rows whose raw `label_text` and `label_image` strings
  differ; the files' own `label_text_image == "Negative"`), and
  `dropped_by_task` (rows whose pair label the task leaves out, e.g.
  `not_humanitarian` under the paper's classes).
- `splits`: the tables after the setting (A/B/C) is applied: `rows`,
  `class_counts`, `disagree` (text and image classes differ after the
  mapping, section 4.2), `disagree_raw`, `events`, `missing_images` and
  `image_ids_sha256` (sha256 of the sorted image ids joined by newlines).

The two disagreement counts differ when the mapping merges labels: in the
humanitarian Setting B training file, 5474 pairs disagree as raw strings, but
27 of them pair `injured_or_dead_people` / `missing_or_found_people` with
`affected_individuals`, which the paper merges (section 4.1), leaving 5447.
No training row is dropped there: its pair labels are never
`not_humanitarian` (only some text or image sides are, and those sides count
as disagreeing).

`--setting C` adds `setting_c.readings`: for every reading of Setting C
(`settings.SETTING_C_READINGS`) and experiment, the training pool before the
15% dev hold-out (pairs and tweets), train / dev after it, test, and the
paper's Table 2 counts beside them (`paper_train`, `paper_test`); for the
humanitarian task also under the other label set (`readings_by_label_set`).
The paper's counts include its test split: with test files withheld, ours
pool train and dev only. `--split paper` summarizes the seeded re-split with
Table 2's proportions (`paper_split.py`) instead of the files' splits.

`--data-format medic` summarizes a MEDIC folder (`medic.py`) the same way;
its `dev_split` records the fraction and seed of the stratified dev split
made when the folder has no dev file.

`python -m crisis_keras.data cache-images --data-dir D --output DIR` stores
every image of the data (every split file of `--tasks`, default all) once,
resized to `--resize-to` (228) as uint8 shards (`image_cache.py`), for
`python -m crisis_keras.train --image-cache DIR`; without `--data-dir`, of
the embedded demo data. Running it again re-caches only new and changed
images (and finishes an interrupted build).
"""

import argparse
import hashlib
import json
import os
import shlex
import sys
from typing import Optional, Sequence

from crisis_keras.data import medic
from crisis_keras.data.crisismmd import SPLITS
from crisis_keras.data.crisismmd import CrisisMMDFormatError
from crisis_keras.data.crisismmd import default_image_root
from crisis_keras.data.crisismmd import read_splits
from crisis_keras.data.crisismmd import resolve_split_dir
from crisis_keras.data.paper_split import SPLIT_CHOICES
from crisis_keras.data.paper_split import resplit_like_paper
from crisis_keras.data.settings import SETTING_C_EXPERIMENTS
from crisis_keras.data.settings import SETTING_C_READINGS
from crisis_keras.data.settings import SETTINGS
from crisis_keras.data.settings import select_setting
from crisis_keras.data.settings import setting_c_counts
from crisis_keras.data.tasks import HUMANITARIAN_LABEL_SETS
from crisis_keras.data.tasks import TASK_NAMES
from crisis_keras.data.tasks import get_task


def image_ids_sha256(frame) -> str:
    """sha256 of the split's sorted image ids joined by newlines."""
    joined = "\n".join(sorted(str(i) for i in frame["image_id"]))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _counts(series) -> dict:
    return {str(k): int(v) for k, v in series.value_counts(sort=False).sort_index().items()}


def _raw_disagree(frame) -> int:
    return int((frame["label_text_raw"] != frame["label_image_raw"]).sum())


def file_stats(frame) -> dict:
    return {
        "path": frame["source_file"].iloc[0] if len(frame) else "",
        "rows": int(len(frame)),
        "label_counts_raw": _counts(frame["label_raw"]),
        "disagree_raw": _raw_disagree(frame),
        "dropped_by_task": int((frame["label_id"] < 0).sum()),
    }


def split_stats(frame, class_names, max_missing: int = 5) -> dict:
    counts = {name: int((frame["label"] == name).sum()) for name in class_names}
    missing = [p for p in frame["image_path"] if not os.path.isfile(p)]
    return {
        "rows": int(len(frame)),
        "class_counts": counts,
        "disagree": int(frame["disagree"].sum()),
        "disagree_raw": _raw_disagree(frame),
        "events": _counts(frame["event_name"]),
        "missing_images": {"count": len(missing), "first": missing[:max_missing]},
        "image_ids_sha256": image_ids_sha256(frame),
    }


def summarize(
    data_dir,
    task_name: str,
    setting: str = "A",
    image_root=None,
    experiment: int = 3,
    humanitarian_labels: str = "paper",
    dev_fraction: float = 0.15,
    seed: int = 0,
    setting_c_reading: str = "agreeing",
    split: str = "official",
) -> dict:
    """The summary printed by the `summary` command, as a dict."""
    task = get_task(task_name, humanitarian_labels=humanitarian_labels)
    split_dir = resolve_split_dir(data_dir, task)
    root = image_root or default_image_root(data_dir)
    frames = read_splits(split_dir, task, SPLITS, image_root=root)
    if split == "paper":
        if setting.upper() == "C":
            raise ValueError("--split paper applies to settings A and B; Setting C splits by event.")
        split_frames = resplit_like_paper(frames, task, seed)
    else:
        split_frames = frames
    selected = select_setting(
        split_frames, task, setting, experiment=experiment, dev_fraction=dev_fraction,
        seed=seed, setting_c_reading=setting_c_reading,
    )
    result = {
        "task": task.name,
        "humanitarian_labels": humanitarian_labels if task.name == "humanitarian" else None,
        "setting": setting.upper(),
        "split": split,
        "data_dir": str(split_dir),
        "image_root": str(root),
        "class_names": list(task.class_names),
        "files": {s: file_stats(f) for s, f in frames.items()},
        "splits": {s: split_stats(f, task.class_names) for s, f in selected.items()},
    }
    if setting.upper() == "C":
        result["setting_c"] = {
            "experiment": experiment,
            "train_events": list(SETTING_C_EXPERIMENTS[experiment]),
            "dev_fraction": dev_fraction,
            "seed": seed,
            "reading": setting_c_reading,
            "splits_pooled": sorted(frames),
            "readings": setting_c_counts(frames, task, dev_fraction=dev_fraction, seed=seed),
        }
        if task.name == "humanitarian":
            by_set = {}
            for label_set in HUMANITARIAN_LABEL_SETS:
                other = get_task(task_name, humanitarian_labels=label_set)
                other_frames = frames if label_set == humanitarian_labels else read_splits(
                    split_dir, other, SPLITS, image_root=root)
                by_set[label_set] = setting_c_counts(
                    other_frames, other, dev_fraction=dev_fraction, seed=seed)
            result["setting_c"]["readings_by_label_set"] = by_set
        if "test" not in frames:
            result["setting_c"]["note"] = (
                "no test split file here: the counts pool train and dev only; the "
                "paper's Table 2 counts include its test split."
            )
    return result


def summarize_medic(
    data_dir,
    task_name: str,
    image_root=None,
    humanitarian_labels: str = "paper",
    dev_fraction: float = medic.DEFAULT_DEV_FRACTION,
    seed: int = 0,
) -> dict:
    """The `summary` of a MEDIC folder (`--data-format medic`, `medic.py`):
    `files` as read, `splits` after dropping the task's left-out rows and,
    without a dev file, the seeded stratified dev split."""
    task = get_task(task_name, humanitarian_labels=humanitarian_labels)
    root = image_root or data_dir
    frames = medic.read_medic_splits(data_dir, task, image_root=root)
    selected = medic.select_medic(
        frames, task, dev_fraction=dev_fraction, seed=seed, announce=lambda _: None
    )
    return {
        "data_format": "medic",
        "task": task.name,
        "humanitarian_labels": humanitarian_labels if task.name == "humanitarian" else None,
        "data_dir": str(data_dir),
        "image_root": str(root),
        "class_names": list(task.class_names),
        "files": {s: file_stats(f) for s, f in frames.items()},
        "splits": {s: split_stats(f, task.class_names) for s, f in selected.items()},
        "dev_split": None if "dev" in frames else {"dev_fraction": dev_fraction, "seed": seed},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crisis_keras.data")
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="per-split counts and id hashes as JSON")
    summary.add_argument("--data-dir", required=True)
    summary.add_argument("--task", required=True, help="informative, humanitarian, severity (damage)")
    summary.add_argument("--setting", default="A", type=str.upper, choices=SETTINGS)
    summary.add_argument("--image-root", default=None)
    summary.add_argument("--experiment", default=3, type=int, choices=sorted(SETTING_C_EXPERIMENTS))
    summary.add_argument("--humanitarian-labels", default="paper", choices=HUMANITARIAN_LABEL_SETS)
    summary.add_argument("--data-format", default="crisismmd", choices=medic.DATA_FORMATS)
    summary.add_argument("--dev-fraction", default=None, type=float,
                         help="Setting C's dev sample (default 0.15); MEDIC's dev split "
                         "without a dev file (default 0.2)")
    summary.add_argument("--seed", default=0, type=int)
    summary.add_argument("--setting-c-reading", default="agreeing", choices=SETTING_C_READINGS,
                         help="Setting C's training pairs for `splits` (every reading is "
                         "counted in `setting_c.readings`)")
    summary.add_argument("--split", default="official", choices=SPLIT_CHOICES,
                         help="official (the files' splits) or paper (seeded re-split with "
                         "Table 2's proportions, by tweet)")
    cache = commands.add_parser("cache-images", help="decode and resize every image once, "
                                "into uint8 shards for --image-cache")
    cache.add_argument("--data-dir", default=None, help="default: the embedded demo data")
    cache.add_argument("--image-root", default=None)
    cache.add_argument("--data-format", default="crisismmd", choices=medic.DATA_FORMATS)
    cache.add_argument("--tasks", nargs="+", default=None,
                       choices=TASK_NAMES + ("damage",),
                       help="whose split files to read (default: every task with files)")
    cache.add_argument("--resize-to", default=228, type=int,
                       help="shortest side, as train --resize-to (default 228)")
    cache.add_argument("--output", required=True, help="the cache folder (created or updated)")
    cache.add_argument("--on-bad-image", default="error", choices=("error", "drop"),
                       help="error (default): stop naming the files and TSV rows; drop: "
                       "record them as bad and cache the rest")
    cache.add_argument("--workers", default=None, type=int,
                       help="parallel decodes (default: tf.data autotuning)")
    cache.add_argument("--allow-outside-root", action="store_true")
    return parser


def _progress(done: int, total: int) -> None:
    if done % 1000 == 0 or done == total:
        print(f"crisis_keras.data: decoded {done} of {total} images", file=sys.stderr, flush=True)


def cache_images(args, argv) -> int:
    """The `cache-images` command (see module doc)."""
    from crisis_keras.data.demo import ensure_demo_data
    from crisis_keras.data.image_cache import ImageCacheMismatch, build_image_cache, dataset_tables
    from crisis_keras.data.pipeline import ImageError

    data_dir = args.data_dir or str(ensure_demo_data())
    if args.data_dir is None and args.data_format == "medic":
        print("error: --data-format medic needs --data-dir", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        tables = dataset_tables(data_dir, args.tasks, data_format=args.data_format,
                                image_root=args.image_root,
                                allow_outside_root=args.allow_outside_root)
        report = build_image_cache(
            args.output, tables, resize_to=args.resize_to, on_bad_image=args.on_bad_image,
            workers=args.workers, progress=_progress,
            command=shlex.join(["python", "-m", "crisis_keras.data"] + argv),
            source={"data_dir": str(data_dir), "image_root": args.image_root,
                    "data_format": args.data_format, "tasks": args.tasks},
        )
    except (CrisisMMDFormatError, FileNotFoundError, FileExistsError, ImageError,
            ImageCacheMismatch, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"crisis_keras.data: {report.describe()}, resize_to {args.resize_to}")
    return 0


def _or(value, default):
    return default if value is None else value


def main(argv: Optional[Sequence[str]] = None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(_parser(), argv)
    if args.command == "cache-images":
        return cache_images(args, argv)
    try:
        if args.data_format == "medic":
            result = summarize_medic(
                args.data_dir, args.task, image_root=args.image_root,
                humanitarian_labels=args.humanitarian_labels, seed=args.seed,
                dev_fraction=_or(args.dev_fraction, medic.DEFAULT_DEV_FRACTION),
            )
        else:
            result = summarize(
                args.data_dir, args.task, args.setting, image_root=args.image_root,
                experiment=args.experiment, humanitarian_labels=args.humanitarian_labels,
                dev_fraction=_or(args.dev_fraction, 0.15), seed=args.seed,
                setting_c_reading=args.setting_c_reading, split=args.split,
            )
    except (CrisisMMDFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
