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
