"""Read PyTorch / safetensors / npz state dicts as numpy arrays, without torch.

`read_state_dict(path)` returns `{name: np.ndarray}` for:
- a torch checkpoint (`torch.save`), zip format (torch >= 1.6: `<dir>/data.pkl`
  plus raw storages `<dir>/data/<key>`) or legacy format (a sequence of pickles
  followed by the raw storages);
- a `.safetensors` file;
- a `.npz` archive.

The pickle is read by a restricted `pickle.Unpickler`: only the few globals a
state dict needs (`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`, ...,
`collections.OrderedDict`) are resolved, anything else is refused, so a
checkpoint cannot run code. Tensors are rebuilt from their storage with the
stored offset, size and stride (channels-last checkpoints come out right).
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

try:  # bfloat16 storages (ml_dtypes ships with TensorFlow / JAX).
    import ml_dtypes

    _BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    _BFLOAT16 = None

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> numpy dtype.
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("bool"),
}
if _BFLOAT16 is not None:
    _STORAGE_DTYPES["BFloat16Storage"] = _BFLOAT16

# torch dtype names (torch.float32, ...), pickled by newer torch for UntypedStorage.
_TORCH_DTYPES = {
    "float64": "DoubleStorage", "double": "DoubleStorage",
    "float32": "FloatStorage", "float": "FloatStorage",
    "float16": "HalfStorage", "half": "HalfStorage",
    "bfloat16": "BFloat16Storage",
    "int64": "LongStorage", "long": "LongStorage",
    "int32": "IntStorage", "int": "IntStorage",
    "int16": "ShortStorage", "short": "ShortStorage",
    "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
}


class CheckpointError(ValueError):
    """A weights file that cannot be read (message names the file)."""


class _StorageType:
    """Stand-in for `torch.FloatStorage` & co.: carries the numpy dtype."""

    def __init__(self, name):
        if name not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported torch storage type torch.{name}")
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __repr__(self):
        return f"torch.{self.name}"


class _TorchDtype:
    """Stand-in for a pickled `torch.float32` (`torch.<dtype>` global)."""

    def __init__(self, name):
        self.storage_type = _StorageType(_TORCH_DTYPES[name])


class _StorageRef:
    """A storage named in the pickle; `data` (1-D numpy, dtype-typed) is filled later."""

    def __init__(self, key, dtype, numel):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data = None


class _LazyTensor:
    """A tensor view on a storage, materialized once the storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def materialize(self):
        data = self.storage.data
        if data is None:
            raise pickle.UnpicklingError(f"storage {self.storage.key!r} was never read")
        if not self.size:
            return np.array(data[self.offset], dtype=data.dtype)
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, dtype=data.dtype)
        # Last element reached by the view must lie inside the storage.
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or last >= data.size or min(self.stride) < 0:
            raise pickle.UnpicklingError(
                f"tensor view (offset {self.offset}, size {self.size}, stride "
                f"{self.stride}) out of storage {self.storage.key!r} of {data.size} elements"
            )
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return data


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.nn.parameter", "Parameter"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "tuple"): tuple,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("torch", "Size"): tuple,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only state-dict globals; storages come back as `_StorageRef`."""

    def __init__(self, file, load_storage):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name.endswith("Storage") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in _TORCH_DTYPES:
            return _TorchDtype(name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name} (not part of a plain state dict)"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if isinstance(storage_type, _TorchDtype):
            storage_type = storage_type.storage_type
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        numel = pid[4] if len(pid) > 4 else None
        ref = self._storages.get(key)
        if ref is None:
            ref = _StorageRef(key, storage_type.dtype, numel)
            self._storages[key] = ref
            self._load_storage(ref)
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # legacy storage views: (view_key, offset, view_size)
            raise pickle.UnpicklingError("legacy storage views are not supported")
        return ref


def _materialize(obj):
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _state_dict_of(obj, path):
    """The tensor dict inside a loaded checkpoint (plain or under 'state_dict'/'model')."""
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
        if tensors:
            return {str(k): v for k, v in tensors.items()}
        for key in ("state_dict", "model_state_dict", "model", "module"):
            if isinstance(obj.get(key), dict):
                return _state_dict_of(obj[key], path)
    raise CheckpointError(f"{path}: no tensor state dict found in the checkpoint.")


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise CheckpointError(f"{path}: zip file without <dir>/data.pkl: not a torch checkpoint.")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode().strip()

        def load_storage(ref):
            raw = zf.read(f"{prefix}data/{ref.key}")
            dtype = ref.dtype if byteorder == "little" else ref.dtype.newbyteorder(">")
            ref.data = np.frombuffer(raw, dtype=dtype)

        with zf.open(pkl[0]) as f:
            obj = _RestrictedUnpickler(io.BytesIO(f.read()), load_storage).load()
    return _materialize(obj)


def _read_torch_legacy(path):
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != _LEGACY_MAGIC:
            raise CheckpointError(f"{path}: not a torch checkpoint (bad magic number).")
        protocol = pickle.load(f)
        if protocol != 1001:
            raise CheckpointError(f"{path}: unsupported torch legacy protocol {protocol}.")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise CheckpointError(f"{path}: big-endian torch checkpoints are not supported.")
        refs = {}
        unpickler = _RestrictedUnpickler(f, lambda ref: refs.__setitem__(ref.key, ref))
        obj = unpickler.load()
        keys = pickle.load(f)  # storage keys, in the order their data follows
        for key in keys:
            ref = refs.get(str(key))
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * (ref.dtype.itemsize if ref is not None else 1)
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise CheckpointError(f"{path}: truncated storage {key!r}.")
            if ref is not None:
                ref.data = np.frombuffer(raw, dtype=ref.dtype)
    return _materialize(obj)


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError as err:  # pragma: no cover
        raise CheckpointError(
            f"{path}: reading .safetensors needs the `safetensors` package (pip install safetensors)."
        ) from err
    return dict(load_file(path))


def _read_npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: np.asarray(data[k]) for k in data.files}


def read_state_dict(path):
    """`path` (.pth/.pt/.bin torch checkpoint, .safetensors, .npz) -> {name: np.ndarray}.

    Raises `FileNotFoundError` or `CheckpointError` (a `ValueError`), both naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path!r}")
    lower = path.lower()
    try:
        if lower.endswith(".safetensors"):
            return _read_safetensors(path)
        if lower.endswith(".npz"):
            return _read_npz(path)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                is_torch = any(n.endswith("data.pkl") for n in zf.namelist())
            if not is_torch:
                return _read_npz(path)  # an .npz under another name
            return _state_dict_of(_read_torch_zip(path), path)
        return _state_dict_of(_read_torch_legacy(path), path)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - any parse failure names the file
        raise CheckpointError(f"{path}: cannot read weights: {err}") from err
