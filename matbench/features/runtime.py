"""Where a metric network runs on the CPU: torch eager (the reference), or ONNX Runtime on a graph exported here.

Equality policy (docs/evaluation.md): a runtime gives *the same numbers* when its features differ from torch eager
fp32 by at most 1e-5 relative (max |Δ| / max |ref|) and every reported metric by at most 1e-5 relative. ONNX
Runtime fp32 meets it (tests/features/test_runtime.py) and is 2–3× faster per CPU-second on the Inception than torch
eager here (bench.py features). It needs the optional ``cpu`` extra (onnxruntime, onnx, onnxscript).

Exported graphs are cached under ``<cache>/graphs/<extractor>@<weights sha256>/`` with a sidecar naming the
weights hash, the graph's own sha256 and the versions that made it. A graph is loaded only when its sidecar matches
the weights being used and the file's sha256: a graph is never taken from anywhere else. ONNX graphs hold
operators and tensors, no Python, so loading one runs no code from the file (docs/security.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from matbench.errors import Hint, InputError
from matbench.features.base import RuntimeInfo
from matbench.features.cache import cache_root
from matbench.io import write_bytes_atomic, write_text_atomic

RUNTIMES = ("auto", "torch", "onnx")
ONNX_PACKAGES = ("onnxruntime", "onnx", "onnxscript")
GRAPH_SCHEMA = "matbench.graph/1"
OPSET = 18
_LOCK = threading.Lock()
_TORCH = (Hint("--runtime", "use --runtime torch"),)


def onnx_missing() -> str | None:
    """The first package of the ONNX path that is not installed, or None."""
    for name in ONNX_PACKAGES:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def resolve(choice: str, device: str) -> tuple[str, str]:
    """(runtime that will run, why): `auto` takes ONNX Runtime on the CPU when its packages are installed."""
    if choice not in RUNTIMES:
        raise InputError(f"unknown network runtime {choice!r}; use {', '.join(RUNTIMES[:-1])} or {RUNTIMES[-1]}")
    on_cpu = str(device).startswith("cpu")
    missing = onnx_missing()
    if choice == "torch":
        return "torch", "asked for"
    if choice == "onnx":
        if not on_cpu:
            raise InputError(f"the onnx network runtime runs on the CPU only (device {device})", hints=_TORCH)
        if missing:
            raise InputError(f"the onnx network runtime needs the {missing} package: "
                             "pip install 'matbench-inpaint[cpu]'", hints=_TORCH)
        return "onnx", "asked for"
    if not on_cpu:
        return "torch", f"device {device}"
    if missing:
        return "torch", f"{missing} not installed (pip install 'matbench-inpaint[cpu]' for ONNX Runtime)"
    return "onnx", "auto on the CPU"


def default_graph_dir() -> Path:
    return cache_root() / "graphs"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _versions() -> dict[str, str]:
    import onnxruntime

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "opset": str(OPSET)}


class OnnxNetwork:
    """A float32 network run by ONNX Runtime; one graph per input shape (batch size free).

    Exporting specialises the graph to the input's height and width (the TF1-style resizes inside the Inceptions
    bake their scale in), so each (C, H, W, dtype) gets its own graph, exported once and cached."""

    def __init__(self, net: torch.nn.Module, key: str, state: RuntimeInfo, strict: bool = True,
                 graph_dir: str | os.PathLike | None = None) -> None:
        self.net = net
        self.state = state  # what ran, shared with the extractor's provenance
        self.strict = strict  # False (auto): a network that does not export runs in torch, and says so
        self.key = key  # extractor name (and resize) @ weights sha256
        self.dir = Path(graph_dir) if graph_dir else default_graph_dir()
        self._sessions: dict[tuple, object] = {}
        self.exported = 0  # graphs exported by this object (tests check the cache with it)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.state.name == "torch" or self.state.eager:
            return self.net(x)
        shape = (*x.shape[1:], str(x.dtype).removeprefix("torch."))
        sess = self._sessions.get(shape)
        if sess is None:
            with _LOCK:
                try:
                    sess = self._sessions.get(shape) or self._session(x, shape)
                except Exception as e:  # the exporter's errors are many kinds; all mean "not exportable"
                    first = str(e).splitlines()[0][:160] if str(e) else ""
                    if self.strict:
                        raise InputError(f"{self.key.split('@')[0]}: cannot be exported to ONNX "
                                         f"({type(e).__name__}: {first})", hints=_TORCH) from None
                    self.state.name, self.state.why = "torch", f"not exportable to ONNX ({type(e).__name__})"
                    return self.net(x)
                self._sessions[shape] = sess
        out = sess.run(None, {"x": x.detach().cpu().contiguous().numpy()})[0]  # type: ignore[attr-defined]
        return torch.from_numpy(np.ascontiguousarray(out))

    def _paths(self, shape: tuple) -> tuple[Path, Path]:
        stem = "x".join(str(s) for s in shape)
        folder = self.dir / self.key.replace("/", "_")
        return folder / f"{stem}.onnx", folder / f"{stem}.json"

    def _session(self, x: torch.Tensor, shape: tuple) -> object:
        graph_path, meta_path = self._paths(shape)
        data = self._cached(graph_path, meta_path)
        if data is None:
            data = self._export(x)
            self.exported += 1
            with contextlib.suppress(OSError):  # a read-only cache still runs, it only re-exports next time
                write_bytes_atomic(graph_path, data)
                write_text_atomic(meta_path, json.dumps({"schema": GRAPH_SCHEMA, "key": self.key,
                                                         "graph_sha256": _sha256(data), **_versions()}))
        return _ort_session(data)

    def _cached(self, graph_path: Path, meta_path: Path) -> bytes | None:
        """The cached graph, if its sidecar says it was exported here from these weights and it is intact."""
        try:
            meta = json.loads(meta_path.read_text())
            data = graph_path.read_bytes()
        except (OSError, ValueError):
            return None
        if (not isinstance(meta, dict) or meta.get("schema") != GRAPH_SCHEMA or meta.get("key") != self.key
                or meta.get("graph_sha256") != _sha256(data)
                or any(meta.get(k) != v for k, v in _versions().items())):
            return None
        return data

    def _export(self, x: torch.Tensor) -> bytes:
        example = x[:1].repeat(2, *([1] * (x.dim() - 1))).cpu()  # batch 2: a batch of 1 would be specialised
        buf = io.BytesIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's own notes; it fails loudly on what matters
            program = torch.onnx.export(self.net.cpu().eval(), (example,), dynamo=True, opset_version=OPSET,
                                        input_names=["x"], output_names=["f"], verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("n")},))
            program.save(buf)
        return buf.getvalue()


def _ort_session(data: bytes) -> object:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()  # matbench.threads sets one budget for every pool
    so.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: on a shared CI runner spinning burns CPU that other jobs
    # (and our own data loading) need, and the measured throughput is the same on an idle machine.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def wrap(net: Callable[[torch.Tensor], torch.Tensor], state: RuntimeInfo, key: str, strict: bool = True,
         graph_dir: str | os.PathLike | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network as `state.name` says it runs ("torch" returns it unchanged). TorchScript networks (NVIDIA's
    detector) stay in torch: with `strict` (runtime "onnx" asked for) that is an error, else it is recorded."""
    if state.name == "torch":
        return net
    if not isinstance(net, torch.nn.Module) or any(isinstance(m, torch.jit.ScriptModule) for m in net.modules()):
        if strict:
            raise InputError(f"{key.split('@')[0]}: a TorchScript network cannot be exported to ONNX here",
                             hints=_TORCH)
        state.name, state.why = "torch", "TorchScript network (not exported)"
        return net
    return OnnxNetwork(net, key, state, strict, graph_dir)
