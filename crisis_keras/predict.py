"""`python -m crisis_keras.predict --model DIR --input posts.tsv|posts.jsonl --output out.tsv`.

Classifies posts with an exported SavedModel (`crisis_keras.export`), through
its `serving_default` signature (raw text + encoded image bytes), in batches.

Input: a TSV with a header line, or JSON Lines (`.jsonl`/`.ndjson`: one object
a line). Columns/keys: `text` (the raw tweet), `image` (a path, relative to
`--image-root`, default the input file's folder) and optionally `id` (default:
the line number). A model that takes one modality only needs that column.
TSV fields are split on tabs; a field wrapped in double quotes is unquoted
(`""` -> `"`).

Output: TSV with `id`, `predicted` (class name), and `p_<class>` per class,
in input order. A bad row (malformed line, empty text, missing or unreadable
image, an image the model cannot decode) is reported on stderr with its line
number, written to the errors file (`--errors`, default `<output>.errors.tsv`:
`line`, `id`, `error`) and skipped; every good row is still classified. The
exit status is 0 when every row was classified, 1 when some rows were skipped.

Posts without an image or text (issue 13). With a model trained with
modality dropout (its `serving_default` returns `missing`), a row whose image
is absent (no `image` value), unreadable, empty or undecodable, or whose
text is empty, is classified from the other modality instead of skipped; the
output then ends with a `missing` column ("", "image" or "text"), and
unreadable or undecodable images are noted on stderr. Only a row with
neither is skipped.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

JSONL_SUFFIXES = (".jsonl", ".ndjson")


class BadRow(ValueError):
    """A row that cannot be classified; `line` is its 1-based line number."""

    def __init__(self, line, message, row_id=""):
        super().__init__(message)
        self.line = line
        self.row_id = row_id


def build_parser():
    p = argparse.ArgumentParser(prog="python -m crisis_keras.predict",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help="export folder (newest version is used) or one version folder.")
    p.add_argument("--input", required=True, help="posts as .tsv (header line) or .jsonl.")
    p.add_argument("--output", required=True, help="predictions TSV to write.")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-root", default=None,
                   help="folder image paths are relative to (default: the input's folder).")
    p.add_argument("--errors", default=None,
                   help="TSV of skipped rows (default: <output>.errors.tsv).")
    p.add_argument("--quiet", action="store_true", help="no progress bar.")
    return p


def _unquote(field):
    if len(field) >= 2 and field[0] == '"' and field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field


def _physical_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, start=1):
            yield number, line.rstrip("\r\n")


def read_posts(path):
    """Yields `(line, record_or_BadRow)`; records are dicts of strings."""
    path = Path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        for number, line in _physical_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, BadRow(number, f"malformed JSON line ({err.msg})")
                continue
            if not isinstance(record, dict):
                yield number, BadRow(number, "a JSON line must be an object")
                continue
            yield number, record
        return
    lines = _physical_lines(path)
    header = None
    for number, line in lines:
        if line.strip():
            header = [_unquote(h).strip() for h in line.split("\t")]
            break
    if header is None:
        return
    for number, line in lines:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            yield number, BadRow(number, f"malformed line: {len(fields)} tab-separated "
                                          f"fields, the header has {len(header)}")
            continue
        yield number, {h: _unquote(v) for h, v in zip(header, fields)}


def _read_image(line, record, image_root, row_id):
    """The record's image bytes, or raises `BadRow` saying why there are none."""
    name = record.get("image")
    if not isinstance(name, str) or not name.strip():
        raise BadRow(line, "empty or missing 'image' path", row_id)
    image_path = Path(image_root) / name
    try:
        image = image_path.read_bytes()
    except OSError as err:
        raise BadRow(line, f"cannot read image {image_path}: {err.strerror or err}",
                     row_id) from None
    if not image:
        raise BadRow(line, f"image {image_path} is empty", row_id)
    return image


def prepare(line, record, needs, image_root, allow_missing=False):
    """(id, text, image bytes, note) of a record, or raises `BadRow`.

    With `allow_missing` (a model trained with modality dropout) an absent
    modality becomes "" / b"" (the model's "missing"), and `note` says why
    an image given by path could not be used (None otherwise); a record
    with neither text nor image still raises.
    """
    row_id = record.get("id")
    row_id = str(line) if row_id in (None, "") else str(row_id)
    text = image = note = None
    if "text" in needs:
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            if not allow_missing:
                raise BadRow(line, "empty or missing 'text'", row_id)
            text = ""
    if "image_bytes" in needs:
        try:
            image = _read_image(line, record, image_root, row_id)
        except BadRow as bad:
            if not allow_missing:
                raise
            name = record.get("image")
            note = str(bad) if isinstance(name, str) and name.strip() else None
            image = b""
        if allow_missing and not image and not (text or "").strip():
            raise BadRow(line, "neither text nor a usable image"
                         + (f" ({note})" if note else ""), row_id)
    return row_id, text, image, note


class Predictor:
    """Runs batches through `serving_default`, isolating rows the model rejects."""

    def __init__(self, loaded):
        import tensorflow as tf

        self.tf = tf
        self.fn = loaded.signatures["serving_default"]
        self.needs = set(self.fn.structured_input_signature[1])
        unexpected = self.needs - {"text", "image_bytes"}
        if unexpected:
            raise ValueError(
                f"{loaded.path}'s serving_default takes {sorted(self.needs)}; predict needs "
                "the full export (raw text / image bytes), not the token-ids one.")
        self.class_names = loaded.class_names
        # trained with modality dropout: takes rows without an image or a text
        self.missing_ok = "missing" in self.fn.structured_outputs

    def _call(self, rows):
        """(probabilities [B, C], missing [B] str or None) of (id, text, image) rows."""
        tf = self.tf
        kwargs = {}
        if "text" in self.needs:
            kwargs["text"] = tf.constant([r[1] for r in rows], tf.string)
        if "image_bytes" in self.needs:
            kwargs["image_bytes"] = tf.constant([r[2] for r in rows], tf.string)
        out = self.fn(**kwargs)
        missing = None
        if self.missing_ok:
            missing = [m.decode("utf-8") for m in out["missing"].numpy().tolist()]
        return out["probabilities"].numpy(), missing

    def run(self, rows):
        """[(line, id, probabilities or None, error or None, missing, note)] for
        `rows` of (line, id, text, image, note); `missing` is "", "image" or
        "text" (None for a model without modality dropout)."""
        packed = [(r[1], r[2], r[3]) for r in rows]
        try:
            probabilities, missing = self._call(packed)
            missing = missing or [None] * len(rows)
            return [(r[0], r[1], p, None, m, r[4])
                    for r, p, m in zip(rows, probabilities, missing)]
        except self.tf.errors.InvalidArgumentError:
            pass  # Find the culprit(s) row by row.
        from crisis_keras.serving.loading import error_summary

        results = []
        for row, item in zip(rows, packed):
            try:
                probabilities, missing = self._call([item])
                results.append((row[0], row[1], probabilities[0], None,
                                missing[0] if missing else None, row[4]))
                continue
            except self.tf.errors.InvalidArgumentError as err:
                error = f"the model rejected the row: {error_summary(err)}"
            if self.missing_ok and item[2] and (item[1] or "").strip():
                # An image the model cannot decode: classify the post without it.
                try:
                    probabilities, missing = self._call([(item[0], item[1], b"")])
                    results.append((row[0], row[1], probabilities[0], None, missing[0],
                                    error.replace("the model rejected the row",
                                                  "the model cannot decode the image")))
                    continue
                except self.tf.errors.InvalidArgumentError as again:
                    error = f"the model rejected the row: {error_summary(again)}"
            results.append((row[0], row[1], None, error, None, None))
        return results


def predict_file(model, input_path, output_path, batch_size=32, image_root=None,
                 errors_path=None, progress=True, err=None):
    """Classifies `input_path` into `output_path`; returns (written, skipped)."""
    from crisis_keras.serving.loading import load_export

    err = sys.stderr if err is None else err
    if batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {batch_size}.")
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path} does not exist.")
    image_root = Path(image_root) if image_root else input_path.parent
    errors_path = Path(errors_path) if errors_path else output_path.with_name(
        output_path.name + ".errors.tsv")
    predictor = Predictor(load_export(model))
    total = sum(1 for _ in read_posts(input_path))
    bar = None
    if progress:
        import keras

        bar = keras.utils.Progbar(total, unit_name="row")
    written = skipped = processed = incomplete = 0
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", encoding="utf-8", newline="") as out_file, \
            open(errors_path, "w", encoding="utf-8", newline="") as err_file:
        out = csv.writer(out_file, delimiter="\t", lineterminator="\n")
        errs = csv.writer(err_file, delimiter="\t", lineterminator="\n")
        out.writerow(["id", "predicted"] + [f"p_{c}" for c in predictor.class_names]
                     + (["missing"] if predictor.missing_ok else []))
        errs.writerow(["line", "id", "error"])

        def report(line, row_id, message):
            nonlocal skipped
            skipped += 1
            print(f"{input_path}:{line}: skipped: {message}", file=err)
            errs.writerow([line, row_id, message])

        def flush(batch):
            nonlocal written, processed, incomplete
            for line, row_id, probs, error, missing, note in predictor.run(batch):
                if error is not None:
                    report(line, row_id, error)
                    continue
                name = predictor.class_names[int(probs.argmax())]
                row = [row_id, name] + [f"{p:.6f}" for p in probs]
                if predictor.missing_ok:
                    row.append(missing)
                    incomplete += bool(missing)
                    if note:
                        print(f"{input_path}:{line}: classified without its {missing}: {note}",
                              file=err)
                out.writerow(row)
                written += 1
            processed += len(batch)
            out_file.flush()
            if bar is not None:
                bar.update(processed)

        batch = []
        for line, record in read_posts(input_path):
            try:
                if isinstance(record, BadRow):
                    raise record
                row_id, text, image, note = prepare(line, record, predictor.needs, image_root,
                                                    allow_missing=predictor.missing_ok)
            except BadRow as bad:
                report(bad.line, bad.row_id, str(bad))
                processed += 1
                continue
            batch.append((line, row_id, text, image, note))
            if len(batch) == batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        if bar is not None and processed < total:
            bar.update(total, finalize=True)
    if incomplete:
        print(f"crisis_keras.predict: {incomplete} rows classified with a missing modality "
              "(see the 'missing' column)", file=err)
    return written, skipped


def main(argv=None) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    args = parse_args(build_parser(), argv)
    try:
        written, skipped = predict_file(
            args.model, args.input, args.output, args.batch_size, args.image_root,
            args.errors, progress=not args.quiet)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"crisis_keras.predict: error: {err}", file=sys.stderr)
        return 2
    errors = args.errors or args.output + ".errors.tsv"
    print(f"crisis_keras.predict: {written} rows written to {args.output}"
          + (f", {skipped} skipped (see {errors})" if skipped else ""), file=sys.stderr)
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
