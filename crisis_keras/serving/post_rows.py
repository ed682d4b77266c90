"""Posts to classify, read from a TSV or JSON Lines file and checked row by row.

`read_posts` yields each line's record, or a `BadRow` for a line that is not
UTF-8, a malformed TSV line, or a JSON line that is not a strict JSON object
(`strict_json`: no duplicate keys, no nesting beyond the parser's limit).
`prepare` turns a record into a `Row` the model can take, or raises `BadRow`
saying why not: a field of the wrong type, a text that is not valid UTF-8
or above `max_text_chars`, an image path resolving outside the image root
(`data/paths.py`, unless `allow_outside_root`), an image file above
`max_image_bytes`, or one whose header declares more than `max_pixels`
pixels (`image_limits`: checked before anything is decoded). Every check
names the 1-based line.
"""

import dataclasses
from pathlib import Path
from typing import Optional

from crisis_keras.data.paths import OutsideRootError, inside_root
from crisis_keras.serving import strict_json
from crisis_keras.serving.image_limits import ImageHeaderError, ImageTooLarge, check_image
from crisis_keras.serving.limits import Limits
from crisis_keras.serving.text_limits import TextRejected, TextTooLong, check_text

JSONL_SUFFIXES = (".jsonl", ".ndjson")


class BadRow(ValueError):
    """A row that cannot be classified; `line` is its 1-based line number."""

    def __init__(self, line, message, row_id=""):
        super().__init__(message)
        self.line = line
        self.row_id = row_id


@dataclasses.dataclass(frozen=True)
class RowLimits:
    max_pixels: int = Limits.max_pixels
    max_batch_pixels: int = Limits.max_request_pixels
    max_text_chars: int = Limits.max_text_chars
    max_image_bytes: int = Limits.max_body_bytes
    allow_outside_root: bool = False


@dataclasses.dataclass(frozen=True)
class Row:
    """A checked post: UTF-8 `text`, encoded `image` (b"" = none), the pixels
    its image declares, and `note`: why a given image was left out (a model
    trained with modality dropout then classifies the post without it)."""

    line: int
    row_id: str
    text: Optional[bytes]
    image: Optional[bytes]
    note: Optional[str] = None
    pixels: int = 0


def _unquote(field):
    if len(field) >= 2 and field[0] == '"' and field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field


def _physical_lines(path):
    """(line number, text) of each line; a line that is not UTF-8 gives a `BadRow`."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield number, BadRow(number, f"the line is not valid UTF-8 ({err.reason} at "
                                             f"byte {err.start})")


def read_posts(path):
    """Yields `(line, record_or_BadRow)`; records are dicts."""
    path = Path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        for number, line in _physical_lines(path):
            if isinstance(line, BadRow):
                yield number, line
                continue
            if not line.strip():
                continue
            try:
                record = strict_json.loads(line, "the line")
            except strict_json.JSONError as err:
                yield number, BadRow(number, f"malformed JSON line: {err}")
                continue
            if not isinstance(record, dict):
                yield number, BadRow(number, "a JSON line must be an object")
                continue
            yield number, record
        return
    lines = _physical_lines(path)
    header = None
    for number, line in lines:
        if isinstance(line, BadRow):
            raise ValueError(f"{path}:{number}: the header line is not valid UTF-8.")
        if line.strip():
            header = [_unquote(h).strip() for h in line.split("\t")]
            break
    if header is None:
        return
    for number, line in lines:
        if isinstance(line, BadRow):
            yield number, line
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            yield number, BadRow(number, f"malformed line: {len(fields)} tab-separated "
                                          f"fields, the header has {len(header)}")
            continue
        yield number, {h: _unquote(v) for h, v in zip(header, fields)}


def _row_id(line, record):
    row_id = record.get("id")
    if row_id in (None, ""):
        return str(line)
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int, float)):
        raise BadRow(line, f"'id' must be a string or a number, got {type(row_id).__name__}")
    return str(row_id)


def _text(line, record, row_id, limits, allow_missing):
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise BadRow(line, f"'text' must be a string, got {type(text).__name__}", row_id)
    if text is None or not text.strip():
        if not allow_missing:
            raise BadRow(line, "empty or missing 'text'", row_id)
        return b""
    try:
        return check_text(text, limits.max_text_chars)
    except (TextTooLong, TextRejected) as err:
        raise BadRow(line, f"'text' {err}", row_id) from None


def _read_image(line, name, image_root, row_id, limits):
    """(image bytes, declared pixels), or raises `BadRow` saying why there are none."""
    if not isinstance(name, str):
        raise BadRow(line, f"'image' must be a path string, got {type(name).__name__}", row_id)
    try:
        image_path = inside_root(image_root, name, limits.allow_outside_root)
    except OutsideRootError as err:
        raise BadRow(line, str(err), row_id) from None
    try:
        size = image_path.stat().st_size
        if not image_path.is_file():
            raise BadRow(line, f"image {image_path} is not a file", row_id)
        if size > limits.max_image_bytes:
            raise BadRow(line, f"image {image_path} has {size:,} bytes, above the limit of "
                               f"{limits.max_image_bytes:,} (--max-image-bytes)", row_id)
        image = image_path.read_bytes()
    except OSError as err:
        raise BadRow(line, f"cannot read image {image_path}: {err.strerror or err}",
                     row_id) from None
    if not image:
        raise BadRow(line, f"image {image_path} is empty", row_id)
    try:
        pixels = check_image(image, limits.max_pixels)
    except (ImageTooLarge, ImageHeaderError) as err:
        raise BadRow(line, f"image {image_path}: {err}", row_id) from None
    return image, pixels


def prepare(line, record, needs, image_root, allow_missing=False, limits=None) -> Row:
    """The `Row` of a record, or raises `BadRow`.

    With `allow_missing` (a model trained with modality dropout) an absent
    modality becomes b"" (the model's "missing"), and a given image that
    cannot be used (unreadable, outside the root, too large, ...) is left
    out with a `note`; a record with neither text nor image still raises.
    """
    limits = limits or RowLimits()
    row_id = _row_id(line, record)
    text = image = note = None
    pixels = 0
    if "text" in needs:
        text = _text(line, record, row_id, limits, allow_missing)
    if "image_bytes" in needs:
        name = record.get("image")
        given = not (name is None or (isinstance(name, str) and not name.strip()))
        try:
            if not given:
                raise BadRow(line, "empty or missing 'image' path", row_id)
            image, pixels = _read_image(line, name, image_root, row_id, limits)
        except BadRow as bad:
            if not allow_missing:
                raise
            note = str(bad) if given else None
            image = b""
        if allow_missing and not image and not (text or b"").strip():
            raise BadRow(line, "neither text nor a usable image"
                         + (f" ({note})" if note else ""), row_id)
    return Row(line, row_id, text, image, note, pixels)

