"""Setting B's forced SSE transition (p0 = 1, eq. 9-10 with rho -> inf)."""

import pandas as pd
import pytest

from crisis_keras.data.consistency import make_consistent
from crisis_keras.data.crisismmd import read_split_file
from crisis_keras.data.tasks import get_task

TASK = get_task("humanitarian")


@pytest.fixture
def train(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = []
    for k in range(20):
        rows.append(make_pair_row(f"{k + 100}_0", f"vehicle text {k}", "vehicle_damage"))
        rows.append(make_pair_row(f"{k + 200}_0", f"other text {k}", "other_relevant_information"))
    # Disagreeing pairs: image wrong, text wrong, and an image side the task drops.
    rows.append(make_pair_row("900_0", "text A", "vehicle_damage", "vehicle_damage",
                              "other_relevant_information"))
    rows.append(make_pair_row("901_0", "text B", "other_relevant_information", "vehicle_damage",
                              "other_relevant_information"))
    rows.append(make_pair_row("902_0", "text C", "vehicle_damage", "vehicle_damage", "not_humanitarian"))
    return read_split_file(write_crisismmd_tsv(tmp_path / "train.tsv", rows), TASK)


def test_every_pair_consistent_and_donors_have_the_right_class(train):
    before = train.copy(deep=True)
    out = make_consistent(train, seed=0)
    pd.testing.assert_frame_equal(train, before)            # input not mutated
    assert not out["disagree"].any()
    assert (out["label_text"] == out["label_image"]).all()
    assert (out["label_image"] == out["label"]).all()
    by_id = train.set_index("image_id")
    swapped = out[out["sse_side"] != ""].set_index("image_id")
    assert swapped["sse_side"].to_dict() == {"900_0": "image", "901_0": "text", "902_0": "image"}
    for image_id, row in swapped.iterrows():
        donor = by_id.loc[row["sse_partner"]]
        side = row["sse_side"]
        assert donor[f"label_{side}"] == row["label"]
        if side == "image":
            assert row["image_path"] == donor["image_path"] and row["image"] == donor["image"]
            assert row["text"] == by_id.loc[image_id, "text"]      # other side kept
            assert row["label_image_id"] == TASK.class_id(row["label"])
        else:
            assert row["text"] == donor["text"] and row["tweet_text"] == donor["tweet_text"]
            assert row["image_path"] == by_id.loc[image_id, "image_path"]
    untouched = out[out["sse_side"] == ""]
    assert (untouched["sse_partner"] == "").all() and len(untouched) == 40
    pd.testing.assert_frame_equal(
        untouched[list(train.columns)], train[~train["disagree"]], check_index_type=False
    )


def test_seeds_change_donors_and_repeat(train):
    draws = [tuple(make_consistent(train, seed=s)["sse_partner"]) for s in range(6)]
    assert len(set(draws)) > 1
    assert tuple(make_consistent(train, seed=3)["sse_partner"]) == draws[3]


def test_no_donor_is_a_clear_error(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = [
        make_pair_row("1_0", "t", "vehicle_damage"),
        make_pair_row("2_0", "t", "affected_individuals", "affected_individuals", "vehicle_damage"),
    ]
    train = read_split_file(write_crisismmd_tsv(tmp_path / "t.tsv", rows), TASK)
    with pytest.raises(ValueError, match="no training pair has image class 'affected_individuals'.*2_0"):
        make_consistent(train, seed=0)


def test_missing_columns_are_named():
    with pytest.raises(KeyError, match="label_image"):
        make_consistent(pd.DataFrame({"label": ["a"], "image_id": ["1"], "disagree": [True]}), seed=0)
