"""Shared pytest fixtures (owned by the data layer)."""

import pathlib

import pytest

SHARED_CRISISMMD = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "crisismmd"

PAIR_HEADER = (
    "event_name", "tweet_id", "image_id", "tweet_text", "image",
    "label", "label_text", "label_image", "label_text_image",
)
DAMAGE_HEADER = ("event_name", "tweet_id", "image_id", "tweet_text", "image", "label")


@pytest.fixture
def shared_crisismmd():
    """Path of the real CrisisMMD annotation files (../shared/crisismmd), or skip."""
    if not SHARED_CRISISMMD.is_dir():
        pytest.skip(f"real CrisisMMD files not available at {SHARED_CRISISMMD}")
    return SHARED_CRISISMMD


@pytest.fixture
def write_crisismmd_tsv():
    """Factory writing a tiny CrisisMMD-format TSV.

    `write(path, rows, header=PAIR_HEADER, newline="\\n")`: `rows` are tuples
    of field strings (or already-joined lines); returns the path.
    """

    def write(path, rows, header=PAIR_HEADER, newline="\n"):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["\t".join(header)]
        lines += [r if isinstance(r, str) else "\t".join(r) for r in rows]
        path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
        return path

    return write


def pair_row(image_id, text, label, label_text=None, label_image=None, event="hurricane_irma"):
    """One informative/humanitarian row; the tweet id is image_id's prefix."""
    label_text = label if label_text is None else label_text
    label_image = label if label_image is None else label_image
    tweet_id = image_id.split("_")[0]
    agree = "Positive" if label_text == label_image else "Negative"
    image = f"data_image/{event}/1_9_2017/{image_id}.jpg"
    return (event, tweet_id, image_id, text, image, label, label_text, label_image, agree)


@pytest.fixture
def make_pair_row():
    """`pair_row(image_id, text, label, label_text=None, label_image=None, event=...)`."""
    return pair_row
