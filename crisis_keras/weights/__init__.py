"""Pretrained image-backbone weights without torch: read, map, convert.

- `read_state_dict(path)`: torch `.pth` (zip or legacy), `.safetensors`, `.npz`
  -> `{name: np.ndarray}` (`torch_checkpoint`).
- `efficientnet_lite` / `densenet`: state-dict key layouts -> Keras layers.
- `convert(arch, input, output)` / `python -m crisis_keras.weights convert
  --arch {efficientnet_lite0,densenet121} --input CKPT --output OUT.weights.h5`:
  a Keras `.weights.h5` of the no-top backbone, for `--image-weights`.
"""

from crisis_keras.weights.mapping import WeightMappingError
from crisis_keras.weights.torch_checkpoint import CheckpointError, read_state_dict
from crisis_keras.weights.convert import ARCHS, build_no_top, convert, load_state_dict_into

__all__ = [
    "ARCHS",
    "CheckpointError",
    "WeightMappingError",
    "build_no_top",
    "convert",
    "load_state_dict_into",
    "read_state_dict",
]
