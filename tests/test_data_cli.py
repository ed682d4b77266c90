"""`python -m crisis_keras.data summary` on hand-made files."""

import hashlib
import json
import subprocess
import sys

from crisis_keras.data.__main__ import main


def _write(tmp_path, write_crisismmd_tsv, make_pair_row):
    folder = tmp_path / "root" / "crisismmd_datasplit_all"
    train = [
        make_pair_row("1_0", "a", "informative", event="srilanka_floods"),
        make_pair_row("2_0", "b", "not_informative", event="srilanka_floods"),
        make_pair_row("3_0", "c", "informative", "informative", "not_informative"),
    ]
    dev = [make_pair_row("5_0", "d", "informative"), make_pair_row("4_0", "e", "informative")]
    write_crisismmd_tsv(folder / "task_informative_text_img_train.tsv", train)
    write_crisismmd_tsv(folder / "task_informative_text_img_dev.tsv", dev)
    image = tmp_path / "root" / "data_image/hurricane_irma/1_9_2017/5_0.jpg"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"not checked here")
    return tmp_path / "root"


def test_summary_json(tmp_path, write_crisismmd_tsv, make_pair_row, capsys):
    root = _write(tmp_path, write_crisismmd_tsv, make_pair_row)
    assert main(["summary", "--data-dir", str(root), "--task", "informative", "--setting", "b"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["setting"] == "B" and result["image_root"] == str(root.resolve())
    assert result["files"]["train"]["rows"] == 3 and result["files"]["train"]["disagree_raw"] == 1
    train, dev = result["splits"]["train"], result["splits"]["dev"]
    assert train["rows"] == 3 and train["disagree"] == 1
    assert train["class_counts"] == {"informative": 2, "not_informative": 1}
    assert train["events"] == {"hurricane_irma": 1, "srilanka_floods": 2}
    assert dev["missing_images"]["count"] == 1
    assert dev["missing_images"]["first"][0].endswith("4_0.jpg")
    assert dev["image_ids_sha256"] == hashlib.sha256(b"4_0\n5_0").hexdigest()

    assert main(["summary", "--data-dir", str(root), "--task", "informative"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["rows"] == 2


def test_summary_errors_are_reported(tmp_path, write_crisismmd_tsv, make_pair_row, capsys):
    root = _write(tmp_path, write_crisismmd_tsv, make_pair_row)
    bad = root / "crisismmd_datasplit_all" / "task_informative_text_img_dev.tsv"
    bad.write_text(bad.read_text() + "too\tfew\n")
    assert main(["summary", "--data-dir", str(root), "--task", "informative"]) == 2
    err = capsys.readouterr().err
    assert "task_informative_text_img_dev.tsv, line 4" in err
    assert main(["summary", "--data-dir", str(tmp_path / "nowhere"), "--task", "informative"]) == 2
    assert "not found" in capsys.readouterr().err


def test_module_entry_point(tmp_path, write_crisismmd_tsv, make_pair_row):
    root = _write(tmp_path, write_crisismmd_tsv, make_pair_row)
    proc = subprocess.run(
        [sys.executable, "-m", "crisis_keras.data", "summary", "--data-dir", str(root),
         "--task", "informative", "--setting", "C", "--experiment", "1"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2 and "california_wildfires" in proc.stderr


def test_summary_setting_c_prints_every_reading_beside_the_paper(
        tmp_path, write_crisismmd_tsv, make_pair_row, capsys):
    folder = tmp_path / "hum"
    vd, other = "vehicle_damage", "other_relevant_information"
    train = [
        make_pair_row("1_0", "a", vd, event="srilanka_floods"),
        make_pair_row("2_0", "b", vd, vd, other, event="srilanka_floods"),
        make_pair_row("3_0", "c", vd, "vehicle_damage", "infrastructure_and_utility_damage",
                      event="hurricane_irma"),
        make_pair_row("4_0", "d", other, event="california_wildfires"),
    ]
    write_crisismmd_tsv(folder / "task_humanitarian_text_img_train.tsv", train)
    argv = ["summary", "--data-dir", str(folder), "--task", "humanitarian", "--setting", "C",
            "--experiment", "2", "--setting-c-reading", "all_pairs"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    c = result["setting_c"]
    assert c["reading"] == "all_pairs" and result["splits"]["test"]["rows"] == 1
    assert result["splits"]["train"]["rows"] + result["splits"]["dev"]["rows"] == 3
    assert "test split" in c["note"]
    pools = {r: {e: v["pool"] for e, v in c["readings"][r].items()} for r in c["readings"]}
    assert pools == {"agreeing": {"1": 1, "2": 1, "3": 1}, "all_pairs": {"1": 2, "2": 3, "3": 3},
                     "agreeing_by_tweet": {"1": 1, "2": 1, "3": 1}}
    paper = {e: (v["paper_train"], v["paper_test"]) for e, v in c["readings"]["agreeing"].items()}
    assert paper == {"1": (174, 217), "2": (4037, 217), "3": (4761, 217)}
    # the official label set merges vehicle damage into infrastructure: 3_0 agrees there
    official = c["readings_by_label_set"]["official"]["agreeing"]
    assert {e: v["pool"] for e, v in official.items()} == {"1": 1, "2": 2, "3": 2}
    assert c["readings_by_label_set"]["paper"] == c["readings"]


def test_summary_paper_split(tmp_path, write_crisismmd_tsv, make_pair_row, capsys):
    root = _write(tmp_path, write_crisismmd_tsv, make_pair_row)
    assert main(["summary", "--data-dir", str(root), "--task", "informative", "--split", "paper"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "paper" and set(result["splits"]) == {"train", "dev", "test"}
    assert sum(s["rows"] for s in result["splits"].values()) == 4   # the agreeing pairs
    assert main(["summary", "--data-dir", str(root), "--task", "informative", "--setting", "C",
                 "--split", "paper"]) == 2
    assert "settings A and B" in capsys.readouterr().err
