"""The spec of Tables 2-8 of the paper: every row of a table as a named config.

Abavisani, Wu, Hu, Tetreault, Jaimes, "Multimodal Categorization of Crisis
Events in Social Media", CVPR 2020.

TF Model Garden style: a row of a paper table is a named config, not a copy
of a script. Each `PaperTable` lists its rows in the paper's order. A
`PaperRow` is the row label as printed, the registered model name
(`crisis_keras.models.model_names()`) and the numbers the paper prints
(`PaperNumbers`: reference values copied from the paper, never ours). A
`Column` gives task, setting and (Setting C) experiment. Table 6 has two
columns (informative, humanitarian) and Table 7 has three (Setting C
experiments 1-3). Row x column is a `NamedConfig`, e.g.
`table4-sse-cross-bert-densenet`. It builds the `TrainConfig` of that run,
and its run folder is `<output-dir>/<name>` (`-seed<N>` added for seeds
other than 0).

Table 2 (split sizes) needs no training: `SplitCountTable` holds the
paper's counts, which the runner compares with what the data layer yields.

Declarations only: no TensorFlow, no training, no files written.
"""

import dataclasses
import re
from pathlib import Path
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

from crisis_keras.training.config import TrainConfig

PAPER = (
    'Abavisani, Wu, Hu, Tetreault, Jaimes, "Multimodal Categorization of Crisis '
    'Events in Social Media", CVPR 2020'
)
METRICS = ("accuracy", "macro_f1", "weighted_f1")
TABLE_NUMBERS = (2, 3, 4, 5, 6, 7, 8)

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
        _row("DenseNet [30]", "densenet", "83.36 80.95 82.95 82.89 66.68 83.13",
             note="Trained on images alone (section 4.2): every training image once "
                  "per epoch with its own image label (`label_image`; "
                  "`crisis_keras/data/setting_b.py`). With --setting-b-unimodal "
                  "consistency: the consistency-swapped pairs with the pair label."),
        _row("BERT [17]", "bert", "86.26 84.44 86.01 87.73 83.72 87.57",
             note="Trained on texts alone (section 4.2): every training tweet once "
                  "per epoch (a tweet posted with several images counts once) with "
                  "its own text label (`label_text`). With --setting-b-unimodal "
                  "consistency: the consistency-swapped pairs with the pair label."),
        _row("Score Fusion", "score_fusion", "87.03 85.19 86.90 91.41 83.26 91.36",
             note="Not trained: the mean of the softmax outputs of this column's "
                  "DenseNet and BERT runs, composed at test time (section 4.2; "
                  "`crisis_keras/training/late_fusion.py`, sources in the run's "
                  "late_fusion.json). With --setting-b-unimodal consistency: the "
                  "jointly trained score_fusion model on the consistency-swapped pairs."),
        _row("SSE-Cross-BERT-DenseNet", "sse_cross", "90.05 88.88 89.9 93.46 84.16 93.35",
             note="Trained on the pairs: each disagreeing pair makes the SSE "
                  "transition with p0 = 1 to a consistent pair, drawn anew every "
                  "epoch (`crisis_keras/data/consistency.py`)."),
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
        "image labels disagree (eq. 12). The multimodal model makes each such "
        "pair consistent by an SSE transition with p0 = 1, drawn anew every "
        "epoch; the unimodal models train on their own modality and labels (see "
        "the rows' notes). Dev and test are Setting A's.",
        "The table prints no split; the numbers are test-set numbers (the "
        "informative 'Best from Table 3, 4, 5' equals Table 3's test row).",
        "The paper (section 4.2) describes score fusion in Setting B as unimodal "
        "models trained separately on images and texts whose predictions are "
        "averaged at test time; so is ours (Score Fusion's note).",
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
        "Setting C's training pairs depend on the reading (`--setting-c-reading`, "
        "`crisis_keras.data.settings`): `pool_by_reading` in the counts file gives each "
        "reading's pool before the 15% hold-out; none reproduces 174 / 4,037 / 4,761 "
        "(data/README.md). `--split paper` re-splits A and B with this table's proportions.",
    ),
)

ALL_TABLES: Dict[int, object] = {2: TABLE_2, **TABLES}


def select_rows(table: PaperTable, keys: Optional[Sequence[str]]) -> Tuple[PaperRow, ...]:
    """Rows matching any of `keys` (slug, printed label or model name); all when None."""
    if not keys:
        return table.rows
    wanted = {k.lower() for k in keys}
    return tuple(r for r in table.rows
                 if {r.slug, r.label.lower(), (r.model or "").lower()} & wanted)


def row_keys(table: PaperTable) -> Iterator[str]:
    """Every key `select_rows` accepts for `table` (lower case)."""
    for r in table.rows:
        yield r.slug
        yield r.label.lower()
        if r.model:
            yield r.model.lower()
