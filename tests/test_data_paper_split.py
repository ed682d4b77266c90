"""`--split paper` (data/paper_split.py): seeded re-split by tweet with Table 2's proportions."""

import random

import pytest

from crisis_keras.data.crisismmd import load_crisismmd
from crisis_keras.data.crisismmd import read_split_file
from crisis_keras.data.paper_split import paper_proportions
from crisis_keras.data.paper_split import resplit_like_paper
from crisis_keras.data.settings import select_setting
from crisis_keras.data.tasks import get_task

TASK = get_task("informative")
EVENTS = ("srilanka_floods", "hurricane_harvey", "california_wildfires")


def _rows(make_pair_row, n_tweets=300, seed=0):
    """Tweets of 1-3 images; about one pair in five disagrees."""
    rng = random.Random(seed)
    rows = []
    for t in range(1000, 1000 + n_tweets):
        label = rng.choice(("informative", "not_informative"))
        event = EVENTS[t % len(EVENTS)]
        for i in range(rng.choice((1, 1, 2, 3))):
            if rng.random() < 0.2:
                rows.append(make_pair_row(f"{t}_{i}", "t", label, "informative", "not_informative",
                                          event=event))
            else:
                rows.append(make_pair_row(f"{t}_{i}", "t", label, event=event))
    return rows


def _write_dirs(tmp_path, write_crisismmd_tsv, make_pair_row, shuffle_seed=None):
    """A "settingB" folder (train with disagreeing pairs, agreeing dev) and the
    matching "settingA" folder (agreeing pairs only); no test files."""
    rows = _rows(make_pair_row)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(rows)
    cut = int(0.8 * len(rows))
    train, dev = rows[:cut], [r for r in rows[cut:] if r[-1] == "Positive"]
    folders = {}
    for name, keep in (("B", lambda r: True), ("A", lambda r: r[-1] == "Positive")):
        folder = tmp_path / f"setting{name}"
        write_crisismmd_tsv(folder / "task_informative_text_img_train.tsv", [r for r in train if keep(r)])
        write_crisismmd_tsv(folder / "task_informative_text_img_dev.tsv", dev)
        folders[name] = folder
    return folders


def test_proportions_follow_table_2():
    assert paper_proportions("informative") == pytest.approx((7876 / 11250, 553 / 11250, 2821 / 11250))
    assert paper_proportions("humanitarian")[2] == pytest.approx(1467 / 3359)
    with pytest.raises(ValueError, match="no row for task 'other'"):
        paper_proportions("other")


def test_paper_split_proportions_and_tweets(tmp_path, write_crisismmd_tsv, make_pair_row):
    folders = _write_dirs(tmp_path, write_crisismmd_tsv, make_pair_row)
    data = load_crisismmd(folders["A"], "informative", "A", split="paper", seed=0)
    assert set(data.splits) == {"train", "dev", "test"}        # test made from train + dev
    sizes = {s: len(f) for s, f in data.splits.items()}
    total = sum(sizes.values())
    pooled = sum(len(read_split_file(p, TASK)) for p in folders["A"].glob("*.tsv"))
    assert total == pooled
    for split, fraction in zip(("train", "dev", "test"), paper_proportions("informative")):
        assert abs(sizes[split] - fraction * total) <= 3        # at most one tweet's images off
    tweets = {s: set(f["tweet_id"]) for s, f in data.splits.items()}
    assert not tweets["train"] & tweets["dev"] and not tweets["train"] & tweets["test"]
    assert not tweets["dev"] & tweets["test"]


def test_paper_split_is_seeded_and_order_free(tmp_path, write_crisismmd_tsv, make_pair_row):
    folders = _write_dirs(tmp_path / "a", write_crisismmd_tsv, make_pair_row)
    shuffled = _write_dirs(tmp_path / "b", write_crisismmd_tsv, make_pair_row, shuffle_seed=7)

    def ids(folder, seed):
        data = load_crisismmd(folder, "informative", "A", split="paper", seed=seed)
        return {s: sorted(f["image_id"]) for s, f in data.splits.items()}

    assert ids(folders["A"], 0) == ids(folders["A"], 0)
    assert ids(folders["A"], 0) != ids(folders["A"], 1)
    # same pairs, other files and row order (official train/dev cut elsewhere): same split
    assert ids(folders["A"], 3) == ids(shuffled["A"], 3)


def test_setting_b_shares_setting_a_dev_and_test(tmp_path, write_crisismmd_tsv, make_pair_row):
    folders = _write_dirs(tmp_path, write_crisismmd_tsv, make_pair_row)
    a = load_crisismmd(folders["A"], "informative", "A", split="paper", seed=2)
    b = load_crisismmd(folders["B"], "informative", "B", split="paper", seed=2)
    for split in ("dev", "test"):
        assert sorted(a[split]["image_id"]) == sorted(b[split]["image_id"])
        assert not b[split]["disagree"].any()
    assert b["train"]["disagree"].any() and len(b["train"]) > len(a["train"])
    assert set(a["train"]["image_id"]) <= set(b["train"]["image_id"])
    assert not set(b["train"]["tweet_id"]) & (set(b["dev"]["tweet_id"]) | set(b["test"]["tweet_id"]))


def test_official_split_is_the_default(tmp_path, write_crisismmd_tsv, make_pair_row):
    folders = _write_dirs(tmp_path, write_crisismmd_tsv, make_pair_row)
    data = load_crisismmd(folders["A"], "informative", "A")
    assert set(data.splits) == {"train", "dev"}


def test_paper_split_errors(tmp_path, write_crisismmd_tsv, make_pair_row):
    folders = _write_dirs(tmp_path, write_crisismmd_tsv, make_pair_row)
    with pytest.raises(ValueError, match="Unknown split 'random'"):
        load_crisismmd(folders["A"], "informative", "A", split="random")
    with pytest.raises(ValueError, match="settings A and B"):
        load_crisismmd(folders["A"], "informative", "C", split="paper")
    row = make_pair_row("5_0", "t", "informative")
    frames = {
        split: read_split_file(write_crisismmd_tsv(tmp_path / f"{split}.tsv", [row]), TASK)
        for split in ("train", "dev")
    }
    with pytest.raises(ValueError, match=r"image_id '5_0' is in more than one split file .*train\.tsv, line 2"):
        resplit_like_paper(frames, TASK, 0)


def test_resplit_then_setting_a_keeps_agreeing_pairs(tmp_path, write_crisismmd_tsv, make_pair_row):
    frame = read_split_file(write_crisismmd_tsv(tmp_path / "all.tsv", _rows(make_pair_row)), TASK)
    out = select_setting(resplit_like_paper({"train": frame}, TASK, 0), TASK, "A")
    assert sum(len(f) for f in out.values()) == int((~frame["disagree"]).sum())
