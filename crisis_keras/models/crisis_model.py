"""`CrisisModel`: the functional model class every registered builder returns.

A plain functional `keras.Model` with dict inputs raises when a key is
missing, even for an `optional=True` input, and mis-aligns inputs when the
dict has extra keys. `CrisisModel.__call__` therefore (1) keeps only the
model's own input names, so one feature dict (`text`, `image`, `sse_label`)
feeds every model, and (2) fills missing optional inputs (`sse_label`) with
None. It also carries the `ModelConfig` and registered name it was built
from, and saves them in its config (`.keras` files restore them).
"""

import keras

from crisis_keras.models.config import ModelConfig


MODALITIES = ("text", "image")
# Inputs that carry a modality: raw (`text`, `image`) or the backbones'
# cached outputs (`text_features`, `image_features`; `crisis_keras.features`).
MODALITY_INPUTS = {"text": ("text", "text_features"), "image": ("image", "image_features")}
# float32 [B, 2] = [image_present, text_present]: only models built with
# `ModelConfig.missing_modalities` have it (`layers/modality_dropout.py`).
MODALITY_MASK = "modality_mask"


def model_input_names(model) -> tuple:
    """Names of a functional model's inputs (`text`, `image`, `sse_label`)."""
    if isinstance(model.input, dict):
        return tuple(model.input)
    return tuple(t.name for t in model.inputs)


def model_modalities(model) -> tuple:
    """The modalities (`text`, `image`) a model takes, in that order."""
    names = model_input_names(model)
    return tuple(m for m in MODALITIES if any(n in names for n in MODALITY_INPUTS[m]))


def takes_modality_mask(model) -> bool:
    """True for a model built with `missing_modalities` (a `modality_mask` input)."""
    return MODALITY_MASK in model_input_names(model)


def takes_cached_features(model) -> bool:
    """True for a model built with `feature_inputs` (`*_features` inputs)."""
    return any(name.endswith("_features") for name in model_input_names(model))


@keras.saving.register_keras_serializable(package="crisis_keras")
class CrisisModel(keras.Model):
    """Functional model with forgiving dict inputs (see module docstring).

    Attributes:
        model_config: the `ModelConfig` it was built from (or None).
        registered_name: its name in the registry (or None).
    """

    def __init__(self, *args, model_config=None, registered_name=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_config = model_config
        self.registered_name = registered_name

    def _input_layers(self):
        return [(t.name, t._keras_history.operation) for t in self.inputs]

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, dict):
            layers = self._input_layers()
            names = {name for name, _ in layers}
            missing = [
                name for name, layer in layers
                if name not in inputs and not getattr(layer, "optional", False)
            ]
            if missing:
                raise ValueError(
                    f"model '{self.name}' is missing input(s) {missing}; "
                    f"it takes {sorted(names)}, got keys {sorted(inputs)}."
                )
            inputs = {name: inputs.get(name) for name, _ in layers}
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["crisis_model"] = {
            "registered_name": self.registered_name,
            "model_config": self.model_config.to_dict() if self.model_config else None,
        }
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        extra = config.pop("crisis_model", None) or {}
        model = super().from_config(config, custom_objects=custom_objects)
        values = extra.get("model_config")
        model.model_config = ModelConfig.from_dict(values) if values else None
        model.registered_name = extra.get("registered_name")
        if model.model_config is not None:
            _refreeze_pooler(model, model.model_config)
        return model


def _refreeze_pooler(model, config):
    """Restore the non-trainable unused BERT pooler (not kept in its config)."""
    from crisis_keras.models.text_backbone import freeze_unused_pooler

    try:
        backbone = model.get_layer("text_backbone")
    except ValueError:
        return
    if backbone.trainable:
        freeze_unused_pooler(backbone, config.text_pooling)
