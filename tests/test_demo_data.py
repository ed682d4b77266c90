"""The synthetic CrisisMMD-format demo dataset (crisis_keras.data.demo)."""

import csv
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crisis_keras.data import demo
from crisis_keras.data.tasks import get_task

SMALL = {"train": 30, "dev": 10, "test": 10}
FULL_HEADER = (
    "event_name\ttweet_id\timage_id\ttweet_text\timage\tlabel"
    "\tlabel_text\tlabel_image\tlabel_text_image"
)
DAMAGE_HEADER = "event_name\ttweet_id\timage_id\ttweet_text\timage\tlabel"
STEMS = {"informative": "informative", "humanitarian": "humanitarian", "severity": "damage"}


def _hashes(root):
    root = Path(root)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read(root, task, split):
    path = Path(root) / demo.SPLIT_DIR / f"task_{STEMS[task]}_text_img_{split}.tsv"
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory):
    """The default demo, via ensure_demo_data under a temporary CRISIS_KERAS_HOME."""
    home = tmp_path_factory.mktemp("crisis_home")
    old = os.environ.get("CRISIS_KERAS_HOME")
    os.environ["CRISIS_KERAS_HOME"] = str(home)
    try:
        start = time.perf_counter()
        root = demo.ensure_demo_data()
        elapsed = time.perf_counter() - start
    finally:
        if old is None:
            del os.environ["CRISIS_KERAS_HOME"]
        else:
            os.environ["CRISIS_KERAS_HOME"] = old
    return root, home, elapsed


def test_generation_is_byte_identical(tmp_path):
    a = demo.make_demo_data(tmp_path / "a", seed=5, sizes=SMALL)
    b = demo.make_demo_data(tmp_path / "b", seed=5, sizes=SMALL)
    ha, hb = _hashes(a), _hashes(b)
    assert ha == hb
    assert len([k for k in ha if k.endswith(".jpg")]) == 3 * sum(SMALL.values())
    manifest = (a / demo.MANIFEST).read_text().splitlines()
    assert len(manifest) == len(ha) - 1
    for line in manifest:
        digest, rel = line.split("  ")
        assert ha[rel] == digest
    c = demo.make_demo_data(tmp_path / "c", seed=6, sizes=SMALL)
    assert _hashes(c) != ha


def test_full_demo_is_fast_and_cached(full_demo):
    root, home, elapsed = full_demo
    assert elapsed < 20.0
    assert root.parent == home and root.name == f"crisismmd_demo_v{demo.DEMO_VERSION}"
    assert [p.name for p in home.iterdir()] == [root.name]  # no temporary leftovers
    stamp = (root / demo.MANIFEST).stat().st_mtime_ns
    assert demo.ensure_demo_data(root) == root
    assert (root / demo.MANIFEST).stat().st_mtime_ns == stamp  # not regenerated


def test_ensure_refuses_foreign_directory(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a demo dataset"):
        demo.ensure_demo_data(tmp_path / "mine")
    # An empty directory is fine: it is filled atomically.
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(demo, "DEFAULT_SIZES", {"train": 6, "dev": 3})
    assert (demo.ensure_demo_data(tmp_path / "empty") / demo.MANIFEST).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mine"]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_files_follow_the_crisismmd_format(full_demo):
    root = full_demo[0]
    for task, stem in STEMS.items():
        for split, size in demo.DEFAULT_SIZES.items():
            path = root / demo.SPLIT_DIR / f"task_{stem}_text_img_{split}.tsv"
            raw = path.read_bytes()
            assert b"\r" not in raw and raw.endswith(b"\n")
            lines = raw.decode("utf-8").split("\n")[:-1]
            header = DAMAGE_HEADER if task == "severity" else FULL_HEADER
            assert lines[0] == header
            assert len(lines) == size + 1
            assert all(line.count("\t") == header.count("\t") for line in lines)
            rows = _read(root, task, split)
            raw_labels = set(get_task(task).label_map)
            for row in rows:
                assert row["image_id"].startswith(row["tweet_id"] + "_")
                assert len(row["tweet_id"]) == 18
                assert row["image"].startswith(f"data_image/{row['event_name']}/")
                assert row["image"].endswith(f"/{row['image_id']}.jpg")
                assert (root / row["image"]).is_file()
                assert row["label"] in raw_labels
                if task != "severity":
                    assert row["label"] in (row["label_text"], row["label_image"])
                    agree = row["label_text"] == row["label_image"]
                    assert row["label_text_image"] == ("Positive" if agree else "Negative")
            ids = [r["image_id"] for r in rows]
            assert len(set(ids)) == len(ids)


def test_text_noise_is_present(full_demo):
    texts = [r["tweet_text"] for t in STEMS for r in _read(full_demo[0], t, "train")]
    joined = "\n".join(texts)
    for needle in ("https://t.co/", "  ", "â€™", "&amp;", "RT @", "www."):
        assert needle in joined, needle
    assert any(w.isupper() and len(w) > 3 for t in texts for w in t.split())
    assert any('"' in t for t in texts)  # quoted field, as pandas writes it


def test_images_vary_in_size_and_encoding(full_demo):
    root = full_demo[0]
    sizes, formats, modes = set(), set(), set()
    for row in _read(root, "informative", "train"):
        with Image.open(root / row["image"]) as image:
            sizes.add(image.size)
            formats.add(image.format)
            modes.add(image.mode)
    assert {(256, 192), (200, 300)} <= sizes
    assert formats == {"JPEG", "PNG"}
    assert {"RGB", "L"} <= modes


def test_disagreeing_pairs_and_events(full_demo):
    root = full_demo[0]
    for task in ("informative", "humanitarian"):
        rows = [r for s in demo.DEFAULT_SIZES for r in _read(root, task, s)]
        disagree = [r for r in rows if r["label_text"] != r["label_image"]]
        assert 0.1 < len(disagree) / len(rows) < 0.3
    rows = _read(root, "humanitarian", "train")
    labels = {r["label"] for r in rows}
    assert {"not_humanitarian", "injured_or_dead_people", "vehicle_damage"} <= labels
    for task in STEMS:
        pairs = [r for s in demo.DEFAULT_SIZES for r in _read(root, task, s)]
        events = {r["event_name"] for r in pairs}
        assert events == {name for name, _ in demo.EVENTS}
        # Setting C: every class among agreeing pairs of the test event and of
        # the first experiment's only training event.
        mapping = get_task(task).label_map

        def agree(r):
            return task == "severity" or mapping[r["label_text"]] == mapping[r["label_image"]]

        for event in ("california_wildfires", "srilanka_floods"):
            classes = {mapping[r["label"]] for r in pairs if r["event_name"] == event and agree(r)}
            assert set(get_task(task).class_names) <= classes, (task, event)


def _mean_colour(path):
    with Image.open(path) as image:
        if image.mode == "L":
            return None
        return np.asarray(image.convert("RGB"), np.float32).reshape(-1, 3).mean(0)


def _image_groups(task):
    spec = demo._TASKS[task]
    return spec.get("image_groups", spec["groups"])


def _text_groups(task):
    spec = demo._TASKS[task]
    return spec.get("text_groups", spec["groups"])


def _colour_classifier(root, task, key_of):
    """Nearest-group-mean classifier on mean colour: (min gap of means, dev hits)."""

    def features(split):
        out = []
        for row in _read(root, task, split):
            colour = _mean_colour(root / row["image"])
            if colour is not None:
                out.append((key_of(row), colour))
        return out

    train = features("train")
    classes = sorted({c for c, _ in train})
    means = {c: np.mean([v for k, v in train if k == c], axis=0) for c in classes}
    gaps = [np.linalg.norm(means[a] - means[b]) for a in classes for b in classes if a < b]
    hits = [min(means, key=lambda c: np.linalg.norm(means[c] - v)) == c for c, v in features("dev")]
    return min(gaps), float(np.mean(hits)), means


def test_images_carry_class_signal(full_demo):
    """A nearest-class-mean classifier on mean colour separates the image groups
    (the classes, except in severity, where the image only tells severe damage
    from the rest)."""
    root = full_demo[0]
    for task in STEMS:
        key = "label" if task == "severity" else "label_image"
        groups = _image_groups(task)
        gap, accuracy, _ = _colour_classifier(root, task, lambda r: groups[r[key]])
        assert gap > 30.0, task
        assert accuracy > 0.85, task


def _keyword_group(spec, text):
    text = text.lower()
    scores = [sum(k in text for k in words) for words in spec["keywords"]]
    return int(np.argmax(scores))


def test_texts_carry_class_signal(full_demo):
    """Counting each group's keywords predicts the text group."""
    root = full_demo[0]
    for task in STEMS:
        spec = demo._TASKS[task]
        key = "label" if task == "severity" else "label_text"
        groups = _text_groups(task)
        rows = _read(root, task, "dev") + _read(root, task, "test")
        hits = [_keyword_group(spec, r["tweet_text"]) == groups[r[key]] for r in rows]
        assert np.mean(hits) > 0.8, task


def test_severity_needs_both_modalities(full_demo):
    """Severity: the text tells damage (severe, mild) from none, the image severe
    from the rest; each alone leaves two classes apart, both together decide."""
    root = full_demo[0]
    spec = demo._TASKS["severity"]
    text_groups, image_groups = _text_groups("severity"), _image_groups("severity")
    assert text_groups["severe_damage"] == text_groups["mild_damage"] != text_groups["little_or_no_damage"]
    assert image_groups["mild_damage"] == image_groups["little_or_no_damage"] != image_groups["severe_damage"]
    # The image groups' members look alike: mild and little share one tone.
    _, _, means = _colour_classifier(root, "severity", lambda r: r["label"])
    assert np.linalg.norm(means["mild_damage"] - means["little_or_no_damage"]) < 15.0
    assert np.linalg.norm(means["severe_damage"] - means["mild_damage"]) > 30.0
    # Text keywords and the image tone together give the label.
    gap, _, tone_means = _colour_classifier(root, "severity", lambda r: image_groups[r["label"]])
    by_pair = {(text_groups[n], image_groups[n]): n for n in text_groups}
    assert len(by_pair) == 3
    rows = _read(root, "severity", "test")
    hits = []
    for row in rows:
        colour = _mean_colour(root / row["image"])
        if colour is None:
            continue
        tone = min(tone_means, key=lambda g: np.linalg.norm(tone_means[g] - colour))
        guess = by_pair.get((_keyword_group(spec, row["tweet_text"]), tone))
        hits.append(guess == row["label"])
    assert np.mean(hits) > 0.8
    # Every severity tweet is built from whole words of the tiny BERT vocabulary.
    from crisis_keras.models.tiny_vocabulary import WORDS

    assert set(spec["keywords"][0]) | set(spec["keywords"][1]) <= set(WORDS)
