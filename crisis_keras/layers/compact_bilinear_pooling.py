"""Multimodal Compact Bilinear pooling (MCB): the baseline "Compact Bilinear
Pooling [22]" of the paper's section 4.3 and Tables 3-5 (Fukui et al., EMNLP
2016, "Multimodal Compact Bilinear Pooling for Visual Question Answering and
Visual Grounding"; the sketch is Gao et al., CVPR 2016, "Compact Bilinear
Pooling", after Pham & Pagh, KDD 2013, "Fast and scalable polynomial kernels
via explicit feature maps").

The bilinear (outer) product x ⊗ y of x in R^n and y in R^m has n*m entries;
MCB approximates it by its count sketch in R^d:

    psi(v; h, s)[k] = sum_{i : h[i] = k} s[i] v[i]          (count sketch)
    MCB(x, y) = psi(x; h1, s1) * psi(y; h2, s2)             (circular convolution)
              = irfft(rfft(psi(x; h1, s1)) . rfft(psi(y; h2, s2)))

with fixed random hashes h1 in {0..d-1}^n, h2 in {0..d-1}^m and signs s1, s2
in {-1, +1}. The defining property (tested numerically): MCB(x, y) is exactly
the count sketch of vec(x ⊗ y) with the combined hash
H(i, j) = (h1[i] + h2[j]) mod d and sign S(i, j) = s1[i] s2[j].

As in Fukui et al. (section 3.1, Figure 2) the result goes through a signed
square root z -> sign(z) sqrt(|z|) and L2 normalization (`normalize=True`).

Choices:
- `output_dim` default 8000: Fukui et al. use d = 16000 for VQA's 3000
  answers; half of it for CrisisMMD's 2-5 classes still sketches the
  1024 x 768 outer product into 4x more dimensions than the 1024 + 768
  inputs. The models read it from `ModelConfig.bilinear_dim`.
- The hashes and signs are drawn once from `seed` (numpy) and stored as
  non-trainable weights, so `.keras` files keep them; `seed=None` draws a seed
  from numpy's global generator (reproducible under
  `keras.utils.set_random_seed`) and records it in the config, so a
  `get_config`/`from_config` round trip rebuilds the same hashes.
- The sketch and the FFTs run in float32 whatever the dtype policy.
"""

import keras
import numpy as np
from keras import ops


def count_sketch_hashes(input_dim, output_dim, seed):
    """Numpy `(h int32 [input_dim] in [0, output_dim), s float32 [input_dim] in {-1, 1})`."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, output_dim, size=(input_dim,)).astype("int32")
    s = (2 * rng.integers(0, 2, size=(input_dim,)) - 1).astype("float32")
    return h, s


def count_sketch(x, h, s, output_dim):
    """psi(x; h, s): `[B, n]` -> `[B, output_dim]`, entry k = sum_{h[i]=k} s[i] x[:, i]."""
    signed = ops.transpose(x * s)  # [n, B]
    sketch = ops.segment_sum(signed, h, num_segments=output_dim)  # [d, B]
    return ops.transpose(sketch)


def circular_convolution(a, b):
    """Circular convolution of real `[B, d]` tensors along the last axis, via the FFT."""
    d = a.shape[-1]
    a_real, a_imag = ops.rfft(a)
    b_real, b_imag = ops.rfft(b)
    real = a_real * b_real - a_imag * b_imag
    imag = a_real * b_imag + a_imag * b_real
    return ops.irfft((real, imag), fft_length=d)


def signed_sqrt_l2(z, epsilon=1e-12):
    """sign(z) sqrt(|z|), then L2 normalization over the last axis (Fukui et al.)."""
    z = ops.sign(z) * ops.sqrt(ops.abs(z) + epsilon)
    return z / ops.sqrt(ops.maximum(ops.sum(z * z, axis=-1, keepdims=True), epsilon))


@keras.saving.register_keras_serializable(package="crisis_keras")
class CompactBilinearPooling(keras.layers.Layer):
    """MCB of two vectors (see the module docstring).

    Args:
        output_dim: d, the sketch size (Fukui et al.: 16000; default 8000).
        normalize: apply signed square root + L2 normalization (Fukui et al.).
        seed: int seed of the hashes h1, s1, h2, s2; None = draw one now (kept
            in the config).

    Call: `[x, y]`, x `[B, n]`, y `[B, m]` (fully known n, m) -> `[B, d]`.
    Weights: non-trainable `hash_1` (int32 [n]), `sign_1` (float32 [n]),
    `hash_2` (int32 [m]), `sign_2` (float32 [m]).
    """

    def __init__(self, output_dim=8000, normalize=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(output_dim, int) or isinstance(output_dim, bool) or output_dim < 1:
            raise ValueError(
                f"CompactBilinearPooling: output_dim must be a positive int, got {output_dim!r}."
            )
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self.output_dim = output_dim
        self.normalize = bool(normalize)
        self.seed = int(seed)

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not all(isinstance(s, (list, tuple)) for s in input_shape)
        ):
            raise ValueError(
                f"CompactBilinearPooling '{self.name}' expects [x, y], got input shape {input_shape}."
            )
        dims = []
        for shape in input_shape:
            if len(shape) != 2 or shape[-1] is None:
                raise ValueError(
                    f"CompactBilinearPooling '{self.name}' expects two [B, dim] inputs with "
                    f"known dims, got {input_shape}."
                )
            dims.append(int(shape[-1]))
        # Independent hashes per modality from one seed (two child streams).
        seeds = np.random.SeedSequence(self.seed).spawn(2)
        for index, (dim, child) in enumerate(zip(dims, seeds), start=1):
            h, s = count_sketch_hashes(dim, self.output_dim, child)
            hash_var = self.add_weight(
                shape=(dim,), dtype="int32", trainable=False, name=f"hash_{index}",
                initializer=lambda shape, dtype=None, value=h: ops.convert_to_tensor(value, "int32"),
            )
            sign_var = self.add_weight(
                shape=(dim,), dtype="float32", trainable=False, name=f"sign_{index}",
                initializer=lambda shape, dtype=None, value=s: ops.convert_to_tensor(value, "float32"),
            )
            setattr(self, f"hash_{index}", hash_var)
            setattr(self, f"sign_{index}", sign_var)

    def sketch(self, x, y):
        """The raw MCB(x, y) `[B, d]` in float32, before normalization."""
        x = ops.cast(x, "float32")
        y = ops.cast(y, "float32")
        psi_x = count_sketch(x, self.hash_1, self.sign_1, self.output_dim)
        psi_y = count_sketch(y, self.hash_2, self.sign_2, self.output_dim)
        return circular_convolution(psi_x, psi_y)

    def call(self, inputs):
        z = self.sketch(inputs[0], inputs[1])
        if self.normalize:
            z = signed_sqrt_l2(z)
        return ops.cast(z, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"output_dim": self.output_dim, "normalize": self.normalize, "seed": self.seed})
        return config
