"""Safe MAT checkpoint loading: the official-format fixture loads to the expected tensors; a release-format
snapshot of a full generator round-trips through load_generator / safetensors conversion; malicious pickles are
refused with nothing executed."""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from safetensors import safe_open

from matbench.errors import WeightsError
from matbench.models.mat.checkpoint import (
    ALLOWED_GLOBALS,
    PersistentObject,
    UnsafeCheckpointError,
    check_state,
    convert_to_safetensors,
    load_generator,
    load_state,
    read_snapshot,
    safe_unpickle,
)
from matbench.models.mat.inpainter import smoke_generator


def test_fixture_loads_to_expected_state(golden):
    fmt = golden / "mat" / "checkpoint_format"
    snap = read_snapshot(fmt / "snapshot_small.pkl", attrs=True)
    assert list(snap) == ["training_set_kwargs", "val_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    expected = np.load(fmt / "expected_state.npz")
    got = {f"{net}/{k}": v for net in ("G", "D", "G_ema", "augment_pipe") for k, v in snap[net].items()}
    assert set(got) == set(expected.files)
    for k in expected.files:
        assert got[k].dtype == torch.float32, k
        assert np.array_equal(got[k].numpy(), expected[k]), k
    assert snap["training_set_kwargs"]["resolution"] == 512


def test_allowlist_is_exactly_the_documented_globals(golden):
    import json

    meta = json.loads((golden / "mat" / "checkpoint_format" / "expected_meta.json").read_text())
    needed = set(meta["real_format_snapshot_globals_this_env"]) | set(meta["globals_top_level"])
    assert needed <= set(ALLOWED_GLOBALS)
    extra = set(ALLOWED_GLOBALS) - needed
    # older spellings of the same globals, and a few torch.nn classes that only hold state
    assert {"numpy.core.multiarray.scalar", "builtins.set", "__builtin__.set"} <= extra
    assert all(k.startswith("torch.nn.modules.") or k in {"numpy.core.multiarray.scalar", "builtins.set",
                                                         "__builtin__.set"} for k in extra)


# --------------------------------------------------------------------------- release-format snapshot


def _reconstruct_persistent_obj(meta):  # pickled by reference only; never called by our loader
    raise AssertionError("must not be called")


def write_release_like(path, G: torch.nn.Module, monkeypatch) -> None:
    """Pickle G the way torch_utils.persistence does: our classes as _reconstruct_persistent_obj(meta)."""
    pkg = types.ModuleType("torch_utils")
    mod = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)

    class PersistencePickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, torch.nn.Module) and type(obj).__module__.startswith("matbench."):
                # the official modules hold plain values where the port groups options in frozen dataclasses
                # (ConvOptions, Noise, ...): a release file never names a matbench class
                state = {k: v for k, v in obj.__dict__.items()
                         if not (dataclasses.is_dataclass(v) and type(v).__module__.startswith("matbench."))}
                meta = {"type": "class", "version": 6, "module_src": "# source omitted",
                        "class_name": type(obj).__name__, "state": state}
                return _reconstruct_persistent_obj, (meta,)
            return NotImplemented

    snapshot = {"training_set_kwargs": {"resolution": 256}, "val_set_kwargs": {}, "G": None, "D": None,
                "G_ema": G, "augment_pipe": None}
    with open(path, "wb") as f:
        PersistencePickler(f, protocol=4).dump(snapshot)


@pytest.fixture(scope="module")
def release_pkl(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        G = smoke_generator(256)
        path = tmp_path_factory.mktemp("ckpt") / "CelebA-HQ_256.pkl"
        write_release_like(path, G, mp)
    finally:
        mp.undo()
    return path, G


def test_release_snapshot_loads_into_generator(release_pkl, tmp_path):
    path, G = release_pkl
    G2 = load_generator(path)
    assert G2.img_resolution == 256 and G2.mapping.num_layers == 8
    ref = G.state_dict()
    got = G2.state_dict()
    assert list(got) == list(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)

    # safe copy: .safetensors with the same tensors and provenance metadata
    dst = convert_to_safetensors(path, tmp_path / "mat256.safetensors")
    st = load_state(dst)
    assert set(st) == set(ref) and all(torch.equal(st[k], ref[k]) for k in ref)
    with safe_open(str(dst), "pt") as f:
        meta = f.metadata()
    assert meta["resolution"] == "256" and meta["mapping_layers"] == "8" and meta["source"] == path.name

    # plain .pth state dict via torch.load(weights_only=True)
    pth = tmp_path / "mat256.pth"
    torch.save(ref, pth)
    loaded = load_state(pth)
    assert set(loaded) == set(ref) and all(torch.equal(loaded[k], ref[k]) for k in ref)


def test_check_state_lists_missing_unexpected_mismatched():
    ref = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(4), "c": torch.zeros(1)}
    bad = {"a.weight": torch.zeros(3, 2), "c": torch.zeros(1), "zzz": torch.zeros(1)}
    with pytest.raises(WeightsError) as e:
        check_state(bad, ref, "x.pkl")
    msg = str(e.value)
    assert "x.pkl" in msg and "1 missing keys: b.bias" in msg and "1 unexpected keys: zzz" in msg
    assert "a.weight (3, 2) != (2, 3)" in msg


def test_wrong_network_is_refused(tmp_path):
    p = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, p)
    with pytest.raises(WeightsError, match="missing"):
        load_generator(p)


# --------------------------------------------------------------------------- malicious files


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _proto4_global(module: str, name: str, tail: bytes = b".") -> bytes:
    def s(t: str) -> bytes:
        b = t.encode()
        return b"\x8c" + bytes([len(b)]) + b
    return b"\x80\x04" + s(module) + s(name) + b"\x93" + tail


def _malicious(sentinel) -> dict[str, tuple[bytes, str]]:
    cmd = f"touch {sentinel}"
    write = f"open({str(sentinel)!r}, 'w').write('x')"
    payload = pickle.dumps(_Reduce(os.system, (cmd,)), protocol=2)
    nested = pickle.dumps(_Reduce(_load_from_bytes_ref(), (payload,)), protocol=4)
    return {
        "os.system": (b"cos\nsystem\n(S'" + cmd.encode() + b"'\ntR.", "os.system"),
        "posix.system": (pickle.dumps(_Reduce(os.system, (cmd,)), protocol=2), "posix.system"),
        "builtins.eval": (pickle.dumps(_Reduce(eval, (write,)), protocol=4), "builtins.eval"),
        "builtins.exec": (pickle.dumps(_Reduce(exec, (write,)), protocol=4), "builtins.exec"),
        "subprocess": (pickle.dumps(_Reduce(subprocess.call, (["touch", str(sentinel)],))), "subprocess.call"),
        "importlib": (pickle.dumps(_Reduce(importlib.import_module, ("os",))), "importlib.import_module"),
        "getattr-chain": (_proto4_global("collections", "OrderedDict.__init__"), "collections.OrderedDict.__init__"),
        "reduce-through-allowed-class": (
            pickle.dumps(_Reduce(torch.nn.Sequential, ()), protocol=4), "torch.nn.modules.container.Sequential"),
        "nested-payload": (nested, "posix.system"),
    }


def _load_from_bytes_ref():
    import torch.storage

    return torch.storage._load_from_bytes


@pytest.mark.parametrize("case", ["os.system", "posix.system", "builtins.eval", "builtins.exec", "subprocess",
                                  "importlib", "getattr-chain", "reduce-through-allowed-class", "nested-payload"])
def test_malicious_pickle_refused(case, tmp_path):
    sentinel = tmp_path / "pwned"
    data, name = _malicious(sentinel)[case]
    p = tmp_path / "evil.pkl"
    p.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_state(p)
    assert name in str(e.value)
    assert not sentinel.exists()


def test_module_src_is_never_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    meta = {"type": "class", "version": 6, "class_name": "MappingNet",
            "module_src": f"open({str(sentinel)!r}, 'w').write('x')\n", "state": {"_parameters": {}}}
    mod = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mp = pytest.MonkeyPatch()
    mp.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    mp.setitem(sys.modules, "torch_utils.persistence", mod)
    try:
        data = pickle.dumps({"G_ema": _Reduce(_reconstruct_persistent_obj, (meta,))}, protocol=4)
    finally:
        mp.undo()
    obj = safe_unpickle(data)
    assert isinstance(obj["G_ema"], PersistentObject) and obj["G_ema"].class_name == "MappingNet"
    assert not sentinel.exists()


def test_pth_with_code_is_refused(tmp_path):
    sentinel = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    torch.save({"x": _Reduce(os.system, (f"touch {sentinel}",))}, p)
    with pytest.raises(WeightsError):
        load_state(p)
    assert not sentinel.exists()
