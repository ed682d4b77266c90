#!/usr/bin/env python
"""Tables 2-8 of the paper as named configs, a runner and a report.

Abavisani, Wu, Hu, Tetreault, Jaimes, "Multimodal Categorization of Crisis
Events in Social Media", CVPR 2020.

    python experiments/paper_tables.py run --table 4 --data-dir PATH [--output-dir runs/paper]
        [--rows ROW ...] [--columns COL ...] [--dry-run] [--stop-on-error]
        [TrainConfig overrides: --epochs 5 --text-backbone DIR --image-weights FILE ...]
    python experiments/paper_tables.py report --table 4 [--output-dir runs/paper] [--results-dir DIR]

`--table` takes 2-8 (several allowed) or `all`.

The spec (TF Model Garden style: a row of a paper table is a named config,
not a copy of a script). Each `PaperTable` lists its rows in the paper's
order. A `PaperRow` is the row label as printed, the registered model name
(`crisis_keras.models.model_names()`) and the numbers the paper prints
(`PaperNumbers`: reference values copied from the paper, never ours). A
`Column` gives task, setting and (Setting C) experiment. Table 6 has two
columns (informative, humanitarian) and Table 7 has three (Setting C
experiments 1-3). Row x column is a `NamedConfig`, e.g.
`table4-sse-cross-bert-densenet`. It builds the `TrainConfig` of that run,
and its run folder is `<output-dir>/<name>` (`-seed<N>` added for seeds
other than 0). Running a command again resumes unfinished runs and skips
finished ones through the trainer's own resume logic.

Table 2 (split sizes) needs no training: `run --table 2` counts the pairs
the data layer yields in every setting and `report --table 2` compares them
with the paper's counts.

Rows whose model is not registered when the command runs are reported as
"not implemented", never skipped silently. The report fills in our numbers
only from the metrics.json of finished runs. Anything else shows "not run".
"""

import argparse
import dataclasses
import gc
import json
import re
import sys
import typing
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from crisis_keras.training.config import TrainConfig

PAPER = (
    'Abavisani, Wu, Hu, Tetreault, Jaimes, "Multimodal Categorization of Crisis '
    'Events in Social Media", CVPR 2020'
)
METRICS = ("accuracy", "macro_f1", "weighted_f1")
METRIC_HEADERS = {"accuracy": "Acc", "macro_f1": "Macro F1", "weighted_f1": "Weighted F1"}
DEFAULT_OUTPUT_DIR = "runs/paper"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TABLE_NUMBERS = (2, 3, 4, 5, 6, 7, 8)
SPLIT_COUNTS_FILE = "table2-split-counts.json"

SETTING_C_NOTE = (
    "Setting C has no dev set in the paper; section 4.5 tunes on 15% of the "
    "training samples. The data layer (`crisis_keras.data.settings`) holds out "
    "a seeded 15% of the training tweets as the dev split, which drives "
    "learning-rate reduction, early stopping and the choice of the best "
    "epoch; the training split is the other 85%."
)


def slugify(label: str) -> str:
    """`"− SSE + Mix-up [68]"` -> `"minus-sse-plus-mix-up"` (citations dropped)."""
    text = re.sub(r"\[\d+\]", " ", label)
    text = text.replace("\u2212", " minus ").replace("+", " plus ").replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------------------
# The spec.


@dataclasses.dataclass(frozen=True)
class PaperNumbers:
    """Accuracy, macro F1 and weighted F1 in percent, AS PRINTED IN THE PAPER.

    These are the paper's reference values, not results of this project.
    `None` is the paper's "-" (MMBT reports accuracy only).
    """

    accuracy: Optional[float]
    macro_f1: Optional[float]
    weighted_f1: Optional[float]

    @classmethod
    def parse(cls, tokens: Sequence[str]) -> "PaperNumbers":
        if len(tokens) != 3:
            raise ValueError(f"expected 3 numbers, got {tokens!r}")
        return cls(*(None if t == "-" else float(t) for t in tokens))

    def get(self, metric: str) -> Optional[float]:
        return getattr(self, metric)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column group of a table: the data of its runs and the splits printed.

    `key` names the column in named-config names ("" in one-column tables);
    `title` is the heading as printed; `short` is the report's header prefix.
    """

    key: str
    title: str
    short: str
    task: str
    setting: str
    experiment: Optional[int] = None  # Setting C only (Table 7's training sets).
    splits: Tuple[str, ...] = ("test",)


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """A row as printed: label, registered model name, the paper's numbers.

    `paper` holds one `PaperNumbers` per (column, split) of the table, in the
    printed order. `model` is None for the paper's own reference row (Table
    6's "Best from Table 3, 4, 5"), which is no training run:
    `best_of_tables` says where the report takes our counterpart from.
    `shares_run_with` names the named config (in another table) whose run
    this row is: the paper prints the same numbers for both, and the config
    is identical, so it is trained once.
    """

    label: str
    model: Optional[str]
    paper: Tuple[PaperNumbers, ...]
    shares_run_with: Optional[str] = None
    best_of_tables: Tuple[int, ...] = ()
    note: str = ""

    @property
    def slug(self) -> str:
        return slugify(self.label)

    @property
    def is_reference(self) -> bool:
        return self.model is None


@dataclasses.dataclass(frozen=True)
class NamedConfig:
    """One training run of a paper table: row x column.

    `train_config(**overrides)` is the `TrainConfig`. The row fixes model,
    task, setting, experiment and run name. `overrides` set everything else
    (data_dir, output_dir, epochs, backbones, ...).
    """

    table: int
    row: str  # label as printed
    column: str  # column key, "" in one-column tables
    model: str
    task: str
    setting: str
    experiment: Optional[int] = None
    shares_run_with: Optional[str] = None

    FIXED = ("model", "task", "setting", "experiment", "run_name")

    @property
    def name(self) -> str:
        return f"table{self.table}-{slugify(self.row)}" + (f"-{self.column}" if self.column else "")

    def run_name(self, seed: int = 0) -> str:
        base = self.shares_run_with or self.name
        return base if not seed else f"{base}-seed{seed}"

    def fixed_fields(self) -> Dict:
        """The TrainConfig fields this row fixes (besides the run name)."""
        values = {"model": self.model, "task": self.task, "setting": self.setting}
        if self.experiment is not None:
            values["experiment"] = self.experiment
        return values

    def train_config(self, **overrides) -> TrainConfig:
        clash = sorted(set(overrides) & set(self.FIXED))
        if clash:
            raise ValueError(f"{self.name} fixes {clash}; they cannot be overridden.")
        values = {**overrides, **self.fixed_fields()}
        values["run_name"] = self.run_name(values.get("seed", 0))
        return TrainConfig.from_dict(values)

    def run_dir(self, output_dir, seed: int = 0) -> Path:
        return Path(output_dir) / self.run_name(seed)


@dataclasses.dataclass(frozen=True)
class PaperTable:
    number: int
    caption: str  # as printed (line breaks joined)
    columns: Tuple[Column, ...]
    rows: Tuple[PaperRow, ...]
    notes: Tuple[str, ...] = ()

    def slots(self) -> Tuple[Tuple[Column, str], ...]:
        """(column, split) pairs in the printed order of the numbers."""
        return tuple((c, s) for c in self.columns for s in c.splits)

    def paper_numbers(self, row: PaperRow, column_key: str, split: str) -> PaperNumbers:
        for (column, s), numbers in zip(self.slots(), row.paper):
            if column.key == column_key and s == split:
                return numbers
        raise KeyError((row.label, column_key, split))

    def row(self, key: str) -> PaperRow:
        for row in self.rows:
            if key in (row.slug, row.label):
                return row
        raise KeyError(f"Table {self.number} has no row {key!r}.")

    def named_configs(self, rows: Optional[Iterable[PaperRow]] = None,
                      columns: Optional[Iterable[str]] = None) -> Tuple[NamedConfig, ...]:
        rows = self.rows if rows is None else tuple(rows)
        wanted = None if columns is None else set(columns)
        configs = []
        for row in rows:
            if row.is_reference:
                continue
            for column in self.columns:
                if wanted is not None and column.key not in wanted:
                    continue
                configs.append(NamedConfig(
                    table=self.number, row=row.label, column=column.key, model=row.model,
                    task=column.task, setting=column.setting, experiment=column.experiment,
                    shares_run_with=row.shares_run_with,
                ))
        return tuple(configs)


def _row(label: str, model: Optional[str], printed: str, **kwargs) -> PaperRow:
    """A row from its numbers exactly as printed after the label."""
    tokens = printed.split()
    if len(tokens) % 3:
        raise ValueError(f"{label}: {len(tokens)} numbers is not a multiple of 3")
    numbers = tuple(PaperNumbers.parse(tokens[i:i + 3]) for i in range(0, len(tokens), 3))
    return PaperRow(label, model, numbers, **kwargs)


def _setting_a(task: str) -> Tuple[Column, ...]:
    return (Column("", "", "", task, "A", None, ("dev", "test")),)


# Tables 3-5 list the same models in the same order; the numbers differ.
_SETTING_A_MODELS = (
    ("DenseNet [30]", "densenet"),
    ("BERT [17]", "bert"),
    ("Compact Bilinear Pooling[22]", "compact_bilinear_pooling"),
    ("Compact Bilinear Gated Pooling [38]", "compact_bilinear_gated_pooling"),
    ("MMBT [37]", "mmbt"),
    ("Score Fusion", "score_fusion"),
    ("Feature Fusion", "feature_fusion"),
    ("Attention Variant 1", "attention_variant_1"),
    ("Attention Variant 2", "attention_variant_2"),
    ("Attention Variant 3", "attention_variant_3"),
    ("SSE-Cross-BERT-DenseNet", "sse_cross"),
)


def _setting_a_rows(printed: Sequence[str]) -> Tuple[PaperRow, ...]:
    assert len(printed) == len(_SETTING_A_MODELS)
    return tuple(_row(label, model, numbers)
                 for (label, model), numbers in zip(_SETTING_A_MODELS, printed))


_ATTENTION_VARIANTS_NOTE = (
    "Attention Variants (section 4.3): 1 = without SSE; 2 = without SSE and "
    "without the self-attention atop; 3 = cross-attention changed to "
    "self-attention (each modality gates itself), read here as also without "
    "SSE (see crisis_keras/models/variants.py)."
)
_SETTING_A_NOTES = (
    "Setting A (section 4.2): train, dev and test keep only pairs whose text "
    "and image labels agree (eq. 11).",
    _ATTENTION_VARIANTS_NOTE,
)

TABLE_3 = PaperTable(
    3, "Setting A: Informativeness Evaluation", _setting_a("informative"),
    _setting_a_rows((
        "81.56 79.24 81.51 81.57 79.12 81.22",
        "83.91 82.19 84.46 84.90 81.19 83.30",
        "87.88 86.15 87.86 88.12 86.18 87.61",
        "88.07 86.84 88.02 88.76 87.50 88.80",
        "83.54 - - 82.48 - -",
        "87.88 86.55 87.80 88.16 83.46 85.26",
        "86.62 86.33 87.67 87.56 85.20 86.55",
        "87.16 87.98 89.28 89.29 85.68 87.04",
        "87.52 86.89 88.32 88.34 86.12 87.42",
        "87.52 86.79 88.20 88.20 86.22 87.47",
        "89.51 87.28 88.75 89.33 88.09 89.35",
    )),
    _SETTING_A_NOTES,
)

TABLE_4 = PaperTable(
    4, "Setting A: Humanitarian Categorization Task Evaluation", _setting_a("humanitarian"),
    _setting_a_rows((
        "87.22 55.85 82.67 83.44 60.45 86.96",
        "87.78 66.23 85.81 86.09 66.83 87.83",
        "90.37 64.83 88.82 89.30 67.18 90.33",
        "89.44 60.12 85.32 85.34 65.95 89.42",
        "89.25 - - 85.82 - -",
        "90.19 53.00 85.22 86.98 54.01 88.96",
        "91.48 64.80 89.40 89.17 67.28 91.40",
        "90.93 59.96 87.69 88.41 64.60 90.71",
        "91.48 63.48 89.22 89.23 67.63 91.56",
        "90.37 61.11 86.67 87.18 64.67 90.24",
        "91.14 70.16 90.88 91.14 68.41 91.82",
    )),
    _SETTING_A_NOTES,
)

TABLE_5 = PaperTable(
    5, "Setting A: Damage Severity Task Evaluation", _setting_a("severity"),
    _setting_a_rows((
        "67.65 41.74 61.98 62.85 52.34 66.10",
        "67.06 40.69 62.29 68.16 45.04 61.09",
        "71.47 48.50 65.53 66.48 61.03 70.58",
        "69.12 45.64 65.08 68.72 51.46 65.34",
        "67.94 - - 65.36 - -",
        "71.47 49.72 67.11 71.23 53.48 66.26",
        "65.88 37.72 60.13 67.60 40.62 56.47",
        "72.35 46.12 67.61 71.51 55.41 69.71",
        "70.29 43.89 62.79 63.13 58.03 69.39",
        "71.47 47.62 66.56 68.99 57.42 69.16",
        "74.58 58.80 72.55 72.65 59.76 70.41",
    )),
    _SETTING_A_NOTES + (
        "Damage severity (CrisisMMD file name: damage) labels annotate the "
        "image only (section 4.2).",
    ),
)

TABLE_6 = PaperTable(
    6, "Setting B: Informativeness Task and Humanitarian Categorization Task Evaluations",
    (
        Column("informative", "Informativeness Task", "Informative", "informative", "B"),
        Column("humanitarian", "Humanitarian Categorization Task", "Humanitarian",
               "humanitarian", "B"),
    ),
    (
        _row("DenseNet [30]", "densenet", "83.36 80.95 82.95 82.89 66.68 83.13"),
        _row("BERT [17]", "bert", "86.26 84.44 86.01 87.73 83.72 87.57"),
        _row("Score Fusion", "score_fusion", "87.03 85.19 86.90 91.41 83.26 91.36"),
        _row("SSE-Cross-BERT-DenseNet", "sse_cross", "90.05 88.88 89.9 93.46 84.16 93.35"),
        _row("Best from Table 3, 4, 5", None, "89.33 88.09 89.35 91.48 67.87 91.34",
             best_of_tables=(3, 4, 5),
             note="The paper's own reference row, no training run. Its "
                  "informative numbers are Table 3's SSE-Cross-BERT-DenseNet "
                  "test row; its humanitarian numbers match no single row of "
                  "Table 4. Our counterpart is the per-metric best of our "
                  "finished Setting A test results for the same task."),
    ),
    (
        "Setting B (section 4.2): training also keeps pairs whose text and "
        "image labels disagree (eq. 12); each such pair makes an SSE transition "
        "with p0 = 1 to a consistent pair, drawn anew every epoch. Dev and test "
        "are Setting A's.",
        "The table prints no split; the numbers are test-set numbers (the "
        "informative 'Best from Table 3, 4, 5' equals Table 3's test row).",
        "The paper (section 4.2) describes score fusion in Setting B as unimodal "
        "models trained separately on images and texts whose predictions are "
        "averaged at test time.",
    ),
)

TABLE_7 = PaperTable(
    7,
    "Comparing our proposed method with baselines for Humanitarian Categorization "
    "Task in Setting 3. We fix the last occurred crisis namely \u2018California "
    "wildfires\u2019 as test data and vary the training data which is specified "
    "in the columns.",
    (
        Column("exp1", "Sri Lanka Floods", "Exp. 1", "humanitarian", "C", 1),
        Column("exp2", "Sri Lanka Floods + Hurricanes Harvey & Irma", "Exp. 2",
               "humanitarian", "C", 2),
        Column("exp3", "Sri Lanka Floods + Hurricanes Harvey & Irma + Mexico earthquake",
               "Exp. 3", "humanitarian", "C", 3),
    ),
    (
        _row("DenseNet [30]", "densenet",
             "55.71 35.77 56.85 70.32 52.23 68.55 70.32 44.80 68.79"),
        _row("BERT [17]", "bert",
             "31.96 20.90 27.21 73.97 53.90 73.51 74.43 56.98 74.21"),
        _row("Score Fusion", "score_fusion",
             "56.62 36.77 57.96 81.74 56.54 81.03 81.28 55.90 80.54"),
        _row("SSE-Cross-BERT-DenseNet", "sse_cross",
             "62.56 39.82 62.08 84.02 63.12 83.55 86.30 65.55 85.93"),
    ),
    (
        "'Setting 3' in the caption is Setting C (section 4.2): test on the "
        "California wildfires pairs, train on earlier events "
        "(`crisis_keras.data.settings.SETTING_C_EXPERIMENTS`): 1 = Sri Lanka "
        "floods; 2 = + Hurricanes Harvey and Irma; 3 = + Mexico earthquake.",
        SETTING_C_NOTE,
    ),
)

TABLE_8 = PaperTable(
    8, "Ablation Study of our proposed method for Humanitarian Categorization Task in Setting A.",
    (Column("", "Test Set", "", "humanitarian", "A", None, ("test",)),),
    (
        _row("SSE-Cross-BERT-DenseNet", "sse_cross", "91.14 68.41 91.82",
             shares_run_with="table4-sse-cross-bert-densenet",
             note="Same configuration and the same numbers as Table 4's "
                  "SSE-Cross-BERT-DenseNet test row: one run serves both."),
        _row("\u2212 Self-Attention", "ablation_no_self_attention", "89.23 56.50 87.70"),
        _row("\u2212 Cross-Attention", "ablation_no_cross_attention", "88.48 56.38 87.10"),
        _row("\u2212 Cross-Attention + Co-Attention", "co_attention", "88.55 60.47 87.92"),
        _row("\u2212 Cross-Attention + Self-Attention", "ablation_self_gating",
             "86.30 58.33 85.27"),
        _row("\u2212 Dropout", "ablation_no_dropout", "83.37 54.83 82.46"),
        _row("\u2212 SSE", "ablation_no_sse", "88.41 64.60 90.71",
             note="The paper prints the same numbers as Table 4's Attention "
                  "Variant 1 (test), which supports reading Variant 1 as the "
                  "full model without SSE."),
        _row("\u2212 SSE + Shuffling Within Class", "ablation_shuffle_within_class",
             "88.68 62.91 88.33"),
        _row("\u2212 SSE + Mix-up [68]", "ablation_mixup", "89.16 54.63 87.37"),
    ),
    (
        "Each row changes one component of SSE-Cross-BERT-DenseNet (section 5.4).",
    ),
)

TABLES: Dict[int, PaperTable] = {t.number: t for t in (TABLE_3, TABLE_4, TABLE_5, TABLE_6,
                                                      TABLE_7, TABLE_8)}


def named_configs() -> Dict[str, NamedConfig]:
    """Every named config of Tables 3-8, by name (e.g. `table4-sse-cross-bert-densenet`)."""
    return {c.name: c for t in TABLES.values() for c in t.named_configs()}


def named_config(name: str) -> NamedConfig:
    configs = named_configs()
    if name not in configs:
        raise KeyError(f"no named config {name!r}; known: {sorted(configs)}")
    return configs[name]


# Table 2: number of samples per split (no training needed).


@dataclasses.dataclass(frozen=True)
class SplitCountRow:
    """One line of Table 2; `paper_*` are the paper's counts as printed (None = "-")."""

    setting: str
    label: str  # as printed, e.g. "Task1:" or "Experiment 1:"
    task: str
    experiment: Optional[int]
    paper_train: int
    paper_dev: Optional[int]
    paper_test: int

    @property
    def key(self) -> str:
        return f"setting{self.setting}-" + (
            f"experiment{self.experiment}" if self.experiment else self.task)


@dataclasses.dataclass(frozen=True)
class SplitCountTable:
    number: int
    caption: str
    rows: Tuple[SplitCountRow, ...]
    notes: Tuple[str, ...] = ()


TABLE_2 = SplitCountTable(
    2, "Number of samples in different splits of our settings.",
    (
        SplitCountRow("A", "Task1:", "informative", None, 7876, 553, 2821),
        SplitCountRow("A", "Task2:", "humanitarian", None, 1352, 540, 1467),
        SplitCountRow("A", "Task3:", "severity", None, 2590, 340, 358),
        SplitCountRow("B", "Task1:", "informative", None, 12680, 553, 2821),
        SplitCountRow("B", "Task2:", "humanitarian", None, 5433, 540, 1467),
        SplitCountRow("C", "Experiment 1:", "humanitarian", 1, 174, None, 217),
        SplitCountRow("C", "Experiment 2:", "humanitarian", 2, 4037, None, 217),
        SplitCountRow("C", "Experiment 3:", "humanitarian", 3, 4761, None, 217),
    ),
    (
        "Task1 = informative, Task2 = humanitarian (the paper's five classes), "
        "Task3 = damage severity; Setting C's experiments are humanitarian.",
        "Ours: image-text pairs (one row per image) that "
        "`crisis_keras.data.crisismmd.load_crisismmd` yields for the setting; "
        "splits whose file is absent from the data dir show as 'absent'. All "
        "rows read one --data-dir: Setting B has more training pairs than A only "
        "if its files keep the disagreeing pairs (the official "
        "crisismmd_datasplit_all does).",
        SETTING_C_NOTE,
    ),
)

ALL_TABLES: Dict[int, object] = {2: TABLE_2, **TABLES}


# ---------------------------------------------------------------------------
# Runner.


@dataclasses.dataclass
class RunOutcome:
    name: str
    table: int
    row: str
    model: str
    run_dir: Path
    status: str  # planned | not implemented | trained | resumed | already finished | shared | failed
    metrics: Optional[Dict] = None
    message: str = ""


def registered_models() -> frozenset:
    from crisis_keras.models import model_names  # imports TensorFlow

    return frozenset(model_names())


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _run_state(run_dir: Path) -> Dict:
    return _read_json(run_dir / "checkpoint" / "state.json") or {}


def select_rows(table: PaperTable, keys: Optional[Sequence[str]]) -> Tuple[PaperRow, ...]:
    """Rows matching any of `keys` (slug, printed label or model name); all when None."""
    if not keys:
        return table.rows
    wanted = {k.lower() for k in keys}
    return tuple(r for r in table.rows
                 if {r.slug, r.label.lower(), (r.model or "").lower()} & wanted)


def _format_config(config: TrainConfig) -> str:
    defaults = TrainConfig().to_dict()
    values = config.to_dict()
    first = ["task", "setting"] + (["experiment"] if config.setting == "C" else []) + ["model"]
    parts = [f"{k}={values[k]}" for k in first]
    parts += [f"{k}={v}" for k, v in values.items()
              if k not in first and k not in ("output_dir", "run_name") and v != defaults[k]]
    return " ".join(parts)


def run_table(table: PaperTable, *, overrides: Dict, output_dir, rows=None, columns=None,
              dry_run=False, stop_on_error=False, registered=None, out=print,
              handled: Optional[Dict[str, str]] = None) -> List[RunOutcome]:
    """Train (or plan) the named configs of `table`; returns one outcome each.

    `overrides` are TrainConfig fields (data_dir, epochs, ...); `registered`
    the registered model names (default: the registry, read now); `handled`
    maps run folders already dealt with in this invocation to their config's
    name (runs shared between tables are trained once).
    """
    registered = registered_models() if registered is None else frozenset(registered)
    handled = {} if handled is None else handled
    selected = select_rows(table, rows)
    out(f"Table {table.number}: {table.caption}")
    outcomes = []
    for row in selected:
        if row.is_reference:
            out(f"  [reference]        {row.slug}: {row.label!r} is the paper's own "
                f"summary row; no run (the report compares it with the best of our "
                f"Tables {', '.join(map(str, row.best_of_tables))}).")
    for named in table.named_configs(selected, columns):
        config = named.train_config(output_dir=str(output_dir), **overrides)
        run_dir = config.run_dir()
        outcome = RunOutcome(named.name, table.number, named.row, named.model, run_dir, "planned")
        outcomes.append(outcome)
        label = f"{named.name}: {named.row!r} -> model {named.model}"
        if named.model not in registered:
            outcome.status = "not implemented"
            outcome.message = f"model {named.model!r} is not registered"
            out(f"  [not implemented]  {label} (not registered; nothing to run)")
            continue
        shared = f" (shares the run of {named.shares_run_with})" if named.shares_run_with else ""
        if dry_run:
            out(f"  [implemented]      {label}{shared}\n"
                f"                     run: {run_dir}\n"
                f"                     config: {_format_config(config)}")
            continue
        key = str(run_dir.resolve())
        if key in handled:
            outcome.status = "shared"
            outcome.metrics = _read_json(run_dir / "metrics.json")
            outcome.message = f"same run as {handled[key]}"
            out(f"  [shared]           {label}: same run as {handled[key]} ({run_dir})")
            continue
        handled[key] = named.name
        state = _run_state(run_dir)
        if state.get("finished"):
            outcome.status = "already finished"
        elif state.get("completed_epochs"):
            outcome.status = "resumed"
        else:
            outcome.status = "trained"
        out(f"  [run]              {label}{shared} ({outcome.status}): {run_dir}")
        try:
            from crisis_keras.training.trainer import train

            train(config, announce=lambda message: out(f"      {message}"))
        except Exception as error:  # noqa: BLE001 (one row's failure must not stop the others)
            outcome.status = "failed"
            outcome.message = f"{type(error).__name__}: {error}"
            out(f"  [failed]           {label}: {outcome.message}")
            if stop_on_error:
                raise
        else:
            outcome.metrics = _read_json(run_dir / "metrics.json")
        finally:
            _release_memory()
    return outcomes


def _release_memory():
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()
    gc.collect()


def count_splits(overrides: Dict, out=print) -> Dict:
    """Table 2 for our data: pairs per split, for every row of `TABLE_2`."""
    from crisis_keras.data.crisismmd import load_crisismmd

    data_dir = overrides.get("data_dir")
    defaults = TrainConfig()
    counts = {"data_dir": str(data_dir), "rows": {}}
    for row in TABLE_2.rows:
        try:
            data = load_crisismmd(
                data_dir, row.task, setting=row.setting,
                image_root=overrides.get("image_root"),
                humanitarian_labels=overrides.get("humanitarian_labels",
                                                  defaults.humanitarian_labels),
                setting_c_experiment=row.experiment or 3,
                seed=overrides.get("seed", defaults.seed),
            )
            entry = {s: len(data.splits[s]) if s in data.splits else None
                     for s in ("train", "dev", "test")}
        except Exception as error:  # noqa: BLE001
            entry = {"error": f"{type(error).__name__}: {error}"}
        counts["rows"][row.key] = entry
        out(f"  {row.key}: {entry}")
    return counts


def run_tables(numbers: Sequence[int], *, overrides: Dict, output_dir, rows=None, columns=None,
               dry_run=False, stop_on_error=False, registered=None, out=print) -> List[RunOutcome]:
    outcomes: List[RunOutcome] = []
    handled: Dict[str, str] = {}
    if rows:
        known = {k for n in numbers if n in TABLES for k in _row_keys(TABLES[n])}
        unknown = [k for k in rows if k.lower() not in known]
        if unknown:
            raise SystemExit(f"unknown row(s) {unknown} for table(s) {list(numbers)}; "
                             f"rows: {sorted(known)}")
    if registered is None and any(n in TABLES for n in numbers):
        registered = registered_models()
    for number in numbers:
        if number == 2:
            out(f"Table 2: {TABLE_2.caption}")
            if dry_run:
                out("  [count]            split sizes of every setting (no training)")
                continue
            counts = count_splits(overrides, out=out)
            path = Path(output_dir) / SPLIT_COUNTS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
            out(f"  wrote {path}")
            continue
        table = TABLES[number]
        if rows and not select_rows(table, rows):
            continue
        outcomes += run_table(table, overrides=overrides, output_dir=output_dir, rows=rows,
                              columns=columns, dry_run=dry_run, stop_on_error=stop_on_error,
                              registered=registered, out=out, handled=handled)
    return outcomes


def _row_keys(table: PaperTable):
    for r in table.rows:
        yield r.slug
        yield r.label.lower()
        if r.model:
            yield r.model.lower()


def summarize(outcomes: Sequence[RunOutcome], out=print) -> None:
    if not outcomes:
        return
    out("\nSummary (ours; test split):")
    for o in outcomes:
        test = (o.metrics or {}).get("test")
        numbers = ("  acc {:.2f}  macro F1 {:.2f}  weighted F1 {:.2f}".format(
            *(100 * test[m] for m in METRICS)) if test else "")
        out(f"  {o.name:55s} {o.status:16s}{numbers}")
    missing = sorted({o.model for o in outcomes if o.status == "not implemented"})
    if missing:
        out(f"Not implemented (not registered): {', '.join(missing)}")
    for o in outcomes:
        if o.status == "failed":
            out(f"FAILED {o.name}: {o.message}")


# ---------------------------------------------------------------------------
# Report.

# TrainConfig fields that say where a run lives rather than what it is.
_BOOKKEEPING = {"data_dir", "image_root", "output_dir", "run_name"}


def _percent(value) -> str:
    return f"{100 * value:.2f}"


def _paper(value) -> str:
    return "-" if value is None else f"{value:.2f}"


@dataclasses.dataclass
class OurResult:
    status: str  # finished | not run | unfinished | not implemented | mismatch
    metrics: Optional[Dict] = None
    deviations: str = ""
    run_dir: Optional[Path] = None
    note: str = ""


def our_result(named: NamedConfig, output_dir, seed: int = 0,
               registered: Optional[frozenset] = None) -> OurResult:
    """Our numbers for a named config: only from a finished run's metrics.json."""
    run_dir = named.run_dir(output_dir, seed)
    metrics = _read_json(run_dir / "metrics.json")
    config = _read_json(run_dir / "config.json")
    if metrics is not None and config is not None:
        differing = {k: config.get(k) for k, v in named.fixed_fields().items()
                     if config.get(k) != v}
        if differing:
            return OurResult("mismatch", run_dir=run_dir,
                             note=f"{run_dir} holds another run ({differing})")
        defaults = TrainConfig().to_dict()
        deviations = ", ".join(
            f"{k}={config[k]}" for k in sorted(config)
            if k in defaults and k not in _BOOKKEEPING and k not in named.fixed_fields()
            and config[k] != defaults[k])
        return OurResult("finished", metrics, deviations, run_dir)
    if registered is not None and named.model not in registered:
        return OurResult("not implemented", run_dir=run_dir)
    state = _run_state(run_dir)
    if state.get("completed_epochs"):
        total = (config or {}).get("epochs", "?")
        return OurResult("unfinished", run_dir=run_dir,
                         note=f"{state['completed_epochs']}/{total} epochs done")
    return OurResult("not run", run_dir=run_dir)


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _slot_header(table: PaperTable, column: Column, split: str, metric: str) -> str:
    parts = [column.short, split.capitalize(), METRIC_HEADERS[metric]]
    return " ".join(p for p in parts if p)


def render_table(table: PaperTable, output_dir, *, seed: int = 0,
                 registered: Optional[frozenset] = None) -> str:
    """Markdown: per row, the paper's numbers and ours (finished runs only)."""
    slots = table.slots()
    results: Dict[Tuple[str, str], OurResult] = {}
    for named in table.named_configs():
        results[(named.row, named.column)] = our_result(named, output_dir, seed, registered)

    lines = [
        f"# Table {table.number}: {table.caption}",
        "",
        f"**paper** = the numbers printed in Table {table.number} of {PAPER} "
        "(reference values, transcribed; '-' = not reported). **ours** = "
        f"`metrics.json` of finished runs under `{output_dir}`"
        + (f" (seed {seed})" if seed else "")
        + "; 'not run' = no finished run; * = a run whose configuration differs "
        "from the paper's (TrainConfig defaults), see Runs. All numbers in percent.",
        "",
    ]
    if any(c.title and c.short for c in table.columns):
        lines += ["Columns as printed: " + "; ".join(
            f"{c.short} = {c.title} (task {c.task}, Setting {c.setting}"
            + (f", experiment {c.experiment}" if c.experiment else "") + ")"
            for c in table.columns) + ".", ""]
    header = ["Model", "Registered model", "Numbers"] + [
        _slot_header(table, c, s, m) for c, s in slots for m in METRICS]
    lines.append(_md_row(header))
    lines.append(_md_row(["---"] * 3 + ["---:"] * (len(header) - 3)))
    for row in table.rows:
        paper_cells = [_paper(n.get(m)) for n in row.paper for m in METRICS]
        lines.append(_md_row([row.label, f"`{row.model}`" if row.model else "(reference)",
                              "paper"] + paper_cells))
        if row.is_reference:
            cells = []
            for column, split in slots:
                best = _best_of(row.best_of_tables, column.task, split, output_dir, seed)
                cells += [_percent(best[m]) if best.get(m) is not None else "not run"
                          for m in METRICS]
            tables = ", ".join(map(str, row.best_of_tables))
            lines.append(_md_row(["", "", f"ours (best of our Tables {tables})"] + cells))
            continue
        cells, statuses = [], []
        for column, split in slots:
            result = results[(row.label, column.key)]
            statuses.append(result.status)
            split_metrics = (result.metrics or {}).get(split)
            if result.status == "finished" and split_metrics:
                cells += [_percent(split_metrics[m]) for m in METRICS]
            else:
                cells += ["not run"] * len(METRICS)
        unique = sorted(set(statuses), key=statuses.index)
        label = "ours" if unique == ["finished"] else "ours: " + ", ".join(unique)
        if any(results[(row.label, c.key)].deviations for c in table.columns):
            label += " *"
        lines.append(_md_row(["", "", label] + cells))

    lines += ["", "## Runs", ""]
    for named in table.named_configs():
        result = results[(named.row, named.column)]
        detail = result.status
        if result.status == "finished":
            detail += (f"; differs from the paper's configuration (TrainConfig defaults) in: "
                       f"{result.deviations}" if result.deviations
                       else "; TrainConfig defaults (the paper's configuration)")
        if result.note:
            detail += f"; {result.note}"
        shared = f" (the run of {named.shares_run_with})" if named.shares_run_with else ""
        lines.append(f"- `{named.name}` -> `{result.run_dir}`{shared}: {detail}")
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in table.notes]
    lines += [f"- {row.label}: {row.note}" for row in table.rows if row.note]
    return "\n".join(lines) + "\n"


def _best_of(tables: Sequence[int], task: str, split: str, output_dir, seed: int) -> Dict:
    """Per-metric best of our finished `split` results of `task` in `tables`."""
    best: Dict[str, float] = {}
    for number in tables:
        for named in TABLES[number].named_configs():
            if named.task != task:
                continue
            result = our_result(named, output_dir, seed)
            values = (result.metrics or {}).get(split) if result.status == "finished" else None
            for metric in METRICS if values else ():
                best[metric] = max(best.get(metric, float("-inf")), values[metric])
    return best


def render_table2(output_dir) -> str:
    counts = _read_json(Path(output_dir) / SPLIT_COUNTS_FILE)
    lines = [
        f"# Table 2: {TABLE_2.caption}",
        "",
        f"**paper** = the counts printed in Table 2 of {PAPER} ('-' = none). "
        f"**ours** = `{SPLIT_COUNTS_FILE}` under `{output_dir}` written by "
        "`paper_tables.py run --table 2`"
        + (f" from `{counts['data_dir']}`" if counts else "") + ".",
        "",
        _md_row(["Setting", "Row", "Task", "Numbers", "Training", "Dev", "Test"]),
        _md_row(["---"] * 4 + ["---:"] * 3),
    ]
    for row in TABLE_2.rows:
        lines.append(_md_row([row.setting, row.label, row.task, "paper", row.paper_train,
                              "-" if row.paper_dev is None else row.paper_dev, row.paper_test]))
        entry = (counts or {}).get("rows", {}).get(row.key)
        if entry is None:
            cells = ["not run"] * 3
        elif "error" in entry:
            cells = ["error"] * 3
        else:
            cells = ["absent" if entry[s] is None else entry[s] for s in ("train", "dev", "test")]
        lines.append(_md_row(["", "", "", "ours"] + cells))
    lines += ["", "## Notes", ""] + [f"- {note}" for note in TABLE_2.notes]
    errors = {k: v["error"] for k, v in (counts or {}).get("rows", {}).items() if "error" in v}
    lines += [f"- {key}: {message}" for key, message in errors.items()]
    return "\n".join(lines) + "\n"


def write_reports(numbers: Sequence[int], output_dir, results_dir, *, seed: int = 0,
                  registered: Optional[frozenset] = None, out=print) -> List[Path]:
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    if registered is None and any(n != 2 for n in numbers):
        registered = registered_models()
    paths = []
    for number in numbers:
        text = (render_table2(output_dir) if number == 2 else
                render_table(TABLES[number], output_dir, seed=seed, registered=registered))
        path = results_dir / f"table{number}.md"
        path.write_text(text)
        out(f"wrote {path}")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# Command line.

_NOT_OVERRIDABLE = set(NamedConfig.FIXED) | {"output_dir"}


def _field_converter(hint) -> Tuple[Callable, bool]:
    """(converter, is_flag) of a TrainConfig field's type hint."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if base is bool:
        return bool, True

    def convert(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return base(text)

    convert.__name__ = getattr(base, "__name__", "value")
    return convert, False


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "TrainConfig overrides (crisis_keras/training/config.py; 'none' for None)")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name in _NOT_OVERRIDABLE:
            continue
        flag = "--" + field.name.replace("_", "-")
        convert, is_flag = _field_converter(hints[field.name])
        if is_flag:
            group.add_argument(flag, dest=field.name, action="store_true",
                               default=argparse.SUPPRESS, help=f"(default {field.default!r})")
        else:
            group.add_argument(flag, dest=field.name, type=convert, default=argparse.SUPPRESS,
                               metavar=field.name.upper(), help=f"(default {field.default!r})")


def _tables_arg(values: Sequence[str]) -> List[int]:
    numbers: List[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().lower()
            if part == "all":
                numbers += [n for n in TABLE_NUMBERS if n not in numbers]
            elif part.isdigit() and int(part) in TABLE_NUMBERS:
                if int(part) not in numbers:
                    numbers.append(int(part))
            else:
                raise argparse.ArgumentTypeError(
                    f"unknown table {part!r}; choose from {list(TABLE_NUMBERS)} or 'all'")
    return numbers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python experiments/paper_tables.py",
        description="Reproduce Tables 2-8 of Abavisani et al. (CVPR 2020): "
        "run the named configs of a table, then report ours next to the paper's numbers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train every implemented row of the table(s)")
    run.add_argument("--table", nargs="+", required=True, metavar="N",
                     help=f"table number(s) {list(TABLE_NUMBERS)} or 'all'")
    run.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                     help="run folders go here (default %(default)s)")
    run.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                     help="only these rows: slug (e.g. sse-cross-bert-densenet), printed "
                     "label or model name")
    run.add_argument("--columns", nargs="+", default=None, metavar="COL",
                     help="only these column groups (Table 6: informative humanitarian; "
                     "Table 7: exp1 exp2 exp3)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (row, model, config) without training")
    run.add_argument("--stop-on-error", action="store_true",
                     help="stop at the first failed run (default: go on, exit 1 at the end)")
    add_override_arguments(run)

    report = sub.add_parser("report", help="write results/tableN.md: ours next to the paper's")
    report.add_argument("--table", nargs="+", required=True, metavar="N")
    report.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="where the runs are (default %(default)s)")
    report.add_argument("--results-dir", default=str(RESULTS_DIR),
                        help="where tableN.md goes (default: experiments/results)")
    report.add_argument("--seed", type=int, default=0,
                        help="report the runs made with this --seed (default 0)")
    return parser


def main(argv=None, out=print) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        numbers = _tables_arg(args.table)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if args.command == "report":
        write_reports(numbers, args.output_dir, args.results_dir, seed=args.seed, out=out)
        return 0

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if hasattr(args, f.name) and f.name not in _NOT_OVERRIDABLE}
    if overrides.get("data_dir") is None and not args.dry_run:
        parser.error("run needs --data-dir (the CrisisMMD dataset root or split folder); "
                     "use --dry-run to only print the plan")
    if args.columns:
        known = {c.key for n in numbers if n in TABLES for c in TABLES[n].columns if c.key}
        unknown = sorted(set(args.columns) - known)
        if unknown:
            parser.error(f"unknown column(s) {unknown}; known: {sorted(known)}")
    outcomes = run_tables(numbers, overrides=overrides, output_dir=args.output_dir,
                          rows=args.rows, columns=args.columns, dry_run=args.dry_run,
                          stop_on_error=args.stop_on_error, out=out)
    if args.dry_run:
        planned = sum(o.status == "planned" for o in outcomes)
        missing = [o for o in outcomes if o.status == "not implemented"]
        out(f"\n{planned} run(s) planned; {len(missing)} not implemented"
            + (f" ({', '.join(sorted({o.model for o in missing}))})" if missing else "") + ".")
    else:
        summarize(outcomes, out=out)
        tables = " ".join(map(str, numbers))
        out(f"\nNext: python experiments/paper_tables.py report --table {tables} "
            f"--output-dir {args.output_dir}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
