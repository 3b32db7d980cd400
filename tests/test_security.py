"""Security review (issue 21): archives cannot escape, outputs never overwrite inputs, specs do not run code
silently, report/CSV hardening, one-line errors and weights that cannot run code."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matbench.cli import main


def _png(size: int = 16, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _inputs(tmp_path: Path, n: int = 2, size: int = 32) -> tuple[Path, Path]:
    """n random images and plain MAT-polarity masks."""
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    for i in range(n):
        (img_dir / f"im{i}.png").write_bytes(_png(size, i))
        m = np.full((size, size), 255, np.uint8)
        m[4:20, 6 + i:24] = 0
        Image.fromarray(m).save(mask_dir / f"im{i}.png")
    return img_dir, mask_dir


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --------------------------------------------------------------------------- 1. zip members


@pytest.mark.parametrize("member", ["ABS", "../up.png", "a/../../up.png", "C:/x.png", "a\\..\\x.png", "C:x.png"])
def test_zip_with_unsafe_member_is_refused_naming_it(tmp_path: Path, member: str) -> None:
    from matbench.data.datasets import Dataset
    from matbench.errors import InputError

    if member == "ABS":
        member = str(tmp_path / "escaped" / "x.png")
    z = tmp_path / "ds.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok.png", _png())
        zf.writestr(member, _png())
    with pytest.raises(InputError) as ei:
        Dataset.open(z)
    assert str(z) in str(ei.value) and repr(member) in str(ei.value) and "\n" not in str(ei.value)


def test_inpaint_from_zip_with_absolute_member_writes_nothing_outside(tmp_path: Path, capsys) -> None:
    target = tmp_path / "escaped" / "x"
    z = tmp_path / "ds.zip"
    masks = tmp_path / "masks"
    masks.mkdir()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(str(target) + ".png", _png())
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(masks / "x.png")
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(z), "--masks", str(masks),
               "--mask-polarity", "known=255", "-o", str(tmp_path / "out")])
    err = _one_line(capsys)
    assert rc == 2 and "absolute path" in err
    assert not (tmp_path / "escaped").exists()


# --------------------------------------------------------------------------- 2. outputs never overwrite inputs


@pytest.mark.parametrize("where", ["images", "masks", "inside", "parent"])
def test_inpaint_refuses_an_output_that_overlaps_an_input(tmp_path: Path, capsys, where: str) -> None:
    img_dir, mask_dir = _inputs(tmp_path)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*.png"))}
    out = {"images": img_dir, "masks": mask_dir, "inside": img_dir / "sub", "parent": tmp_path}[where]
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(out)])
    err = _one_line(capsys)
    assert rc == 2 and "refused" in err and "overwritten" in err
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*.png"))} == before


def test_data_prepare_and_masks_make_refuse_their_input_as_output(tmp_path: Path, capsys) -> None:
    img_dir, _ = _inputs(tmp_path)
    before = {p: p.read_bytes() for p in sorted(img_dir.iterdir())}
    assert main(["data", "prepare", str(img_dir), "-o", str(img_dir), "--res", "16"]) == 2
    assert "refused" in _one_line(capsys)
    assert main(["masks", "make", "--kind", "mat-large", "--names-from", str(img_dir), "--res", "16",
                 "-o", str(img_dir)]) == 2
    assert "refused" in _one_line(capsys)
    assert {p: p.read_bytes() for p in sorted(img_dir.iterdir())} == before


def test_output_that_is_an_existing_file_is_one_line(tmp_path: Path, capsys) -> None:
    img_dir, mask_dir = _inputs(tmp_path)
    f = tmp_path / "afile"
    f.write_text("x")
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(f)])
    assert rc == 2 and "is not a folder" in _one_line(capsys)
    rc = main(["data", "prepare", str(img_dir), "-o", str(f / "sub"), "--res", "16"])
    assert rc == 2 and "is not a folder" in _one_line(capsys)


def test_eval_into_an_unwritable_folder_fails_before_computing(tmp_path: Path, capsys, monkeypatch) -> None:
    import matbench.evaluate
    import matbench.io

    img_dir, _ = _inputs(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    # Root ignores permission bits, so the probe's answer is simulated; the point is that it runs before compute.
    monkeypatch.setattr(matbench.io, "_probe_writable", lambda folder: "Read-only file system")

    def never(*_a, **_k):
        raise AssertionError("computed before checking the output")

    monkeypatch.setattr(matbench.evaluate, "evaluate_folders", never)
    rc = main(["eval", "--results", str(img_dir), "--gt", str(img_dir), "--metrics", "psnr", "-o", str(ro / "out")])
    err = _one_line(capsys)
    assert rc == 2 and "not writable" in err and str(ro) in err


def test_check_output_probe_is_real(tmp_path: Path) -> None:
    import os

    from matbench.io import _probe_writable

    assert _probe_writable(tmp_path) is None and not os.listdir(tmp_path)
    if os.geteuid() != 0:
        tmp_path.chmod(0o500)
        try:
            assert _probe_writable(tmp_path)
        finally:
            tmp_path.chmod(0o700)


# --------------------------------------------------------------------------- 3. silent wrong numbers


def test_dark_16bit_png_is_scaled_by_its_bit_depth() -> None:
    from matbench.io import decode_image

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), 200, np.uint16)).save(buf, "PNG")  # max 200 of 65535: nearly black
    assert decode_image(buf.getvalue(), "dark16.png").max() <= 1


# --------------------------------------------------------------------------- 4. weights files never run code


class _Payload:
    """Unpickling this calls pathlib.Path.touch(marker): proof that the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _forged(tmp_path: Path, name: str, monkeypatch, registry_name: str) -> tuple[Path, Path]:
    """A malicious pickle under the official file name, with the registry's prefix made to match it (as if the
    8-hex prefix had been brute-forced, which takes minutes, not a test's time)."""
    import dataclasses
    import hashlib

    import torch

    from matbench import weights as W

    marker = tmp_path / "PWNED"
    d = tmp_path / "w"
    d.mkdir()
    f = d / name
    torch.save({"conv.weight": _Payload(marker)}, f)
    entry = W.get(registry_name)
    monkeypatch.setitem(W._REGISTRY, registry_name,
                        dataclasses.replace(entry, hash_prefix=hashlib.sha256(f.read_bytes()).hexdigest()[:8]))
    return f, marker


@pytest.mark.parametrize("how", ["--inception-path", "MATBENCH_WEIGHTS", "--vgg-path"])
def test_forged_prefix_weights_are_refused_unexecuted(tmp_path: Path, capsys, monkeypatch, how: str) -> None:
    from matbench import weights as W

    vgg = how == "--vgg-path"
    f, marker = _forged(tmp_path, "vgg16-397923af.pth" if vgg else "weights-inception-2015-12-05-6726825d.pth",
                        monkeypatch, "torchvision-vgg16" if vgg else "inception-v3-compat")
    assert W.verify(W.get("torchvision-vgg16" if vgg else "inception-v3-compat"), f)  # the prefix check passes
    img_dir, _ = _inputs(tmp_path)
    argv = ["eval", "--results", str(img_dir), "--gt", str(img_dir), "--metrics", "pr" if vgg else "fid",
            "-o", str(tmp_path / "out")]
    if how == "MATBENCH_WEIGHTS":
        monkeypatch.setenv("MATBENCH_WEIGHTS", str(f.parent))
    else:
        argv += [how, str(f)]
    rc = main(argv)
    err = _one_line(capsys)
    assert rc == 2 and str(f) in err and "refused" in err and "nothing from the file was executed" in err
    assert not marker.exists()


def test_weights_verify_does_not_call_a_forged_prefix_ok(tmp_path: Path, capsys, monkeypatch) -> None:
    f, _ = _forged(tmp_path, "weights-inception-2015-12-05-6726825d.pth", monkeypatch, "inception-v3-compat")
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(f.parent))
    assert main(["weights", "verify", "inception-v3-compat"]) == 0
    out = capsys.readouterr().out
    assert "prefix ok, full hash unknown" in out and ": ok" not in out


# --------------------------------------------------------------------------- 5. a spec naming code


def _spec(tmp_path: Path, model: str) -> Path:
    img_dir, _ = _inputs(tmp_path)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'''name = "t"
output = "{tmp_path / 'run'}"
resolutions = [32]
smoke = true
metrics = ["psnr"]
[[datasets]]
name = "d"
path = "{img_dir}"
[[masksets]]
kind = "mat-large"
[[models]]
name = "{model}"
options = {{command = "touch {tmp_path / 'PWNED'}"}}
''')
    return spec


@pytest.mark.parametrize("model", ["os:system", "subprocess:getoutput", "builtins:exec", "matbench.io:os.system"])
def test_spec_naming_stdlib_code_is_refused_even_when_trusted(tmp_path: Path, capsys, monkeypatch,
                                                              model: str) -> None:
    monkeypatch.setenv("MATBENCH_TRUSTED_MODULES", "os,subprocess,builtins,matbench")
    spec = _spec(tmp_path, model)
    rc = main(["run", str(spec), "--trust", model.partition(":")[0]])
    err = _one_line(capsys)
    assert rc == 2 and str(spec) in err and "refused" in err and "models[0].name" in err
    assert not (tmp_path / "PWNED").exists()


def test_spec_naming_an_untrusted_module_says_how_to_allow_it(tmp_path: Path, capsys, monkeypatch) -> None:
    import sys

    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "evil_plugin.py").write_text(
        f"from pathlib import Path\nPath({str(tmp_path / 'IMPORTED')!r}).touch()\n"
        "def make(**_):\n    raise SystemExit('factory ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mod"))
    monkeypatch.delenv("MATBENCH_TRUSTED_MODULES")
    spec = _spec(tmp_path, "evil_plugin:make")
    assert main(["run", str(spec), "--dry-run"]) == 2
    err = _one_line(capsys)
    assert "refused to import 'evil_plugin'" in err and "--trust evil_plugin" in err and str(spec) in err
    assert not (tmp_path / "IMPORTED").exists() and "evil_plugin" not in sys.modules
    # allowed explicitly, the module is imported (its factory would run in the run)
    assert main(["run", str(spec), "--dry-run", "--trust", "evil_plugin"]) == 0
    assert (tmp_path / "IMPORTED").exists()
    sys.modules.pop("evil_plugin", None)


def test_trust_rule_prefixes_env_own_package_and_registered_only() -> None:
    from matbench import trust
    from matbench.trust import TrustError, allow_import, resolve_reference

    assert allow_import("matbench.models.base", "model", "t") == "matbench"
    assert allow_import("matbench.baselines.classical", "model", "t") == "matbench"
    with pytest.raises(TrustError, match="MATBENCH_TRUSTED_MODULES=pkgx"):  # --trust: a hint, where the command has it
        allow_import("pkgx.sub", "model", "t")
    with trust.trusting(["pkgx"]):
        assert allow_import("pkgx.sub", "model", "t") == "trusted" and allow_import("pkgx", "model", "t")
        with pytest.raises(TrustError):
            allow_import("pkgxy", "model", "t")  # a prefix is a whole package name, not a string prefix
    with pytest.raises(TrustError):
        allow_import("pkgx", "model", "t")  # the context is over
    # matbench's own helpers are not factories: only registered objects, unless explicitly trusted
    with pytest.raises(TrustError, match="not a registered"):
        resolve_reference("matbench.io:sha256_file", "model", "t", registered=[])
    from matbench.io import sha256_file

    assert resolve_reference("matbench.io:sha256_file", "model", "t", registered=[sha256_file]) is sha256_file


@pytest.mark.parametrize("reader", ["features", "statecheck"])
def test_every_state_dict_reader_refuses_a_code_pickle(tmp_path: Path, reader: str) -> None:
    import torch

    from matbench.errors import WeightsError
    from matbench.features.base import load_state_dict_file
    from matbench.models.statecheck import read_plain_state_dict

    marker = tmp_path / "PWNED"
    f = tmp_path / "evil.pth"
    torch.save({"w": _Payload(marker)}, f)
    with pytest.raises(WeightsError, match="nothing from the file was executed"):
        load_state_dict_file(f) if reader == "features" else read_plain_state_dict(f, "state dict")
    assert not marker.exists()
