"""Find and load an exported SavedModel with plain TensorFlow.

An export folder holds numbered versions (`DIR/1/`, `DIR/2/`, ...), as TF
Serving expects; `resolve_version_dir` accepts either the folder (newest
version) or one version folder. `load_export` imports `tensorflow_text` when
it is installed, since the full export's `serving_default` uses its ops
(loading fails without them: use the token-ids export, `DIR/token_ids/`).
"""

import dataclasses
import json
from pathlib import Path
from typing import List

import tensorflow as tf

TOKEN_IDS_SUBDIR = "token_ids"


def numeric_versions(base: Path) -> List[int]:
    """Version numbers of `base`'s numeric subfolders, ascending."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_version_dir(path) -> Path:
    """`path` itself if it holds a saved_model.pb, else its newest version folder."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    for version in reversed(numeric_versions(path)):
        candidate = path / str(version)
        if (candidate / "saved_model.pb").exists():
            return candidate
    raise FileNotFoundError(
        f"{path} is neither a SavedModel folder nor an export folder with numbered "
        "versions (write one with `python -m crisis_keras.export`)."
    )


def import_tensorflow_text() -> bool:
    """Registers the TF Text ops if `tensorflow_text` is installed."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        return False
    return True


@dataclasses.dataclass
class LoadedExport:
    """A loaded export: the SavedModel object and its metadata."""

    path: Path
    saved_model: object
    class_names: List[str]
    task: str
    config: dict

    @property
    def signatures(self):
        return self.saved_model.signatures

    @property
    def version(self) -> str:
        return self.path.name if self.path.name.isdigit() else "1"


def load_export(path) -> LoadedExport:
    """Loads the newest version under `path` (or the SavedModel at `path`)."""
    version_dir = resolve_version_dir(path)
    have_text = import_tensorflow_text()
    try:
        loaded = tf.saved_model.load(str(version_dir))
    except Exception as err:  # The missing-op error is a plain RuntimeError/NotFoundError.
        if "Op type not registered" in str(err) and not have_text:
            raise RuntimeError(
                f"{version_dir} uses TensorFlow Text ops, but tensorflow_text is not "
                "installed: `pip install tensorflow-text`, or load the token-ids "
                f"export ({TOKEN_IDS_SUBDIR}/ next to the versions), whose signatures "
                "take token ids."
            ) from err
        raise
    metadata = loaded.signatures["metadata"]()
    class_names = [c.decode("utf-8") for c in metadata["class_names"].numpy().tolist()]
    task = metadata["task"].numpy().decode("utf-8")
    config = json.loads(metadata["config_json"].numpy().decode("utf-8"))
    return LoadedExport(version_dir, loaded, class_names, task, config)


_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[")


def error_summary(err) -> str:
    """The useful line(s) of a TensorFlow runtime error (no node/stack noise)."""
    text = getattr(err, "message", None) or str(err)
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)
            and not line.startswith("File ")]
    return " ".join(kept) if kept else (lines[0] if lines else type(err).__name__)
