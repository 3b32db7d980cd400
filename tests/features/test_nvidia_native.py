"""NVIDIA's detector without TorchScript: the archive's tensors read by features.torchscript_archive (no code from
the file runs) into features.inception_nvidia.NativeNvidiaInception. The real inception-2015-12-05.pt is not on
this machine, so the archive here is one built the same way (a scripted module with the published module tree
and tensor names, random weights); bit-equality with NVIDIA's own file is unverified (docs/evaluation.md)."""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile

import pytest
import torch

from matbench.errors import WeightsError
from matbench.features.inception_nvidia import NativeNvidiaInception, load_native
from matbench.features.torchscript_archive import tensors


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    torch.manual_seed(0)
    m = NativeNvidiaInception().eval()
    with torch.no_grad():
        for name, t in m.state_dict().items():  # weights that keep activations alive through ~50 layers
            if name.endswith(".var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith(".weight") and t.dim() == 4:
                t.normal_(0, (2.0 / t[0].numel()) ** 0.5)
            else:
                t.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("nv") / "inception-2015-12-05.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated: this test's own fixture
        torch.jit.script(m).save(str(path))
        scripted = torch.jit.load(str(path))
    return path, scripted


def test_archive_tensors_are_the_state_dict(archive) -> None:
    path, scripted = archive
    got, want = tensors(path), scripted.state_dict()
    assert sorted(got) == sorted(want)
    assert "layers.mixed_10.tower_1_mixed_conv_1.beta" in got and got["output.weight"].shape == (1008, 2048)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def test_native_features_bit_equal_to_the_torchscript_file(archive) -> None:
    path, scripted = archive
    x = torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    native = load_native(path)
    # the TorchScript interpreter without its optimising passes: the first call does not pay for profiling
    with torch.no_grad(), torch.jit.optimized_execution(False):
        a, b = native(x, return_features=True), scripted(x, return_features=True)
    assert a.shape == (1, 2048) and a.std() > 0
    assert torch.equal(a, b)


def test_a_pickle_naming_other_code_is_refused_unrun(tmp_path, archive) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(WeightsError, match=r"refused: the TorchScript pickle names (__builtin__|builtins)\.print"):
        tensors(path)
    wrong = tmp_path / "other.pt"
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)  # a TorchScript file of another network
    wrong.write_bytes(buf.getvalue())
    with pytest.raises(WeightsError, match="tensors do not match NVIDIA Inception"):
        load_native(wrong)
