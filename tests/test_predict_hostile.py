"""Issue 12: `python -m crisis_keras.predict` under hostile input.

The hostile inputs of the REST tests, as rows of a JSON Lines / TSV file,
each give an error row naming its line and the problem (bombs refused from
their header, a truncated JPEG, a zero-byte image, 100,000-character,
non-UTF-8 and empty text, JSON nested 10,000 deep, duplicate keys, wrong
types in every field, image paths outside --image-root), while every good
row (the image modes and formats TensorFlow decodes among them) is written
with the model's probabilities. `--allow-outside-root` accepts the outside
paths; `--max-pixels`, `--max-image-bytes`, `--max-batch-pixels` act.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from crisis_keras import export, predict
from support_hostile import bombs, formats, truncated_jpeg
from support_runs import encode_image, write_untrained_run

TEXT = "houses flooded near the river"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import tensorflow as tf

    from crisis_keras.data.images import preprocess_batch_for_eval

    root = tmp_path_factory.mktemp("predict_hostile")
    model = write_untrained_run(root / "run")
    export.export_run(root / "run", root / "export", token_ids=False)
    images = root / "images"
    images.mkdir()
    files = {"good.jpg": encode_image(4), "truncated.jpg": truncated_jpeg(), "empty.jpg": b""}
    files.update({f"{name}.img": data for name, data in formats().items()})
    files.update({f"bomb.{fmt}": data for fmt, data in bombs().items()})
    for name, data in files.items():
        (images / name).write_bytes(data)
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(encode_image(9))
    os.symlink(outside / "secret.jpg", images / "link.jpg")

    def expected(texts, names):
        secret = (outside / "secret.jpg").read_bytes()
        data = [files[n] if n in files else secret for n in names]
        pixels = preprocess_batch_for_eval(tf.constant(data), resize_to=68, crop=64)
        return model({"text": tf.constant(texts), "image": pixels}, training=False).numpy()

    return {"export": root / "export", "images": images, "outside": outside,
            "expected": expected}


def _line(**record):
    return json.dumps(record).encode("utf-8")


def _jsonl_rows(setup):
    """[(line bytes, None for a good row or the words its error must contain)]."""
    good = [(_line(id="plain", text=TEXT, image="good.jpg"), None)]
    good += [(_line(id=name, text=TEXT, image=f"{name}.img"), None) for name in sorted(formats())]
    size = {"webp": "16383 x 16383"}
    bad = [(_line(id=f"bomb_{fmt}", text=TEXT, image=f"bomb.{fmt}"),
            f"declares {size.get(fmt, '30000 x 30000')}") for fmt in bombs()]
    bad += [
        (_line(id="truncated", text=TEXT, image="truncated.jpg"), "the model rejected the row"),
        (_line(id="zero_bytes", text=TEXT, image="empty.jpg"), "empty.jpg is empty"),
        (_line(id="long_text", text="a" * 100_000, image="good.jpg"),
         "'text' has 100,000 characters, above the limit of 10,000"),
        (b'{"id": "surrogate", "text": "\\ud800", "image": "good.jpg"}',
         "'text' is not valid Unicode"),
        (b'{"id": "latin1", "text": "caf\xe9", "image": "good.jpg"}',
         "the line is not valid UTF-8"),
        (_line(id="empty_text", text="", image="good.jpg"), "empty or missing 'text'"),
        (b'{"id": "deep", "text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
         "nests JSON arrays/objects too deeply"),
        (b'{"id": "dup", "text": "a", "text": "b", "image": "good.jpg"}',
         "duplicate key 'text'"),
        (_line(id="text_int", text=5, image="good.jpg"), "'text' must be a string, got int"),
        (_line(id="text_list", text=["a"] * 1000, image="good.jpg"),
         "'text' must be a string, got list"),
        (_line(id="image_int", text=TEXT, image=5), "'image' must be a path string, got int"),
        (_line(id="image_b64", text=TEXT, image={"b64": "AAAA"}),
         "'image' must be a path string, got dict"),
        (_line(id=[1], text=TEXT, image="good.jpg"), "'id' must be a string or a number"),
        (b'["not", "an", "object"]', "a JSON line must be an object"),
        (b"{broken json", "malformed JSON line"),
        (_line(id="climb", text=TEXT, image="../outside/secret.jpg"),
         "climbs out with '..' and resolves to"),
        (_line(id="passwd", text=TEXT, image="../../../../../../etc/passwd"),
         "outside the image root"),
        (_line(id="absolute", text=TEXT, image=str(setup["outside"] / "secret.jpg")),
         "is absolute and resolves to"),
        (_line(id="symlink", text=TEXT, image="link.jpg"), "passes through a symlink"),
    ]
    # good rows interleaved with bad ones, so batches mix them
    rows = []
    for i in range(max(len(good), len(bad))):
        rows += good[i:i + 1] + bad[i:i + 1]
    return rows


def test_jsonl_hostile_rows_are_error_rows_and_good_rows_are_written(setup, tmp_path, capsys):
    rows = _jsonl_rows(setup)
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b"\n".join(line for line, _ in rows) + b"\n")
    out = tmp_path / "out.tsv"
    code = predict.main(["--model", str(setup["export"]), "--input", str(posts), "--output",
                         str(out), "--image-root", str(setup["images"]), "--batch-size", "4",
                         "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    errors = pd.read_csv(str(out) + ".errors.tsv", sep="\t", keep_default_na=False)
    by_line = dict(zip(errors["line"], errors["error"]))
    bad_lines = {n: words for n, (_, words) in enumerate(rows, start=1) if words}
    assert sorted(by_line) == sorted(bad_lines)
    for number, words in bad_lines.items():
        assert words in by_line[number], (number, by_line[number])
        assert f"posts.jsonl:{number}: skipped" in err
    frame = pd.read_csv(out, sep="\t", keep_default_na=False)
    good = [json.loads(line) for line, words in rows if words is None]
    assert list(frame["id"]) == [r["id"] for r in good]
    expected = setup["expected"]([TEXT] * len(good), [r["image"] for r in good])
    np.testing.assert_allclose(frame.iloc[:, 2:].to_numpy(dtype=float), expected, atol=2e-6)


def test_tsv_paths_outside_the_root_and_allow_outside_root(setup, tmp_path):
    secret = setup["outside"] / "secret.jpg"
    posts = tmp_path / "posts.tsv"
    posts.write_bytes(
        b"id\ttext\timage\n"
        b"a\tflood\tgood.jpg\n"
        b"b\tflood\t../outside/secret.jpg\n"
        + f"c\tflood\t{secret}\n".encode()
        + b"d\tflood\tlink.jpg\n"
        b"e\tcaf\xe9\tgood.jpg\n"  # not UTF-8
        b"f\tfire\tgood.jpg\n")
    out = tmp_path / "out.tsv"
    args = ["--model", str(setup["export"]), "--input", str(posts), "--output", str(out),
            "--image-root", str(setup["images"]), "--quiet"]
    assert predict.main(args) == 1
    errors = pd.read_csv(str(out) + ".errors.tsv", sep="\t", keep_default_na=False)
    assert list(errors["line"]) == [3, 4, 5, 6]
    assert all("outside the image root" in e for e in errors["error"][:3])
    assert "not valid UTF-8" in errors["error"].iloc[3]
    assert list(pd.read_csv(out, sep="\t")["id"]) == ["a", "f"]

    assert predict.main(args + ["--allow-outside-root"]) == 1  # only the non-UTF-8 row left
    errors = pd.read_csv(str(out) + ".errors.tsv", sep="\t", keep_default_na=False)
    assert list(errors["line"]) == [6]
    frame = pd.read_csv(out, sep="\t")
    assert list(frame["id"]) == ["a", "b", "c", "d", "f"]
    expected = setup["expected"](["flood"] * 4 + ["fire"],
                                 ["good.jpg", "secret", "secret", "secret", "good.jpg"])
    np.testing.assert_allclose(frame.iloc[:, 2:].to_numpy(dtype=float), expected, atol=2e-6)


def test_pixel_and_file_size_limits(setup, tmp_path):
    names = ["good.jpg"] + [f"{name}.img" for name in sorted(formats())]
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b"\n".join(_line(id=str(i), text=TEXT, image=n)
                                 for i, n in enumerate(names)) + b"\n")
    out = tmp_path / "out.tsv"
    base = ["--model", str(setup["export"]), "--input", str(posts), "--output", str(out),
            "--image-root", str(setup["images"]), "--quiet"]
    # a batch budget of two images' pixels: batches are cut short, every row still written
    assert predict.main(base + ["--max-batch-pixels", str(2 * 90 * 120)]) == 0
    frame = pd.read_csv(out, sep="\t")
    np.testing.assert_allclose(frame.iloc[:, 2:].to_numpy(dtype=float),
                               setup["expected"]([TEXT] * len(names), names), atol=2e-6)
    # good.jpg is 90 x 120 = 10,800 pixels; the others 72 x 88 = 6,336
    assert predict.main(base + ["--max-pixels", "10000"]) == 1
    errors = pd.read_csv(str(out) + ".errors.tsv", sep="\t")
    assert list(errors["line"]) == [1]
    assert "JPEG declares 120 x 90 = 10,800 pixels, above the limit of 10,000 (--max-pixels)" \
        in errors["error"][0]
    assert predict.main(base + ["--max-image-bytes", "1000"]) == 1
    errors = pd.read_csv(str(out) + ".errors.tsv", sep="\t")
    sizes = {n: (setup["images"] / n).stat().st_size for n in names}
    assert list(errors["line"]) == [i + 1 for i, n in enumerate(names) if sizes[n] > 1000]
    assert all("(--max-image-bytes)" in e for e in errors["error"])
