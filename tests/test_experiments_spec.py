"""experiments/spec.py: the spec of Tables 2-8 (no TensorFlow, no training)."""

import dataclasses
import pathlib
import re
import sys

import pytest

from crisis_keras.data.settings import SETTING_C_EXPERIMENTS, SETTING_C_TEST_EVENT
from crisis_keras.training.config import TrainConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAPER_FILE = ROOT.parent / "shared" / "paper" / "abavisani2020-multimodal-crisis.txt"

sys.path.insert(0, str(ROOT))  # experiments/ is not an installed package (setup.cfg)
from experiments import spec  # noqa: E402

SETTING_A_LABELS = [
    "DenseNet [30]", "BERT [17]", "Compact Bilinear Pooling[22]",
    "Compact Bilinear Gated Pooling [38]", "MMBT [37]", "Score Fusion", "Feature Fusion",
    "Attention Variant 1", "Attention Variant 2", "Attention Variant 3",
    "SSE-Cross-BERT-DenseNet",
]
EXPECTED_MODELS = {
    "DenseNet [30]": "densenet", "BERT [17]": "bert",
    "Compact Bilinear Pooling[22]": "compact_bilinear_pooling",
    "Compact Bilinear Gated Pooling [38]": "compact_bilinear_gated_pooling",
    "MMBT [37]": "mmbt", "Score Fusion": "score_fusion", "Feature Fusion": "feature_fusion",
    "Attention Variant 1": "attention_variant_1", "Attention Variant 2": "attention_variant_2",
    "Attention Variant 3": "attention_variant_3", "SSE-Cross-BERT-DenseNet": "sse_cross",
    "\u2212 Self-Attention": "ablation_no_self_attention",
    "\u2212 Cross-Attention": "ablation_no_cross_attention",
    "\u2212 Cross-Attention + Co-Attention": "co_attention",
    "\u2212 Cross-Attention + Self-Attention": "ablation_self_gating",
    "\u2212 Dropout": "ablation_no_dropout",
    "\u2212 SSE": "ablation_no_sse",
    "\u2212 SSE + Shuffling Within Class": "ablation_shuffle_within_class",
    "\u2212 SSE + Mix-up [68]": "ablation_mixup",
    "Best from Table 3, 4, 5": None,
}


def test_tables_3_to_8_rows_in_the_papers_order():
    for number in (3, 4, 5):
        assert [r.label for r in spec.TABLES[number].rows] == SETTING_A_LABELS
    assert [r.label for r in spec.TABLE_6.rows] == [
        "DenseNet [30]", "BERT [17]", "Score Fusion", "SSE-Cross-BERT-DenseNet",
        "Best from Table 3, 4, 5"]
    assert [r.label for r in spec.TABLE_7.rows] == [
        "DenseNet [30]", "BERT [17]", "Score Fusion", "SSE-Cross-BERT-DenseNet"]
    assert [r.label for r in spec.TABLE_8.rows] == [
        "SSE-Cross-BERT-DenseNet", "\u2212 Self-Attention", "\u2212 Cross-Attention",
        "\u2212 Cross-Attention + Co-Attention", "\u2212 Cross-Attention + Self-Attention",
        "\u2212 Dropout", "\u2212 SSE", "\u2212 SSE + Shuffling Within Class",
        "\u2212 SSE + Mix-up [68]"]
    for table in spec.TABLES.values():
        for row in table.rows:
            assert row.model == EXPECTED_MODELS[row.label], (table.number, row.label)


def test_tasks_settings_and_splits_of_each_table():
    def shape(table):
        return [(c.key, c.task, c.setting, c.experiment, c.splits) for c in table.columns]

    assert shape(spec.TABLE_3) == [("", "informative", "A", None, ("dev", "test"))]
    assert shape(spec.TABLE_4) == [("", "humanitarian", "A", None, ("dev", "test"))]
    assert shape(spec.TABLE_5) == [("", "severity", "A", None, ("dev", "test"))]
    assert shape(spec.TABLE_6) == [("informative", "informative", "B", None, ("test",)),
                                 ("humanitarian", "humanitarian", "B", None, ("test",))]
    assert shape(spec.TABLE_7) == [(f"exp{e}", "humanitarian", "C", e, ("test",))
                                   for e in (1, 2, 3)]
    assert shape(spec.TABLE_8) == [("", "humanitarian", "A", None, ("test",))]
    assert sorted(spec.ALL_TABLES) == [2, 3, 4, 5, 6, 7, 8]


def test_table7_columns_name_the_data_layers_setting_c_events():
    titles = {c.experiment: c.title for c in spec.TABLE_7.columns}
    words = {"srilanka_floods": "Sri Lanka Floods", "hurricane_harvey": "Harvey",
             "hurricane_irma": "Irma", "mexico_earthquake": "Mexico earthquake"}
    for experiment, events in SETTING_C_EXPERIMENTS.items():
        for event in events:
            assert words[event] in titles[experiment]
        assert set(words) - set(events) == {
            e for e in words if words[e] not in titles[experiment]}
    assert SETTING_C_TEST_EVENT == "california_wildfires"
    assert "California wildfires" in spec.TABLE_7.caption


def test_every_row_has_numbers_for_every_printed_slot():
    for table in spec.TABLES.values():
        for row in table.rows:
            assert len(row.paper) == len(table.slots()), (table.number, row.label)
            for numbers in row.paper:
                assert isinstance(numbers, spec.PaperNumbers)
                for metric in spec.METRICS:
                    value = numbers.get(metric)
                    assert value is None or 0 < value < 100


def test_paper_numbers_of_key_rows():
    """Independent of the paper file: a few rows typed in again by hand."""
    n = spec.PaperNumbers
    assert spec.TABLE_3.row("sse-cross-bert-densenet").paper == (
        n(89.51, 87.28, 88.75), n(89.33, 88.09, 89.35))
    assert spec.TABLE_4.row("sse-cross-bert-densenet").paper == (
        n(91.14, 70.16, 90.88), n(91.14, 68.41, 91.82))
    assert spec.TABLE_5.row("sse-cross-bert-densenet").paper == (
        n(74.58, 58.80, 72.55), n(72.65, 59.76, 70.41))
    assert spec.TABLE_6.row("sse-cross-bert-densenet").paper == (
        n(90.05, 88.88, 89.9), n(93.46, 84.16, 93.35))
    assert spec.TABLE_7.row("sse-cross-bert-densenet").paper == (
        n(62.56, 39.82, 62.08), n(84.02, 63.12, 83.55), n(86.30, 65.55, 85.93))
    assert spec.TABLE_8.row("sse-cross-bert-densenet").paper == (n(91.14, 68.41, 91.82),)
    assert spec.TABLE_4.row("mmbt").paper == (n(89.25, None, None), n(85.82, None, None))
    assert spec.TABLE_4.paper_numbers(spec.TABLE_4.row("densenet"), "", "dev") == n(
        87.22, 55.85, 82.67)
    assert spec.TABLE_7.paper_numbers(spec.TABLE_7.row("bert"), "exp1", "test") == n(
        31.96, 20.90, 27.21)
    # The paper reuses runs: Table 8's first row is Table 4's test row, and
    # "- SSE" is Attention Variant 1's test row.
    assert spec.TABLE_8.rows[0].paper[0] == spec.TABLE_4.row("sse-cross-bert-densenet").paper[1]
    assert (spec.TABLE_8.row("minus-sse").paper[0]
            == spec.TABLE_4.row("attention-variant-1").paper[1])
    assert spec.TABLE_6.row("best-from-table-3-4-5").paper[0] == spec.TABLE_3.rows[-1].paper[1]


def test_table2_counts():
    rows = {(r.setting, r.label): (r.task, r.experiment, r.paper_train, r.paper_dev, r.paper_test)
            for r in spec.TABLE_2.rows}
    assert rows == {
        ("A", "Task1:"): ("informative", None, 7876, 553, 2821),
        ("A", "Task2:"): ("humanitarian", None, 1352, 540, 1467),
        ("A", "Task3:"): ("severity", None, 2590, 340, 358),
        ("B", "Task1:"): ("informative", None, 12680, 553, 2821),
        ("B", "Task2:"): ("humanitarian", None, 5433, 540, 1467),
        ("C", "Experiment 1:"): ("humanitarian", 1, 174, None, 217),
        ("C", "Experiment 2:"): ("humanitarian", 2, 4037, None, 217),
        ("C", "Experiment 3:"): ("humanitarian", 3, 4761, None, 217),
    }


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.TABLE_4.rows[0].paper[0].accuracy = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.TABLE_4.rows[0].model = "bert"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.TABLE_4.caption = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.named_config("table4-bert").model = "densenet"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.TABLE_2.rows[0].paper_train = 1


# ---- Against the paper's text ------------------------------------------------

# Where each table's rows are printed: from its caption to the next landmark.
SECTIONS = {
    2: ("Table 2. Number of samples", "We test on the tweets"),
    3: ("Table 3. Setting A", "Table 4."),
    4: ("Table 4. Setting A", "Table 5."),
    5: ("Table 5. Setting A", "it is clear that"),
    6: ("Table 6. Setting B", "Table 7."),
    7: ("Table 7. Comparing", "Table 8."),
    8: ("Table 8. Ablation", "for un-matched"),
}
NUMBER = r"(?:\d+(?:\.\d+)?|-)"


@pytest.fixture(scope="module")
def paper_text():
    if not PAPER_FILE.is_file():
        pytest.skip(f"paper text not available at {PAPER_FILE}")
    return PAPER_FILE.read_text(encoding="utf-8")


def section(text, number):
    start, end = SECTIONS[number]
    i = text.index(start)
    return text[i:text.index(end, i + len(start))]


def printed_numbers(block, label, count):
    """The `count` numbers printed after `label` at the start of a line of `block`."""
    pattern = rf"^{re.escape(label)}((?: {NUMBER}){{{count}}})\s*$"
    matches = re.findall(pattern, block, flags=re.MULTILINE)
    assert len(matches) == 1, f"{label!r}: {len(matches)} matching lines"
    return [None if t == "-" else float(t) for t in matches[0].split()]


@pytest.mark.parametrize("number", [3, 4, 5, 6, 7, 8])
def test_every_transcribed_number_equals_the_paper_text(paper_text, number):
    table = spec.TABLES[number]
    block = section(paper_text, number)
    for row in table.rows:
        expected = printed_numbers(block, row.label, 3 * len(table.slots()))
        ours = [n.get(m) for n in row.paper for m in spec.METRICS]
        assert ours == expected, (number, row.label)
    # No printed row of the table is missing from the spec.
    count = 3 * len(table.slots())
    printed_rows = re.findall(rf"^(.*?)((?: {NUMBER}){{{count}}})\s*$", block, flags=re.MULTILINE)
    assert [label for label, _ in printed_rows] == [r.label for r in table.rows]


def test_captions_equal_the_paper_text(paper_text):
    flat = " ".join(paper_text.split())
    for number, table in spec.ALL_TABLES.items():
        assert f"Table {number}. {table.caption}" in flat, number


def test_table2_counts_equal_the_paper_text(paper_text):
    block = section(paper_text, 2)
    setting_blocks = re.split(r"^Setting ([ABC])\s*$", block, flags=re.MULTILINE)[1:]
    printed = dict(zip(setting_blocks[::2], setting_blocks[1::2]))
    for row in spec.TABLE_2.rows:
        expected = printed_numbers(printed[row.setting], row.label, 3)
        assert [row.paper_train, row.paper_dev, row.paper_test] == expected, row


def test_table7_training_sets_as_printed(paper_text):
    block = paper_text[paper_text.index("We test on the tweets"):paper_text.index("4.3. Baselines")]
    flat = " ".join(block.split())
    assert "California Wildfire" in flat
    assert "1. Sri Lanka Floods tweets" in flat
    assert "2. Sri Lanka Floods, and Hurricane Harvey and Hurri- cane Irma tweets" in flat
    assert "3. Sri Lanka Floods, Hurricanes Harvey and Irma and Mexico Earthquakes" in flat


# ---- Named configs -----------------------------------------------------------


def test_named_configs_cover_every_row_and_column():
    configs = spec.named_configs()
    expected = 0
    for table in spec.TABLES.values():
        for row in table.rows:
            if row.is_reference:
                assert not any(c.row == row.label and c.table == table.number
                               for c in configs.values())
                continue
            for column in table.columns:
                expected += 1
                matching = [c for c in configs.values() if c.table == table.number
                            and c.row == row.label and c.column == column.key]
                assert len(matching) == 1
                named = matching[0]
                assert (named.model, named.task, named.setting, named.experiment) == (
                    row.model, column.task, column.setting, column.experiment)
    assert len(configs) == expected == 11 * 3 + 4 * 2 + 4 * 3 + 9
    assert len(set(configs)) == len(configs)
    assert "table4-sse-cross-bert-densenet" in configs
    assert "table6-sse-cross-bert-densenet-humanitarian" in configs
    assert "table7-bert-exp2" in configs
    assert "table8-minus-sse-plus-mix-up" in configs


def test_every_named_config_builds_a_valid_train_config(tmp_path):
    for name, named in spec.named_configs().items():
        config = named.train_config(data_dir=str(tmp_path), output_dir=str(tmp_path / "runs"),
                                    epochs=2)
        assert isinstance(config, TrainConfig)
        assert TrainConfig.from_dict(config.to_dict()) == config
        assert (config.model, config.task, config.setting) == (
            named.model, named.task, named.setting)
        if named.setting == "C":
            assert config.experiment == named.experiment
        assert config.epochs == 2 and config.data_dir == str(tmp_path)
        assert config.run_name == (named.shares_run_with or name)
        assert config.run_dir() == tmp_path / "runs" / config.run_name
        # Everything else is the paper's configuration (TrainConfig defaults).
        defaults = TrainConfig()
        assert config.learning_rate == defaults.learning_rate == 2e-3
        assert config.batch_size == defaults.batch_size == 32


def test_rows_fix_model_task_setting_and_run_name():
    named = spec.named_config("table7-bert-exp1")
    for field in ("model", "task", "setting", "experiment", "run_name"):
        with pytest.raises(ValueError, match="cannot be overridden"):
            named.train_config(**{field: "x"})
    with pytest.raises(ValueError, match="Unknown TrainConfig fields"):
        named.train_config(not_a_field=1)
    assert named.train_config(seed=3).run_name == "table7-bert-exp1-seed3"
    assert named.train_config(seed=3).experiment == 1


def test_shared_run_is_the_same_configuration():
    configs = spec.named_configs()
    shared = [c for c in configs.values() if c.shares_run_with]
    assert [c.name for c in shared] == ["table8-sse-cross-bert-densenet"]
    for named in shared:
        target = configs[named.shares_run_with]
        assert named.train_config(epochs=3) == target.train_config(epochs=3)


def test_row_selection_by_slug_label_or_model():
    rows = spec.select_rows(spec.TABLE_8, ["minus-dropout", "co_attention"])
    assert [r.label for r in rows] == [
        "\u2212 Cross-Attention + Co-Attention", "\u2212 Dropout"]
    assert [r.model for r in spec.select_rows(spec.TABLE_4, ["BERT [17]", "densenet"])] == [
        "densenet", "bert"]
    assert spec.select_rows(spec.TABLE_7, ["mmbt"]) == ()
    assert spec.slugify("\u2212 SSE + Mix-up [68]") == "minus-sse-plus-mix-up"
    assert spec.slugify("Compact Bilinear Pooling[22]") == "compact-bilinear-pooling"
