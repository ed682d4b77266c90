"""DenseNet's own input preprocessing, in-graph ("torch" mode of keras.applications).

`keras.applications.densenet.preprocess_input` scales pixels from 0..255 to
0..1 and standardizes each channel with the ImageNet mean and std; the
ImageNet DenseNet121 weights expect exactly this input. As a layer it travels
with the model (training, evaluation and export see the same transform).
"""

import keras
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="crisis_keras")
class ImageNormalization(keras.layers.Layer):
    """`(x * scale - mean) / std` per channel (DenseNet "torch" preprocessing).

    Args:
        mean, std: per-channel statistics after scaling (default ImageNet RGB).
        scale: factor applied first (default 1/255: inputs are 0..255 RGB).

    Call: float `[..., C]` RGB (C = len(mean)) -> same shape, compute dtype.
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=1.0 / 255.0, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.scale = float(scale)
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"ImageNormalization: mean {self.mean} and std {self.std} need the "
                "same number of channels."
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"ImageNormalization: std must be positive, got {self.std}.")

    def build(self, input_shape):
        channels = tuple(input_shape)[-1]
        if channels is not None and channels != len(self.mean):
            raise ValueError(
                f"ImageNormalization '{self.name}': expected {len(self.mean)} "
                f"channels, got input shape {tuple(input_shape)}."
            )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype) * self.scale
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self.std, dtype=self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"mean": list(self.mean), "std": list(self.std), "scale": self.scale})
        return config
