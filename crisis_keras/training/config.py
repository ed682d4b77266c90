"""`TrainConfig`: every knob of a training run, serialized next to the run.

Defaults follow section 4.5 of the paper where it speaks: SGD, base learning
rate 2e-3 reduced 10x when the dev loss stops improving, batch size 32,
DenseNet121 pretrained on ImageNet and BERT-base uncased, both fine-tuned.
Where the paper is silent the choice is ours and says so here.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Optional

CLASS_WEIGHT_MODES = ("none", "balanced")  # training/class_weights.py
SELECT_BY = ("loss", "macro_f1")  # training/dev_macro_f1.py
DISTRIBUTE = ("none", "mirrored", "multi-worker")  # training/distribute.py


@dataclasses.dataclass
class TrainConfig:
    # What to learn, from which data.
    task: str = "severity"
    data_dir: Optional[str] = None  # None: the embedded demo data.
    data_format: str = "crisismmd"  # or "medic": MEDIC image TSVs (data/medic.py).
    events: Optional[str] = None  # comma-separated event_name filter, every split.
    image_root: Optional[str] = None
    # Image paths resolving outside image_root (../, absolute, a symlink out) are
    # refused with their TSV line unless this is set (data/paths.py).
    allow_outside_root: bool = False
    setting: str = "A"
    experiment: int = 3  # Setting C's training set (Table 7): 1, 2 or 3.
    # Setting C's training pairs (data/settings.py): "agreeing", "all_pairs", "agreeing_by_tweet".
    setting_c_reading: str = "agreeing"
    # "official" (the files' splits) or "paper": seeded re-split, by tweet, with
    # Table 2's proportions (data/paper_split.py; the paper's split is unpublished).
    split: str = "official"
    humanitarian_labels: str = "paper"
    # Setting B's unimodal models (section 4.2, `data/setting_b.py`): None or
    # "own_labels" = every image / every tweet once with its own label (Score
    # Fusion then averages the two runs); "consistency" = the consistency draw
    # with the pair label, as the multimodal models. (Default None, not
    # "own_labels", so the config.json of runs made before this field still matches.)
    setting_b_unimodal: Optional[str] = None
    # Which model (a registry name) and its weight sources.
    model: str = "sse_cross"
    text_backbone: str = "bert_base_en_uncased"
    # "tfhub:HANDLE_OR_DIR": the TF Hub BERT preprocessor of a "tfhub:" text
    # backbone; None: keras-hub WordPiece on the encoder's assets/vocab.txt.
    text_preprocessor: Optional[str] = None
    image_weights: Optional[str] = "imagenet"  # "imagenet", None or a file.
    image_backbone: str = "densenet121"  # or "tfhub:HANDLE_OR_DIR" (models/tfhub_backbone.py)
    sequence_length: int = 64  # longest normalized CrisisMMD tweet: 51 tokens
    text_pooling: Optional[str] = None  # None: the model's ("cls", section 3.2); or "mean".
    # Cut each batch to its longest tweet before BERT (issue 11): same outputs, faster.
    trim_sequences: bool = False
    # The image backbone's batch normalization on TensorFlow's fused kernel (issue 11):
    # the same equation and weights, 1.8-2.1x DenseNet121's step on a CPU. False: Keras' layer.
    fused_batch_norm: bool = True
    sse_p0: Optional[float] = None  # None: the model's default.
    sse_rho: Optional[float] = None
    # Optimization (section 4.5).
    epochs: int = 30  # Not given by the paper; early stopping ends runs.
    batch_size: int = 32  # the global batch: under `distribute`, batch_size / R per replica
    # tf.distribute (training/distribute.py): "none", "mirrored" (every local GPU) or
    # "multi-worker" (the processes or machines of TF_CONFIG).
    distribute: str = "none"
    learning_rate: float = 2e-3
    # "Standard SGD" names no momentum. Measured (README, experiments/option_studies.py):
    # with 0, the text-only head's best dev loss came at the last of 30 epochs in every
    # seed (it cannot train within the budget); with 0.9 at epochs 15-18.
    momentum: float = 0.9
    reduce_lr_factor: float = 0.1
    reduce_lr_patience: int = 2  # Not given by the paper.
    early_stopping_patience: int = 5  # Not given by the paper.
    min_learning_rate: float = 2e-7
    # Rare classes. The paper's: plain loss, best model (and LR / early stop) by dev loss.
    # "balanced": training loss weighted by inverse class frequency (dev loss unweighted).
    class_weight: str = "none"
    # "macro_f1": checkpoint, ReduceLROnPlateau and EarlyStopping follow dev macro F1.
    select_by: str = "loss"
    # Images (section 4.5): shortest side to 228, 224 crops.
    image_size: int = 224
    resize_to: int = 228
    on_bad_image: str = "error"  # or "drop"; "missing": keep as posts without an image
    # Missing modalities (issue 13): modality dropout, the probability that training
    # drops a complete pair's image / text (never both: sum <= 1). Either > 0 builds
    # the model with a modality_mask input (ModelConfig.missing_modalities).
    missing_image_rate: float = 0.0
    missing_text_rate: float = 0.0
    # Run bookkeeping.
    seed: int = 0
    # Seed of the data's random splits (MEDIC dev split, Setting C); None: `seed`.
    # Fix it to compare model seeds on one split.
    split_seed: Optional[int] = None
    # "off" (float32), "bf16" (mixed_bfloat16) or "auto": bf16 where it runs natively
    # (training/precision.py). True/False of older run configs read as bf16/off.
    mixed_precision: str = "off"
    output_dir: str = "runs"
    run_name: Optional[str] = None
    max_train_examples: Optional[int] = None  # For quick looks only.
    # Frozen backbones: train the head on a feature cache made by
    # `python -m crisis_keras.features extract` (None: fine-tune end to end).
    features_dir: Optional[str] = None
    # Fine-tuning: read images decoded and resized once by `python -m crisis_keras.data
    # cache-images` (data/image_cache.py; pixels within 0.5 of the JPEG path's).
    image_cache_dir: Optional[str] = None

    def resolved_run_name(self) -> str:
        if self.run_name:
            return self.run_name
        return (
            f"{self.task}-{self.model}-setting{self.setting}"
            + (f"{self.experiment}" if self.setting == "C" else "")
            + (f"-{self.setting_c_reading}" if self.setting == "C"
               and self.setting_c_reading != "agreeing" else "")
            + ("-paper-split" if self.split == "paper" else "")
            + ("-medic" if self.data_format == "medic" else "")
            + (f"-{self.events.replace(',', '+')}" if self.events else "")
            + ("-features" if self.features_dir else "")
            + ("-balanced" if self.class_weight == "balanced" else "")
            + ("-by-macro-f1" if self.select_by == "macro_f1" else "")
            + ("-consistency" if self.setting == "B"
               and self.setting_b_unimodal == "consistency" else "")
            + (f"-{self.distribute}" if self.distribute != "none" else "")
            + f"-seed{self.seed}"
        )

    def __post_init__(self):
        from crisis_keras.training.precision import normalize_mode

        self.mixed_precision = normalize_mode(self.mixed_precision)
        for name, choices in (("class_weight", CLASS_WEIGHT_MODES), ("select_by", SELECT_BY),
                              ("distribute", DISTRIBUTE)):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"TrainConfig.{name} must be one of {choices}, got {getattr(self, name)!r}."
                )

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.resolved_run_name()

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields: {unknown}.")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json_file(cls, path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
