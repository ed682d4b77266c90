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

Hostile input (issue 12): every row is checked before the model sees it
(`serving.post_rows`): a line that is not UTF-8, a JSON line with duplicate
keys or nested too deeply, a field of the wrong type, text that is not valid
UTF-8 or longer than `--max-text-chars`, an image path resolving outside
`--image-root` (`../`, absolute, a symlink out; `--allow-outside-root`
accepts them), an image file above `--max-image-bytes` or one whose header
declares more than `--max-pixels` pixels (read before decoding) is an error
row with its line number; a batch is cut short rather than exceed
`--max-batch-pixels`. The image formats are those `tf.io.decode_image` takes
(JPEG incl. CMYK, PNG incl. 16-bit, palette, grayscale and alpha, GIF,
BMP, WebP).
"""

import argparse
import csv
import sys
from pathlib import Path

from crisis_keras.serving.limits import Limits
from crisis_keras.serving.post_rows import (JSONL_SUFFIXES, BadRow, Row, RowLimits, prepare,
                                            read_posts)

__all__ = ["BadRow", "JSONL_SUFFIXES", "Predictor", "RowLimits", "predict_file", "prepare",
           "read_posts", "main"]


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
    p.add_argument("--allow-outside-root", action="store_true",
                   help="accept image paths resolving outside --image-root (../, absolute, "
                   "a symlink out); refused as error rows by default.")
    p.add_argument("--errors", default=None,
                   help="TSV of skipped rows (default: <output>.errors.tsv).")
    p.add_argument("--max-pixels", type=int, default=Limits.max_pixels,
                   help="most pixels an image may declare (read from its header before "
                   f"decoding; default {Limits.max_pixels}).")
    p.add_argument("--max-batch-pixels", type=int, default=Limits.max_request_pixels,
                   help="most pixels the images of one batch may declare; a batch is cut "
                   f"short before (default {Limits.max_request_pixels}).")
    p.add_argument("--max-text-chars", type=int, default=Limits.max_text_chars,
                   help=f"longest text in characters (default {Limits.max_text_chars}).")
    p.add_argument("--max-image-bytes", type=int, default=Limits.max_body_bytes,
                   help=f"largest image file (default {Limits.max_body_bytes}).")
    p.add_argument("--quiet", action="store_true", help="no progress bar.")
    return p


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
        """(probabilities [B, C], missing [B] str or None) of `Row`s."""
        tf = self.tf
        kwargs = {}
        if "text" in self.needs:
            kwargs["text"] = tf.constant([r.text for r in rows], tf.string)
        if "image_bytes" in self.needs:
            kwargs["image_bytes"] = tf.constant([r.image for r in rows], tf.string)
        out = self.fn(**kwargs)
        missing = None
        if self.missing_ok:
            missing = [m.decode("utf-8") for m in out["missing"].numpy().tolist()]
        return out["probabilities"].numpy(), missing

    def run(self, rows):
        """[(line, id, probabilities or None, error or None, missing, note)] for
        `Row`s; `missing` is "", "image" or "text" (None for a model without
        modality dropout)."""
        try:
            probabilities, missing = self._call(rows)
            missing = missing or [None] * len(rows)
            return [(r.line, r.row_id, p, None, m, r.note)
                    for r, p, m in zip(rows, probabilities, missing)]
        except self.tf.errors.InvalidArgumentError:
            pass  # Find the culprit(s) row by row.
        from crisis_keras.serving.loading import error_summary

        results = []
        for row in rows:
            try:
                probabilities, missing = self._call([row])
                results.append((row.line, row.row_id, probabilities[0], None,
                                missing[0] if missing else None, row.note))
                continue
            except self.tf.errors.InvalidArgumentError as err:
                error = f"the model rejected the row: {error_summary(err)}"
            if self.missing_ok and row.image and (row.text or b"").strip():
                # An image the model cannot decode: classify the post without it.
                try:
                    probabilities, missing = self._call([Row(row.line, row.row_id, row.text,
                                                             b"")])
                    results.append((row.line, row.row_id, probabilities[0], None, missing[0],
                                    error.replace("the model rejected the row",
                                                  "the model cannot decode the image")))
                    continue
                except self.tf.errors.InvalidArgumentError as again:
                    error = f"the model rejected the row: {error_summary(again)}"
            results.append((row.line, row.row_id, None, error, None, None))
        return results


def predict_file(model, input_path, output_path, batch_size=32, image_root=None,
                 errors_path=None, progress=True, err=None, limits=None):
    """Classifies `input_path` into `output_path`; returns (written, skipped).

    `limits` (`RowLimits`): the per-row checks and the batch pixel budget.
    """
    from crisis_keras.serving.loading import load_export

    err = sys.stderr if err is None else err
    limits = limits or RowLimits()
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

        batch, batch_pixels = [], 0
        for line, record in read_posts(input_path):
            try:
                if isinstance(record, BadRow):
                    raise record
                row = prepare(line, record, predictor.needs, image_root,
                              allow_missing=predictor.missing_ok, limits=limits)
            except BadRow as bad:
                report(bad.line, bad.row_id, str(bad))
                processed += 1
                continue
            if batch and batch_pixels + row.pixels > limits.max_batch_pixels:
                flush(batch)
                batch, batch_pixels = [], 0
            batch.append(row)
            batch_pixels += row.pixels
            if len(batch) == batch_size:
                flush(batch)
                batch, batch_pixels = [], 0
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
        limits = RowLimits(max_pixels=args.max_pixels, max_batch_pixels=args.max_batch_pixels,
                           max_text_chars=args.max_text_chars,
                           max_image_bytes=args.max_image_bytes,
                           allow_outside_root=args.allow_outside_root)
        written, skipped = predict_file(
            args.model, args.input, args.output, args.batch_size, args.image_root,
            args.errors, progress=not args.quiet, limits=limits)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"crisis_keras.predict: error: {err}", file=sys.stderr)
        return 2
    errors = args.errors or args.output + ".errors.tsv"
    print(f"crisis_keras.predict: {written} rows written to {args.output}"
          + (f", {skipped} skipped (see {errors})" if skipped else ""), file=sys.stderr)
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
