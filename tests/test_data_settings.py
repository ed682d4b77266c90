"""Settings A, B and C (section 4.2, eq. 11-12) on hand-made tables."""

import pytest

from crisis_keras.data.crisismmd import read_split_file
from crisis_keras.data.settings import SETTING_C_EXPERIMENTS
from crisis_keras.data.settings import SETTING_C_READINGS
from crisis_keras.data.settings import select_setting
from crisis_keras.data.settings import setting_c_counts
from crisis_keras.data.tasks import get_task

TASK = get_task("humanitarian")
EVENTS = ("srilanka_floods", "hurricane_harvey", "hurricane_irma", "mexico_earthquake",
          "california_wildfires", "hurricane_maria")


@pytest.fixture
def frames(tmp_path, write_crisismmd_tsv, make_pair_row):
    def rows(prefix):
        out = []
        for e, event in enumerate(EVENTS):
            for k in range(10):
                image_id = f"{prefix}{e}{k:02d}_0"
                if k < 6:
                    out.append(make_pair_row(image_id, "t", "vehicle_damage", event=event))
                elif k == 6:  # disagreeing pair
                    out.append(make_pair_row(image_id, "t", "vehicle_damage", "vehicle_damage",
                                             "other_relevant_information", event=event))
                elif k == 7:  # agree only after the paper's merge
                    out.append(make_pair_row(image_id, "t", "affected_individuals",
                                             "injured_or_dead_people", "affected_individuals", event=event))
                elif k == 8:  # dropped pair label
                    out.append(make_pair_row(image_id, "t", "not_humanitarian", event=event))
                else:  # image side dropped by the task: disagreeing
                    out.append(make_pair_row(image_id, "t", "vehicle_damage", "vehicle_damage",
                                             "not_humanitarian", event=event))
        return out

    return {
        split: read_split_file(write_crisismmd_tsv(tmp_path / f"{split}.tsv", rows(p)), TASK)
        for split, p in (("train", "1"), ("dev", "2"), ("test", "3"))
    }


def test_setting_a_keeps_agreeing_pairs_everywhere(frames):
    out = select_setting(frames, TASK, "A")
    for split, frame in out.items():
        assert len(frame) == 7 * 6       # per event: 6 agreeing + 1 agreeing after the merge
        assert not frame["disagree"].any() and (frame["label_id"] >= 0).all()
        assert list(frame.index) == list(range(len(frame)))
    assert len(frames["train"]) == 60    # input untouched


def test_setting_b_keeps_disagreeing_training_pairs(frames):
    out = select_setting(frames, TASK, "b")
    assert len(out["train"]) == 9 * 6
    assert out["train"]["disagree"].sum() == 2 * 6
    assert (out["train"]["label_id"] >= 0).all()
    for split in ("dev", "test"):
        assert len(out[split]) == 7 * 6 and not out[split]["disagree"].any()


@pytest.mark.parametrize("experiment", [1, 2, 3])
def test_setting_c_splits_by_event(frames, experiment):
    out = select_setting(frames, TASK, "C", experiment=experiment, dev_fraction=0.2, seed=1)
    events = set(SETTING_C_EXPERIMENTS[experiment])
    assert set(out["test"]["event_name"]) == {"california_wildfires"}
    assert len(out["test"]) == 3 * 7                      # pooled agreeing pairs of 3 splits
    assert set(out["train"]["event_name"]) | set(out["dev"]["event_name"]) <= events
    n = 3 * 7 * len(events)
    assert len(out["train"]) + len(out["dev"]) == n
    assert len(out["dev"]) == round(0.2 * n)              # one image per tweet here
    assert not set(out["train"]["tweet_id"]) & set(out["dev"]["tweet_id"])
    for frame in out.values():
        assert not frame["disagree"].any()


def test_setting_c_dev_is_seeded(frames):
    a = select_setting(frames, TASK, "C", seed=0)["dev"]["image_id"].tolist()
    b = select_setting(frames, TASK, "C", seed=0)["dev"]["image_id"].tolist()
    c = select_setting(frames, TASK, "C", seed=5)["dev"]["image_id"].tolist()
    assert a == b and a != c


def test_setting_c_keeps_a_tweets_images_together(tmp_path, write_crisismmd_tsv, make_pair_row):
    rows = [make_pair_row(f"{t}_{i}", "t", "vehicle_damage", event=event)
            for event in ("srilanka_floods", "california_wildfires")
            for t in range(100 if event == "srilanka_floods" else 1, 120 if event == "srilanka_floods" else 2)
            for i in range(3)]
    frame = read_split_file(write_crisismmd_tsv(tmp_path / "x.tsv", rows), TASK)
    out = select_setting({"train": frame}, TASK, "C", experiment=1, dev_fraction=0.15)
    assert len(out["dev"]) == 3 * 3
    assert not set(out["train"]["tweet_id"]) & set(out["dev"]["tweet_id"])


def test_bad_settings_raise(frames):
    with pytest.raises(ValueError, match="Unknown setting 'D'"):
        select_setting(frames, TASK, "D")
    with pytest.raises(ValueError, match="experiment 4"):
        select_setting(frames, TASK, "C", experiment=4)
    only_wildfires = {"train": frames["train"][frames["train"]["event_name"] == "california_wildfires"]}
    with pytest.raises(ValueError, match="no agreeing pairs of event"):
        select_setting(only_wildfires, TASK, "C", experiment=1)


# -- Setting C readings (settings.SETTING_C_READINGS) on a hand-made table ------------
def _readings_frames(tmp_path, write_crisismmd_tsv, make_pair_row):
    """Sri Lanka: tweet 10 (agree + disagree), 11 (disagree), 12 (two agree),
    13 (dropped pair label), 14 (disagree + dropped); wildfires: 20 (agree + disagree)."""
    sl, ca, vd, other = "srilanka_floods", "california_wildfires", "vehicle_damage", "other_relevant_information"
    train = [
        make_pair_row("10_0", "t", vd, event=sl),
        make_pair_row("10_1", "t", vd, vd, other, event=sl),
        make_pair_row("11_0", "t", other, vd, other, event=sl),
        make_pair_row("13_0", "t", "not_humanitarian", event=sl),
        make_pair_row("14_0", "t", vd, vd, other, event=sl),
        make_pair_row("14_1", "t", "not_humanitarian", "not_humanitarian", vd, event=sl),
        make_pair_row("20_1", "t", vd, vd, other, event=ca),
    ]
    dev = [
        make_pair_row("12_0", "t", other, event=sl),
        make_pair_row("12_1", "t", other, event=sl),
        make_pair_row("20_0", "t", vd, event=ca),
    ]
    return {
        split: read_split_file(write_crisismmd_tsv(tmp_path / f"{split}.tsv", rows), TASK)
        for split, rows in (("train", train), ("dev", dev))
    }


@pytest.mark.parametrize("reading, pool, tweets", [
    ("agreeing", 3, 2), ("all_pairs", 6, 4), ("agreeing_by_tweet", 4, 2),
])
def test_setting_c_counts_of_every_reading(tmp_path, write_crisismmd_tsv, make_pair_row,
                                           reading, pool, tweets):
    frames = _readings_frames(tmp_path, write_crisismmd_tsv, make_pair_row)
    counts = setting_c_counts(frames, TASK, dev_fraction=0.25, seed=0)
    assert set(counts) == set(SETTING_C_READINGS)
    one = counts[reading][1]
    assert (one["pool"], one["pool_tweets"], one["test"]) == (pool, tweets, 1)
    assert one["train"] + one["dev"] <= pool and one["dev"] <= 3  # dev keeps agreeing pairs only
    assert (one["paper_train"], one["paper_test"]) == (174, 217)
    assert one["pool_events"] == {"srilanka_floods": pool}
    assert counts[reading][2]["pool"] == pool and counts[reading][2]["paper_train"] == 4037
    wildfires_only = {s: f[f["event_name"] == "california_wildfires"] for s, f in frames.items()}
    missing = setting_c_counts(wildfires_only, TASK)[reading][3]
    assert "srilanka_floods" in missing["error"] and missing["paper_train"] == 4761


@pytest.mark.parametrize("reading, expected", [
    ("agreeing", {"10_0", "12_0", "12_1"}),
    ("all_pairs", {"10_0", "10_1", "11_0", "12_0", "12_1", "14_0"}),
    ("agreeing_by_tweet", {"10_0", "10_1", "12_0", "12_1"}),
])
def test_setting_c_reading_selects_training_pairs(tmp_path, write_crisismmd_tsv, make_pair_row,
                                                  reading, expected):
    frames = _readings_frames(tmp_path, write_crisismmd_tsv, make_pair_row)
    # 10% of at most 4 tweets rounds to no dev tweet: train is the whole pool
    out = select_setting(frames, TASK, "C", experiment=1, dev_fraction=0.1, seed=3,
                         setting_c_reading=reading)
    assert set(out["train"]["image_id"]) == expected and out["dev"].empty
    assert out["train"]["disagree"].any() == (reading != "agreeing")
    assert out["test"]["image_id"].tolist() == ["20_0"]          # eq. 11 in every reading


def test_unknown_setting_c_reading_raises(frames):
    with pytest.raises(ValueError, match="Unknown Setting C reading 'tweets'"):
        select_setting(frames, TASK, "C", setting_c_reading="tweets")
