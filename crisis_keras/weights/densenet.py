"""torchvision DenseNet121 state dict <-> `keras.applications.DenseNet121`.

torchvision keys -> Keras layers:
`features.conv0` / `norm0` -> `conv1_conv` / `conv1_bn`;
`features.denseblockB.denselayerL.norm1` / `conv1` / `norm2` / `conv2` ->
`conv{B+1}_block{L}_0_bn` / `_1_conv` / `_1_bn` / `_2_conv`;
`features.transitionT.norm` / `conv` -> `pool{T+1}_bn` / `pool{T+1}_conv`;
`features.norm5` -> `bn`; `classifier` -> `predictions` (include_top only).
Old checkpoints spell `norm.1` / `conv.2` (dots); they are renamed like
torchvision's own loader does.

Batch norm epsilon differs slightly (torch 1e-5, Keras 1.001e-5); outputs of
a converted torch model agree to float32 round-off, not bit for bit.
"""

import os
import re

from crisis_keras.weights import mapping
from crisis_keras.weights.torch_checkpoint import read_state_dict

DENSENET121_BLOCKS = (6, 12, 24, 16)

_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def rename_old_keys(state_dict):
    """`...denselayer1.norm.1.weight` -> `...denselayer1.norm1.weight` (old torchvision)."""
    out = {}
    for key, value in state_dict.items():
        match = _OLD_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def densenet121_table(model):
    """(Keras layer, kind, torch prefix) for every weighted layer of `model`."""
    table = [("conv1_conv", "conv", "features.conv0"), ("conv1_bn", "bn", "features.norm0")]
    for b, layers in enumerate(DENSENET121_BLOCKS, start=1):
        for i in range(1, layers + 1):
            k, p = f"conv{b + 1}_block{i}", f"features.denseblock{b}.denselayer{i}"
            table += [(f"{k}_0_bn", "bn", f"{p}.norm1"), (f"{k}_1_conv", "conv", f"{p}.conv1"),
                      (f"{k}_1_bn", "bn", f"{p}.norm2"), (f"{k}_2_conv", "conv", f"{p}.conv2")]
        if b < len(DENSENET121_BLOCKS):
            table += [(f"pool{b + 1}_bn", "bn", f"features.transition{b}.norm"),
                      (f"pool{b + 1}_conv", "conv", f"features.transition{b}.conv")]
    table.append(("bn", "bn", "features.norm5"))
    if any(layer.name == "predictions" for layer in model.layers):
        table.append(("predictions", "dense", "classifier"))
    return table


def load_state_dict_into_densenet121(model, state_dict, source=None):
    """Set a Keras DenseNet121's weights from a torchvision state dict or checkpoint path."""
    if isinstance(state_dict, (str, os.PathLike)):
        source = source or os.fspath(state_dict)
        state_dict = read_state_dict(state_dict)
    state_dict = rename_old_keys(mapping._strip_module_prefix(dict(state_dict)))
    return mapping.assign(model, densenet121_table(model), state_dict, source or "state dict")


def densenet121_state_dict(model):
    """The torchvision-layout state dict of a Keras DenseNet121 (numpy arrays)."""
    return mapping.export(model, densenet121_table(model))
