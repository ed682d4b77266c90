"""The real CrisisMMD v2.0 annotation files in ../shared/crisismmd (skipped when absent)."""

import pytest

from crisis_keras.data.__main__ import summarize
from crisis_keras.data.consistency import make_consistent
from crisis_keras.data.crisismmd import load_crisismmd
from crisis_keras.data.crisismmd import read_split_file


def test_setting_a_informative(shared_crisismmd):
    result = summarize(shared_crisismmd / "settingA", "informative", "A")
    train, dev = result["splits"]["train"], result["splits"]["dev"]
    assert train["rows"] == 9599
    assert train["class_counts"] == {"informative": 6343, "not_informative": 3256}
    assert dev["rows"] == 1573
    assert "test" not in result["splits"]


def test_setting_b_humanitarian(shared_crisismmd):
    result = summarize(shared_crisismmd / "settingB", "humanitarian", "B")
    raw, train = result["files"]["train"], result["splits"]["train"]
    assert raw["rows"] == 8348 and raw["disagree_raw"] == 5474 and raw["dropped_by_task"] == 0
    assert train["rows"] == 8348 and train["disagree_raw"] == 5474
    assert train["disagree"] == 5447            # 27 raw disagreements agree after the merge
    assert result["splits"]["dev"]["rows"] == 477


def test_official_agreed_label_dev_files(shared_crisismmd):
    folder = shared_crisismmd / "agreed_label"
    informative = read_split_file(
        folder / "task_informative_text_img_agreed_lab_dev.tsv", "informative")
    humanitarian = read_split_file(
        folder / "task_humanitarian_text_img_agreed_lab_dev.tsv", "humanitarian")
    assert len(informative) == 1573 and len(humanitarian) == 998
    assert (humanitarian["label_raw"] == "not_humanitarian").sum() == 521
    assert len(load_crisismmd(folder, "humanitarian")["dev"]) == 477
    assert not informative["tweet_text"].str.contains("â€").any()     # mojibake repaired
    # The agreed-label dev set is the Setting A dev set, pair for pair.
    setting_a = load_crisismmd(shared_crisismmd / "settingA", "informative", splits=("dev",))
    assert sorted(setting_a["dev"]["image_id"]) == sorted(informative["image_id"])


def test_round_tripped_quotes_are_undone(shared_crisismmd):
    frame = read_split_file(
        shared_crisismmd / "settingA" / "task_informative_text_img_train.tsv", "informative")
    assert frame["tweet_text"].str.contains('""', regex=False).sum() <= 1   # one tweet has ""WALL"
    conspiracy = frame[frame["tweet_text"].str.startswith("The conspiracy nuts")]["tweet_text"]
    assert len(conspiracy) > 0
    assert (conspiracy.str.contains('Wildfires "set by an atmospheric weapon."', regex=False)).all()
    assert frame["text"].str.contains("link").mean() > 0.9


def test_setting_b_informative_becomes_consistent(shared_crisismmd):
    train = load_crisismmd(shared_crisismmd / "settingB", "informative", "B")["train"]
    assert len(train) == 13608 and train["disagree"].sum() == 4007
    out = make_consistent(train, seed=0)
    assert not out["disagree"].any() and (out["sse_side"] != "").sum() == 4007


@pytest.mark.parametrize("experiment", [1, 2, 3])
def test_setting_c_runs_on_real_events(shared_crisismmd, experiment):
    ds = load_crisismmd(shared_crisismmd / "settingA", "informative", "C",
                        setting_c_experiment=experiment)
    assert set(ds["test"]["event_name"]) == {"california_wildfires"}
    assert len(ds["train"]) > len(ds["dev"]) > 0


def test_python_and_tf_normalization_agree_on_real_tweets(shared_crisismmd):
    tf = pytest.importorskip("tensorflow")
    from crisis_keras.data.normalize import normalize_tweet_tf

    frame = read_split_file(
        shared_crisismmd / "agreed_label" / "task_informative_text_img_agreed_lab_dev.tsv",
        "informative")
    got = normalize_tweet_tf(tf.constant(frame["tweet_text"].tolist())).numpy()
    assert [g.decode("utf-8") for g in got] == frame["text"].tolist()
