"""make_dataset / check_images (crisis_keras.data.pipeline)."""

import io
import logging

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from crisis_keras.data import images
from crisis_keras.data import pipeline
from crisis_keras.data.pipeline import ImageError, check_images, make_dataset

SMALL = dict(image_size=16, resize_to=20)  # geometry is tested at 224 elsewhere


def _write_image(path, seed, size=(30, 40), fmt="JPEG"):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    path.write_bytes(buf.getvalue())


def _table(tmp_path, n=10, num_classes=3):
    rows = []
    for i in range(n):
        path = tmp_path / f"img_{i}.jpg"
        _write_image(path, seed=i, fmt="PNG" if i % 3 == 0 else "JPEG")
        rows.append(
            dict(
                text=f"tweet number {i}",
                image_path=str(path),
                label_id=np.int32(i % num_classes),
                image_id=f"{1000 + i}_0",
                source_file="task_demo_train.tsv",
                source_line=i + 2,
            )
        )
    return pd.DataFrame(rows)


def _epoch(ds):
    return [
        (
            {k: v.numpy() for k, v in features.items()},
            labels.numpy(),
        )
        for features, labels in ds
    ]


def _assert_epochs_equal(a, b):
    assert len(a) == len(b)
    for (fa, la), (fb, lb) in zip(a, b):
        np.testing.assert_array_equal(la, lb)
        assert fa.keys() == fb.keys()
        for k in fa:
            np.testing.assert_array_equal(fa[k], fb[k])


def test_shapes_dtypes_keys_at_224(tmp_path):
    table = _table(tmp_path, n=5)
    for training in (True, False):
        ds = make_dataset(table, training=training, batch_size=4, sse_labels=True)
        features, labels = next(iter(ds))
        assert set(features) == {"text", "image", "sse_label"}
        assert features["text"].dtype == tf.string and features["text"].shape == (4,)
        assert features["image"].dtype == tf.float32
        assert features["image"].shape == (4, 224, 224, 3)
        assert 0.0 <= float(tf.reduce_min(features["image"]))
        assert float(tf.reduce_max(features["image"])) <= 255.0
        assert labels.dtype == tf.int32 and labels.shape == (4,)
        np.testing.assert_array_equal(features["sse_label"].numpy(), labels.numpy())
        assert ds.element_spec[0]["image"].shape.as_list() == [None, 224, 224, 3]
        assert int(ds.cardinality()) == 2
        assert ds.num_dropped == 0


def test_eval_keeps_order_and_center_crops(tmp_path):
    table = _table(tmp_path, n=7)
    ds = make_dataset(table, training=False, batch_size=3, **SMALL)
    first, second = _epoch(ds), _epoch(ds)
    _assert_epochs_equal(first, second)
    texts = [t.decode() for f, _ in first for t in f["text"]]
    assert texts == list(table["text"])
    got = np.concatenate([f["image"] for f, _ in first])
    for i, path in enumerate(table["image_path"]):
        expected = images.preprocess_for_eval(tf.io.read_file(path), 20, 16).numpy()
        np.testing.assert_array_equal(got[i], expected)
    np.testing.assert_array_equal(np.concatenate([l for _, l in first]), table["label_id"])


def test_training_is_deterministic_under_a_seed(tmp_path):
    table = _table(tmp_path, n=12)
    a = make_dataset(table, training=True, batch_size=5, seed=3, **SMALL)
    b = make_dataset(table, training=True, batch_size=5, seed=3, **SMALL)
    a1, a2 = _epoch(a), _epoch(a)
    b1, b2 = _epoch(b), _epoch(b)
    _assert_epochs_equal(a1, b1)
    _assert_epochs_equal(a2, b2)

    def by_text(epoch):
        return {
            t: (img, lab)
            for f, l in epoch
            for t, img, lab in zip(f["text"], f["image"], l)
        }

    e1, e2 = by_text(a1), by_text(a2)
    assert set(e1) == set(e2) == {t.encode() for t in table["text"]}  # every row once
    order1 = [t for f, _ in a1 for t in f["text"]]
    order2 = [t for f, _ in a2 for t in f["text"]]
    assert order1 != order2  # reshuffled each epoch
    assert order1 != [t.encode() for t in table["text"]]
    # New crops/flips each epoch; labels travel with their rows.
    assert sum(not np.array_equal(e1[t][0], e2[t][0]) for t in e1) >= 6
    label_of = dict(zip(table["text"].str.encode("utf-8"), table["label_id"]))
    assert all(e1[t][1] == label_of[t] for t in e1)

    c1 = _epoch(make_dataset(table, training=True, batch_size=5, seed=4, **SMALL))
    assert [t for f, _ in c1 for t in f["text"]] != order1


def test_training_images_are_crops_of_the_resized_image(tmp_path):
    table = _table(tmp_path, n=3)
    ds = make_dataset(table, training=True, batch_size=3, seed=0, **SMALL)
    features, _ = next(iter(ds))
    for text, crop in zip(features["text"].numpy(), features["image"].numpy()):
        row = int(text.decode().split()[-1])
        resized = images.resize_shortest_side(
            images.decode_image(tf.io.read_file(table["image_path"][row])), 20
        ).numpy()
        windows = [
            w
            for top in range(resized.shape[0] - 15)
            for left in range(resized.shape[1] - 15)
            for w in (resized[top : top + 16, left : left + 16],)
        ]
        assert any(np.array_equal(crop, w) or np.array_equal(crop, w[:, ::-1]) for w in windows)


def test_text_only_never_touches_images(tmp_path):
    table = pd.DataFrame(
        dict(
            text=["a", "b", "c"],
            image_path=[str(tmp_path / "missing.jpg")] * 3,
            label_id=np.array([0, 1, 0], np.int32),
        )
    )
    ds = make_dataset(table, training=False, batch_size=2, modalities=("text",))
    (f1, l1), (f2, l2) = list(ds)
    assert set(f1) == {"text"}
    assert [t.decode() for t in f1["text"].numpy()] == ["a", "b"]
    np.testing.assert_array_equal(l2.numpy(), [0])
    # Text-only tables need no image column at all.
    make_dataset(table.drop(columns=["image_path"]), training=True, modalities=("text",))


def test_image_only(tmp_path):
    table = _table(tmp_path, n=3)
    features, _ = next(iter(make_dataset(table, training=False, modalities=("image",), **SMALL)))
    assert set(features) == {"image"}


def test_text_preprocessor_gives_token_dict(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "tweet", "number"]
    vocab += [str(i) for i in range(10)]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    table = _table(tmp_path, n=3)
    ds = make_dataset(table, training=False, batch_size=3, text_preprocessor=preprocessor, **SMALL)
    features, labels = next(iter(ds))
    text = features["text"]
    assert set(text) == {"token_ids", "padding_mask", "segment_ids"}
    assert text["token_ids"].shape == (3, 8)
    np.testing.assert_array_equal(text["token_ids"][0, :5].numpy(), [2, 5, 6, 7, 3])
    assert features["image"].shape == (3, 16, 16, 3)


def _corrupt(tmp_path, table):
    """Rows 1, 4, 6: a missing file, garbage bytes, a zero-byte file."""
    table = table.copy()
    table.loc[1, "image_path"] = str(tmp_path / "nowhere" / "gone.jpg")
    (tmp_path / "garbage.jpg").write_bytes(b"GIF89a but not really an image at all")
    table.loc[4, "image_path"] = str(tmp_path / "garbage.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    table.loc[6, "image_path"] = str(tmp_path / "empty.jpg")
    return table


def test_check_images_reports_each_kind(tmp_path):
    table = _corrupt(tmp_path, _table(tmp_path, n=8))
    good = tmp_path / "img_2.jpg"
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    table.loc[2, "image_path"] = str(truncated)
    report = check_images(table)
    assert report.num_checked == 8 and report.num_bad == 4
    assert report.bad_rows == [1, 2, 4, 6]
    reasons = {b.row: b.reason for b in report.bad}
    assert reasons[1] == "missing file"
    assert reasons[2].startswith("undecodable")
    assert reasons[4].startswith("undecodable")
    assert "0 bytes" in reasons[6]
    assert report.bad[0].location == "task_demo_train.tsv:3"
    assert check_images(table.iloc[[0, 3]]).ok


def test_error_mode_names_paths_rows_and_count(tmp_path):
    table = _corrupt(tmp_path, _table(tmp_path, n=8))
    with pytest.raises(ImageError) as info:
        make_dataset(table, training=True)
    message = str(info.value)
    assert "3 of 8 images" in message
    assert "gone.jpg" in message and "garbage.jpg" in message and "empty.jpg" in message
    assert "task_demo_train.tsv:3" in message and "task_demo_train.tsv:8" in message
    assert "on_bad_image='drop'" in message


def test_error_without_source_columns_names_table_row(tmp_path):
    table = _corrupt(tmp_path, _table(tmp_path, n=8)).drop(columns=["source_file", "source_line"])
    with pytest.raises(ImageError, match="table row 1"):
        make_dataset(table, training=False)


def test_drop_mode_drops_and_counts(tmp_path, caplog):
    table = _corrupt(tmp_path, _table(tmp_path, n=8))
    with caplog.at_level(logging.WARNING, logger=pipeline.__name__):
        ds = make_dataset(table, training=False, batch_size=8, on_bad_image="drop", **SMALL)
    assert ds.num_dropped == 3 and ds.bad_image_report.num_bad == 3
    assert "Dropping 3 rows" in caplog.text and "gone.jpg" in caplog.text
    features, labels = next(iter(ds))
    kept = [t.decode() for t in features["text"].numpy()]
    assert kept == [f"tweet number {i}" for i in (0, 2, 3, 5, 7)]
    np.testing.assert_array_equal(labels.numpy(), [0, 2, 0, 2, 1])


def test_drop_mode_with_nothing_left_raises(tmp_path):
    table = pd.DataFrame(
        dict(text=["a"], image_path=[str(tmp_path / "x.jpg")], label_id=np.int32([0]))
    )
    with pytest.raises(ImageError, match="x.jpg"):
        make_dataset(table, training=False, on_bad_image="drop")


def test_invalid_arguments(tmp_path):
    table = _table(tmp_path, n=2)
    with pytest.raises(ValueError, match="on_bad_image"):
        make_dataset(table, training=False, on_bad_image="skip")
    with pytest.raises(ValueError, match="modalities"):
        make_dataset(table, training=False, modalities=("audio",))
    with pytest.raises(KeyError, match="label_image_id"):
        make_dataset(table, training=False, label_column="label_image_id")
    with pytest.raises(ValueError, match="exceed"):
        make_dataset(table, training=False, image_size=240)
    with pytest.raises(ValueError, match="empty"):
        make_dataset(table.iloc[:0], training=False)
    bad = table.copy()
    bad.loc[1, "label_id"] = -1
    with pytest.raises(ValueError, match="task_demo_train.tsv:3"):
        make_dataset(bad, training=False)
