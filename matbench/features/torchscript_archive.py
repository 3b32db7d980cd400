"""The tensors of a TorchScript archive, read without TorchScript and without running code from the file.

A TorchScript file is a zip: `<root>/data.pkl` pickles the module tree (each module an object of a `__torch__.*`
class, its attributes in a dict: parameters, buffers, submodules, flags), tensors are persistent ids naming
`<root>/data/<key>` (raw little-endian storage bytes), and `<root>/code/` holds the TorchScript programs, which
this reader never looks at. torch.load(weights_only=True) refuses such a zip and torch.jit.load is deprecated
(torch 2.14), so the pickle is read here with an unpickler that builds only plain containers, tensors and inert
records of the `__torch__` objects: any other global (a function, a class of an installed package) is refused.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from matbench.errors import WeightsError

_STORAGES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
             "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
             "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
             "BoolStorage": torch.bool}


_JIT_LISTS = {n: (lambda data, *_: data) for n in ("build_intlist", "build_doublelist", "build_boollist",
                                                  "build_tensorlist", "build_complexlist", "restore_type_tag")}


class ScriptObject:
    """An inert record of one `__torch__` object of the pickle: its class name and attribute dict."""

    def __init__(self, *args: object) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:  # BUILD: the attribute dict, never code
        self.state = state


class _Dtype:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_: object) -> torch.Tensor:
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.root, self.path = archive, root, path
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):  # a scripted module's class: an inert record, one type per name
            qual = f"{module}.{name}"
            return self.classes.setdefault(qual, type(name, (ScriptObject,), {"qualname": qual}))
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _Dtype(_STORAGES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch.jit._pickle" and name in _JIT_LISTS:  # typed containers: the plain list/value
            return _JIT_LISTS[name]
        raise WeightsError(f"{self.path}: refused: the TorchScript pickle names {module}.{name}, which is not a "
                           "tensor or a scripted module (nothing from the file was run)")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Dtype)):
            raise WeightsError(f"{self.path}: unexpected persistent id {pid!r} in the TorchScript pickle")
        _, kind, key, _location, numel = pid
        raw = bytearray(self.archive.read(f"{self.root}/data/{key}"))
        dtype = kind.dtype
        n = len(raw) // torch.empty((), dtype=dtype).element_size()
        if n < int(numel):
            raise WeightsError(f"{self.path}: storage {key} holds {n} values, the pickle says {numel}")
        return torch.frombuffer(raw, dtype=dtype, count=n) if n else torch.empty(0, dtype=dtype)


def read_module_tree(path: str | Path) -> ScriptObject:
    """The root module record of a TorchScript archive (WeightsError if the file is not one)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if not pkl:
                raise WeightsError(f"{path}: not a TorchScript archive (no <root>/data.pkl in the zip)")
            root = pkl[0].split("/")[0]
            obj = _Unpickler(z.read(pkl[0]), z, root, path).load()
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f"{path}: cannot read as a TorchScript archive ({type(e).__name__}: {e})") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: malformed TorchScript pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, ScriptObject):
        raise WeightsError(f"{path}: the TorchScript pickle holds a {type(obj).__name__}, not a module")
    return obj


def tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the module tree by dotted name (`layers.conv.weight`): the names and values of
    `torch.jit.load(path).state_dict()` for modules whose tensors are parameters and buffers."""
    out: dict[str, torch.Tensor] = {}

    def walk(obj: ScriptObject, prefix: str) -> None:
        state = obj.state if isinstance(obj.state, dict) else {}
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
            elif isinstance(value, ScriptObject):
                walk(value, f"{prefix}{name}.")

    walk(read_module_tree(path), "")
    return out
