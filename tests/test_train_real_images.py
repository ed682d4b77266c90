"""Training on real CrisisMMD images: the Sri Lanka floods rows of Setting A informative.

Only `data_image/srilanka_floods/` of the real images is in ../shared/crisismmd;
some of its files are PNG data, which the pipeline must read by content.
"""

import json
import logging

import pytest
from conftest import SHARED_CRISISMMD

from crisis_keras import train as train_cli
from crisis_keras.training.config import TrainConfig
from crisis_keras.training.trainer import load_data, train

SPLIT_FILE = "task_informative_text_img_{}.tsv"
TINY = dict(
    task="informative", model="sse_cross", text_backbone="tiny", image_backbone="tiny",
    image_weights=None, image_size=32, resize_to=36, sequence_length=16, batch_size=8,
    epochs=1, run_name="run",
)


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def srilanka_lines(path):
    """(header, [data line, ...]) of the srilanka_floods rows, bytes as in the file."""
    lines = path.read_bytes().rstrip(b"\n").split(b"\n")
    rows = [l.rstrip(b"\r") for l in lines[1:] if l.startswith(b"srilanka_floods\t")]
    return lines[0].rstrip(b"\r"), rows


def image_of(line):
    return line.split(b"\t")[4].decode()


@pytest.fixture(scope="module")
def srilanka(tmp_path_factory):
    """A tiny Setting A informative folder: Sri Lanka rows, all PNG ones included."""
    root = SHARED_CRISISMMD
    if not (root / "data_image" / "srilanka_floods").is_dir():
        pytest.skip(f"real CrisisMMD images not available under {root}")
    folder = tmp_path_factory.mktemp("srilanka") / "settingA"
    folder.mkdir()
    header, train = srilanka_lines(root / "settingA" / SPLIT_FILE.format("train"))
    png = [l for l in train if is_png(root / image_of(l))]
    assert png, "expected PNG data among the Sri Lanka training images"
    train = png + [l for l in train if l not in png][:28]
    header, dev = srilanka_lines(root / "settingA" / SPLIT_FILE.format("dev"))
    for split, rows in (("train", train), ("dev", dev[:16])):
        (folder / SPLIT_FILE.format(split)).write_bytes(b"\n".join([header] + rows) + b"\n")
    return dict(folder=folder, image_root=root, png=[image_of(l) for l in png])


def config_for(data_dir, image_root, output_dir, **overrides):
    return TrainConfig(**{**TINY, "data_dir": str(data_dir), "image_root": str(image_root),
                          "output_dir": str(output_dir), **overrides})


def test_tiny_model_trains_on_real_images_including_png_data(srilanka, tmp_path):
    config = config_for(srilanka["folder"], srilanka["image_root"], tmp_path)
    train_table = load_data(config)["train"]
    assert set(srilanka["png"]) <= set(train_table["image"])
    run_dir = train(config, announce=lambda *_: None)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dev"]["num_examples"] == 16
    assert json.loads((run_dir / "config.json").read_text())["image_root"] == str(
        srilanka["image_root"])


def with_missing_image(srilanka, tmp_path):
    """A copy of the folder whose training file gains a row with a missing image."""
    folder = tmp_path / "settingA"
    folder.mkdir()
    for split in ("train", "dev"):
        name = SPLIT_FILE.format(split)
        (folder / name).write_bytes((srilanka["folder"] / name).read_bytes())
    path = folder / SPLIT_FILE.format("train")
    lines = path.read_bytes().rstrip(b"\n").split(b"\n")
    fields = lines[1].split(b"\t")
    fields[2] = fields[1] + b"_9"
    fields[4] = b"data_image/srilanka_floods/1_1_2017/" + fields[2] + b".jpg"
    path.write_bytes(b"\n".join(lines + [b"\t".join(fields)]) + b"\n")
    return folder, str(srilanka["image_root"] / fields[4].decode()), f"{path}:{len(lines) + 1}"


def test_a_missing_real_image_stops_the_run_before_training(srilanka, tmp_path):
    folder, missing, where = with_missing_image(srilanka, tmp_path)
    config = config_for(folder, srilanka["image_root"], tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match=r"^1 image files") as error:
        train(config, announce=lambda *_: None)
    assert missing in str(error.value) and where in str(error.value)
    assert not (tmp_path / "runs" / "run" / "best_model.keras").exists()


def test_drop_mode_drops_the_missing_image_and_names_it(srilanka, tmp_path, caplog):
    folder, missing, where = with_missing_image(srilanka, tmp_path)
    config = config_for(folder, srilanka["image_root"], tmp_path / "runs",
                        model="densenet", on_bad_image="drop")
    with caplog.at_level(logging.WARNING, logger="crisis_keras.data.pipeline"):
        run_dir = train(config, announce=lambda *_: None)
    dropped = [r.getMessage() for r in caplog.records if "Dropping 1 rows" in r.getMessage()]
    assert dropped and missing in dropped[0] and where in dropped[0]
    assert json.loads((run_dir / "metrics.json").read_text())["dev"]["num_examples"] == 16


def test_events_option_trains_on_the_srilanka_subset_of_setting_a(srilanka, tmp_path, capsys):
    data_dir = srilanka["image_root"] / "settingA"
    common = ["--data-dir", str(data_dir), "--task", "informative", "--model", "densenet",
              "--image-backbone", "tiny", "--image-weights", "none", "--image-size", "32",
              "--resize-to", "36", "--batch-size", "16", "--epochs", "1",
              "--max-train-examples", "32", "--output-dir", str(tmp_path), "--run-name", "run"]
    assert train_cli.main(common + ["--events", "srilanka_floodz"]) == 2
    err = capsys.readouterr().err
    assert "--events srilanka_floodz leaves the train split" in err and "srilanka_floods" in err

    assert train_cli.main(common + ["--events", "srilanka_floods"]) == 0
    config = TrainConfig.from_json_file(tmp_path / "run" / "config.json")
    assert config.events == "srilanka_floods"
    data = load_data(config)
    assert {s: len(t) for s, t in data.splits.items()} == {"train": 674, "dev": 91}
    assert set(data["train"]["event_name"]) == {"srilanka_floods"}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dev"]["num_examples"] == 91
