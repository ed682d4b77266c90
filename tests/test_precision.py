"""`--mixed-precision auto` (issue 11, item 4): bf16 only where the hardware runs it
natively, said in the run log; the paper's loss and outputs stay float32."""

import json

import keras
import numpy as np
import pytest

from crisis_keras.models import build_model
from crisis_keras.models.config import tiny_config
from crisis_keras.train import build_parser, config_from_args
from crisis_keras.training.config import TrainConfig
from crisis_keras.training.precision import (
    choose_precision, cpu_bf16_flags, normalize_mode, onednn_enabled,
)


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text("".join(f"processor\t: {i}\nflags\t\t: fpu sse2 avx2 {flags}\n\n" for i in range(2)))
    return str(path)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    assert cpu_bf16_flags(_cpuinfo(tmp_path, "avx512f amx_tile amx_bf16 avx512_bf16")) == (
        "amx_bf16", "avx512_bf16")
    assert cpu_bf16_flags(_cpuinfo(tmp_path, "avx512f")) == ()
    assert cpu_bf16_flags(str(tmp_path / "absent")) == ()  # not Linux: no native bf16 known


@pytest.mark.parametrize("gpus,flags,environ,bf16,words", [
    ([(8, 0)], (), {}, True, "compute capability 8.0"),
    ([(9, 0), (8, 6)], (), {}, True, "runs bf16 natively"),
    ([(7, 5)], ("amx_bf16",), {}, False, "older than Ampere"),  # the GPU trains, not the CPU
    ([], ("amx_bf16",), {}, True, "amx_bf16"),
    ([], ("avx512_bf16",), {"TF_ENABLE_ONEDNN_OPTS": "0"}, False, "TF_ENABLE_ONEDNN_OPTS=0"),
    ([], (), {}, False, "neither AMX-BF16 nor AVX-512-BF16"),
])
def test_auto_chooses_bf16_only_where_native(gpus, flags, environ, bf16, words):
    choice = choose_precision("auto", gpus=lambda: gpus, cpu_flags=lambda: flags, environ=environ)
    assert choice.bf16 is bf16
    assert choice.policy == ("mixed_bfloat16" if bf16 else "float32")
    assert words in choice.describe() and choice.describe().startswith("mixed precision auto: ")


def test_off_and_bf16_ignore_the_hardware():
    never = lambda: pytest.fail("off and bf16 must not probe the hardware")  # noqa: E731
    assert not choose_precision("off", gpus=never, cpu_flags=never).bf16
    assert choose_precision("bf16", gpus=never, cpu_flags=never).bf16


def test_modes_and_older_configs():
    assert [normalize_mode(v) for v in (True, False, "auto")] == ["bf16", "off", "auto"]
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        normalize_mode("fp8")
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(task="severity", mixed_precision="half")
    # run folders written when the field was a bool still resume (same config)
    old = TrainConfig(task="severity", mixed_precision=True).to_dict()
    assert old["mixed_precision"] == "bf16"
    assert TrainConfig.from_dict(json.loads(json.dumps(old))) == TrainConfig(
        task="severity", mixed_precision="bf16")
    assert onednn_enabled({}) and not onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "0"})


def test_command_line():
    parse = lambda *a: config_from_args(build_parser().parse_args(["--task", "severity", *a]))  # noqa: E731
    assert parse().mixed_precision == "off"
    assert parse("--mixed-precision").mixed_precision == "bf16"  # the flag alone, as before
    assert parse("--mixed-precision", "auto").mixed_precision == "auto"


def test_loss_inputs_stay_float32_under_bf16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model("sse_cross", 3, tiny_config(seed=0))
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("head_dense").compute_dtype == "bfloat16"
    rng = np.random.default_rng(0)
    x = {"text": np.array(["flood water", "bridge down", "donate"]),
         "image": rng.uniform(0, 255, (3, 64, 64, 3)).astype("float32"),
         "sse_label": np.array([0, 1, 2], "int32")}
    probabilities = model(x, training=False)
    assert probabilities.dtype == "float32"  # the classifier's softmax
    model.compile(keras.optimizers.SGD(1e-3), keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    logs = model.train_on_batch(x, np.array([0, 1, 2]), return_dict=True)
    assert np.isfinite(logs["loss"]) and all(
        v.dtype == "float32" for v in model.metrics_variables)
