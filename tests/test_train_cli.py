"""The `python -m crisis_keras.train` command line: errors and a failed start."""

import json

import pytest

from crisis_keras import train as train_cli
from crisis_keras.data.demo import make_demo_data

TINY = [
    "--task", "severity", "--text-backbone", "tiny", "--image-backbone", "tiny",
    "--image-weights", "none", "--image-size", "32", "--resize-to", "36",
    "--sequence-length", "16", "--batch-size", "8", "--epochs", "1", "--run-name", "run",
]


def test_damage_is_an_alias_and_none_means_no_weights():
    args = train_cli.build_parser().parse_args(["--task", "damage", "--image-weights", "none"])
    config = train_cli.config_from_args(args)
    assert config.task == "severity"
    assert config.image_weights is None
    assert config.batch_size == 32 and config.learning_rate == 2e-3  # section 4.5


def test_bad_data_dir_is_a_clear_error_without_traceback(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = train_cli.main(TINY + ["--data-dir", str(empty), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("crisis_keras.train: error:")
    assert str(empty) in err
    assert "Traceback" not in err


def test_a_run_that_failed_to_start_takes_the_corrected_command(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path)]
    assert train_cli.main(TINY + ["--data-dir", str(tmp_path / "missing")] + out) == 2
    data = make_demo_data(tmp_path / "demo", sizes={"train": 16, "dev": 8, "test": 8})
    assert train_cli.main(TINY + ["--data-dir", str(data)] + out) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_dir"] == str(data)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 8


@pytest.mark.parametrize("flag", ["--setting", "--task"])
def test_unknown_choices_are_refused_by_the_parser(flag):
    with pytest.raises(SystemExit):
        train_cli.build_parser().parse_args(["--task", "severity", flag, "Z"])


def test_split_and_setting_c_reading_reach_the_data_loader(tmp_path, write_crisismmd_tsv, make_pair_row):
    from crisis_keras.training.trainer import load_data

    vd, other = "vehicle_damage", "other_relevant_information"
    rows = [make_pair_row(f"{t}_0", "t", vd, event="srilanka_floods") for t in range(10, 40)]
    rows += [make_pair_row(f"{t}_0", "t", vd, vd, other, event="srilanka_floods") for t in range(40, 50)]
    rows += [make_pair_row(f"{t}_0", "t", other, event="california_wildfires") for t in range(50, 60)]
    folder = tmp_path / "hum"
    write_crisismmd_tsv(folder / "task_humanitarian_text_img_train.tsv", rows)
    base = ["--task", "humanitarian", "--data-dir", str(folder)]

    def load(*flags):
        config = train_cli.config_from_args(train_cli.build_parser().parse_args(base + list(flags)))
        return config, load_data(config)

    config, data = load("--split", "paper", "--split-seed", "5")
    assert config.split == "paper" and set(data.splits) == {"train", "dev", "test"}
    assert sum(len(f) for f in data.splits.values()) == 40        # the agreeing pairs, re-split
    assert "-paper-split" in config.resolved_run_name()
    config, data = load("--setting", "C", "--experiment", "1", "--setting-c-reading", "all_pairs")
    assert config.setting_c_reading == "all_pairs" and data["train"]["disagree"].any()
    assert "settingC1-all_pairs" in config.resolved_run_name()
    _, data = load("--setting", "C", "--experiment", "1")
    assert not data["train"]["disagree"].any()                     # default: agreeing pairs
