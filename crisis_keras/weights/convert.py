"""Checkpoint -> Keras `.weights.h5` of a no-top image backbone."""

import os

from crisis_keras.weights.torch_checkpoint import read_state_dict

ARCHS = ("efficientnet_lite0", "densenet121")
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".npz")


def is_state_dict_file(path):
    """True for a torch / safetensors / npz file (mapped on load), False for Keras `.h5`."""
    return os.fspath(path).lower().endswith(STATE_DICT_SUFFIXES)


def build_no_top(arch, input_shape=(224, 224, 3)):
    """A randomly initialized no-top backbone of `arch` (the converter's target)."""
    if arch == "efficientnet_lite0":
        from crisis_keras.models.efficientnet_lite import efficientnet_lite0

        return efficientnet_lite0(include_top=False, weights=None, input_shape=input_shape)
    if arch == "densenet121":
        import keras

        return keras.applications.DenseNet121(
            include_top=False, weights=None, input_shape=tuple(input_shape)
        )
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}.")


def load_state_dict_into(arch, model, state_dict, source=None):
    """Map a state dict (or checkpoint path) of `arch` onto `model`."""
    if arch == "efficientnet_lite0":
        from crisis_keras.weights.efficientnet_lite import load_state_dict_into_lite0

        return load_state_dict_into_lite0(model, state_dict, source)
    if arch == "densenet121":
        from crisis_keras.weights.densenet import load_state_dict_into_densenet121

        return load_state_dict_into_densenet121(model, state_dict, source)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}.")


def convert(arch, input_path, output_path):
    """Read `input_path`, map it onto a no-top `arch`, save `output_path` (.weights.h5)."""
    output_path = os.fspath(output_path)
    if not output_path.endswith(".weights.h5"):
        raise ValueError(f"output must end in .weights.h5, got {output_path!r}.")
    state_dict = read_state_dict(input_path)
    model = build_no_top(arch)
    load_state_dict_into(arch, model, state_dict, source=os.fspath(input_path))
    parent = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(parent, exist_ok=True)
    model.save_weights(output_path)
    return output_path
