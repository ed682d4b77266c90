"""Serving an exported run: SavedModel signatures, loading, a REST server.

- `signatures`: the `tf.Module` that `crisis_keras.export` saves, with the
  `serving_default` (raw tweet text + encoded image bytes), `token_ids`
  (pre-tokenized text, no TF Text ops) and `metadata` signatures.
- `loading`: find the newest version of an export and load it with plain
  TensorFlow (importing `tensorflow_text` first when it is installed).
- `rest_server`: a small HTTP server speaking TF Serving's REST predict API;
  `prediction_service` its protocol logic, `worker_pool` its bounded work
  queue, `deadline_reader` its read timeout, `warmup` its warm-up calls.
- `limits`: what one request may cost (body, rows, pixels, text, time);
  `image_limits` reads image sizes from headers before decoding,
  `text_limits` checks texts, `strict_json` parses JSON strictly.
- `post_rows`: `predict`'s input rows, read and checked line by line.
"""

from crisis_keras.serving.loading import (
    LoadedExport,
    load_export,
    resolve_version_dir,
)

__all__ = ["LoadedExport", "load_export", "resolve_version_dir"]
