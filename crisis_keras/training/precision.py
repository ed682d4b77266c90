"""Mixed precision: which dtype policy a run trains with (issue 11, item 4).

`--mixed-precision` takes `off` (float32, the paper's), `bf16` (Keras'
`mixed_bfloat16`: bfloat16 compute, float32 variables) or `auto`: bf16 where
the hardware runs it natively, float32 elsewhere, and the run log says which
and why. Native bf16 means:

- a GPU of compute capability 8.0 or later (Ampere, Ada, Hopper, ...);
- else a CPU with AMX-BF16 or AVX-512-BF16 (Sapphire Rapids, Cooper Lake, Zen 4
  and later; read from /proc/cpuinfo), with TensorFlow's oneDNN kernels on,
  which are what use those instructions.

Elsewhere bf16 is emulated and slower than float32, so `auto` stays off.

Under `mixed_bfloat16` what the paper's loss and metrics read stays float32:
the classifier and its softmax (`models/heads.py`), the head's self-attention
softmax (`layers/self_attention.py`), the SSE transition probabilities
(`layers/sse.py`), the cross-entropy and the accuracy.
"""

import dataclasses
import os
from typing import Callable, Optional

MODES = ("off", "bf16", "auto")
POLICY = "mixed_bfloat16"
_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
_CPUINFO = "/proc/cpuinfo"


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """The policy a run uses and why: `describe()` is its run-log line."""

    mode: str
    bf16: bool
    reason: str

    @property
    def policy(self) -> str:
        return POLICY if self.bf16 else "float32"

    def describe(self) -> str:
        return f"mixed precision {self.mode}: {self.policy} ({self.reason})"


def normalize_mode(value) -> str:
    """`off`/`bf16`/`auto` from a mode or from the bool of older run configs."""
    if isinstance(value, bool):
        return "bf16" if value else "off"
    if value not in MODES:
        raise ValueError(f"mixed_precision must be one of {MODES}, got {value!r}.")
    return value


def cpu_bf16_flags(cpuinfo: str = _CPUINFO) -> tuple:
    """The native-bf16 instruction sets the CPU reports (empty if none or unknown)."""
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return tuple(flag for flag in _CPU_FLAGS if flag in flags)


def onednn_enabled(environ=None) -> bool:
    """False when TF_ENABLE_ONEDNN_OPTS=0 turns TensorFlow's oneDNN kernels off."""
    environ = os.environ if environ is None else environ
    return environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() not in ("0", "false", "False")


def gpu_compute_capabilities() -> list:
    """(major, minor) of every visible GPU, from TensorFlow."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if details.get("compute_capability"):
            capabilities.append(tuple(details["compute_capability"]))
    return capabilities


def choose_precision(mode, *, gpus: Optional[Callable[[], list]] = None,
                     cpu_flags: Optional[Callable[[], tuple]] = None,
                     environ=None) -> PrecisionChoice:
    """The `PrecisionChoice` of `mode`; `gpus`, `cpu_flags` and `environ` stand
    in for the hardware in tests."""
    mode = normalize_mode(mode)
    if mode == "off":
        return PrecisionChoice(mode, False, "float32 throughout, as the paper")
    if mode == "bf16":
        return PrecisionChoice(mode, True, "asked for")
    capabilities = (gpus or gpu_compute_capabilities)()
    if capabilities:
        if min(capabilities) >= (8, 0):
            shown = ", ".join(f"{a}.{b}" for a, b in capabilities)
            return PrecisionChoice(mode, True, f"GPU compute capability {shown} runs bf16 natively")
        return PrecisionChoice(
            mode, False, f"GPU compute capability {min(capabilities)[0]}.{min(capabilities)[1]} "
            "is older than Ampere (8.0): no native bf16")
    flags = (cpu_flags or cpu_bf16_flags)()
    if not flags:
        return PrecisionChoice(mode, False, "this CPU has neither AMX-BF16 nor AVX-512-BF16")
    if not onednn_enabled(environ):
        return PrecisionChoice(
            mode, False, f"the CPU has {', '.join(flags)}, but TF_ENABLE_ONEDNN_OPTS=0 "
            "turns off the oneDNN kernels that use it")
    return PrecisionChoice(mode, True, f"the CPU runs bf16 natively ({', '.join(flags)})")
