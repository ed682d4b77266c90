"""The decoded-image cache (crisis_keras.data.image_cache) and its wiring."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from crisis_keras import train as train_cli
from crisis_keras.data import __main__ as data_cli
from crisis_keras.data import image_cache, images
from crisis_keras.data.crisismmd import read_splits
from crisis_keras.data.demo import make_demo_data
from crisis_keras.data.image_cache import ImageCache, ImageCacheMismatch, build_image_cache
from crisis_keras.data.pipeline import ImageError, make_dataset

SMALL = dict(image_size=32, resize_to=36)


def _write_image(path, seed, size=(30, 40), fmt="JPEG"):
    array = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    Path(path).write_bytes(buf.getvalue())


def _table(tmp_path, n=8):
    rows = []
    for i in range(n):
        path = tmp_path / f"img_{i}.jpg"
        _write_image(path, seed=i, fmt="PNG" if i % 3 == 0 else "JPEG")
        rows.append(dict(text=f"tweet {i}", image_path=str(path), label_id=np.int32(i % 3),
                         source_file="task_demo_train.tsv", source_line=i + 2))
    return pd.DataFrame(rows)


def _epoch(ds):
    return [({k: v.numpy() for k, v in f.items()}, l.numpy()) for f, l in ds]


def _assert_close_batches(a, b):
    """Same rows, labels, crops and flips; pixels within the cache's rounding."""
    assert len(a) == len(b)
    for (fa, la), (fb, lb) in zip(a, b):
        np.testing.assert_array_equal(fa["text"], fb["text"])
        np.testing.assert_array_equal(la, lb)
        assert fa["image"].dtype == fb["image"].dtype == np.float32
        assert np.abs(fa["image"] - fb["image"]).max() <= 0.5


def _bump(path, seed):
    """New content of the same size class and a later mtime."""
    st = os.stat(path)
    _write_image(path, seed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_build_writes_a_manifest_and_pixels_within_half_a_level(tmp_path, monkeypatch):
    table = _table(tmp_path)
    report = build_image_cache(tmp_path / "cache", table, resize_to=36)
    assert (report.num_images, report.cached, report.reused, report.num_bad) == (8, 8, 0, 0)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["resize_to"] == 36
    assert set(manifest["images"]) == set(table["image_path"])
    entry = manifest["images"][table["image_path"][0]]
    st = os.stat(table["image_path"][0])
    assert (entry["size"], entry["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    assert (entry["height"], entry["width"]) == (36, 48)  # 30 x 40 -> shortest side 36
    cache = ImageCache(tmp_path / "cache")
    for path, location in zip(table["image_path"], cache.locations(table["image_path"])):
        cached = cache.read(*location)
        exact = images.resize_shortest_side(images.decode_image(tf.io.read_file(path)), 36)
        assert cached.dtype == np.uint8 and cached.shape == exact.shape
        assert np.abs(cached - exact.numpy()).max() <= 0.5  # before any crop
    again = build_image_cache(tmp_path / "cache", table, resize_to=36)
    assert (again.cached, again.reused, again.bytes_written) == (0, 8, 0)
    monkeypatch.chdir(tmp_path)  # another spelling of the same files finds them
    relative = table.assign(image_path=[os.path.basename(p) for p in table["image_path"]])
    assert cache.check_images(relative).ok and (cache.locations(relative["image_path"]) >= 0).all()


def test_batches_equal_the_jpeg_path_within_rounding(tmp_path):
    table = _table(tmp_path, n=10)
    build_image_cache(tmp_path / "cache", table, resize_to=36)
    for training in (True, False):
        jpeg = make_dataset(table, training=training, batch_size=4, seed=3, **SMALL)
        cached = make_dataset(table, training=training, batch_size=4, seed=3,
                              image_cache=tmp_path / "cache", **SMALL)
        first = _epoch(cached)
        _assert_close_batches(_epoch(jpeg), first)
        _assert_close_batches(_epoch(jpeg), _epoch(cached))  # second epoch: new crops
        if training:
            assert any(np.abs(a[0]["image"] - b[0]["image"]).max() > 1
                       for a, b in zip(first, _epoch(cached)))


def test_a_changed_image_is_refused_naming_it_then_recached_with_update(tmp_path):
    table = _table(tmp_path)
    build_image_cache(tmp_path / "cache", table, resize_to=36)
    changed = table["image_path"][2]
    _bump(tmp_path / "img_2.jpg", seed=99)
    with pytest.raises(ImageCacheMismatch) as err:
        make_dataset(table, training=True, image_cache=tmp_path / "cache", **SMALL)
    message = str(err.value)
    assert changed in message and "changed since it was cached" in message
    assert "task_demo_train.tsv:4" in message and "cache-images" in message
    extra = tmp_path / "new.jpg"
    _write_image(extra, seed=7)
    more = pd.concat([table, table.iloc[:1].assign(image_path=str(extra))], ignore_index=True)
    cache = ImageCache(tmp_path / "cache", update=True)
    cached = make_dataset(more, training=False, batch_size=4, image_cache=cache, **SMALL)
    _assert_close_batches(_epoch(make_dataset(more, training=False, batch_size=4, **SMALL)),
                          _epoch(cached))
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["images"][changed]["mtime_ns"] == os.stat(changed).st_mtime_ns
    assert str(extra) in manifest["images"] and len(manifest["shards"]) == 2
    make_dataset(more, training=True, image_cache=tmp_path / "cache", **SMALL)  # fresh now


def test_another_resize_is_refused(tmp_path):
    table = _table(tmp_path, n=3)
    build_image_cache(tmp_path / "cache", table, resize_to=36)
    with pytest.raises(ImageCacheMismatch, match="resized to 36.*requested 40"):
        make_dataset(table, training=True, image_size=32, resize_to=40,
                     image_cache=tmp_path / "cache")
    with pytest.raises(ImageCacheMismatch, match="resized to 36"):
        build_image_cache(tmp_path / "cache", table, resize_to=40)


def test_bad_images_name_file_and_row_and_drop_records_them(tmp_path):
    table = _table(tmp_path)
    (tmp_path / "img_1.jpg").write_bytes(b"not an image")
    os.remove(tmp_path / "img_4.jpg")
    with pytest.raises(ImageError) as err:
        build_image_cache(tmp_path / "cache", table, resize_to=36)
    message = str(err.value)
    assert "img_1.jpg (undecodable" in message and "task_demo_train.tsv:3" in message
    assert "img_4.jpg (missing file; task_demo_train.tsv:6)" in message
    assert not (tmp_path / "cache" / "manifest.json").exists()  # nothing written
    report = build_image_cache(tmp_path / "cache", table, resize_to=36, on_bad_image="drop")
    assert (report.num_images, report.num_bad) == (6, 2)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["bad"][str(tmp_path / "img_1.jpg")]["reason"].startswith("undecodable")
    # The pipeline treats them as it does without the cache.
    with pytest.raises(ImageError) as jpeg_err:
        make_dataset(table, training=True, **SMALL)
    with pytest.raises(ImageError) as cache_err:
        make_dataset(table, training=True, image_cache=tmp_path / "cache", **SMALL)
    assert str(cache_err.value) == str(jpeg_err.value)
    jpeg = make_dataset(table, training=True, seed=1, batch_size=4, on_bad_image="drop", **SMALL)
    cached = make_dataset(table, training=True, seed=1, batch_size=4, on_bad_image="drop",
                          image_cache=tmp_path / "cache", **SMALL)
    assert jpeg.num_dropped == cached.num_dropped == 2
    _assert_close_batches(_epoch(jpeg), _epoch(cached))
    missing = dict(training=False, on_bad_image="missing", modality_mask=True, **SMALL)
    jpeg, cached = make_dataset(table, **missing), make_dataset(
        table, image_cache=tmp_path / "cache", **missing)
    _assert_close_batches(_epoch(jpeg), _epoch(cached))  # zero pixels for the two bad rows
    np.testing.assert_array_equal(_epoch(cached)[0][0]["modality_mask"][[1, 4], 0], [0, 0])


def test_an_interrupted_build_is_unfinished_and_resumes(tmp_path, monkeypatch):
    table = _table(tmp_path, n=9)
    monkeypatch.setattr(image_cache, "CHECKPOINT_IMAGES", 2)
    add = image_cache._ShardWriter.add
    calls = []

    def failing_add(self, *args):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt  # a kill between two images
        add(self, *args)

    monkeypatch.setattr(image_cache._ShardWriter, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):
        build_image_cache(tmp_path / "cache", table, resize_to=36)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["complete"] is False and len(manifest["images"]) == 5  # nothing lost
    with pytest.raises(ImageCacheMismatch, match="unfinished"):
        ImageCache(tmp_path / "cache")
    with pytest.raises(ImageCacheMismatch, match="unfinished"):
        make_dataset(table, training=True, image_cache=tmp_path / "cache", **SMALL)
    monkeypatch.setattr(image_cache._ShardWriter, "add", add)
    report = build_image_cache(tmp_path / "cache", table, resize_to=36)
    assert (report.reused, report.cached) == (5, 4)
    cached = make_dataset(table, training=False, image_cache=tmp_path / "cache", **SMALL)
    _assert_close_batches(_epoch(make_dataset(table, training=False, **SMALL)), _epoch(cached))


def test_cli_caches_the_demo_data_in_a_subprocess(tmp_path, capsys):
    data = make_demo_data(tmp_path / "demo", sizes={"train": 6, "dev": 3})
    out = tmp_path / "cache"
    args = ["cache-images", "--data-dir", str(data), "--tasks", "informative",
            "--resize-to", "36", "--output", str(out)]
    done = subprocess.run([sys.executable, "-m", "crisis_keras.data", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "9 images (9 cached now, 0 reused, 0 unusable)" in done.stdout
    assert "MB written" in done.stdout and "images/s" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert "cache-images" in manifest["command"] and manifest["source"]["tasks"] == ["informative"]
    assert data_cli.main(args) == 0
    assert "0 cached now, 9 reused" in capsys.readouterr().out
    assert data_cli.main(args[:-1] + [str(tmp_path / "demo")]) == 2  # not a cache folder
    assert "not an image cache" in capsys.readouterr().err


TINY = ["--task", "severity", "--text-backbone", "tiny", "--image-backbone", "tiny",
        "--image-weights", "none", "--image-size", "32", "--resize-to", "36",
        "--sequence-length", "16", "--batch-size", "8", "--epochs", "1"]


def test_train_with_image_cache_records_it_and_refuses_a_stale_one(tmp_path, capsys):
    data = make_demo_data(tmp_path / "demo", sizes={"train": 16, "dev": 8, "test": 8})
    cache = tmp_path / "cache"
    assert data_cli.main(["cache-images", "--data-dir", str(data), "--tasks", "severity",
                          "--resize-to", "36", "--output", str(cache)]) == 0
    common = TINY + ["--data-dir", str(data), "--output-dir", str(tmp_path / "runs")]
    assert train_cli.main(common + ["--run-name", "cached", "--image-cache", str(cache)]) == 0
    config = json.loads((tmp_path / "runs" / "cached" / "config.json").read_text())
    assert config["image_cache_dir"] == str(cache)
    metrics = json.loads((tmp_path / "runs" / "cached" / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 8
    # A changed image stops the next run before training, naming it and the rebuild command.
    image = read_splits(data, "severity", ["dev"])["dev"]["image_path"].iloc[0]
    _bump(image, seed=5)
    capsys.readouterr()
    assert train_cli.main(common + ["--run-name", "stale", "--image-cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert str(image) in err and "python -m crisis_keras.data cache-images" in err
