"""ONNX Runtime for the feature networks: the equality policy (features and metrics within 1e-5 relative of torch
eager fp32) on the golden inputs and the demo photos, the graph cache's rules, and auto's fallbacks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matbench import features as F
from matbench.errors import InputError
from matbench.features import runtime as RT
from matbench.metrics.fd import fd
from matbench.metrics.kid import kid

pytestmark = pytest.mark.skipif(RT.onnx_missing() is not None, reason="the cpu extra (onnxruntime) is needed")

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "golden" / "mat" / "io_256.npz"
POLICY = 1e-5


def _golden_and_demo() -> torch.Tensor:
    """The MAT golden images and outputs ([-1, 1] float, as the official code saw them) and two demo photos."""
    d = np.load(GOLDEN)
    u8 = np.clip(np.round((np.concatenate([d["image"], d["out_a_holes"]]) + 1) * 127.5), 0, 255).astype(np.uint8)
    skimage = pytest.importorskip("skimage")
    data = Path(skimage.__file__).parent / "data"
    demo = [np.asarray(Image.open(data / n).convert("RGB").resize((256, 256))) for n in ("astronaut.png", "coffee.png")]
    return torch.from_numpy(np.concatenate([u8, np.stack(demo).transpose(0, 3, 1, 2)]).copy())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return _golden_and_demo()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One graph cache for the module: each network is exported once (seconds per export)."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MATBENCH_CACHE", str(root))
        yield root


def onnx_net(ex) -> RT.OnnxNetwork:
    if isinstance(ex._forward, RT.OnnxNetwork):
        return ex._forward
    return next(c.cell_contents for c in ex._forward.__closure__ if isinstance(c.cell_contents, RT.OnnxNetwork))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(a).max())


@pytest.mark.parametrize("name", ["inception-v3-compat", "pt-inception"])
def test_onnx_meets_the_equality_policy(name, images, cache):
    ref = F.get_extractor(name, smoke=True, batch_size=3)
    fast = F.get_extractor(name, smoke=True, batch_size=3, runtime="onnx")
    fa, fb = ref(images), fast(images)
    assert fast.describe()["runtime"] == "onnx" and "runtime" not in ref.describe()
    assert _rel(fa, fb) <= POLICY
    # the reported metrics too: the golden inputs against the golden outputs and the photos
    real, fake = slice(0, 2), slice(2, 6)
    fid_ref, fid_fast = fd(fa[real], fa[fake], "mat"), fd(fb[real], fb[fake], "mat")
    assert abs(fid_fast - fid_ref) <= POLICY * abs(fid_ref)
    k_ref = kid(fa[real], fa[fake], subsets=3, subset_size=2)["kid_mean"]
    k_fast = kid(fb[real], fb[fake], subsets=3, subset_size=2)["kid_mean"]
    assert abs(k_fast - k_ref) <= POLICY * abs(k_ref)


def test_graph_is_exported_once_and_checked_before_use(images, cache):
    x = images[:2]
    first = F.get_extractor("pt-inception", smoke=True, runtime="onnx")
    want = first(x)  # exported by the policy test already, or here
    graphs = sorted((cache / "graphs").glob("pt-inception@*/*.onnx"))
    assert len(graphs) == 1
    meta_path = graphs[0].with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    assert meta["key"] == f"pt-inception@{first.weights_sha256}" and meta["schema"] == RT.GRAPH_SCHEMA
    assert meta["graph_sha256"] == hashlib.sha256(graphs[0].read_bytes()).hexdigest()

    again = F.get_extractor("pt-inception", smoke=True, runtime="onnx")
    np.testing.assert_array_equal(again(x), want)
    net = onnx_net(again)
    assert net.exported == 0  # read from the cache
    assert net._cached(graphs[0], meta_path) is not None
    # a graph changed on disk, or one not made from these weights, is never loaded (it would be exported again)
    good = graphs[0].read_bytes()
    graphs[0].write_bytes(good[:-16] + b"\0" * 16)
    assert net._cached(graphs[0], meta_path) is None
    graphs[0].write_bytes(good)
    meta_path.write_text(json.dumps({**meta, "key": "pt-inception@someone-elses-weights"}))
    assert net._cached(graphs[0], meta_path) is None
    meta_path.write_text(json.dumps({**meta, "torch": "0.0"}))
    assert net._cached(graphs[0], meta_path) is None
    meta_path.write_text(json.dumps(meta))
    assert net._cached(graphs[0], meta_path) == good


def test_auto_falls_back_and_says_so(images, cache):
    # torchvision's normalize in the VGG16 detector branches on data, which torch.export refuses
    vgg = F.get_extractor("vgg16", smoke=True, runtime="auto")
    out = vgg(images[:1])
    ref = F.get_extractor("vgg16", smoke=True)(images[:1])
    np.testing.assert_array_equal(out, ref)
    assert vgg.runtime == "torch" and "runtime" not in vgg.describe()
    assert "not exportable" in vgg.info.runtime.why
    with pytest.raises(InputError, match="vgg16: cannot be exported to ONNX") as e:
        F.get_extractor("vgg16", smoke=True, runtime="onnx")(images[:1])
    assert e.value.for_options({"--runtime"}).endswith("use --runtime torch")


def test_resolve_rules(monkeypatch):
    assert RT.resolve("auto", "cpu") == ("onnx", "auto on the CPU")
    assert RT.resolve("auto", "cuda:0")[0] == "torch"
    assert RT.resolve("torch", "cpu")[0] == "torch"
    with pytest.raises(InputError, match="CPU only"):
        RT.resolve("onnx", "cuda")
    with pytest.raises(InputError, match="unknown network runtime 'tvm'"):
        RT.resolve("tvm", "cpu")
    monkeypatch.setattr(RT, "onnx_missing", lambda: "onnxruntime")
    assert RT.resolve("auto", "cpu") == ("torch", "onnxruntime not installed (pip install 'matbench-inpaint[cpu]' "
                                                  "for ONNX Runtime)")
    with pytest.raises(InputError, match=r"needs the onnxruntime package: pip install 'matbench-inpaint\[cpu\]'"):
        RT.resolve("onnx", "cpu")


def test_a_pass_reading_hooked_outputs_runs_in_torch(images, cache):
    """sFID's spatial features come from a forward hook, which an exported graph never fires."""
    x = images[:2]
    ref = F.get_extractor("inception-v3-compat", smoke=True).extract(x, ("", "spatial"))
    fast = F.get_extractor("inception-v3-compat", smoke=True, runtime="onnx")
    got = fast.extract(x, ("", "spatial"))
    for o in ("", "spatial"):
        np.testing.assert_array_equal(got[o], ref[o])
    assert "sFID" in fast.info.runtime.why and not fast.info.runtime.eager
