"""The feature cache from the command line: extract, train --features, paper tables."""

import json
import sys
from pathlib import Path

import pytest

from crisis_keras.data.demo import make_demo_data
from crisis_keras.features import __main__ as features_cli
from crisis_keras import train as train_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import paper_tables  # noqa: E402

TINY = ["--text-backbone", "tiny", "--image-backbone", "tiny", "--image-weights", "none",
        "--image-size", "48", "--resize-to", "56", "--sequence-length", "24"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("features_cli")
    data_dir = make_demo_data(root / "demo", sizes={"train": 24, "dev": 12})
    cache = root / "cache"
    code = features_cli.main(["extract", "--task", "informative", "--data-dir", str(data_dir),
                              *TINY, "--out", str(cache)])
    assert code == 0
    return {"root": root, "data_dir": data_dir, "cache": cache}


def test_extract_again_says_complete_and_refuses_another_configuration(demo, capsys):
    args = ["extract", "--task", "informative", "--data-dir", str(demo["data_dir"]), *TINY,
            "--out", str(demo["cache"])]
    assert features_cli.main(args) == 0
    assert "already complete" in capsys.readouterr().out
    args[args.index("--sequence-length") + 1] = "16"
    assert features_cli.main(args) == 2
    err = capsys.readouterr().err
    assert "crisis_keras.features: error:" in err and "sequence_length: cache has 24" in err
    assert features_cli.main(["info", str(demo["cache"])]) == 0
    assert json.loads(capsys.readouterr().out)["complete"] is True


def test_train_takes_backbone_options_from_the_cache(demo, capsys):
    out = demo["root"] / "runs"
    code = train_cli.main(["--task", "informative", "--data-dir", str(demo["data_dir"]),
                           "--features", str(demo["cache"]), "--epochs", "1",
                           "--output-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "informative-sse_cross-settingA-features-seed0" / "config.json").read_text())
    assert config["text_backbone"] == "tiny" and config["image_size"] == 48
    assert config["image_weights"] is None and config["features_dir"] == str(demo["cache"])
    # An explicit option that contradicts the cache is refused, naming the field.
    code = train_cli.main(["--task", "informative", "--data-dir", str(demo["data_dir"]),
                           "--features", str(demo["cache"]), "--epochs", "1",
                           "--image-size", "32", "--resize-to", "40",
                           "--output-dir", str(out), "--run-name", "other"])
    assert code == 2
    assert "image_size: cache has 48, requested 32" in capsys.readouterr().err


def test_paper_table_rows_on_features_with_seeds(demo, tmp_path):
    lines = []
    for seed in ("0", "1"):
        code = paper_tables.main(
            ["run", "--table", "3", "--features", str(demo["cache"]),
             "--data-dir", str(demo["data_dir"]), "--rows", "sse-cross-bert-densenet", "mmbt",
             "--epochs", "1", "--seed", seed, "--output-dir", str(tmp_path / "runs")],
            out=lines.append)
        assert code == 0, "\n".join(lines)
    assert any("[not on features]" in line and "mmbt" in line for line in lines)
    paper_tables.main(["report", "--table", "3", "--output-dir", str(tmp_path / "runs"),
                       "--results-dir", str(tmp_path / "results"), "--seed", "0", "1"],
                      out=lines.append)
    report = (tmp_path / "results" / "table3.md").read_text()
    row = next(line for line in report.splitlines() if "frozen backbones" in line)
    assert "±" in row  # mean ± standard deviation over the two seeds
    assert "mean ± standard deviation over seeds 0, 1" in report
    assert "features_dir=" in report  # the runs' data and backbones are named
