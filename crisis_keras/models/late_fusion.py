"""Score Fusion made of two separately trained unimodal models (section 4.2).

In Setting B the paper trains the unimodal models "separately on images and
texts and use[s] an average of their prediction in the testing stage (also
known as score level fusion)". `compose_score_fusion(image_model,
text_model)` builds that model: the registered `score_fusion` graph
(`score_fusion.py`: image branch, text branch, `ScoreFusion` average of the
two softmax outputs) with every weight copied from the two trained models,
so it takes the union of their inputs, returns (p_image + p_text) / 2 and
saves, loads, evaluates and exports like any run's model.

Layer names map one to one: the backbone layers keep their names
(`image_backbone`, `text_backbone`, ...), and the heads of `densenet` /
`bert` (`head_dense`, `classifier`) become `image_head_dense`,
`image_classifier` / `text_head_dense`, `text_classifier`. Every weighted
layer of the result is filled from exactly one source, or it raises.
"""

from crisis_keras.models.config import ModelConfig
from crisis_keras.models.crisis_model import model_modalities
from crisis_keras.models.registry import build_model

# ModelConfig fields that describe each branch (taken from its own model).
IMAGE_FIELDS = ("image_backbone", "image_weights", "image_size", "train_image_backbone",
                "image_feature_shape")
TEXT_FIELDS = ("text_backbone", "text_preprocessor", "sequence_length", "text_pooling",
               "train_text_backbone", "backbone_dropout", "text_feature_dim")
# One value for both branches in `score_fusion`: the two models must agree.
SHARED_FIELDS = ("head_units", "head_activation", "dropout", "feature_inputs")
HEAD_LAYERS = ("head_dense", "head_dropout", "classifier")


def late_fusion_config(image_config: ModelConfig, text_config: ModelConfig) -> ModelConfig:
    """The `score_fusion` config whose branches are the two models' own."""
    differing = [f for f in SHARED_FIELDS if getattr(image_config, f) != getattr(text_config, f)]
    if differing:
        values = {f: (getattr(image_config, f), getattr(text_config, f)) for f in differing}
        raise ValueError(
            "score fusion of two runs needs the same head in both; the image and text "
            f"models differ in {values} (image, text)."
        )
    return image_config.replace(**{f: getattr(text_config, f) for f in TEXT_FIELDS})


def _check_source(model, modality):
    if model_modalities(model) != (modality,):
        raise ValueError(
            f"score fusion needs an {modality}-only model as its {modality} branch; "
            f"model {model.name!r} takes {model_modalities(model)}."
        )
    if getattr(model, "model_config", None) is None:
        raise ValueError(
            f"model {model.name!r} carries no ModelConfig (not a crisis_keras model?)."
        )


def _weighted_layers(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


def compose_score_fusion(image_model, text_model):
    """`score_fusion` averaging the softmax outputs of two trained models.

    Args:
        image_model: a trained image-only `CrisisModel` (e.g. `densenet`).
        text_model: a trained text-only `CrisisModel` (e.g. `bert`), same
            number of classes.

    Returns:
        A `CrisisModel` (registered name `score_fusion`) with inputs
        `image`, `text` (or their cached features) and the optional
        `sse_label`; at inference its output is the mean of the two models'
        probabilities. Build it under the dtype policy the models were
        trained with.

    Raises:
        ValueError: wrong modalities, different class counts or heads, or a
            layer that cannot be matched.
    """
    _check_source(image_model, "image")
    _check_source(text_model, "text")
    num_classes = int(image_model.output.shape[-1])
    if int(text_model.output.shape[-1]) != num_classes:
        raise ValueError(
            f"the image model has {num_classes} classes, the text model "
            f"{int(text_model.output.shape[-1])}."
        )
    config = late_fusion_config(image_model.model_config, text_model.model_config)
    shared = {f: getattr(config, f) for f in SHARED_FIELDS}
    # Random image weights at build: all of them are copied below.
    fused = build_model("score_fusion", num_classes, config, **shared, image_weights=None)
    targets = _weighted_layers(fused)
    filled = set()
    for source, prefix in ((image_model, "image_"), (text_model, "text_")):
        for name, layer in _weighted_layers(source).items():
            target = prefix + name if name in HEAD_LAYERS else name
            if target not in targets or target in filled:
                raise ValueError(
                    f"score fusion: layer {name!r} of {source.name!r} has no place "
                    f"({target!r}) in the fused model."
                )
            targets[target].set_weights(layer.get_weights())
            filled.add(target)
    unfilled = sorted(set(targets) - filled)
    if unfilled:
        raise ValueError(f"score fusion: no trained weights for layer(s) {unfilled}.")
    fused.model_config = config.replace(**shared)
    return fused
