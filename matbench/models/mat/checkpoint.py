"""Load MAT checkpoints safely: released `.pkl` snapshots, plain `.pth` state dicts, `.safetensors`.

The released `.pkl` files are pickles written through NVIDIA's `torch_utils.persistence`: every network object
is stored as `_reconstruct_persistent_obj(meta)` where `meta` carries the full source text of the class's module
(`module_src`), which the official loader executes. We never do. A restricted unpickler resolves exactly the
globals these files need (ALLOWED_GLOBALS) to inert stand-ins:

- persistent objects become `PersistentObject(class_name, state)` (module_src is ignored, never executed);
- torch.nn container/activation classes become stub classes that only hold their `__dict__`;
- tensors are rebuilt from raw storage bytes; each storage is a nested legacy `torch.save` stream
  (`torch.storage._load_from_bytes`), itself parsed by a second restricted unpickler that allows only storage types.

Any other global (os.system, builtins.eval, subprocess.*, importlib.*, ...) stops loading with an
UnsafeCheckpointError that names it; nothing from the file runs. The generator's tensors (`G_ema`) are then
checked name by name and shape by shape against our generator.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matbench.errors import WeightsError
from matbench.io import atomic_path, sha256_file
from matbench.models.mat.network import build_generator
from matbench.models.statecheck import RefusedPickleError, check_state_dict, torch_load_error

# --------------------------------------------------------------------------- inert stand-ins


class UnsafeCheckpointError(WeightsError):
    """The file references a global outside the allowlist, or uses an allowed one in a way real files never do."""


class PersistentObject:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` would have built, as plain data."""

    def __init__(self, class_name: str, state: dict, module_src_sha256: str | None = None) -> None:
        self.class_name = class_name
        self.state = state
        self.module_src_sha256 = module_src_sha256

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"


class StubModule:
    """Stand-in for an allowed torch.nn class: created by NEWOBJ + BUILD, holds only its state dict."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Real files create modules with NEWOBJ (cls.__new__) only; calling the class (REDUCE) is not legitimate.
        raise UnsafeCheckpointError(f"checkpoint calls {self.qualname}(...) via REDUCE; refused")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafeCheckpointError(f"unexpected state for {self.qualname}: {type(state).__name__}")
        self.__dict__.update(state)


def _stub(qualname: str) -> type:
    return type(qualname.rsplit(".", 1)[-1], (StubModule,), {"qualname": qualname})


class EasyDictStub(dict):
    """dnnlib.util.EasyDict as a plain dict."""

    def __setstate__(self, state: Any) -> None:  # EasyDict pickles an (empty) instance __dict__
        if state:
            raise UnsafeCheckpointError("dnnlib.util.EasyDict with instance attributes; refused")


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafeCheckpointError("torch_utils.persistence._reconstruct_persistent_obj with unexpected metadata")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"persistent object {meta['class_name']} has no state dict")
    src = meta.get("module_src")
    digest = hashlib.sha256(src.encode("utf-8")).hexdigest() if isinstance(src, str) else None
    return PersistentObject(meta["class_name"], state, digest)


_SAFE_DTYPE_KINDS = set("biufc?")  # numbers and bools only: never object dtype


def _np_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if not isinstance(spec, str):
        raise UnsafeCheckpointError(f"numpy.dtype({spec!r}) refused")
    dt = np.dtype(spec)
    if dt.kind not in _SAFE_DTYPE_KINDS:
        raise UnsafeCheckpointError(f"numpy.dtype({spec!r}) refused (kind {dt.kind!r})")
    return np.dtype(spec, bool(align), bool(copy))


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _SAFE_DTYPE_KINDS or not isinstance(data, bytes):
        raise UnsafeCheckpointError("numpy.core.multiarray.scalar with a non-numeric dtype or payload; refused")
    if len(data) != dtype.itemsize:
        raise UnsafeCheckpointError("numpy.core.multiarray.scalar payload has the wrong size")
    return np.frombuffer(data, dtype=dtype)[0].copy()


class _Storage:
    """Raw typed storage read from a nested payload: a flat 1-D tensor."""

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat


def _rebuild_tensor_v2(storage: Any, storage_offset: int, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError("torch._utils._rebuild_tensor_v2 without a storage; refused")
    if backward_hooks:
        raise UnsafeCheckpointError("torch._utils._rebuild_tensor_v2 with backward hooks; refused")
    if not all(isinstance(v, int) for v in (storage_offset, *size, *stride)):
        raise UnsafeCheckpointError("torch._utils._rebuild_tensor_v2 with non-integer geometry; refused")
    flat = storage.flat
    if len(size) == 0:
        return flat[storage_offset].clone()
    extent = storage_offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) + 1
    if min(size) > 0 and extent > flat.numel():
        raise UnsafeCheckpointError("torch._utils._rebuild_tensor_v2 reaches past its storage; refused")
    return torch.as_strided(flat, tuple(size), tuple(stride), storage_offset).clone()


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor) or backward_hooks:
        raise UnsafeCheckpointError("torch._utils._rebuild_parameter with unexpected arguments; refused")
    return data


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _load_from_bytes(payload: Any) -> _Storage:
    if not isinstance(payload, bytes):
        raise UnsafeCheckpointError("torch.storage._load_from_bytes without bytes; refused")
    return read_storage_payload(payload)


_TORCH_NN = "torch.nn.modules."
_STUB_CLASSES = (
    "activation.GELU", "activation.Softmax", "activation.LeakyReLU", "container.ModuleList",
    "container.Sequential", "normalization.LayerNorm", "pooling.AdaptiveAvgPool2d", "dropout.Dropout",
    "linear.Identity",
)

# Exactly the globals the released snapshots need (fixture + full training snapshot + older spellings).
ALLOWED_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "__builtin__.set": set,
    "numpy._core.multiarray.scalar": _np_scalar,
    "numpy.core.multiarray.scalar": _np_scalar,
    "numpy.dtype": _np_dtype,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch.storage._load_from_bytes": _load_from_bytes,
    "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
    "dnnlib.util.EasyDict": EasyDictStub,
    **{_TORCH_NN + n: _stub(_TORCH_NN + n) for n in _STUB_CLASSES},
}
# Inside the nested storage payloads only storage types may appear.
ALLOWED_PAYLOAD_GLOBALS: dict[str, Any] = {f"torch.{n}": _StorageType(n) for n in _STORAGE_DTYPES}


class _RestrictedUnpickler(pickle.Unpickler):
    allowed: dict[str, Any] = ALLOWED_GLOBALS
    where = "checkpoint"

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key not in self.allowed:
            raise UnsafeCheckpointError(f"{self.where} references global {key!r}, which is not allowed; refused "
                                        "(nothing from the file was executed)")
        return self.allowed[key]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(f"{self.where} uses persistent id {pid!r}; refused")


class _PayloadUnpickler(_RestrictedUnpickler):
    allowed = ALLOWED_PAYLOAD_GLOBALS
    where = "nested tensor payload"

    def __init__(self, f: Any, storages: dict[str, tuple[torch.dtype, int]]) -> None:
        super().__init__(f)
        self.storages = storages

    def persistent_load(self, pid: Any) -> Any:
        if (not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage" or not isinstance(pid[1], _StorageType)
                or not isinstance(pid[2], str) or not isinstance(pid[4], int) or pid[5] is not None):
            raise UnsafeCheckpointError(f"nested tensor payload uses persistent id {pid!r}; refused")
        self.storages[pid[2]] = (pid[1].dtype, pid[4])
        return ("storage-ref", pid[2])


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def read_storage_payload(payload: bytes) -> _Storage:
    """Parse one `torch.storage._load_from_bytes` payload (legacy torch.save stream) without running anything."""
    if payload[:2] == b"PK":  # newer zip format: torch's own safe loader
        obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        if isinstance(obj, torch.TypedStorage):
            return _Storage(torch.tensor([], dtype=obj.dtype).set_(obj.untyped()).clone())
        raise UnsafeCheckpointError("nested zip payload does not hold a storage")
    f = io.BytesIO(payload)
    storages: dict[str, tuple[torch.dtype, int]] = {}

    def load() -> Any:
        return _PayloadUnpickler(f, storages).load()

    if load() != _LEGACY_MAGIC:
        raise UnsafeCheckpointError("nested tensor payload: bad magic number")
    if load() != 1001:
        raise UnsafeCheckpointError("nested tensor payload: unsupported protocol version")
    sys_info = load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise UnsafeCheckpointError("nested tensor payload: unsupported sys_info")
    root = load()
    keys = load()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise UnsafeCheckpointError("nested tensor payload: storage keys do not match")
    data: dict[str, torch.Tensor] = {}
    for key in keys:
        dtype, numel = storages[key]
        (n,) = struct.unpack("<q", f.read(8))
        if n != numel or n < 0:
            raise UnsafeCheckpointError("nested tensor payload: storage size mismatch")
        itemsize = torch.empty(0, dtype=dtype).element_size()
        raw = f.read(n * itemsize)
        if len(raw) != n * itemsize:
            raise UnsafeCheckpointError("nested tensor payload: truncated storage data")
        data[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if n else torch.empty(0, dtype=dtype)
    if not (isinstance(root, tuple) and root[:1] == ("storage-ref",)):
        raise UnsafeCheckpointError("nested tensor payload does not hold a single storage")
    return _Storage(data[root[1]])


def safe_unpickle(data: bytes) -> Any:
    """Unpickle a MAT/StyleGAN2-ADA snapshot with the allowlist; persistent objects become PersistentObject."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error, AttributeError) as e:
        raise WeightsError(f"checkpoint is not a readable snapshot pickle: {type(e).__name__}: {e}") from None


# --------------------------------------------------------------------------- module state -> flat tensors


def _module_state(obj: Any) -> dict | None:
    if isinstance(obj, PersistentObject):
        return obj.state
    if isinstance(obj, StubModule):
        return obj.__dict__
    return None


def flatten_module(obj: Any, prefix: str = "", attrs: bool = False) -> dict[str, torch.Tensor]:
    """state_dict()-style tensors of a reconstructed module (params, then persistent buffers, then children).

    With attrs=True also plain tensor attributes (e.g. Conv2dLayerPartial.weight_maskUpdater) as 'attr:<path>'.
    """
    out: dict[str, torch.Tensor] = {}
    extra: dict[str, torch.Tensor] = {}

    def walk(o: Any, pre: str) -> None:
        st = _module_state(o)
        if st is None:
            raise WeightsError(f"checkpoint: {pre or 'root'} is not a module ({type(o).__name__})")
        nonpersistent = st.get("_non_persistent_buffers_set") or set()
        for name, t in (st.get("_parameters") or {}).items():
            if t is not None:
                out[pre + name] = t
        for name, t in (st.get("_buffers") or {}).items():
            if t is not None and name not in nonpersistent:
                out[pre + name] = t
        if attrs:
            for name, v in st.items():
                if isinstance(v, torch.Tensor):
                    extra["attr:" + pre + name] = v
        for name, child in (st.get("_modules") or {}).items():
            if child is not None:
                walk(child, pre + name + ".")

    walk(obj, prefix)
    out.update(extra)
    return out


_CODE_KEY = "__carried_code__"


def read_snapshot(path: str | Path, attrs: bool = False, keep_code: bool = False) -> dict[str, Any]:
    """Every entry of a snapshot pickle; network entries flattened to {name: tensor}, others as plain data.

    keep_code=True adds the names of classes whose source code the file carries under `_CODE_KEY`.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read checkpoint ({e.strerror})") from None
    try:
        snap = safe_unpickle(data)
    except WeightsError as e:
        raise type(e)(f"{path}: {e}") from None
    if not isinstance(snap, dict):
        raise WeightsError(f"{path}: snapshot is a {type(snap).__name__}, expected a dict with 'G_ema'")
    out: dict[str, Any] = {}
    code: list[str] = []
    for k, v in snap.items():
        _carried_code(v, code)
        out[k] = flatten_module(v, attrs=attrs) if _module_state(v) is not None else v
    if keep_code:
        out[_CODE_KEY] = code
    return out


# --------------------------------------------------------------------------- generator state


def infer_config(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(resolution, mapping_layers) of a MAT generator state dict."""
    n_map = sum(1 for k in state if k.startswith("mapping.fc") and k.endswith(".weight"))
    res = 512 if "synthesis.dec.Dec_512x512.toRGB.bias" in state else 256
    return res, n_map


def check_state(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], source: str) -> None:
    """Raise WeightsError listing missing, unexpected and shape-mismatched tensor names."""
    check_state_dict(state, reference, "this MAT generator", source)


def _plain_state(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("G_ema", "state_dict", "generator"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"{source}: expected a state dict of named tensors")
    return dict(obj)


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Generator tensors from a `.pkl` snapshot (G_ema), a `.pth`/`.pt` state dict or a `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    if suffix in (".pth", ".pt", ".bin") or zipfile.is_zipfile(path):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch's refusal text advises the unsafe loader: reworded, never passed on
            err = torch_load_error(path, e, "MAT state dict")
            raise (UnsafeCheckpointError(str(err)) if isinstance(err, RefusedPickleError) else err) from None
        return _plain_state(obj, str(path))
    snap, code = _read_snapshot_and_code(path)
    if "G_ema" not in snap:
        if code:
            raise _code_refusal(path, code, "and no generator ('G_ema')")
        raise WeightsError(f"{path}: snapshot has no 'G_ema' (keys: {', '.join(map(str, snap))})")
    g = snap["G_ema"]
    if not isinstance(g, dict):
        raise WeightsError(f"{path}: 'G_ema' is not a network")
    if code and not any(isinstance(k, str) and k.startswith(("mapping.", "synthesis.")) for k in g):
        # The file's payload is its code, not weights: say so rather than list hundreds of missing tensors.
        raise _code_refusal(path, code, f"and no generator weights ({len(g)} tensors in 'G_ema')")
    return {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in g.items()}


def _read_snapshot_and_code(path: Path) -> tuple[dict[str, Any], list[str]]:
    """read_snapshot plus the classes whose Python source (module_src) the file carries."""
    snap = read_snapshot(path, keep_code=True)
    return snap, snap.pop(_CODE_KEY, [])


def _code_refusal(path: Path, code: list[str], what: str) -> UnsafeCheckpointError:
    classes = ", ".join(sorted(set(code))[:4]) + (" …" if len(set(code)) > 4 else "")
    return UnsafeCheckpointError(
        f"{path}: refused: this StyleGAN-persistence pickle carries Python source code (module_src for {classes}) "
        f"{what}; the official loader would execute that code, matbench never does (nothing from the file was "
        "executed). It is not a MAT checkpoint: do not open it with the official code")


def _carried_code(obj: Any, out: list[str], depth: int = 0) -> list[str]:
    """Class names of persistent objects (recursively, through their sub-modules) that carry module_src."""
    if depth > 200:
        return out
    if isinstance(obj, PersistentObject):
        if obj.module_src_sha256 is not None:
            out.append(obj.class_name)
    st = _module_state(obj)
    if st is not None:
        for child in (st.get("_modules") or {}).values():
            _carried_code(child, out, depth + 1)
    return out


def load_generator(path: str | Path, resolution: int | None = None, mapping_layers: int | None = None,
                   build: Callable[..., torch.nn.Module] | None = None) -> torch.nn.Module:
    """Build our generator matching the checkpoint and load its tensors, checking every name and shape."""

    state = load_state(path)
    res, n_map = infer_config(state)
    res = resolution or res
    n_map = mapping_layers or n_map or 8
    # Build on the meta device (no init cost), then adopt the checked tensors from the file.
    with torch.device("meta"):
        G = (build or build_generator)(res, n_map)
    ref = G.state_dict()
    check_state(state, ref, str(path))
    G.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()}, strict=True, assign=True)
    return G.eval().requires_grad_(False)


def convert_to_safetensors(src: Path, dst: Path) -> Path:
    """Write the generator tensors of `src` (.pkl / .pth / .safetensors) to `dst` as safetensors, validated."""
    from safetensors.torch import save_file


    src, dst = Path(src), Path(dst)
    state = load_state(src)
    res, n_map = infer_config(state)
    with torch.device("meta"):
        ref = build_generator(res, n_map).state_dict()
    check_state(state, ref, str(src))
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    meta = {"format": "matbench-mat-generator", "resolution": str(res), "mapping_layers": str(n_map),
            "source": src.name, "source_sha256": sha256_file(src)}
    with atomic_path(dst) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return dst
