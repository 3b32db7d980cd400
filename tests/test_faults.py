"""Faults and bad input (issue 13): file modes, disk full, 0/1 masks, model option typos, refused pickles."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from spec_helpers import write_spec

from matbench.cli import main
from matbench.io import save_png, write_json_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _inputs(tmp_path: Path, n: int = 2, size: int = 32, mask_values: tuple[int, int] = (0, 255)) -> tuple[Path, Path]:
    """n random images and plain MAT-polarity masks (known = mask_values[1], hole = mask_values[0])."""
    rng = np.random.default_rng(0)
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(img_dir / f"im{i}.png")
        m = np.full((size, size), mask_values[1], np.uint8)
        m[4:20, 6 + i:24] = mask_values[0]
        Image.fromarray(m).save(mask_dir / f"im{i}.png")
    return img_dir, mask_dir


# --------------------------------------------------------------------------- file modes


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_umask_mode(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    write_text_atomic(tmp_path / "b.txt", "x")
    save_png(tmp_path / "c.png", np.zeros((4, 4), np.uint8))
    plain = tmp_path / "plain.txt"
    plain.write_text("reference: what open() gives")
    assert _mode(plain) == expected
    for name in ("a.json", "b.txt", "c.png"):
        assert _mode(tmp_path / name) == expected, name


def test_inpaint_outputs_and_report_links_are_readable(tmp_path: Path, umask) -> None:
    from matbench.reports.render import _place

    umask(0o022)
    img_dir, mask_dir = _inputs(tmp_path)
    out = tmp_path / "out"
    assert main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
                 "--mask-polarity", "known=255", "-o", str(out)]) == 0
    assert _mode(out / "im0.png") == 0o644
    _place(out / "im0.png", tmp_path / "report" / "img" / "im0.png")  # the report's hard link shares the mode
    assert _mode(tmp_path / "report" / "img" / "im0.png") == 0o644


def test_downloaded_weights_get_the_umask_mode(tmp_path: Path, umask) -> None:
    from matbench.weights import WeightsFile, download

    umask(0o022)
    src = tmp_path / "src.bin"
    src.write_bytes(b"weights")
    entry = WeightsFile(name="t", filename="t.bin", url=src.as_uri())  # file:// through the same download path
    dest = download(entry, tmp_path / "dl")
    assert dest.read_bytes() == b"weights" and _mode(dest) == 0o644


# --------------------------------------------------------------------------- disk full


def _enospc(*_a, **_k):
    raise OSError(28, "No space left on device")  # errno.ENOSPC, as the kernel reports it


def test_disk_full_in_an_atomic_write_is_one_line_naming_path_and_size(tmp_path: Path, monkeypatch) -> None:
    from matbench.errors import DiskFullError
    from matbench.io import write_bytes_atomic

    monkeypatch.setattr(Path, "write_bytes", _enospc)
    with pytest.raises(DiskFullError) as ei:
        write_bytes_atomic(tmp_path / "x.bin", b"\0" * 123_456)
    msg = str(ei.value)
    assert "\n" not in msg and str(tmp_path / "x.bin") in msg
    assert "no space left" in msg and "needs about 123.5 KB" in msg and " free there" in msg
    assert not list(tmp_path.iterdir())  # the partial temporary file is gone


def test_disk_full_while_saving_pngs_ends_the_cli_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    img_dir, mask_dir = _inputs(tmp_path)
    real_save = Image.Image.save

    def save_then_fail(self, fp, *a, **k):  # half a file written, then the disk fills up
        real_save(self, fp, *a, **k)
        _enospc()

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    out = tmp_path / "out"
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"matbench: error: {out / 'im0.png'}: no space left") and "needs about 3.1 KB" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_disk_full_elsewhere_is_caught_at_the_cli_boundary(tmp_path: Path, monkeypatch, capsys) -> None:
    import matbench.commands.inpaint
    import matbench.io

    img_dir, mask_dir = _inputs(tmp_path)

    def full(path, *_a):  # e.g. a library writing its own file: an OSError with errno 28 and a filename
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(matbench.io, "save_png", full)
    monkeypatch.setattr(matbench.commands.inpaint, "save_png", full)  # the name the command imported
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(tmp_path / "out" / "im0.png") in err and "no space left" in err


class _FullConnection:
    """A sqlite connection on a full disk: reads work, every write fails as sqlite reports it."""

    def __init__(self, con):
        self.con = con

    def execute(self, *a):
        return self.con.execute(*a)

    def executemany(self, *a):
        import sqlite3

        raise sqlite3.OperationalError("database or disk is full")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def close(self):
        self.con.close()


def test_full_feature_cache_warns_once_and_carries_on(tmp_path: Path, monkeypatch, caplog) -> None:
    import torch

    from matbench.features import FeatureCache, extract_cached

    calls = []

    class Extractor:
        name, key, dim = "toy", "toy/1", 3

        def __call__(self, images):
            calls.append(len(images))
            return images.double().mean(dim=(2, 3)).numpy()

    cache = FeatureCache(tmp_path / "cache")
    connect = cache._connect
    monkeypatch.setattr(cache, "_connect", lambda: _FullConnection(connect()))
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    expected = images.double().mean(dim=(2, 3)).numpy()
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert np.array_equal(extract_cached(Extractor(), images, cache), expected)
    assert calls == [2, 2, 2]  # computed every time: nothing could be stored
    full = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(full) == 1 and str(cache.path) in full[0].getMessage()
    assert cache.count() == 0


# --------------------------------------------------------------------------- 0/1 masks, degenerate mask sets


@pytest.mark.parametrize("polarity", ["known=255", "hole=255"])
def test_inpaint_refuses_01_masks(tmp_path: Path, capsys, polarity: str) -> None:
    img_dir, mask_dir = _inputs(tmp_path, mask_values=(0, 1))  # a 0/1 mask saved as 8-bit
    out = tmp_path / "out"
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", polarity, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, "0/1 masks must not inpaint everything or nothing with exit 0"
    assert f"{mask_dir / 'im0.png'}: mask holds only the values 0 and 1" in err
    assert "--binarize 1" in err and "rescale" in err
    assert not out.exists()  # refused before any output


def test_inpaint_refuses_a_set_without_holes(tmp_path: Path, capsys) -> None:
    img_dir, mask_dir = _inputs(tmp_path)
    # every file white: all hole read as hole=255, hole-free read as known=255 (a wrong polarity or an empty export)
    for p in mask_dir.iterdir():
        Image.fromarray(np.full((32, 32), 255, np.uint8)).save(p)
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "hole=255", "-o", str(tmp_path / "o1")])
    err = capsys.readouterr().err
    assert rc == 2 and "every one of the 2 masks is all hole (hole ratio 1" in err and "polarity" in err
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(tmp_path / "o2")])
    assert rc == 2 and "every one of the 2 masks is hole-free (hole ratio 0" in capsys.readouterr().err


def _maskset_01(tmp_path: Path) -> Path:
    """A mask set whose maskset.json is valid but whose files were rewritten as 0/1 (e.g. by a script)."""
    from matbench.data.maskset import make_maskset
    from matbench.io import sha256_file, write_json_atomic

    d = tmp_path / "ms"
    ms = make_maskset("mat-large", 2, 32, 0, d)
    for e in ms.entries:
        p = d / e["file"]
        Image.fromarray((np.asarray(Image.open(p)) // 255).astype(np.uint8)).save(p)
        e["sha256"] = sha256_file(p)
    write_json_atomic(d / "maskset.json", ms.meta)
    return d


def test_01_mask_set_refused_by_inpaint_and_by_spec_validation(tmp_path: Path, capsys) -> None:
    from matbench.errors import SpecError
    from matbench.spec import parse_spec

    d = _maskset_01(tmp_path)
    img_dir, _ = _inputs(tmp_path)
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(d),
               "-o", str(tmp_path / "out")])
    assert rc == 2 and "000000.png: mask holds only the values 0 and 1" in capsys.readouterr().err
    spec = {"output": "run", "datasets": [{"path": str(img_dir)}], "masksets": [{"path": str(d)}],
            "models": [{"name": "mean-fill"}]}
    with pytest.raises(SpecError, match=r"masksets\[0\]\.path: .*000000\.png: mask holds only the values 0 and 1"):
        parse_spec(spec, base_dir=tmp_path)
    rc = main(["run", str(_write_spec(tmp_path, spec)), "--dry-run"])
    assert rc == 2 and "only the values 0 and 1" in capsys.readouterr().err


def _write_spec(tmp_path: Path, spec: dict) -> Path:
    import json

    p = tmp_path / "spec.toml"
    lines = [f'output = "{spec["output"]}"']
    for table in ("datasets", "masksets", "models"):
        for item in spec[table]:
            lines.append(f"[[{table}]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in item.items() if not isinstance(v, dict)]
            for k, v in item.items():
                if isinstance(v, dict):
                    lines.append(f"{k} = {{ " + ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items()) + " }")
    p.write_text("\n".join(lines) + "\n")
    return p


# --------------------------------------------------------------------------- declared model options

BUILTIN_MODELS = ("mat", "lama", "comodgan", "opencv-telea", "opencv-ns", "mean-fill", "precomputed", "migan",
                  "diffusers")
# Models whose factory takes `device` from the framework without declaring it.
DEVICE_UNDECLARED = ("opencv-telea", "opencv-ns", "mean-fill", "migan", "diffusers")


@pytest.mark.parametrize("name", BUILTIN_MODELS)
def test_every_builtin_model_declares_its_factory_options(name: str) -> None:
    """The declaration is checked against the factory itself: same names, same defaults, defaults well-typed."""
    import inspect

    from matbench.models.base import get_model_info

    info = get_model_info(name)
    assert info.options is not None, f"{name} declares no options"
    params = {k: p for k, p in inspect.signature(info.factory).parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD}
    if name == "diffusers":  # diffusers_model(device, **options): the options are the fields of DiffusersOptions
        import dataclasses

        from matbench.baselines.diffusion.inpainter import DiffusersOptions

        params.update({f.name: inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
                       for f in dataclasses.fields(DiffusersOptions)})
    declared = {o.name: o for o in info.options}
    assert set(declared) == set(params) - ({"device"} if name in DEVICE_UNDECLARED else set())
    for k, o in declared.items():
        assert o.default == params[k].default, (name, k)
        assert o.check(o.default) is None, (name, k)
        assert o.help


def plain_plugin(strength: float = 1.0, device: str = "cpu"):
    """A plugin factory without declared options and without **kwargs (names checkable from the signature)."""
    from matbench.models.base import create_model

    return create_model("mean-fill", device=device)


def loose_plugin(**options):
    """A plugin factory without declared options that takes **kwargs (nothing checkable)."""
    from matbench.models.base import create_model

    return create_model("mean-fill")


@pytest.mark.parametrize("model,options,match", [
    ("opencv-telea", {"radiuss": 25}, r"models\[0\]\.options\.radiuss: model 'opencv-telea' has no option 'radiuss' "
                                      r"\(did you mean 'radius'\?\)"),
    ("opencv-ns", {"radius": "big"}, r"models\[0\]\.options\.radius: model 'opencv-ns' option 'radius' must be a "
                                     r"number, got 'big'"),
    ("mean-fill", {"radius": 3}, r"model 'mean-fill' has no option 'radius'; its options: none"),
    ("mat", {"truncation": 0.5}, r"options\.truncation: model 'mat' has no option 'truncation' \(did you mean "
                                 r"'truncation_psi'\?\)"),
    ("mat", {"noise_mode": "cnst"}, r"option 'noise_mode' must be one of const, random, none, got 'cnst'"),
    ("mat", {"resolution": 384}, r"option 'resolution' must be one of 256, 512, got 384"),
    ("lama", {"batch_size": 2.5}, r"option 'batch_size' must be an integer, got 2\.5"),
    ("comodgan", {"dropout": True}, r"option 'dropout' must be a string, got True"),
    ("precomputed", {"paht": "x"}, r"has no option 'paht' \(did you mean 'path'\?\)"),
    ("test_faults:plain_plugin", {"strenght": 2.0}, r"has no option 'strenght' \(did you mean 'strength'\?\)"),
])
def test_spec_refuses_unknown_and_ill_typed_options(tmp_path: Path, model: str, options: dict, match: str) -> None:
    from matbench.errors import SpecError
    from matbench.spec import parse_spec

    (tmp_path / "imgs").mkdir()
    spec = {"output": "run", "datasets": [{"path": "imgs"}], "masksets": [{"kind": "mat-large"}],
            "models": [{"name": model, "options": options}]}
    with pytest.raises(SpecError, match=match):
        parse_spec(spec, base_dir=tmp_path)


def test_spec_refuses_weights_for_a_model_without_weights(tmp_path: Path) -> None:
    from matbench.errors import SpecError
    from matbench.spec import parse_spec

    (tmp_path / "imgs").mkdir()
    spec = {"output": "run", "datasets": [{"path": "imgs"}], "masksets": [{"kind": "mat-large"}],
            "models": [{"name": "opencv-telea", "smoke": True}]}
    with pytest.raises(SpecError, match=r"models\[0\]\.smoke: model 'opencv-telea' has no option 'smoke' \(it runs "
                                        r"without weights\)"):
        parse_spec(spec, base_dir=tmp_path)


def test_valid_options_pass_and_reach_the_model(tmp_path: Path) -> None:
    from matbench.models.base import create_model
    from matbench.spec import parse_spec

    (tmp_path / "imgs").mkdir()
    spec = parse_spec({"output": "run", "datasets": [{"path": "imgs"}], "masksets": [{"kind": "mat-large"}],
                       "models": [{"name": "opencv-telea", "options": {"radius": 25}},
                                  {"name": "mat", "smoke": True, "options": {"truncation_psi": 0.5,
                                                                              "noise_mode": "random"}}]},
                      base_dir=tmp_path)
    assert spec.models[0].options == {"radius": 25}
    assert create_model("opencv-telea", radius=25, device="cpu").radius == 25.0  # int accepted for a float


def test_dry_run_refuses_a_mat_option_typo_before_any_job(tmp_path: Path, capsys) -> None:
    img_dir, _ = _inputs(tmp_path)
    p = _write_spec(tmp_path, {"output": "run", "datasets": [{"path": str(img_dir)}],
                               "masksets": [{"kind": "mat-large"}],
                               "models": [{"name": "opencv-telea"},
                                          {"name": "mat", "smoke": True, "options": {"truncaton_psi": 0.5}}]})
    for argv in (["run", str(p), "--dry-run"], ["run", str(p)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "models[1].options.truncaton_psi: model 'mat' has no option 'truncaton_psi' (did you mean " \
               "'truncation_psi'?)" in err
    assert not (tmp_path / "run").exists()  # refused before the telea job ran


def test_inpaint_option_typo_and_type_refused(tmp_path: Path, capsys) -> None:
    img_dir, mask_dir = _inputs(tmp_path)
    base = ["inpaint", "--model", "opencv-telea", "--images", str(img_dir), "--masks", str(mask_dir),
            "--mask-polarity", "known=255", "-o", str(tmp_path / "out")]
    assert main([*base, "--option", "radiuss=25"]) == 2
    assert "model 'opencv-telea' has no option 'radiuss' (did you mean 'radius'?)" in capsys.readouterr().err
    assert main([*base, "--option", "radius=big"]) == 2
    assert "--option radius=big: model 'opencv-telea' option radius: must be a number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main([*base, "--option", "radius=5"]) == 0


def test_plugin_without_declared_options_and_kwargs_warns_once(caplog) -> None:
    import matbench.models.options as O
    from matbench.models.base import create_model

    O._WARNED.discard("test_faults:loose_plugin")
    with caplog.at_level("WARNING"):
        create_model("test_faults:loose_plugin", anything=1)
        create_model("test_faults:loose_plugin", anything=1)
    warned = [r for r in caplog.records if "declares no options" in r.getMessage()]
    assert len(warned) == 1 and "anything" in warned[0].getMessage()


def test_models_name_lists_options(capsys) -> None:
    import json

    assert main(["models", "opencv-telea"]) == 0
    out = capsys.readouterr().out
    assert "options:" in out and "radius  float, default 3.0: neighbourhood radius" in out
    assert main(["models", "mat", "--json"]) == 0
    opts = {o["name"]: o for o in json.loads(capsys.readouterr().out)["models"][0]["options"]}
    assert opts["truncation_psi"] == {"name": "truncation_psi", "type": "float", "default": 1.0,
                                      "help": opts["truncation_psi"]["help"], "choices": None}
    assert opts["precision"]["choices"] == ["fp32", "tf32", "bf16"]
    assert main(["models", "test_faults:plain_plugin"]) == 0
    assert "options: not declared" in capsys.readouterr().out


# --------------------------------------------------------------------------- pickles that carry code


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _persistence_pickle(src: str) -> bytes:
    """A StyleGAN `torch_utils.persistence` pickle whose only payload is code (module_src), no weights."""
    import pickle
    import sys
    import types

    from matbench.models.mat.checkpoint import _reconstruct_persistent_obj

    meta = {"type": "class", "version": 6, "class_name": "networks.mat.Generator", "module_src": src,
            "state": {"_parameters": {}, "_buffers": {}, "_modules": {}}}
    mod = types.ModuleType("torch_utils.persistence")
    mp = pytest.MonkeyPatch()
    mp.setattr(_reconstruct_persistent_obj, "__module__", "torch_utils.persistence")
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mp.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    mp.setitem(sys.modules, "torch_utils.persistence", mod)
    try:
        return pickle.dumps({"G_ema": _Reduce(_reconstruct_persistent_obj, (meta,))}, protocol=4)
    finally:
        mp.undo()


def test_persistence_pickle_with_code_says_it_held_code(tmp_path: Path) -> None:
    from matbench.errors import WeightsError
    from matbench.models.mat.checkpoint import load_generator

    sentinel = tmp_path / "pwned"
    p = tmp_path / "G.pkl"
    p.write_bytes(_persistence_pickle(f"open({str(sentinel)!r}, 'w').write('x')\n"))
    with pytest.raises(WeightsError) as ei:
        load_generator(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: refused: ") and "carries Python source code" in msg
    assert "networks.mat.Generator" in msg and "nothing from the file was executed" in msg
    assert "missing keys" not in msg
    assert not sentinel.exists()


def _evil_pth(path: Path, sentinel: Path, key: str = "w") -> None:
    import torch

    torch.save({key: _Reduce(os.system, (f"touch {sentinel}",))}, path)


def test_mat_pth_with_code_refused_without_unsafe_advice(tmp_path: Path) -> None:
    from matbench.models.mat.checkpoint import UnsafeCheckpointError, load_state

    sentinel, p = tmp_path / "pwned", tmp_path / "evil.pth"
    _evil_pth(p, sentinel)
    with pytest.raises(UnsafeCheckpointError) as ei:
        load_state(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: refused: ") and f"the global {os.system.__module__}.system" in msg
    assert "can run code" in msg and "nothing from the file was executed" in msg
    assert "weights_only" not in msg and "False" not in msg and "\n" not in msg
    assert not sentinel.exists()


def test_comodgan_pth_with_code_refused_without_unsafe_advice(tmp_path: Path) -> None:
    from matbench.baselines.comodgan.inpainter import read_state_dict

    from matbench.errors import WeightsError

    sentinel, p = tmp_path / "pwned", tmp_path / "evil.pth"
    _evil_pth(p, sentinel, "G_mapping.G_mapping.Dense0.weight")
    with pytest.raises(WeightsError) as ei:
        read_state_dict(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: refused: ") and f"{os.system.__module__}.system" in msg and "can run code" in msg
    assert "weights_only" not in msg and "False" not in msg
    (tmp_path / "page.pth").write_text("<html>sign in</html>")  # not a refusal: a plain unreadable file
    with pytest.raises(WeightsError) as ei:
        read_state_dict(tmp_path / "page.pth")
    assert "cannot load as a CoModGAN state_dict" in str(ei.value) and "weights_only" not in str(ei.value)
    assert not sentinel.exists()


def test_lama_checkpoint_with_code_says_what_and_why(tmp_path: Path) -> None:
    import torch
    from matbench.baselines.lama.checkpoint import UnsafeCheckpointError, load_lama

    sentinel = tmp_path / "pwned"
    ck = tmp_path / "big-lama" / "models" / "best.ckpt"
    ck.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "hyper_parameters": _Reduce(os.system, (f"touch {sentinel}",))}, ck)
    with pytest.raises(UnsafeCheckpointError) as ei:
        load_lama(tmp_path / "big-lama")
    msg = str(ei.value)
    assert f"{os.system.__module__}.system" in msg and "could run code" in msg and "weights_only" not in msg
    assert not sentinel.exists()


# --------------------------------------------------------------------------- MAT hole_range

# sha256 (first 16 hex) of np.packbits(hole) for seeds 0..3, from the official fenglinglwb/MAT d273d89
# datasets/mask_generator_512{,_small}.py: np.random.seed(seed); hole = RandomMask(res, hole_range=[lo, hi])[0] == 0
OFFICIAL_HOLE_RANGE = {
    ("mat-large", (0.1, 0.5), 512): ("a67afcbc3edda60d", "fab625040fa046b8", "e34b1f4ced7499e0", "c180acd28a9e3b98"),
    ("mat-large", (0.1, 0.5), 256): ("570dd0126de571a0", "b1c66d00b9aa37a9", "79e04b338745f401", "b2b80b9ce399f602"),
    ("mat-large", (0.5, 1.0), 512): ("d44d2350e0eca330", "fd8eb67b28d59acf", "db2b69c45b159121", "78d1fa5077a2028d"),
    ("mat-small", (0.2, 0.6), 512): ("3d62913a1e233f2e", "ea4eda0377c59402", "b4db94d9eb352998", "1ebd96f1692e571b"),
    ("mat-small", (0.2, 0.6), 256): ("4adab6c9592a66f2", "1780ce150c4b47a0", "b39d7f5d01248310", "01fdd75ea6e73b1e"),
    ("mat-large", (0.3, 0.4), 256): ("793219c9dce6ae10", "afea1a422f6fcc7c", "13668f415c1ef0af", "d4ca6cd2e876929d"),
}


@pytest.mark.parametrize("key", list(OFFICIAL_HOLE_RANGE), ids=lambda k: f"{k[0]}-{k[1][0]}-{k[1][1]}-{k[2]}")
def test_hole_range_is_bit_exact_with_the_official_generator(key) -> None:
    import hashlib

    from matbench.data.masks import generate_mask

    kind, hr, res = key
    for seed, want in enumerate(OFFICIAL_HOLE_RANGE[key]):
        hole = generate_mask(kind, res, seed, hole_range=list(hr))
        assert hashlib.sha256(np.packbits(hole).tobytes()).hexdigest()[:16] == want, seed
        assert hr[0] < hole.mean() < hr[1]


def test_masks_make_hole_range_recorded_in_maskset_json(tmp_path: Path) -> None:
    import json

    from matbench.data.masks import generate_mask
    from matbench.data.maskset import MaskSet

    out = tmp_path / "ms"
    assert main(["masks", "make", "--kind", "mat-large", "--n", "3", "--res", "64", "--seed", "7",
                 "--hole-range", "0.3", "0.6", "-o", str(out)]) == 0
    meta = json.loads((out / "maskset.json").read_text())
    assert meta["params"]["hole_range"] == [0.3, 0.6]
    ms = MaskSet.open(out)
    for i in range(3):
        assert np.array_equal(ms.hole(i), generate_mask("mat-large", 64, 7 + i, hole_range=(0.3, 0.6)))
    assert ((ms.hole_ratios() > 0.3) & (ms.hole_ratios() < 0.6)).all()


@pytest.mark.parametrize("kind,hr,match", [
    ("lama-thick", [0.1, 0.5], "only for MAT kinds"),
    ("mat-large", [0.6, 0.5], "0 <= lo < hi <= 1"),
    ("mat-small", [0.0, 0.4], r"mat-small needs lo \+ hi >= 0\.500"),
])
def test_bad_hole_range_refused_in_api_cli_and_spec(tmp_path: Path, capsys, kind, hr, match) -> None:
    from matbench.data.masks import generate_mask
    from matbench.errors import SpecError
    from matbench.spec import parse_spec

    with pytest.raises(SpecError, match=match):
        generate_mask(kind, 64, 0, hole_range=hr)
    assert main(["masks", "make", "--kind", kind, "--n", "1", "--res", "64", "--hole-range", *map(str, hr),
                 "-o", str(tmp_path / "m")]) == 2
    assert "hole_range" in capsys.readouterr().err
    (tmp_path / "imgs").mkdir()
    with pytest.raises(SpecError, match=r"masksets\[0\]\.hole_range: .*" + match):
        parse_spec({"output": "o", "datasets": [{"path": "imgs"}], "masksets": [{"kind": kind, "hole_range": hr}],
                    "models": [{"name": "mean-fill"}]}, base_dir=tmp_path)


def test_spec_hole_range_reaches_the_run(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from runner_helpers import StandinBatch, standin_factory

    from matbench.data.masks import generate_mask
    from matbench.data.maskset import MaskSet
    from matbench.runner import RunOptions, run
    from matbench.spec import parse_spec

    img_dir, _ = _inputs(tmp_path, n=2, size=40)
    spec = parse_spec({"output": "run", "resolutions": [32], "metrics": ["l1"], "smoke": True,
                       "datasets": [{"path": str(img_dir), "name": "d", "policy": "resize-crop"}],
                       "masksets": [{"kind": "mat-large", "hole_range": [0.4, 0.7]}],
                       "models": [{"name": "mean-fill"}]}, base_dir=tmp_path)
    assert spec.to_json()["masksets"][0]["hole_range"] == [0.4, 0.7]
    run(spec, RunOptions(evaluator_factory=standin_factory, batch_loader=StandinBatch.load, progress=False))
    ms = MaskSet.open(tmp_path / "run" / "masksets" / "mat-large" / "32")
    assert ms.meta["params"]["hole_range"] == [0.4, 0.7]
    assert np.array_equal(ms.hole(1), generate_mask("mat-large", 32, 1, hole_range=(0.4, 0.7)))


# --------------------------------------------------------------------------- eval: 0/1 masks, --name


def _eval_case(tmp_path: Path, sub: str, mask_values: tuple[int, int] = (0, 255)) -> tuple[Path, Path, Path]:
    """GT images, results named `results` (the hole filled grey), plain MAT-polarity masks."""
    root = tmp_path / sub
    root.mkdir()
    gt, masks = _inputs(root, n=3, mask_values=(0, 255))
    res = root / "results"
    res.mkdir()
    for p in sorted(gt.iterdir()):
        img = np.asarray(Image.open(p)).copy()
        hole = np.asarray(Image.open(masks / p.name)) == 0
        img[hole] = 128
        Image.fromarray(img).save(res / p.name)
        if mask_values != (0, 255):
            Image.fromarray(np.where(hole, mask_values[0], mask_values[1]).astype(np.uint8)).save(masks / p.name)
    return gt, res, masks


def _eval(gt: Path, res: Path, masks: Path, out: Path, *extra: str) -> int:
    return main(["eval", "--results", str(res), "--gt", str(gt), "--masks", str(masks), "--mask-polarity",
                 "known=255", "--metrics", "psnr,l1", "--bootstrap", "0", "--workers", "0", "--device", "cpu",
                 "--no-cache", "-o", str(out), *extra])


def test_eval_refuses_01_masks_instead_of_blaming_polarity(tmp_path: Path, capsys) -> None:
    gt, res, masks = _eval_case(tmp_path, "a", mask_values=(0, 1))
    assert _eval(gt, res, masks, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "mask holds only the values 0 and 1" in err and "--binarize 1" in err
    assert "polarity?" not in err and not (tmp_path / "out").exists()


def test_eval_name_and_the_same_name_error(tmp_path: Path, capsys) -> None:
    from matbench.reports.leaderboard import build_tables, load_entries

    runs = [_eval_case(tmp_path, s) for s in ("m1", "m2")]
    for (gt, res, masks), out in zip(runs, ("e1", "e2"), strict=True):
        assert _eval(gt, res, masks, tmp_path / "plain" / out) == 0
    capsys.readouterr()
    assert main(["table", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err
    assert "two results for results" in err and "named after its results folder" in err
    assert "--name NAME" in err and "pass only one" not in err
    for (gt, res, masks), name in zip(runs, ("mat", "lama"), strict=True):
        assert _eval(gt, res, masks, tmp_path / "named" / name, "--name", name) == 0
    (t,) = build_tables(load_entries([tmp_path / "named"]))
    assert t.rows == ["lama", "mat"]


# --------------------------------------------------------------------------- docs


def test_ci_example_installs_only_extras_that_exist() -> None:
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    extras = set(tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    text = (root / "docs" / "ci-example.yml").read_text()
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs
    for line in installs:
        for group in re.findall(r"\.\[([^\]]*)\]", line):
            for extra in group.split(","):
                assert extra.strip() in extras, f"docs/ci-example.yml installs the missing extra {extra!r}"


def test_disk_full_during_a_run_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    img_dir, _ = _inputs(tmp_path, n=2, size=40)
    p = write_spec(tmp_path, "spec", output="run", metrics=["l1"], batch_size=None,
                   datasets=[{"path": str(img_dir), "policy": "resize-crop"}])
    real_save = Image.Image.save

    def save(self, fp, *a, **k):  # mask PNGs are encoded in memory; the first file on disk hits a full disk
        if isinstance(fp, (str, os.PathLike)):
            _enospc()
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    rc = main(["run", str(p), "--no-progress"])
    stderr = capsys.readouterr().err
    err = [ln for ln in stderr.splitlines() if ln.startswith("matbench: error")]
    assert rc == 2 and len(err) == 1 and "Traceback" not in stderr, stderr
    assert "no space left on the device" in err[0] and "needs about" in err[0] and str(tmp_path / "run") in err[0]


def test_options_as_module_data_are_the_same_declaration() -> None:
    from matbench.errors import SpecError
    from matbench.models.options import Option, as_options, check_options

    opts = as_options({"steps": {"type": "int", "default": 50, "help": "denoising steps"},
                       "dtype": {"type": "str", "default": "fp32", "choices": ["fp32", "bf16"], "help": "dtype"}})
    assert opts == (Option("steps", "int", 50, "denoising steps"), Option("dtype", "str", "fp32", "dtype",
                                                                           ("fp32", "bf16")))
    check_options("m", opts, {"steps": 20, "dtype": "bf16", "device": "cpu"})
    with pytest.raises(SpecError, match=r"has no option 'step' \(did you mean 'steps'\?\)"):
        check_options("m", opts, {"step": 20})
    with pytest.raises(SpecError, match=r"bad option declaration"):
        as_options({"x": {"default": 1}})
