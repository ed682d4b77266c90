"""Reading CrisisMMD TSV files: formats accepted and errors raised."""

import pathlib

import numpy as np
import pytest

from crisis_keras.data.crisismmd import COLUMNS
from crisis_keras.data.crisismmd import CrisisMMDFormatError
from crisis_keras.data.crisismmd import find_split_file
from crisis_keras.data.crisismmd import load_crisismmd
from crisis_keras.data.crisismmd import read_split_file
from crisis_keras.data.crisismmd import resolve_split_dir
from crisis_keras.data.tasks import get_task
from conftest import DAMAGE_HEADER


def _rows(make_pair_row):
    return [
        make_pair_row("100_0", "Flood  in town https://t.co/abc", "informative"),
        make_pair_row("100_1", "Flood  in town https://t.co/abc", "informative"),
        make_pair_row("200_0", "Weâ€™re OK", "not_informative", "not_informative", "informative"),
    ]


def test_reads_columns_and_values(tmp_path, write_crisismmd_tsv, make_pair_row):
    path = write_crisismmd_tsv(tmp_path / "t.tsv", _rows(make_pair_row))
    frame = read_split_file(path, "informative", image_root=tmp_path)
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 3
    assert frame["text"].tolist()[0] == "flood in town link"
    assert frame["tweet_text"].tolist()[2] == "We’re OK"
    assert frame["image_path"][0] == str(tmp_path / "data_image/hurricane_irma/1_9_2017/100_0.jpg")
    assert frame["label_id"].tolist() == [0, 0, 1]
    assert frame["label_image_id"].tolist() == [0, 0, 0]
    assert frame["disagree"].tolist() == [False, False, True]
    assert frame["source_line"].tolist() == [2, 3, 4]
    assert frame["label_id"].dtype == np.int32
    assert frame["image_id"][0] == "100_0" and frame["tweet_id"][0] == "100"


def test_crlf_and_bom(tmp_path, write_crisismmd_tsv, make_pair_row):
    path = write_crisismmd_tsv(tmp_path / "t.tsv", _rows(make_pair_row), newline="\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    frame = read_split_file(path, "informative")
    assert len(frame) == 3
    assert not any(t.endswith("\r") for t in frame["label_image_raw"])


def test_quoted_and_unquoted_text(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = [
        make_pair_row("1_0", '"They said ""help"" now"', "informative"),   # pandas round trip
        make_pair_row("2_0", '"Title" via FOX NEWS', "informative"),         # literal quotes
        make_pair_row("3_0", '"just quoted"', "informative"),                # no "" inside: literal
        make_pair_row("4_0", 'a "b" c', "informative"),
    ]
    frame = read_split_file(write_crisismmd_tsv(tmp_path / "t.tsv", rows), "informative")
    assert frame["tweet_text"].tolist() == [
        'They said "help" now', '"Title" via FOX NEWS', '"just quoted"', 'a "b" c',
    ]


def test_humanitarian_mapping_and_dropped_sides(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = [
        make_pair_row("1_0", "t", "affected_individuals", "injured_or_dead_people", "affected_individuals"),
        make_pair_row("2_0", "t", "vehicle_damage", "vehicle_damage", "not_humanitarian"),
        make_pair_row("3_0", "t", "not_humanitarian"),
    ]
    frame = read_split_file(write_crisismmd_tsv(tmp_path / "t.tsv", rows), "humanitarian")
    assert frame["disagree"].tolist() == [False, True, False]   # merged labels agree
    assert frame["label_image"][1] == "" and frame["label_image_id"][1] == -1
    assert frame["label"][2] == "" and frame["label_id"][2] == -1
    assert frame["label_text_raw"][0] == "injured_or_dead_people"
    official = read_split_file(
        tmp_path / "t.tsv", get_task("humanitarian", humanitarian_labels="official")
    )
    assert official["label"].tolist()[1:] == ["infrastructure_and_utility_damage", "not_humanitarian"]


def test_damage_file_labels_image_only(tmp_path, write_crisismmd_tsv):
    rows = [("mexico_earthquake", "9", "9_0", "Damage!", "data_image/x/9_0.jpg", "severe_damage")]
    path = write_crisismmd_tsv(tmp_path / "d.tsv", rows, header=DAMAGE_HEADER)
    frame = read_split_file(path, "damage")
    assert frame["label_text"][0] == frame["label_image"][0] == "severe_damage"
    assert not frame["disagree"][0]


def _error(path, task="informative"):
    with pytest.raises(CrisisMMDFormatError) as info:
        read_split_file(path, task)
    return str(info.value)


def test_malformed_row_names_file_and_line(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = _rows(make_pair_row) + ["hurricane_irma\t1\tonly_three"]
    message = _error(write_crisismmd_tsv(tmp_path / "bad_fields.tsv", rows))
    assert "bad_fields.tsv" in message and "line 5" in message
    assert "expected 9 tab-separated fields, found 3" in message and "only_three" in message


def test_unknown_label_names_file_line_and_value(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = _rows(make_pair_row)
    rows[1] = make_pair_row("100_1", "text", "informative", "informative", "relevant")
    message = _error(write_crisismmd_tsv(tmp_path / "bad_label.tsv", rows))
    assert "bad_label.tsv" in message and "line 3" in message
    assert "label_image 'relevant'" in message


def test_empty_text_is_an_error(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = _rows(make_pair_row)
    rows[2] = make_pair_row("200_0", "   ", "informative")
    message = _error(write_crisismmd_tsv(tmp_path / "empty.tsv", rows))
    assert "empty.tsv" in message and "line 4" in message and "empty tweet_text" in message


def test_missing_column_duplicate_id_and_bad_bytes(tmp_path, write_crisismmd_tsv, make_pair_row):
    path = write_crisismmd_tsv(tmp_path / "nocol.tsv", [], header=DAMAGE_HEADER)
    message = _error(path, "informative")
    assert "nocol.tsv, line 1" in message and "label_text" in message

    rows = _rows(make_pair_row) + [make_pair_row("100_0", "again", "informative")]
    message = _error(write_crisismmd_tsv(tmp_path / "dup.tsv", rows))
    assert "dup.tsv, line 5" in message and "duplicate image_id '100_0'" in message

    path = write_crisismmd_tsv(tmp_path / "bytes.tsv", _rows(make_pair_row))
    path.write_bytes(path.read_bytes() + b"x\xff\n")
    assert "bytes.tsv, line 5" in _error(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.tsv"):
        read_split_file(tmp_path / "nothing.tsv", "informative")
    with pytest.raises(FileNotFoundError, match="No CrisisMMD files for task 'informative'"):
        load_crisismmd(tmp_path, "informative")


def _dataset_root(tmp_path, write_crisismmd_tsv, make_pair_row, agreed=False):
    root = tmp_path / "CrisisMMD_v2.0"
    folder = root / ("crisismmd_datasplit_agreed_label" if agreed else "crisismmd_datasplit_all")
    infix = "_agreed_lab" if agreed else ""
    for split in ("train", "dev"):
        write_crisismmd_tsv(folder / f"task_informative_text_img{infix}_{split}.tsv", _rows(make_pair_row))
    (root / "data_image").mkdir()
    return root, folder


@pytest.mark.parametrize("agreed", [False, True])
def test_find_files_and_image_root(tmp_path, write_crisismmd_tsv, make_pair_row, agreed):
    root, folder = _dataset_root(tmp_path, write_crisismmd_tsv, make_pair_row, agreed)
    assert resolve_split_dir(root, "informative") == folder
    assert find_split_file(folder, "informative", "dev").parent == folder
    assert find_split_file(folder, "informative", "test") is None
    for data_dir in (root, folder):
        ds = load_crisismmd(data_dir, "informative", setting="B")
        assert set(ds.splits) == {"train", "dev"}
        assert ds.image_root == root.resolve()
        assert ds.class_names == ("informative", "not_informative")
        assert len(ds["train"]) == 3 and len(ds["dev"]) == 2   # dev keeps agreeing pairs
        assert pathlib.Path(ds["train"]["image_path"][0]).parent.parent.parent.parent == root.resolve()
    with pytest.raises(KeyError, match="'test' is not available"):
        ds["test"]


def test_explicit_image_root(tmp_path, write_crisismmd_tsv, make_pair_row):
    root, folder = _dataset_root(tmp_path, write_crisismmd_tsv, make_pair_row)
    ds = load_crisismmd(folder, "informative", image_root=tmp_path / "imgs", splits=("dev",))
    assert set(ds.splits) == {"dev"}
    assert ds["dev"]["image_path"][0].startswith(str(tmp_path / "imgs"))
