"""MEDIC-style image TSVs read into the trainer's tables (`crisis_keras.data.medic`)."""

import json
import pathlib

import numpy as np
import pytest

from crisis_keras.data.__main__ import main as data_main
from crisis_keras.data.crisismmd import COLUMNS, CrisisMMDFormatError
from crisis_keras.data.medic import (
    IMAGE_ONLY_MESSAGE, find_medic_files, load_medic, read_medic_file, require_image_only,
)

SHARED_MEDIC = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "medic_subset"
HEADER = ("image_id", "image", "source_event", "damage_severity", "informative",
          "humanitarian", "disaster_types")
SEVERITY = ("severe", "mild", "little_or_none")
HUMANITARIAN = ("infrastructure_and_utility_damage", "affected_injured_or_dead_people",
                "rescue_volunteering_or_donation_effort", "not_humanitarian")


def medic_row(i, severity="severe", informative="informative",
              humanitarian="infrastructure_and_utility_damage", event="AIDR"):
    image_id = f"{1000 + i}_0"
    return (image_id, f"images/{image_id}.jpg", event, severity, informative,
            humanitarian, "flood")


def write_tsv(path, rows, header=HEADER):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + [r if isinstance(r, str) else "\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_images(folder, rows, size=40):
    from PIL import Image

    rng = np.random.default_rng(0)
    for row in rows:
        path = pathlib.Path(folder) / row[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)


def severity_rows(n_per_class, start=0):
    rows = []
    for k, label in enumerate(SEVERITY):
        rows += [medic_row(start + 100 * k + j, severity=label) for j in range(n_per_class[k])]
    return rows


def test_rows_become_crisismmd_tables(tmp_path):
    rows = [medic_row(0), medic_row(1, "mild", "not_informative", "not_humanitarian"),
            ("dmd_7", "images/dmd_7.jpg", "damage_multimodal", "little_or_none",
             "informative", "affected_injured_or_dead_people", "fire")]
    path = write_tsv(tmp_path / "m_train.tsv", rows)
    frame = read_medic_file(path, "severity")
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["label"]) == ["severe_damage", "mild_damage", "little_or_no_damage"]
    assert list(frame["label_id"]) == [0, 1, 2]
    assert list(frame["label_raw"]) == ["severe", "mild", "little_or_none"]
    assert list(frame["source_line"]) == [2, 3, 4]
    assert set(frame["source_file"]) == {str(path)}
    assert frame["image_path"].iloc[2] == str(tmp_path / "images/dmd_7.jpg")
    assert list(frame["tweet_id"]) == ["1000", "1001", ""]  # AIDR ids only
    assert list(frame["event_name"]) == ["AIDR", "AIDR", "damage_multimodal"]
    assert (frame["text"] == "").all() and not frame["disagree"].any()
    assert (frame["label_text_id"] == frame["label_id"]).all()

    paper = read_medic_file(path, "humanitarian")
    assert list(paper["label"]) == ["infrastructure_and_utility_damage", "", "affected_individuals"]
    assert list(paper["label_id"]) == [0, -1, 3]
    official = read_medic_file(path, "humanitarian", humanitarian_labels="official")
    assert list(official["label"]) == [
        "infrastructure_and_utility_damage", "not_humanitarian", "affected_individuals"]
    assert list(read_medic_file(path, "informative")["label"]) == [
        "informative", "not_informative", "informative"]


def test_medics_own_image_path_and_event_name_columns(tmp_path):
    header = ("event_name", "image_id", "image_path", "damage_severity", "informative",
              "humanitarian", "disaster_types")
    row = ("kerala_floods", "5_0", "data/5_0.jpg", "mild", "informative",
           "not_humanitarian", "flood")
    frame = read_medic_file(write_tsv(tmp_path / "x_train.tsv", [row], header), "severity",
                            image_root=tmp_path / "root")
    assert frame["image"].iloc[0] == "data/5_0.jpg"
    assert frame["image_path"].iloc[0] == str(tmp_path / "root" / "data/5_0.jpg")
    assert frame["event_name"].iloc[0] == "kerala_floods"


@pytest.mark.parametrize("line, message", [
    ("2_0\timages/2_0.jpg\tAIDR\tsevere\tinformative", "expected 7 tab-separated fields, found 5"),
    ("\t".join(medic_row(2, severity="catastrophic")), "unknown damage_severity 'catastrophic'"),
    ("\t".join(medic_row(2, humanitarian="vehicle_damage")), "unknown humanitarian 'vehicle_damage'"),
    ("\t".join(medic_row(2, informative="Informative")), "unknown informative 'Informative'"),
    ("3_0\t \tAIDR\tsevere\tinformative\tnot_humanitarian\tflood", "empty image"),
    ("\timages/x.jpg\tAIDR\tsevere\tinformative\tnot_humanitarian\tflood", "empty image_id"),
    ("\t".join(medic_row(0, severity="mild")), "duplicate image_id '1000_0' (first on line 2)"),
])
def test_strict_errors_name_file_line_and_value(tmp_path, line, message):
    path = write_tsv(tmp_path / "m_train.tsv", [medic_row(0), medic_row(1), line])
    with pytest.raises(CrisisMMDFormatError) as error:
        read_medic_file(path, "severity")
    assert str(error.value).startswith(f"{path}, line 4: ")
    assert message in str(error.value)


def test_missing_column_and_split_files(tmp_path):
    header = tuple(c for c in HEADER if c != "damage_severity")
    path = write_tsv(tmp_path / "a" / "m_train.tsv", [medic_row(0)[:3] + medic_row(0)[4:]], header)
    with pytest.raises(CrisisMMDFormatError, match=r"line 1: missing MEDIC column\(s\) \['damage_severity'\]"):
        read_medic_file(path, "severity")
    assert read_medic_file(path, "informative")["label"].tolist() == ["informative"]

    with pytest.raises(FileNotFoundError, match="No MEDIC training file"):
        find_medic_files(tmp_path)
    write_tsv(tmp_path / "b" / "one_train.tsv", [medic_row(0)])
    write_tsv(tmp_path / "b" / "two_train.tsv", [medic_row(1)])
    with pytest.raises(ValueError, match="several MEDIC train files"):
        find_medic_files(tmp_path / "b")


def test_an_image_in_two_splits_is_refused(tmp_path):
    write_tsv(tmp_path / "m_train.tsv", [medic_row(0), medic_row(1)])
    write_tsv(tmp_path / "m_dev.tsv", [medic_row(2), medic_row(1)])
    with pytest.raises(CrisisMMDFormatError, match=r"m_dev.tsv, line 3: image_id '1001_0' is also"):
        load_medic(tmp_path, "severity")


def test_dev_split_is_seeded_stratified_and_reported(tmp_path):
    write_tsv(tmp_path / "m_train.tsv", severity_rows((25, 10, 15)))
    messages = []
    data = load_medic(tmp_path, "severity", seed=3, announce=messages.append)
    train, dev = data["train"], data["dev"]
    assert sorted(data.splits) == ["dev", "train"]
    assert (len(train), len(dev)) == (40, 10)
    assert dev["label"].value_counts().to_dict() == {
        "severe_damage": 5, "mild_damage": 2, "little_or_no_damage": 3}
    assert not set(train["image_id"]) & set(dev["image_id"])
    assert list(dev["source_line"]) == sorted(dev["source_line"])  # file order kept
    assert len(messages) == 1 and "seed 3" in messages[0] and "dev 10" in messages[0]
    again = load_medic(tmp_path, "severity", seed=3, announce=lambda _: None)
    assert list(again["dev"]["image_id"]) == list(dev["image_id"])
    other = load_medic(tmp_path, "severity", seed=4, announce=lambda _: None)
    assert list(other["dev"]["image_id"]) != list(dev["image_id"])


def test_split_seed_fixes_the_dev_split_across_run_seeds(tmp_path):
    from crisis_keras.training.config import TrainConfig
    from crisis_keras.training.trainer import load_data

    write_tsv(tmp_path / "m_train.tsv", severity_rows((25, 10, 15)))

    def dev_ids(**values):
        config = TrainConfig(task="severity", data_format="medic", data_dir=str(tmp_path), **values)
        return list(load_data(config)["dev"]["image_id"])

    assert dev_ids(seed=1, split_seed=0) == dev_ids(seed=0) == dev_ids(seed=2, split_seed=0)
    assert dev_ids(seed=1) != dev_ids(seed=0)  # without it, the split follows --seed


def test_dropped_rows_are_counted_and_a_dev_file_is_used_as_is(tmp_path):
    train = [medic_row(i, humanitarian=HUMANITARIAN[i % 4]) for i in range(8)]
    write_tsv(tmp_path / "m_train.tsv", train)
    write_tsv(tmp_path / "m_dev.tsv", [medic_row(20), medic_row(21, humanitarian="not_humanitarian")])
    write_tsv(tmp_path / "m_test.tsv", [medic_row(30)])
    messages = []
    data = load_medic(tmp_path, "humanitarian", announce=messages.append)
    assert {s: len(t) for s, t in data.splits.items()} == {"train": 6, "dev": 1, "test": 1}
    assert any("m_train.tsv: dropped 2 rows" in m and "not_humanitarian" in m for m in messages)
    assert not any("stratified" in m for m in messages)
    with pytest.raises(ValueError, match="setting 'B' does not apply"):
        load_medic(tmp_path, "humanitarian", setting="B")


def test_a_split_too_small_to_stratify_is_a_clear_error(tmp_path):
    write_tsv(tmp_path / "m_train.tsv", severity_rows((3, 1, 2)))
    with pytest.raises(ValueError, match=r"Cannot split .*m_train.tsv.*Add a <name>_dev.tsv"):
        load_medic(tmp_path, "severity")


def test_text_models_are_refused_on_medic():
    require_image_only(("image",))
    require_image_only(("text", "image"), data_format="crisismmd")
    with pytest.raises(ValueError, match=IMAGE_ONLY_MESSAGE):
        require_image_only(("text", "image"), model_name="sse_cross")


def test_summary_command_reads_medic(tmp_path, capsys):
    write_tsv(tmp_path / "m_train.tsv", severity_rows((10, 5, 5)))
    assert data_main(["summary", "--data-format", "medic", "--data-dir", str(tmp_path),
                      "--task", "severity", "--seed", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"]["train"]["label_counts_raw"] == {
        "little_or_none": 5, "mild": 5, "severe": 10}
    assert result["splits"]["dev"]["class_counts"] == {
        "severe_damage": 2, "mild_damage": 1, "little_or_no_damage": 1}
    assert result["dev_split"] == {"dev_fraction": 0.2, "seed": 1}
    assert result["splits"]["train"]["missing_images"]["count"] == 16


@pytest.fixture
def shared_medic():
    if not (SHARED_MEDIC / "medic_subset_train.tsv").is_file():
        pytest.skip(f"MEDIC subset not available at {SHARED_MEDIC}")
    return SHARED_MEDIC


def test_real_medic_subset(shared_medic):
    raw = read_medic_file(shared_medic / "medic_subset_train.tsv", "severity")
    assert raw["label_raw"].value_counts().to_dict() == {
        "severe": 304, "little_or_none": 199, "mild": 96}
    data = load_medic(shared_medic, "severity", seed=0, announce=lambda _: None)
    counts = {s: t["label"].value_counts().to_dict() for s, t in data.splits.items()}
    assert counts == {
        "train": {"severe_damage": 243, "little_or_no_damage": 159, "mild_damage": 77},
        "dev": {"severe_damage": 61, "little_or_no_damage": 40, "mild_damage": 19},
    }
    assert all(pathlib.Path(p).is_file() for p in data["dev"]["image_path"])


def test_train_cli_on_medic_end_to_end(tmp_path, capsys):
    from crisis_keras import train as train_cli
    from crisis_keras.evaluate import evaluate_run

    data = tmp_path / "medic"
    train_rows, test_rows = severity_rows((8, 6, 6)), severity_rows((2, 2, 2), start=50)
    write_tsv(data / "tiny_train.tsv", train_rows)
    write_tsv(data / "tiny_test.tsv", test_rows)
    write_images(data, train_rows + test_rows)
    common = ["--data-format", "medic", "--data-dir", str(data), "--task", "severity",
              "--image-backbone", "tiny", "--image-weights", "none", "--text-backbone", "tiny",
              "--image-size", "32", "--resize-to", "36", "--batch-size", "8", "--epochs", "1",
              "--output-dir", str(tmp_path / "runs"), "--run-name", "run"]

    assert train_cli.main(common + ["--model", "sse_cross"]) == 2
    err = capsys.readouterr().err
    assert IMAGE_ONLY_MESSAGE in err and "Traceback" not in err

    assert train_cli.main(common + ["--model", "densenet"]) == 0
    captured = capsys.readouterr()
    assert "stratified dev split" in captured.err and "test: accuracy" in captured.out
    run = tmp_path / "runs" / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["data_format"] == "medic" and config["model"] == "densenet"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dev"]["num_examples"] == 4 and metrics["test"]["num_examples"] == 6
    assert metrics["class_names"] == ["severe_damage", "mild_damage", "little_or_no_damage"]
    test_metrics, predictions = evaluate_run(run, "test")
    assert test_metrics["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert len(predictions) == 6


def test_a_missing_medic_image_stops_the_run_with_a_medic_hint(tmp_path, capsys):
    from crisis_keras import train as train_cli

    data = tmp_path / "medic"
    rows = severity_rows((8, 6, 6))
    write_tsv(data / "tiny_train.tsv", rows)
    write_images(data, rows[1:])  # the first image is missing
    code = train_cli.main(["--data-format", "medic", "--data-dir", str(data), "--task", "severity",
                           "--model", "densenet", "--image-backbone", "tiny", "--image-weights",
                           "none", "--output-dir", str(tmp_path / "runs"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "1 image files are missing" in err and rows[0][1] in err
    assert "MEDIC image folder" in err and "CrisisMMD" not in err
