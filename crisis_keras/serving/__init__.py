"""Serving an exported run: SavedModel signatures, loading, a REST server.

- `signatures`: the `tf.Module` that `crisis_keras.export` saves, with the
  `serving_default` (raw tweet text + encoded image bytes), `token_ids`
  (pre-tokenized text, no TF Text ops) and `metadata` signatures.
- `loading`: find the newest version of an export and load it with plain
  TensorFlow (importing `tensorflow_text` first when it is installed).
- `rest_server`: a small HTTP server speaking TF Serving's REST predict API.
"""

from crisis_keras.serving.loading import (
    LoadedExport,
    load_export,
    resolve_version_dir,
)

__all__ = ["LoadedExport", "load_export", "resolve_version_dir"]
