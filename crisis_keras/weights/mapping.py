"""Torch state dict <-> Keras layer weights, by a table of (layer, kind, key prefix).

Kinds and their tensors:
- "conv": `<prefix>.weight` OIHW -> Conv2D kernel HWIO.
- "dwconv": `<prefix>.weight` (C, 1, kh, kw) -> DepthwiseConv2D kernel (kh, kw, C, 1).
- "bn": `<prefix>.weight/.bias/.running_mean/.running_var` -> gamma, beta,
  moving mean, moving variance.
- "dense": `<prefix>.weight` (out, in) -> kernel (in, out), `<prefix>.bias`.

`assign(model, table, state_dict, source)` checks every tensor first (present,
right shape) and raises `WeightMappingError` naming the first one that does
not fit, so a wrong checkpoint never half-loads.
"""

import os

import numpy as np

_KEYS = {
    "conv": ("weight",),
    "dwconv": ("weight",),
    "bn": ("weight", "bias", "running_mean", "running_var"),
    "dense": ("weight", "bias"),
}


class WeightMappingError(ValueError):
    """A state dict that does not fit the Keras model (names the tensor)."""


def _to_keras(kind, suffix, array):
    if kind == "conv":
        return np.transpose(array, (2, 3, 1, 0))
    if kind == "dwconv":
        return np.transpose(array, (2, 3, 0, 1))
    if kind == "dense" and suffix == "weight":
        return np.transpose(array)
    return array


def _from_keras(kind, suffix, array):
    if kind == "conv":
        return np.transpose(array, (3, 2, 0, 1))
    if kind == "dwconv":
        return np.transpose(array, (2, 3, 0, 1))
    if kind == "dense" and suffix == "weight":
        return np.transpose(array)
    return array


def _strip_module_prefix(state_dict):
    """Drop a `module.` prefix (DataParallel) when every key has it."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def _describe(state_dict, n=3):
    keys = list(state_dict)
    shown = ", ".join(f"{k!r} {tuple(np.shape(state_dict[k]))}" for k in keys[:n])
    return f"{len(keys)} tensors, first: {shown}" if keys else "no tensors"


def keras_values(model, table, state_dict, source="checkpoint"):
    """{layer name: [arrays in `layer.get_weights()` order]}; raises on the first misfit."""
    state_dict = _strip_module_prefix(dict(state_dict))
    values = {}
    for layer_name, kind, prefix in table:
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        if len(expected) != len(_KEYS[kind]):
            raise WeightMappingError(
                f"{source}: layer {layer_name!r} has {len(expected)} weights, "
                f"mapping kind {kind!r} expects {len(_KEYS[kind])}."
            )
        arrays = []
        for suffix, shape in zip(_KEYS[kind], expected):
            key = f"{prefix}.{suffix}"
            if key not in state_dict:
                raise WeightMappingError(
                    f"{source}: missing tensor {key!r} (for Keras layer {layer_name!r}, "
                    f"expected shape {_from_keras_shape(kind, suffix, shape)}); the "
                    f"checkpoint has {_describe(state_dict)}."
                )
            array = np.asarray(state_dict[key])
            converted = _to_keras(kind, suffix, array) if array.ndim == len(
                _from_keras_shape(kind, suffix, shape)) else array
            if tuple(converted.shape) != shape:
                raise WeightMappingError(
                    f"{source}: tensor {key!r} has shape {tuple(array.shape)}, but Keras "
                    f"layer {layer_name!r} needs {_from_keras_shape(kind, suffix, shape)} "
                    f"(Keras layout {shape})."
                )
            arrays.append(converted.astype(layer.weights[len(arrays)].dtype, copy=False))
        values[layer_name] = arrays
    return values


def _from_keras_shape(kind, suffix, shape):
    return tuple(_from_keras(kind, suffix, np.empty(shape, dtype="u1")).shape)


def assign(model, table, state_dict, source="checkpoint"):
    """Set the weights of `model`'s layers in `table` from `state_dict` (all or nothing).

    `state_dict` may also be a checkpoint path (`.pth`, `.safetensors`, `.npz`).
    """
    if isinstance(state_dict, (str, os.PathLike)):
        from crisis_keras.weights.torch_checkpoint import read_state_dict

        source = os.fspath(state_dict) if source == "checkpoint" else source
        state_dict = read_state_dict(state_dict)
    values = keras_values(model, table, state_dict, source)
    for layer_name, arrays in values.items():
        model.get_layer(layer_name).set_weights(arrays)
    return model


def export(model, table):
    """The torch-layout state dict {key: np.ndarray} of `model`'s layers in `table`."""
    state_dict = {}
    for layer_name, kind, prefix in table:
        layer = model.get_layer(layer_name)
        for suffix, value in zip(_KEYS[kind], layer.get_weights()):
            state_dict[f"{prefix}.{suffix}"] = np.ascontiguousarray(
                _from_keras(kind, suffix, np.asarray(value))
            )
    return state_dict
