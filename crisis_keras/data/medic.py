"""Reading MEDIC-style image datasets into the trainer's `CrisisMMD` tables.

MEDIC (Alam et al., "MEDIC: A Multi-Task Learning Dataset for Disaster Image
Classification", 2022) labels single images, not image-text pairs, for four
tasks. Three of them are CrisisMMD's, so an image-only model (e.g.
`--model densenet`) can train and be evaluated on MEDIC with the same
pipelines, metrics and reports: `load_medic` returns a `CrisisMMD` object
whose tables have exactly `crisismmd.COLUMNS`.

Files. A folder holds `<name>_train.tsv` and optionally `<name>_dev.tsv`
and `<name>_test.tsv` (found by suffix; several files with one suffix, or no
train file, is an error). Columns: `image_id`, `image` (or MEDIC's own
`image_path`), relative to `image_root` (default: the folder), and one column
per task: `damage_severity`, `informative`, `humanitarian`; optional
`disaster_types` (ignored), `event_name` or `source_event` (kept as
`event_name`, so `--events` can filter on it).

Task mapping (MEDIC value -> CrisisMMD raw label; the task then maps that as
it maps CrisisMMD's own labels, `tasks.py`):
- `severity` <- `damage_severity`: severe -> severe_damage,
  mild -> mild_damage, little_or_none -> little_or_no_damage.
- `informative` <- `informative`: informative, not_informative (same words).
- `humanitarian` <- `humanitarian`: affected_injured_or_dead_people ->
  injured_or_dead_people (the paper's affected_individuals),
  infrastructure_and_utility_damage and rescue_volunteering_or_donation_effort
  unchanged, not_humanitarian -> not_humanitarian, which the paper's classes
  drop (its rows are dropped, with a count) and the official set keeps.
  MEDIC has no vehicle_damage or other_relevant_information images, so
  those two paper classes are empty.

Columns that do not exist in MEDIC: `tweet_text` and `text` are `""`
(image-only data; `require_image_only` refuses text models), `tweet_id` is
the tweet id for AIDR-style ids `<tweet id>_<n>` and `""` otherwise,
`label_text == label_image == label` and `disagree` is False.
`source_file`/`source_line` name the TSV line, so bad-image errors do too.

Without a dev file, dev is a seeded, stratified (by class) `dev_fraction`
(default 0.2) of the training file (`sklearn.model_selection.train_test_split`
with `random_state=seed`, the run's seed), after the task's dropped rows are
removed; the same seed gives the same split, and the counts are announced.

The reader is strict like the CrisisMMD one: a row with the wrong number of
fields, an unknown label, an empty `image_id` or image path, a duplicated
`image_id` (within a file or across split files), bad UTF-8 or a missing
column raises `CrisisMMDFormatError` naming the file, line and value.
"""

import logging
import pathlib
import re
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from crisis_keras.data.crisismmd import COLUMNS
from crisis_keras.data.crisismmd import SPLITS
from crisis_keras.data.crisismmd import CrisisMMD
from crisis_keras.data.crisismmd import CrisisMMDFormatError
from crisis_keras.data.crisismmd import _read_lines
from crisis_keras.data.paths import OutsideRootError, inside_root
from crisis_keras.data.tasks import Task
from crisis_keras.data.tasks import get_task

logger = logging.getLogger(__name__)

DATA_FORMATS = ("crisismmd", "medic")
DEFAULT_DEV_FRACTION = 0.2
IMAGE_ONLY_MESSAGE = "MEDIC has no text; use an image-only model such as --model densenet"

# Our task name -> MEDIC's column.
TASK_COLUMNS = {
    "informative": "informative",
    "humanitarian": "humanitarian",
    "severity": "damage_severity",
}
# MEDIC column -> {MEDIC value: CrisisMMD raw label}.
LABEL_MAPS = {
    "damage_severity": {
        "severe": "severe_damage",
        "mild": "mild_damage",
        "little_or_none": "little_or_no_damage",
    },
    "informative": {
        "informative": "informative",
        "not_informative": "not_informative",
    },
    "humanitarian": {
        "affected_injured_or_dead_people": "injured_or_dead_people",
        "infrastructure_and_utility_damage": "infrastructure_and_utility_damage",
        "rescue_volunteering_or_donation_effort": "rescue_volunteering_or_donation_effort",
        "not_humanitarian": "not_humanitarian",
    },
}
IMAGE_COLUMNS = ("image", "image_path")  # ours, MEDIC's own
EVENT_COLUMNS = ("event_name", "source_event")
_AIDR_ID = re.compile(r"(\d+)_\d+")


def _as_task(task, humanitarian_labels: str = "paper") -> Task:
    return task if isinstance(task, Task) else get_task(task, humanitarian_labels)


def find_medic_files(data_dir) -> Dict[str, pathlib.Path]:
    """split -> the folder's `*_<split>.tsv` file (train required)."""
    data_dir = pathlib.Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"MEDIC data directory not found: {data_dir}")
    files = {}
    for split in SPLITS:
        found = sorted(p for p in data_dir.glob(f"*_{split}.tsv") if p.is_file())
        if len(found) > 1:
            raise ValueError(
                f"{data_dir} holds several MEDIC {split} files "
                f"({', '.join(p.name for p in found)}); keep one <name>_{split}.tsv per folder."
            )
        if found:
            files[split] = found[0]
    if "train" not in files:
        raise FileNotFoundError(
            f"No MEDIC training file (<name>_train.tsv) in {data_dir}."
        )
    return files


def read_medic_file(
    path, task, *, image_root=None, humanitarian_labels: str = "paper",
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read one MEDIC TSV into a table with the columns `COLUMNS`.

    Every row is returned, in file order; rows whose label the task drops
    (`not_humanitarian` under the paper's classes) have `label == ""`,
    `label_id == -1`, as `crisismmd.read_split_file` does. An image path
    resolving outside `image_root` is refused unless `allow_outside_root`.
    """
    task = _as_task(task, humanitarian_labels)
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MEDIC file not found: {path}")
    image_root = pathlib.Path(image_root) if image_root else path.parent
    label_column = TASK_COLUMNS[task.name]
    lines = _read_lines(path)
    try:
        _, header_line = next(lines)
    except StopIteration:
        raise CrisisMMDFormatError(path, 1, "empty file (no header line)") from None
    header = header_line.split("\t")
    if len(set(header)) != len(header):
        raise CrisisMMDFormatError(path, 1, f"duplicate column names in header {header}")
    image_column = next((c for c in IMAGE_COLUMNS if c in header), None)
    missing = [c for c in ("image_id", label_column) if c not in header]
    if image_column is None:
        missing.append(" or ".join(IMAGE_COLUMNS))
    if missing:
        raise CrisisMMDFormatError(
            path, 1, f"missing MEDIC column(s) {missing} for task {task.name!r}; header is {header}"
        )
    event_column = next((c for c in EVENT_COLUMNS if c in header), None)
    checked = [c for c in LABEL_MAPS if c in header]  # every label column present is validated
    index = {name: header.index(name) for name in header}

    records, seen = [], {}
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise CrisisMMDFormatError(
                path, number,
                f"expected {len(header)} tab-separated fields, found {len(fields)}: {line[:120]!r}",
            )
        image_id = fields[index["image_id"]].strip()
        image = fields[index[image_column]].strip()
        if not image_id:
            raise CrisisMMDFormatError(path, number, f"empty image_id in {line[:120]!r}")
        if not image:
            raise CrisisMMDFormatError(
                path, number, f"empty {image_column} (image_id {image_id!r})"
            )
        if image_id in seen:
            raise CrisisMMDFormatError(
                path, number, f"duplicate image_id {image_id!r} (first on line {seen[image_id]})"
            )
        seen[image_id] = number
        for column in checked:
            value = fields[index[column]]
            if value not in LABEL_MAPS[column]:
                known = ", ".join(LABEL_MAPS[column])
                raise CrisisMMDFormatError(
                    path, number, f"unknown {column} {value!r} (known: {known})"
                )
        raw = fields[index[label_column]]
        mapped = task.map_label(LABEL_MAPS[label_column][raw])
        label = "" if mapped is None else mapped
        match = _AIDR_ID.fullmatch(image_id)
        try:
            image_path = inside_root(image_root, image, allow_outside_root)
        except OutsideRootError as err:
            raise CrisisMMDFormatError(path, number, f"column image: {err}") from None
        records.append(
            (
                fields[index[event_column]] if event_column else "",
                match.group(1) if match else "",
                image_id, image, str(image_path), label, number, raw,
            )
        )
    frame = pd.DataFrame.from_records(
        records,
        columns=["event_name", "tweet_id", "image_id", "image", "image_path", "label",
                 "source_line", "label_raw"],
    )
    frame["tweet_text"] = ""
    frame["text"] = ""
    frame["label_id"] = np.array(
        [task.class_id(c) if c else -1 for c in frame["label"]], dtype=np.int32
    )
    for side in ("label_text", "label_image"):
        frame[side] = frame["label"]
        frame[f"{side}_id"] = frame["label_id"]
        frame[f"{side}_raw"] = frame["label_raw"]
    frame["disagree"] = np.zeros(len(frame), dtype=bool)
    frame["source_file"] = str(path)
    frame["source_line"] = frame["source_line"].astype(np.int64)
    return frame[list(COLUMNS)]


def read_medic_splits(data_dir, task, *, image_root=None, humanitarian_labels="paper",
                      allow_outside_root=False):
    """split -> raw table of every MEDIC file in `data_dir` (see `read_medic_file`)."""
    task = _as_task(task, humanitarian_labels)
    frames = {
        split: read_medic_file(path, task, image_root=image_root or data_dir,
                               allow_outside_root=allow_outside_root)
        for split, path in find_medic_files(data_dir).items()
    }
    first = {}
    for split, frame in frames.items():
        rows = zip(frame["image_id"], frame["source_line"], frame["source_file"])
        for image_id, line, source in rows:
            if image_id in first:
                raise CrisisMMDFormatError(
                    source, line,
                    f"image_id {image_id!r} is also in another split ({first[image_id]}); "
                    "MEDIC splits must not share images",
                )
            first[image_id] = f"{source}:{line}"
    return frames


def _counts(frame, class_names) -> Dict[str, int]:
    return {name: int((frame["label"] == name).sum()) for name in class_names}


def stratified_dev_split(
    frame: pd.DataFrame, dev_fraction: float = DEFAULT_DEV_FRACTION, seed: int = 0
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(train, dev): a seeded split stratified by `label_id`, both in file order."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}.")
    positions = np.arange(len(frame))
    source = frame["source_file"].iloc[0] if len(frame) else "the training file"
    try:
        train_pos, dev_pos = train_test_split(
            positions, test_size=dev_fraction, random_state=seed,
            stratify=frame["label_id"].to_numpy(),
        )
    except ValueError as err:
        raise ValueError(
            f"Cannot split {source} into train and a stratified {dev_fraction:g} dev "
            f"part ({len(frame)} labelled rows, class counts "
            f"{frame['label'].value_counts().to_dict()}): {err} Add a <name>_dev.tsv file "
            "or more rows."
        ) from None
    return (
        frame.iloc[np.sort(train_pos)].reset_index(drop=True),
        frame.iloc[np.sort(dev_pos)].reset_index(drop=True),
    )


def select_medic(
    frames: Dict[str, pd.DataFrame],
    task: Task,
    *,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    seed: int = 0,
    announce: Optional[Callable[[str], None]] = None,
) -> Dict[str, pd.DataFrame]:
    """Drop the rows the task leaves out; make dev from train if there is no dev file."""
    announce = announce or logger.info
    selected = {}
    for split, frame in frames.items():
        dropped = frame["label_id"] < 0
        if dropped.any():
            raw = frame.loc[dropped, "label_raw"].value_counts().to_dict()
            announce(
                f"MEDIC {frame['source_file'].iloc[0]}: dropped {int(dropped.sum())} rows whose "
                f"{TASK_COLUMNS[task.name]} label is not a class of task {task.name!r}: {raw}"
            )
        selected[split] = frame[~dropped].reset_index(drop=True)
        if selected[split].empty:
            raise ValueError(
                f"MEDIC {frame['source_file'].iloc[0] if len(frame) else split}: no rows "
                f"left for task {task.name!r}."
            )
    if "dev" not in selected:
        train, dev = stratified_dev_split(selected["train"], dev_fraction, seed)
        selected["train"], selected["dev"] = train, dev
        announce(
            f"MEDIC: no dev file; stratified dev split of "
            f"{frames['train']['source_file'].iloc[0]} (dev fraction {dev_fraction:g}, "
            f"seed {seed}): train {len(train)} {_counts(train, task.class_names)}, "
            f"dev {len(dev)} {_counts(dev, task.class_names)}"
        )
    return {s: selected[s] for s in SPLITS if s in selected}


def load_medic(
    data_dir,
    task,
    *,
    image_root=None,
    humanitarian_labels: str = "paper",
    setting: str = "A",
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    seed: int = 0,
    splits: Sequence[str] = SPLITS,
    announce: Optional[Callable[[str], None]] = None,
    allow_outside_root: bool = False,
) -> CrisisMMD:
    """A MEDIC folder as the trainer's `CrisisMMD` object (see module docstring).

    Args:
        data_dir: folder holding `<name>_train.tsv` (and optional dev / test).
        task: a `Task` or a task name (`severity`/`damage`, `informative`,
            `humanitarian`).
        image_root: folder the image paths are relative to (default `data_dir`).
        humanitarian_labels: `paper` or `official` (when `task` is a name).
        setting: only `"A"`: MEDIC has one label per image, so settings B
            and C (text/image disagreement, event splits) do not apply.
        dev_fraction, seed: the stratified dev split when there is no dev file.
        splits: the splits to return (when present).
        announce: receives the dropped-row and split counts (default: log).
        allow_outside_root: accept image paths resolving outside `image_root`.
    """
    task = _as_task(task, humanitarian_labels)
    if str(setting).upper() != "A":
        raise ValueError(
            f"MEDIC has one label per image: setting {setting!r} does not apply "
            "(use --setting A)."
        )
    data_dir = pathlib.Path(data_dir)
    root = pathlib.Path(image_root) if image_root else data_dir
    frames = read_medic_splits(data_dir, task, image_root=root,
                               allow_outside_root=allow_outside_root)
    selected = select_medic(frames, task, dev_fraction=dev_fraction, seed=seed, announce=announce)
    return CrisisMMD(
        task=task, setting="A", splits={s: selected[s] for s in splits if s in selected},
        data_dir=data_dir.resolve(), image_root=root,
    )


def require_image_only(
    modalities: Sequence[str], data_format: str = "medic", model_name=None
) -> None:
    """Raise `ValueError` when a model that reads text is used on MEDIC data."""
    if data_format == "medic" and "text" in tuple(modalities):
        which = f" (--model {model_name} reads {'+'.join(modalities)})" if model_name else ""
        raise ValueError(f"{IMAGE_ONLY_MESSAGE}{which}.")
