"""`--events`: restricting every split to some events (`crisis_keras.data.events`)."""

import pathlib

import pandas as pd
import pytest

from crisis_keras.data.crisismmd import CrisisMMD
from crisis_keras.data.events import filter_events, parse_events
from crisis_keras.data.tasks import get_task


def data(**splits):
    tables = {s: pd.DataFrame({"event_name": events, "image_id": [f"{s}{i}" for i in range(len(events))]})
              for s, events in splits.items()}
    return CrisisMMD(get_task("informative"), "A", tables, pathlib.Path("/d"), pathlib.Path("/d"))


def test_parse_events():
    assert parse_events(" a, b,,a ") == ("a", "b")
    assert parse_events(["x"]) == ("x",)
    with pytest.raises(ValueError, match="at least one event"):
        parse_events(" , ")


def test_every_split_is_filtered_and_reindexed():
    full = data(train=["a", "b", "a", "c"], dev=["b", "a"], test=["c", "b"])
    kept = filter_events(full, "a,b")
    assert {s: list(t["image_id"]) for s, t in kept.splits.items()} == {
        "train": ["train0", "train1", "train2"], "dev": ["dev0", "dev1"], "test": ["test1"]}
    assert list(kept["train"].index) == [0, 1, 2]
    assert len(full["train"]) == 4  # the input is left as it was
    assert kept.task is full.task and kept.image_root == full.image_root


def test_a_split_left_empty_is_an_error_naming_its_events():
    with pytest.raises(ValueError, match=r"--events a leaves the test split of /d empty; its events are \['b', 'c'\]"):
        filter_events(data(train=["a"], test=["c", "b"]), "a")
