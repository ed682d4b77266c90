"""Reading CrisisMMD v2.0 annotation files (paper, section 4.1) into tables.

One TSV row is one image-text pair. `read_split_file` turns one file into a
`pandas.DataFrame` with the columns in `COLUMNS` (one row per pair, every row
of the file, in file order); `load_crisismmd` finds a task's split files,
reads them and applies a setting (A, B or C, section 4.2; see `settings.py`).

The reader is strict, because a silently misread row changes every number
downstream. A row with the wrong number of tab-separated fields, a label the
task does not know, an empty tweet text (or empty id / image path), a
duplicated `image_id`, bytes that are not UTF-8, a missing column, or an
`image` path resolving outside the image root (`../`, absolute, a symlink
out; `allow_outside_root=True` accepts it, `data/paths.py`) raises
`CrisisMMDFormatError` naming the file, the 1-based line and the value.

What the reader accepts and repairs (all seen in the real files):
- CRLF or LF line endings, a UTF-8 byte-order mark.
- Unquoted text (QCRI's files are written without quoting: a `"` in a tweet
  is just a character) and CSV-quoted text. Some copies of the splits went
  through a pandas round trip that wrapped every tweet containing `"` in
  quotes and doubled the inner ones. A field is unquoted when, and only when,
  it is `"..."` with every inner quote doubled and at least one `""` inside,
  a form an unquoted tweet practically never takes.
- Mojibake (UTF-8 read as cp1252 or Mac Roman), repaired by
  `normalize.fix_mojibake`: `tweet_text` holds the repaired text and `text`
  its normalization (section 4.5).

Label columns. `label` is the pair's label; `label_text` / `label_image` the
independent text and image annotations (section 4.2). Each is mapped by the
task (`tasks.py`); a raw label the task drops (e.g. `not_humanitarian` in the
paper's humanitarian set) gives the class name `""` and id -1. A row whose
pair `label` is dropped stays in the table here; the settings drop it.
The damage (severity) files label the image only: both `label_text` and
`label_image` are the pair's label and `disagree` is always False.
`label_raw`, `label_text_raw`, `label_image_raw` keep the file's strings.
"""

import dataclasses
import pathlib
import re
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from crisis_keras.data.normalize import fix_mojibake
from crisis_keras.data.normalize import normalize_tweet
from crisis_keras.data.paths import OutsideRootError, inside_root
from crisis_keras.data.tasks import Task
from crisis_keras.data.tasks import get_task

SPLITS = ("train", "dev", "test")
SPLIT_DIR_NAMES = ("crisismmd_datasplit_all", "crisismmd_datasplit_agreed_label")
IMAGE_DIR_NAME = "data_image"

# Columns of every table, in order.
COLUMNS = (
    "event_name",
    "tweet_id",
    "image_id",
    "tweet_text",
    "text",
    "image",
    "image_path",
    "label",
    "label_id",
    "label_text",
    "label_image",
    "label_text_id",
    "label_image_id",
    "disagree",
    "source_file",
    "source_line",
    "label_raw",
    "label_text_raw",
    "label_image_raw",
)

_BASE_FIELDS = ("event_name", "tweet_id", "image_id", "tweet_text", "image", "label")
_PAIR_FIELDS = _BASE_FIELDS + ("label_text", "label_image")
_CSV_QUOTED = re.compile(r'"(?:[^"]|"")*"')

PathLike = Union[str, "pathlib.Path"]


class CrisisMMDFormatError(ValueError):
    """A CrisisMMD file that does not have the expected form."""

    def __init__(self, path, line, message):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass
class CrisisMMD:
    """A task's CrisisMMD tables under one setting.

    Attributes:
        task: the `Task` (label set).
        setting: `"A"`, `"B"` or `"C"` (section 4.2).
        splits: split name -> table (columns `COLUMNS`); absent split files
            are absent here (e.g. the withheld test split).
        data_dir: the folder the TSV files were read from.
        image_root: the folder `image` paths are relative to.
    """

    task: Task
    setting: str
    splits: Dict[str, pd.DataFrame]
    data_dir: pathlib.Path
    image_root: pathlib.Path

    @property
    def class_names(self):
        return self.task.class_names

    def __getitem__(self, split: str) -> pd.DataFrame:
        if split not in self.splits:
            raise KeyError(
                f"Split {split!r} is not available (have {sorted(self.splits)}; "
                f"data_dir={self.data_dir})."
            )
        return self.splits[split]


def _as_task(task) -> Task:
    return task if isinstance(task, Task) else get_task(task)


def split_file_names(task, split: str) -> tuple:
    """The file names a split may have: `task_<stem>_text_img[_agreed_lab]_<split>.tsv`."""
    stem = _as_task(task).file_stem
    return (
        f"task_{stem}_text_img_{split}.tsv",
        f"task_{stem}_text_img_agreed_lab_{split}.tsv",
    )


def find_split_file(split_dir: PathLike, task, split: str) -> Optional[pathlib.Path]:
    """The split's TSV file in `split_dir`, or None when there is none."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    for name in split_file_names(task, split):
        path = pathlib.Path(split_dir) / name
        if path.is_file():
            return path
    return None


def resolve_split_dir(data_dir: PathLike, task) -> pathlib.Path:
    """The folder holding the task's TSV files.

    `data_dir` itself when it holds any of them, else its
    `crisismmd_datasplit_all/` (then `crisismmd_datasplit_agreed_label/`).
    """
    data_dir = pathlib.Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"CrisisMMD data directory not found: {data_dir}")
    for candidate in (data_dir,) + tuple(data_dir / n for n in SPLIT_DIR_NAMES):
        if any(find_split_file(candidate, task, s) for s in SPLITS):
            return candidate
    names = ", ".join(split_file_names(task, "<split>"))
    raise FileNotFoundError(
        f"No CrisisMMD files for task {_as_task(task).name!r} in {data_dir} or its "
        f"{' / '.join(SPLIT_DIR_NAMES)} folders (looked for {names})."
    )


def default_image_root(data_dir: PathLike) -> pathlib.Path:
    """The nearest of `data_dir` and its parents holding `data_image/`, else `data_dir`."""
    data_dir = pathlib.Path(data_dir).resolve()
    for folder in (data_dir,) + tuple(data_dir.parents):
        if (folder / IMAGE_DIR_NAME).is_dir():
            return folder
    return data_dir


def _unquote(field: str) -> str:
    """Undo CSV quoting of a round-tripped tweet (see the module docstring)."""
    if len(field) >= 4 and '""' in field[1:-1] and _CSV_QUOTED.fullmatch(field):
        return field[1:-1].replace('""', '"')
    return field


def _read_lines(path: pathlib.Path):
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise CrisisMMDFormatError(
                path, number, f"not valid UTF-8 ({err.reason} at byte {err.start}): {raw[:80]!r}"
            ) from None


def _map(task: Task, path, line, column, raw):
    try:
        mapped = task.map_label(raw)
    except KeyError:
        known = ", ".join(sorted(task.label_map))
        raise CrisisMMDFormatError(
            path, line, f"unknown {column} {raw!r} for task {task.name!r} (known: {known})"
        ) from None
    return "" if mapped is None else mapped


def read_split_file(
    path: PathLike,
    task,
    *,
    image_root: Optional[PathLike] = None,
    fix_encoding: bool = True,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read one CrisisMMD TSV file into a table with the columns `COLUMNS`.

    Args:
        path: the `.tsv` file.
        task: a `Task` or a task name.
        image_root: folder the `image` column is relative to (for
            `image_path`); default: `default_image_root(path's folder)`.
        fix_encoding: repair mojibake in the tweet text (`fix_mojibake`).
        allow_outside_root: accept `image` paths resolving outside `image_root`.

    Returns:
        Every row of the file, in order (rows whose pair label the task drops
        included, with `label == ""`, `label_id == -1`).

    Raises:
        FileNotFoundError: `path` does not exist.
        CrisisMMDFormatError: a malformed header or row (see module docstring).
    """
    task = _as_task(task)
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CrisisMMD file not found: {path}")
    image_root = pathlib.Path(image_root) if image_root else default_image_root(path.parent)
    lines = _read_lines(path)
    try:
        _, header_line = next(lines)
    except StopIteration:
        raise CrisisMMDFormatError(path, 1, "empty file (no header line)") from None
    header = header_line.split("\t")
    required = _BASE_FIELDS if task.image_only_labels else _PAIR_FIELDS
    missing = [c for c in required if c not in header]
    if missing:
        raise CrisisMMDFormatError(
            path, 1, f"missing column(s) {missing} for task {task.name!r}; header is {header}"
        )
    if len(set(header)) != len(header):
        raise CrisisMMDFormatError(path, 1, f"duplicate column names in header {header}")
    index = {name: header.index(name) for name in required}

    records = []
    seen = {}
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise CrisisMMDFormatError(
                path, number,
                f"expected {len(header)} tab-separated fields, found {len(fields)}: {line[:120]!r}",
            )
        row = {name: fields[i] for name, i in index.items()}
        for name in ("event_name", "tweet_id", "image_id", "image"):
            if not row[name].strip():
                raise CrisisMMDFormatError(path, number, f"empty {name} in {line[:120]!r}")
        text = _unquote(row["tweet_text"])
        if fix_encoding:
            text = fix_mojibake(text)
        if not text.strip():
            raise CrisisMMDFormatError(
                path, number, f"empty tweet_text {row['tweet_text']!r} (image_id {row['image_id']})"
            )
        if row["image_id"] in seen:
            raise CrisisMMDFormatError(
                path, number,
                f"duplicate image_id {row['image_id']!r} (first on line {seen[row['image_id']]})",
            )
        seen[row["image_id"]] = number
        label = _map(task, path, number, "label", row["label"])
        if task.image_only_labels:
            raw_text_label = raw_image_label = row["label"]
            label_text = label_image = label
        else:
            raw_text_label, raw_image_label = row["label_text"], row["label_image"]
            label_text = _map(task, path, number, "label_text", raw_text_label)
            label_image = _map(task, path, number, "label_image", raw_image_label)
        image = row["image"]
        try:
            image_path = inside_root(image_root, image, allow_outside_root)
        except OutsideRootError as err:
            raise CrisisMMDFormatError(path, number, f"column image: {err}") from None
        records.append(
            (
                row["event_name"], row["tweet_id"], row["image_id"], text,
                normalize_tweet(text), image, str(image_path),
                label, label_text, label_image, number,
                row["label"], raw_text_label, raw_image_label,
            )
        )
    frame = pd.DataFrame.from_records(
        records,
        columns=[
            "event_name", "tweet_id", "image_id", "tweet_text", "text", "image",
            "image_path", "label", "label_text", "label_image", "source_line",
            "label_raw", "label_text_raw", "label_image_raw",
        ],
    )

    def ids(column):
        return np.array(
            [task.class_id(c) if c else -1 for c in frame[column]], dtype=np.int32
        )

    frame["label_id"] = ids("label")
    frame["label_text_id"] = ids("label_text")
    frame["label_image_id"] = ids("label_image")
    frame["disagree"] = (frame["label_text"] != frame["label_image"]).astype(bool)
    frame["source_file"] = str(path)
    frame["source_line"] = frame["source_line"].astype(np.int64)
    return frame[list(COLUMNS)]


def read_splits(
    data_dir: PathLike,
    task,
    splits: Iterable[str] = SPLITS,
    *,
    image_root: Optional[PathLike] = None,
    allow_outside_root: bool = False,
) -> Dict[str, pd.DataFrame]:
    """Read the raw tables of the given splits (absent files are skipped)."""
    split_dir = resolve_split_dir(data_dir, task)
    image_root = pathlib.Path(image_root) if image_root else default_image_root(split_dir)
    frames = {}
    for split in splits:
        path = find_split_file(split_dir, task, split)
        if path is not None:
            frames[split] = read_split_file(path, task, image_root=image_root,
                                            allow_outside_root=allow_outside_root)
    return frames


def load_crisismmd(
    data_dir: PathLike,
    task,
    setting: str = "A",
    image_root: Optional[PathLike] = None,
    splits: Sequence[str] = SPLITS,
    humanitarian_labels: str = "paper",
    setting_c_experiment: int = 3,
    dev_fraction: float = 0.15,
    seed: int = 0,
    setting_c_reading: str = "agreeing",
    split: str = "official",
    allow_outside_root: bool = False,
) -> CrisisMMD:
    """Load a CrisisMMD task under setting A, B or C (section 4.2).

    Args:
        data_dir: a folder holding the task's TSV files, or a dataset root
            holding `crisismmd_datasplit_all/` (or `..._agreed_label/`).
        task: a `Task` or a task name (`informative`, `humanitarian`,
            `severity` / `damage`).
        setting: `"A"`, `"B"` or `"C"`; see `settings.select_setting`.
        image_root: folder the TSV `image` paths are relative to; default
            `default_image_root(data_dir)`.
        splits: the splits to return (when their files exist). Setting C
            pools every available split file first, then re-splits by event.
        humanitarian_labels: `"paper"` or `"official"` (when `task` is a name).
        setting_c_experiment: 1, 2 or 3 (Table 7's training events).
        dev_fraction, seed: Setting C's dev sample (section 4.5: 15%);
            `seed` also seeds `split="paper"`.
        setting_c_reading: Setting C's training pairs (`settings.SETTING_C_READINGS`).
        split: `"official"` (the files' splits) or `"paper"`: every split file
            present pooled and re-split by tweet with Table 2's proportions
            (`paper_split.py`; settings A and B only).
        allow_outside_root: accept `image` paths resolving outside the image
            root (refused by default, `data/paths.py`).
    """
    from crisis_keras.data.paper_split import SPLIT_CHOICES, resplit_like_paper
    from crisis_keras.data.settings import select_setting  # avoid an import cycle

    if not isinstance(task, Task):
        task = get_task(task, humanitarian_labels=humanitarian_labels)
    setting = str(setting).upper()
    if split not in SPLIT_CHOICES:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLIT_CHOICES}.")
    if split == "paper" and setting == "C":
        raise ValueError(
            "--split paper applies to settings A and B; Setting C splits by event "
            "(Table 7) and holds out 15% of the training tweets as dev."
        )
    split_dir = resolve_split_dir(data_dir, task)
    root = pathlib.Path(image_root) if image_root else default_image_root(pathlib.Path(data_dir))
    to_read = SPLITS if setting == "C" or split == "paper" else tuple(splits)
    frames = read_splits(split_dir, task, to_read, image_root=root,
                         allow_outside_root=allow_outside_root)
    if split == "paper":
        frames = resplit_like_paper(frames, task, seed)
    selected = select_setting(
        frames, task, setting,
        experiment=setting_c_experiment, dev_fraction=dev_fraction, seed=seed,
        setting_c_reading=setting_c_reading,
    )
    selected = {s: selected[s] for s in splits if s in selected}
    return CrisisMMD(
        task=task, setting=setting, splits=selected,
        data_dir=split_dir.resolve(), image_root=root,
    )
