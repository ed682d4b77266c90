"""`python -m crisis_keras.predict`: batches through the exported
serving_default; bad rows (malformed line, empty text, missing or undecodable
image) are reported with their line numbers and skipped, good rows written."""

import json

import numpy as np
import pandas as pd
import pytest

from crisis_keras import export, predict
from support_runs import encode_image, write_untrained_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_cli")
    model = write_untrained_run(root / "run")
    export.export_run(root / "run", root / "export", token_ids=False)
    images = root / "posts" / "images"
    images.mkdir(parents=True)
    for i in range(4):
        (images / f"{i}.jpg").write_bytes(encode_image(10 + i, fmt="PNG" if i == 3 else "JPEG"))
    (images / "broken.jpg").write_bytes(b"\xff\xd8 truncated, not a JPEG")
    return {"root": root, "model": model, "export": root / "export", "images": images}


def _expected(exported, texts, names):
    import tensorflow as tf

    from crisis_keras.data.images import preprocess_batch_for_eval

    data = [(exported["images"] / n).read_bytes() for n in names]
    pixels = preprocess_batch_for_eval(tf.constant(data), resize_to=68, crop=64)
    return exported["model"]({"text": tf.constant(texts), "image": pixels}, training=False).numpy()


def test_tsv_with_bad_rows(exported, tmp_path, capsys):
    lines = [
        "id\ttext\timage",                            # 1
        "a\tFlood waters  rising http://t.co/x\t0.jpg",  # 2 good
        "b\tbridge collapsed\tbroken.jpg",            # 3 undecodable image
        "c\troad blocked\t1.jpg",                     # 4 good
        "d\t\t2.jpg",                                 # 5 empty text
        "e\tfire\tmissing.jpg",                       # 6 missing file
        "f\ttoo\tmany\tfields",                       # 7 malformed
        "g\t\"a \"\"quoted\"\" tweet\"\t3.jpg",       # 8 good (PNG)
        "h\tno damage here\t2.jpg",                   # 9 good
    ]
    posts = tmp_path / "posts.tsv"
    posts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.tsv"
    code = predict.main(["--model", str(exported["export"]), "--input", str(posts),
                         "--output", str(out), "--batch-size", "3",
                         "--image-root", str(exported["images"])])
    assert code == 1  # some rows were skipped
    err = capsys.readouterr().err
    for line in (3, 5, 6, 7):
        assert f"posts.tsv:{line}: skipped" in err
    assert "Unknown image file format" in err and "missing.jpg" in err
    frame = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert list(frame["id"]) == ["a", "c", "g", "h"]
    class_names = json.loads((exported["root"] / "run" / "classes.json").read_text())["class_names"]
    assert list(frame.columns) == ["id", "predicted"] + [f"p_{c}" for c in class_names]
    expected = _expected(exported, ["Flood waters  rising http://t.co/x", "road blocked",
                                    'a "quoted" tweet', "no damage here"],
                         ["0.jpg", "1.jpg", "3.jpg", "2.jpg"])
    np.testing.assert_allclose(frame[[f"p_{c}" for c in class_names]].to_numpy(), expected,
                               atol=2e-6)  # written with 6 decimals
    assert list(frame["predicted"]) == [class_names[i] for i in expected.argmax(axis=-1)]
    errors = pd.read_csv(str(out) + ".errors.tsv", sep="\t", keep_default_na=False)
    assert sorted(errors["line"]) == [3, 5, 6, 7]
    assert set(errors["id"]) == {"b", "d", "e", ""}


def test_jsonl_relative_images_and_default_ids(exported, tmp_path):
    for i in (0, 1):
        (tmp_path / f"{i}.jpg").write_bytes((exported["images"] / f"{i}.jpg").read_bytes())
    posts = tmp_path / "posts.jsonl"
    posts.write_text("\n".join([
        json.dumps({"text": "houses destroyed", "image": "0.jpg"}),
        "{not json",
        "",
        json.dumps({"id": 7, "text": "all fine", "image": "1.jpg"}),
        json.dumps(["not", "an", "object"]),
    ]) + "\n")
    out = tmp_path / "out.tsv"
    errors = tmp_path / "errors.tsv"
    written, skipped = predict.predict_file(exported["export"], posts, out, batch_size=32,
                                            errors_path=errors, progress=False)
    assert (written, skipped) == (2, 2)
    frame = pd.read_csv(out, sep="\t", dtype={"id": str})
    assert list(frame["id"]) == ["1", "7"]  # the line number when there is no id
    expected = _expected(exported, ["houses destroyed", "all fine"], ["0.jpg", "1.jpg"])
    np.testing.assert_allclose(frame.iloc[:, 2:].to_numpy(), expected, atol=2e-6)
    assert list(pd.read_csv(errors, sep="\t")["line"]) == [2, 5]


def test_all_good_rows_exit_zero(exported, tmp_path):
    posts = tmp_path / "posts.tsv"
    posts.write_text("text\timage\nquake\t0.jpg\n")
    out = tmp_path / "out.tsv"
    code = predict.main(["--model", str(exported["export"] / "1"), "--input", str(posts),
                         "--output", str(out), "--image-root", str(exported["images"]),
                         "--quiet"])
    assert code == 0
    assert len(pd.read_csv(out, sep="\t")) == 1
    assert pd.read_csv(str(out) + ".errors.tsv", sep="\t").empty
