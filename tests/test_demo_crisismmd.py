"""The demo dataset read through the real loader (crisismmd.load_crisismmd) and
fed to make_dataset, for every task in settings A, B and C."""

import csv
import importlib.util

import numpy as np
import pytest

from crisis_keras.data import demo
from crisis_keras.data.pipeline import check_images, make_dataset
from crisis_keras.data.tasks import TASK_NAMES, get_task

if importlib.util.find_spec("crisis_keras.data.crisismmd") is None:
    pytest.skip("crisis_keras.data.crisismmd is not written yet", allow_module_level=True)

from crisis_keras.data.crisismmd import load_crisismmd  # noqa: E402

SIZES = {"train": 96, "dev": 32, "test": 32}
SPLITS = ("train", "dev", "test")
SETTING_C_EVENTS = {
    1: {"srilanka_floods"},
    2: {"srilanka_floods", "hurricane_harvey", "hurricane_irma"},
    3: {"srilanka_floods", "hurricane_harvey", "hurricane_irma", "mexico_earthquake"},
}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return demo.make_demo_data(tmp_path_factory.mktemp("demo") / "root", seed=0, sizes=SIZES)


def _expected_ids(root, task_name, split, setting):
    """image_ids the setting keeps, computed from the TSV with the csv module."""
    task = get_task(task_name)
    path = root / demo.SPLIT_DIR / f"task_{task.file_stem}_text_img_{split}.tsv"
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    keep = []
    for row in rows:
        if task.map_label(row["label"]) is None:
            continue
        if not task.image_only_labels and not (setting == "B" and split == "train"):
            if task.map_label(row["label_text"]) != task.map_label(row["label_image"]):
                continue
        keep.append(row["image_id"])
    return keep


@pytest.mark.parametrize("setting", ["A", "B"])
@pytest.mark.parametrize("task_name", TASK_NAMES)
def test_demo_loads_in_settings_a_and_b(demo_root, task_name, setting):
    data = load_crisismmd(demo_root, task_name, setting=setting)
    assert set(data.splits) == set(SPLITS)
    task = get_task(task_name)
    for split in SPLITS:
        frame = data.splits[split]
        assert list(frame["image_id"]) == _expected_ids(demo_root, task_name, split, setting)
        assert frame["label_id"].between(0, task.num_classes - 1).all()
        assert check_images(frame).ok
        assert not frame["text"].str.contains("https://|  ").any()
    train = data.splits["train"]
    if setting == "B" and not task.image_only_labels:
        assert train["disagree"].any()
    else:
        assert not train["disagree"].any()
    features, labels = next(
        iter(make_dataset(train, training=True, batch_size=8, image_size=16, resize_to=20))
    )
    assert features["image"].shape == (8, 16, 16, 3) and labels.shape == (8,)


@pytest.mark.parametrize("task_name", TASK_NAMES)
def test_demo_loads_in_setting_c(demo_root, task_name):
    task = get_task(task_name)
    for experiment, events in SETTING_C_EVENTS.items():
        data = load_crisismmd(demo_root, task_name, setting="C", setting_c_experiment=experiment)
        test = data.splits["test"]
        assert set(test["event_name"]) == {"california_wildfires"}
        assert set(test["label_id"]) == set(range(task.num_classes))
        train_events = set(data.splits["train"]["event_name"])
        train_events |= set(data.splits["dev"]["event_name"])
        assert train_events <= events
        assert set(data.splits["train"]["label_id"]) == set(range(task.num_classes))
        assert not set(data.splits["train"]["image_id"]) & set(data.splits["dev"]["image_id"])


def test_demo_setting_b_can_be_made_consistent(demo_root):
    consistency = pytest.importorskip("crisis_keras.data.consistency")
    for task_name in ("informative", "humanitarian"):
        train = load_crisismmd(demo_root, task_name, setting="B").splits["train"]
        fixed = consistency.make_consistent(train, seed=0)
        assert len(fixed) == len(train) and not fixed["disagree"].any()
        assert np.array_equal(fixed["label_id"].to_numpy(), train["label_id"].to_numpy())
