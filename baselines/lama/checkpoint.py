"""Safe loading of a released LaMa model folder (`config.yaml` + `models/best.ckpt`).

`best.ckpt` is a PyTorch-Lightning checkpoint (torch zip format). Besides tensors its pickle
references omegaconf classes (the training config as a `DictConfig`) and Lightning's
`ModelCheckpoint` callback class (used as a dict key). We install neither and never execute
code from the file: the pickle is read by a restricted unpickler whose `find_class` returns

- a few harmless builtins/containers and torch's tensor-rebuild function (ALLOWED_GLOBALS);
- inert stand-in classes for the omegaconf / Lightning names (STANDIN_GLOBALS) that only record
  the state the pickle hands them;
- and refuses everything else with a `WeightsError` naming the global, before it is called.

Only `generator.*` tensors are used; evaluator (FID/LPIPS/SSIM), discriminator and loss tensors
are ignored. `config.yaml` is read with `yaml.safe_load`; `${a.b}` interpolations inside the
`generator:` section are resolved here (omegaconf is not needed).
"""

from __future__ import annotations

import _compat_pickle
import collections
import hashlib
import io
import pickle
import types
import typing
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from matbench.errors import WeightsError
from matbench.io import sha256_file
from matbench.models.statecheck import check_state_dict

from .network import BIG_LAMA, FFCResNetGenerator, LamaConfig, config_from_generator_section

GENERATOR_PREFIX = "generator."

# Real objects the pickle may name. Each is a type or a function without side effects.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "bool"): bool,
    ("builtins", "str"): str,
    ("builtins", "complex"): complex,
    ("typing", "Any"): typing.Any,
    ("_codecs", "encode"): __import__("_codecs").encode,  # protocol-2 spelling of bytes objects
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
}

# Foreign classes replaced by inert stand-ins (they only store what the pickle gives them).
STANDIN_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("omegaconf.dictconfig", "DictConfig"),
    ("omegaconf.listconfig", "ListConfig"),
    ("omegaconf.base", "ContainerMetadata"),
    ("omegaconf.base", "Metadata"),
    ("omegaconf.nodes", "AnyNode"),
    ("omegaconf.nodes", "StringNode"),
    ("omegaconf.nodes", "IntegerNode"),
    ("omegaconf.nodes", "FloatNode"),
    ("omegaconf.nodes", "BooleanNode"),
    ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
})


class StandIn:
    """Base of the inert stand-ins: records constructor args and `__setstate__` state, nothing else."""

    _global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = object.__new__(cls)
        object.__setattr__(obj, "_args", args)
        object.__setattr__(obj, "_state", None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE on the class: accept, do nothing
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_state", state)

    def __repr__(self) -> str:
        return f"<stand-in {self._global_name}>"


_STANDIN_CLASSES: dict[tuple[str, str], type[StandIn]] = {}


def _standin(module: str, name: str) -> type[StandIn]:
    key = (module, name)
    if key not in _STANDIN_CLASSES:
        _STANDIN_CLASSES[key] = type(name, (StandIn,), {"_global_name": f"{module}.{name}",
                                                        "__module__": __name__})
    return _STANDIN_CLASSES[key]


class UnsafeCheckpointError(WeightsError):
    """The pickle names a global outside the allowlist; nothing from it was called."""


class RestrictedUnpickler(pickle.Unpickler):
    """`find_class` with an allowlist; protocol-2 names (`__builtin__.dict`) are mapped like pickle does."""

    source = "<checkpoint>"

    def find_class(self, module: str, name: str) -> Any:
        # Our override receives the raw names, so apply Python 2 → 3 renames ourselves.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if (module, name) in STANDIN_GLOBALS:
            return _standin(module, name)
        raise UnsafeCheckpointError(
            f"{self.source}: refusing to load: the pickle references the global {module}.{name}, "
            "which is not on the LaMa checkpoint allowlist (a global outside it could run code when loaded; "
            "nothing from the file was executed)"
        )


def _restricted_pickle_module(source: str) -> types.ModuleType:
    """A stand-in `pickle` module for torch.load(pickle_module=...) whose Unpickler is restricted."""
    mod = types.ModuleType("matbench_restricted_pickle")

    class _Unpickler(RestrictedUnpickler):
        pass

    _Unpickler.source = source
    mod.Unpickler = _Unpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: _Unpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.__name__ = "matbench_restricted_pickle"
    return mod


def safe_torch_load(f: str | Path | io.BytesIO, source: str | None = None) -> Any:
    """torch.load of a zip-format checkpoint through the restricted unpickler, tensors on CPU."""
    source = source or str(f)
    if isinstance(f, (str, Path)):
        if not Path(f).is_file():
            raise WeightsError(f"{f}: LaMa checkpoint does not exist")
        if not zipfile.is_zipfile(f):
            raise WeightsError(f"{f}: not a torch zip-format checkpoint (legacy formats are not supported)")
    try:
        return torch.load(f, map_location="cpu", pickle_module=_restricted_pickle_module(source),
                          weights_only=False)
    except WeightsError:
        raise
    except Exception as e:  # corrupt zip, truncated pickle, ...
        raise WeightsError(f"{source}: cannot read LaMa checkpoint ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------- stand-ins → plain data


def standin_to_plain(obj: Any, _depth: int = 0) -> Any:
    """Turn omegaconf stand-ins (DictConfig/ListConfig/*Node) into dicts/lists/values; others kept."""
    if _depth > 100:
        raise WeightsError("LaMa checkpoint: hyper-parameters nested too deeply")
    if isinstance(obj, StandIn):
        state = obj._state if isinstance(obj._state, dict) else {}
        kind = obj._global_name.rsplit(".", 1)[-1]
        if kind in ("DictConfig", "ListConfig"):
            return standin_to_plain(state.get("_content"), _depth + 1)
        if kind.endswith("Node"):
            return standin_to_plain(state.get("_val"), _depth + 1)
        return obj
    if isinstance(obj, Mapping):
        return {k: standin_to_plain(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [standin_to_plain(v, _depth + 1) for v in obj]
    return obj


# --------------------------------------------------------------------------- config.yaml


def _lookup(root: Any, dotted: str) -> Any:
    cur = root
    for part in dotted.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(dotted)
    return cur


def resolve_interpolations(value: Any, root: Any, _depth: int = 0) -> Any:
    """Resolve `${a.b.c}` references (absolute, like OmegaConf); `${env:...}` and other resolvers are left as text."""
    if _depth > 32:
        raise ValueError("interpolation cycle")
    if isinstance(value, Mapping):
        return {k: resolve_interpolations(v, root, _depth) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_interpolations(v, root, _depth) for v in value]
    if isinstance(value, str) and "${" in value:
        if value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            ref = value[2:-1].strip()
            if ":" in ref:
                return value
            return resolve_interpolations(_lookup(root, ref), root, _depth + 1)
        out, rest = [], value
        while "${" in rest:
            pre, _, after = rest.partition("${")
            ref, _, rest = after.partition("}")
            out.append(pre)
            out.append("${" + ref + "}" if ":" in ref else str(
                resolve_interpolations(_lookup(root, ref.strip()), root, _depth + 1)))
        out.append(rest)
        return "".join(out)
    return value


def config_from_yaml_text(text: str, source: str) -> tuple[LamaConfig, dict[str, Any]]:
    """(generator config, the whole config as plain data) from a LaMa training config.yaml."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise WeightsError(f"{source}: not valid YAML ({e})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("generator"), Mapping):
        raise WeightsError(f"{source}: no 'generator:' section")
    try:
        section = resolve_interpolations(data["generator"], data)
    except (KeyError, ValueError) as e:
        raise WeightsError(f"{source}: cannot resolve an interpolation in 'generator:' ({e})") from None
    try:
        return config_from_generator_section(section), dict(data)
    except ValueError as e:
        raise WeightsError(f"{source}: {e}") from None


# --------------------------------------------------------------------------- the model folder


@dataclass
class LamaCheckpoint:
    """What was read from a LaMa model folder / zip / .ckpt."""

    config: LamaConfig
    generator_state: dict[str, torch.Tensor]  # without the "generator." prefix
    ignored_keys: list[str] = field(default_factory=list)  # state_dict keys outside generator.*
    meta: dict[str, Any] = field(default_factory=dict)  # epoch, global_step, Lightning version
    hyper_parameters: Any = None  # the training config pickled in the checkpoint, as plain data
    source: str = ""
    config_source: str = ""  # config.yaml path, or "default (Big LaMa)"
    sha256: str | None = None  # of the checkpoint file's bytes (best.ckpt)


def parse_checkpoint(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], list[str], dict[str, Any], Any]:
    """Split a loaded checkpoint into (generator tensors, ignored keys, meta, hyper-parameters)."""
    meta: dict[str, Any] = {}
    hparams = None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        sd = obj["state_dict"]
        for k in ("epoch", "global_step", "pytorch-lightning_version"):
            if k in obj:
                meta[k] = obj[k]
        hparams = standin_to_plain(obj.get("hyper_parameters"))
    elif isinstance(obj, Mapping):
        sd = obj  # a bare state dict
    else:
        raise WeightsError(f"{source}: expected a Lightning checkpoint dict or a state dict, got {type(obj).__name__}")
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{source}: 'state_dict' is a {type(sd).__name__}, not a mapping")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{source}: state_dict entries that are not named tensors: {_short_list(map(str, bad))}")
    gen = {k[len(GENERATOR_PREFIX):]: v for k, v in sd.items() if k.startswith(GENERATOR_PREFIX)}
    ignored = [k for k in sd if not k.startswith(GENERATOR_PREFIX)]
    if not gen and sd and all(k.startswith("model.") for k in sd):
        gen, ignored = dict(sd), []  # a plain generator state_dict without prefix
    if not gen:
        prefixes = sorted({k.split(".", 1)[0] + "." for k in sd})
        raise WeightsError(f"{source}: no '{GENERATOR_PREFIX}*' tensors in the checkpoint; "
                           f"top-level prefixes found: {', '.join(prefixes) or '(none)'}")
    return gen, ignored, meta, hparams


def _find_folder(path: Path) -> Path | None:
    for cand in (path, path / "big-lama"):
        if (cand / "models" / "best.ckpt").is_file():
            return cand
    return None


def load_lama(path: str | Path) -> LamaCheckpoint:
    """Read a LaMa model: a folder (config.yaml + models/best.ckpt, or its parent), big-lama.zip, or a .ckpt."""
    path = Path(path)
    if path.is_dir():
        folder = _find_folder(path)
        if folder is None:
            raise WeightsError(f"{path}: not a LaMa model folder (expected config.yaml and models/best.ckpt, "
                               "e.g. the unpacked big-lama.zip)")
        ckpt_path = folder / "models" / "best.ckpt"
        cfg_path = folder / "config.yaml"
        cfg_text = cfg_path.read_text() if cfg_path.is_file() else None
        return _assemble(safe_torch_load(ckpt_path), str(ckpt_path), cfg_text, str(cfg_path), sha256_file(ckpt_path))
    if path.is_file() and path.suffix == ".zip":
        return _load_zip(path)
    if path.is_file():
        cfg_path = path.parent.parent / "config.yaml"
        cfg_text = cfg_path.read_text() if cfg_path.is_file() else None
        return _assemble(safe_torch_load(path), str(path), cfg_text, str(cfg_path), sha256_file(path))
    raise WeightsError(f"{path}: LaMa weights not found (give the big-lama folder, big-lama.zip or best.ckpt)")


def _load_zip(path: Path) -> LamaCheckpoint:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise WeightsError(f"{path}: not a valid zip ({e})") from None
    with zf:
        names = zf.namelist()
        ckpts = [n for n in names if n.endswith("models/best.ckpt")]
        if not ckpts:
            raise WeightsError(f"{path}: no */models/best.ckpt inside the zip")
        ckpt = min(ckpts, key=len)
        base = ckpt[: -len("models/best.ckpt")]
        cfg_name = base + "config.yaml"
        cfg_text = zf.read(cfg_name).decode("utf-8") if cfg_name in names else None
        data = zf.read(ckpt)
    digest = hashlib.sha256(data).hexdigest()
    buf = io.BytesIO(data)  # torch needs a seekable stream
    return _assemble(safe_torch_load(buf, source=f"{path}:{ckpt}"), f"{path}:{ckpt}", cfg_text, f"{path}:{cfg_name}",
                     digest)


def _assemble(obj: Any, source: str, cfg_text: str | None, cfg_source: str, sha256: str | None = None
              ) -> LamaCheckpoint:
    gen, ignored, meta, hparams = parse_checkpoint(obj, source)
    if cfg_text is not None:
        cfg, _ = config_from_yaml_text(cfg_text, cfg_source)
    elif isinstance(hparams, Mapping) and isinstance(hparams.get("generator"), Mapping):
        # no config.yaml beside the file: the training config pickled in the checkpoint says the same
        cfg_source = f"{source} (hyper_parameters)"
        try:
            cfg = config_from_generator_section(resolve_interpolations(hparams["generator"], hparams))
        except (KeyError, ValueError) as e:
            raise WeightsError(f"{cfg_source}: unusable generator config ({e})") from None
    else:
        cfg, cfg_source = BIG_LAMA, "default (Big LaMa)"
    return LamaCheckpoint(config=cfg, generator_state=gen, ignored_keys=ignored, meta=meta,
                          hyper_parameters=hparams, source=source, config_source=cfg_source, sha256=sha256)


# --------------------------------------------------------------------------- strict loading


def _short_list(items: Any, n: int = 8) -> str:
    items = list(items)
    head = ", ".join(items[:n])
    return head + (f", … ({len(items)} in all)" if len(items) > n else "")


def load_generator_state(model: FFCResNetGenerator, state: Mapping[str, torch.Tensor], source: str = "") -> None:
    """Strict load; on mismatch a WeightsError lists missing, unexpected and shape-mismatched keys."""
    expected = model.state_dict()
    check_state_dict(state, expected, f"the LaMa generator ({model.config.n_blocks} blocks, ngf {model.config.ngf})",
                     source or "LaMa weights")
    # `assign` takes the tensors as they are (the model may live on the meta device); keep its dtypes.
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in expected.items()}, strict=True, assign=True)


def build_generator(ckpt: LamaCheckpoint) -> FFCResNetGenerator:
    """The generator of a loaded checkpoint, weights in, eval mode (built on 'meta': no wasted random init)."""
    with torch.device("meta"):
        model = FFCResNetGenerator(ckpt.config)
    load_generator_state(model, ckpt.generator_state, ckpt.source)
    return model.eval()
