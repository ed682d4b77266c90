"""Model registry: a table row of the paper = a registered name.

`register_model(name)` registers a builder `fn(num_classes, config, name)
-> CrisisModel`; `register_variant(name, base, **overrides)` registers a
named set of `ModelConfig` overrides of another entry (e.g. the ablations of
Table 8), so new rows never touch existing builders.
`build_model(name, task_or_num_classes, config=None, **overrides)` builds one.

Config precedence: `config` (or `ModelConfig()` defaults) < the entry's own
overrides (what defines the variant, e.g. `sse=False`) < keyword `overrides`.
"""

import dataclasses
from typing import Callable, Dict, Optional

from crisis_keras.models.config import ModelConfig
from crisis_keras.models.crisis_model import CrisisModel


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    overrides: Dict
    description: str = ""
    base: Optional[str] = None


_REGISTRY: Dict[str, ModelEntry] = {}
# Live list of registered names (filled as the builder modules are imported).
MODEL_NAMES = []


def _add(entry: ModelEntry):
    if entry.name in _REGISTRY:
        raise ValueError(f"model name {entry.name!r} is already registered.")
    ModelConfig().replace(**entry.overrides)  # unknown/invalid keys fail now
    _REGISTRY[entry.name] = entry
    MODEL_NAMES.append(entry.name)


def register_model(name, description="", **overrides):
    """Decorator registering `builder(num_classes, config, name)` as `name`.

    `overrides` are config defaults specific to this model (applied over the
    caller's config, e.g. `head_units=0` for the unimodal baselines).
    """

    def decorator(builder):
        _add(ModelEntry(name, builder, dict(overrides), description or (builder.__doc__ or "").strip().split("\n")[0]))
        return builder

    return decorator


def unregister_model(name):
    """Remove `name` from the registry (tests; variants built on it stay)."""
    _REGISTRY.pop(name)
    MODEL_NAMES.remove(name)


def register_variant(name, base, description="", **overrides):
    """Register `name` = entry `base` with extra config `overrides`."""
    _ensure_builtin()
    parent = get_entry(base)
    merged = {**parent.overrides, **overrides}
    _add(ModelEntry(name, parent.builder, merged, description, base=base))


def _ensure_builtin():
    # Importing these modules registers the built-in models (idempotent).
    import crisis_keras.models.sse_cross  # noqa: F401
    import crisis_keras.models.unimodal  # noqa: F401
    import crisis_keras.models.variants  # noqa: F401
    import crisis_keras.models.compact_bilinear  # noqa: F401
    import crisis_keras.models.feature_augmentation  # noqa: F401
    import crisis_keras.models.mmbt  # noqa: F401
    import crisis_keras.models.score_fusion  # noqa: F401


def get_entry(name) -> ModelEntry:
    _ensure_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {sorted(_REGISTRY)}.")
    return _REGISTRY[name]


def model_names():
    """Sorted names of all registered models."""
    _ensure_builtin()
    return sorted(_REGISTRY)


def resolve_config(name, config=None, **overrides) -> ModelConfig:
    """The `ModelConfig` `build_model(name, ..., config, **overrides)` uses."""
    entry = get_entry(name)
    if config is None:
        config = ModelConfig()
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    elif not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, a dict or None, got {type(config).__name__}.")
    return config.replace(**entry.overrides).replace(**overrides)


def _num_classes(task_or_num_classes):
    value = task_or_num_classes
    if isinstance(value, bool):
        raise TypeError("task_or_num_classes must be a Task, a task name or an int, got a bool.")
    if isinstance(value, int):
        num = value
    elif isinstance(value, str):
        from crisis_keras.data.tasks import get_task

        num = get_task(value).num_classes
    elif hasattr(value, "num_classes"):
        num = int(value.num_classes)
    else:
        raise TypeError(
            "task_or_num_classes must be a Task, a task name or an int, "
            f"got {type(value).__name__}."
        )
    if num < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num}.")
    return num


def build_model(name, task_or_num_classes, config=None, **overrides):
    """Build the registered model `name` for a task (or a number of classes).

    Args:
        name: a registered name (`model_names()`), e.g. "sse_cross".
        task_or_num_classes: a `Task`, a task name ("informative", ...) or int.
        config: a `ModelConfig`, a dict of its fields, or None (defaults).
        **overrides: `ModelConfig` fields, applied last.

    Returns:
        A `CrisisModel` with `.model_config` and `.registered_name` set. Inputs
        are a dict; see the builder's docstring (e.g. `build_sse_cross`).
    """
    entry = get_entry(name)
    config = resolve_config(name, config, **overrides)
    model = entry.builder(_num_classes(task_or_num_classes), config, name=name)
    if config.missing_modalities and "missing_modality" not in {layer.name for layer in model.layers}:
        raise ValueError(
            f"model {name!r} does not support missing_modalities (modality dropout): only "
            "models fusing both modalities through `backbone_features` do (sse_cross and "
            "its variants, the compact bilinear and mix-up/shuffle baselines)."
        )
    if isinstance(model, CrisisModel):
        model.model_config = config
        model.registered_name = name
    return model
