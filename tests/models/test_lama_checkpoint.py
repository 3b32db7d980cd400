"""Safe loading of LaMa's Lightning checkpoint: the fixture, malicious pickles, wrong keys, config.yaml."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from matbench.baselines.lama.checkpoint import (
    UnsafeCheckpointError,
    build_generator,
    config_from_yaml_text,
    load_generator_state,
    load_lama,
    resolve_interpolations,
)
from matbench.baselines.lama.network import BIG_LAMA, FFCResNetGenerator, LamaConfig

from matbench.errors import WeightsError

TINY_YAML = """\
generator:
  kind: ffc_resnet
  input_nc: 4
  output_nc: 3
  ngf: 8
  n_downsampling: 2
  n_blocks: 1
  add_out_act: sigmoid
  init_conv_kwargs: {ratio_gin: 0, ratio_gout: 0, enable_lfu: false}
  downsample_conv_kwargs:
    ratio_gin: ${generator.init_conv_kwargs.ratio_gout}
    ratio_gout: ${generator.downsample_conv_kwargs.ratio_gin}
    enable_lfu: false
  resnet_conv_kwargs:
    ratio_gin: 0.75
    ratio_gout: ${generator.resnet_conv_kwargs.ratio_gin}
    enable_lfu: false
"""


@pytest.fixture(scope="module")
def fixture_dir(golden) -> Path:
    return golden / "lama" / "checkpoint_format"


@pytest.fixture(scope="module")
def manifest(golden):
    return {t["name"]: t for t in json.loads((golden / "lama" / "manifest.json").read_text())["tensors"]}


def _fill_value(golden, name, shape, mean, std):
    import importlib.util

    spec = importlib.util.spec_from_file_location("golden_fill", golden / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fill_value(name, shape, mean, std)


def test_fixture_loads_generator_only(golden, fixture_dir, manifest):
    ckpt = load_lama(fixture_dir)
    assert ckpt.config == BIG_LAMA  # config.yaml's ${...} interpolations resolved to the Big LaMa values
    expected = json.loads((fixture_dir / "pickle_globals.json").read_text())["state_dict_keys"]
    gen_keys = [k[len("generator."):] for k in expected if k.startswith("generator.")]
    assert list(ckpt.generator_state) == gen_keys
    assert sorted(ckpt.ignored_keys) == sorted(k for k in expected if not k.startswith("generator."))
    for k, v in ckpt.generator_state.items():  # README: values equal fill_value with the manifest's mean/std
        t = manifest[k]
        if t["fill"]:
            assert torch.equal(v, _fill_value(golden, k, t["shape"], t["mean"], t["std"])), k
        else:
            assert v.dtype == torch.int64 and v.item() == 0
    assert ckpt.meta == {"epoch": 23, "global_step": 575000, "pytorch-lightning_version": "1.2.9"}
    hp = ckpt.hyper_parameters  # the pickled DictConfig, read through inert stand-ins
    assert hp["run_title"] == "b18_ffc075_batch8x15"
    assert hp["generator"]["n_blocks"] == 18
    assert hp["generator"]["resnet_conv_kwargs"]["ratio_gout"] == "${generator.resnet_conv_kwargs.ratio_gin}"
    assert "omegaconf" not in sys.modules and "pytorch_lightning" not in sys.modules
    assert ckpt.sha256 and len(ckpt.sha256) == 64


def test_fixture_is_incomplete_and_strict_load_lists_missing_keys(fixture_dir):
    ckpt = load_lama(fixture_dir)
    with pytest.raises(WeightsError) as e:
        build_generator(ckpt)
    msg = str(e.value)
    assert "981 missing keys: " in msg and "model.2.ffc.convl2l.weight" in msg and "(+973 more)" in msg
    assert "best.ckpt" in msg


def test_zip_and_parent_folder_and_bare_ckpt(fixture_dir, tmp_path):
    zpath = tmp_path / "big-lama.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(fixture_dir / "config.yaml", "big-lama/config.yaml")
        z.write(fixture_dir / "models" / "best.ckpt", "big-lama/models/best.ckpt")
    a = load_lama(zpath)
    shutil.copytree(fixture_dir, tmp_path / "x" / "big-lama")
    b = load_lama(tmp_path / "x")  # the folder that contains big-lama/
    c = load_lama(tmp_path / "x" / "big-lama" / "models" / "best.ckpt")
    for ck in (a, b, c):
        assert list(ck.generator_state) == list(load_lama(fixture_dir).generator_state)
        assert ck.config == BIG_LAMA
    assert a.sha256 == b.sha256 == c.sha256
    # without config.yaml, the generator section pickled in hyper_parameters is used
    (tmp_path / "x" / "big-lama" / "config.yaml").unlink()
    d = load_lama(tmp_path / "x" / "big-lama")
    assert d.config == BIG_LAMA and "hyper_parameters" in d.config_source


# --------------------------------------------------------------------------- malicious checkpoints


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


def _save_lightning_like(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = OrderedDict({"generator.model.34.bias": torch.zeros(3)})
    torch.save({"epoch": 1, "state_dict": state, "hyper_parameters": payload}, path)


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, kind):
    sentinel = tmp_path / "pwned"
    if kind == "os.system":
        payload, global_name = _Evil(os.system, f"touch {sentinel}"), f"{os.system.__module__}.system"
    elif kind == "builtins.exec":
        payload, global_name = _Evil(exec, f"open({str(sentinel)!r}, 'w').close()"), "builtins.exec"
    else:
        payload, global_name = _Evil(eval, f"__import__('os').system('touch {sentinel}')"), "builtins.eval"
    folder = tmp_path / "big-lama"
    _save_lightning_like(folder / "models" / "best.ckpt", payload)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_lama(folder)
    assert global_name in str(e.value) and "best.ckpt" in str(e.value)
    assert not sentinel.exists()


def test_crafted_data_pkl_inside_the_fixture_zip_is_refused(fixture_dir, tmp_path):
    """Replace best/data.pkl in a copy of the fixture with a hand-written protocol-2 pickle."""
    sentinel = tmp_path / "pwned"
    cmd = f"touch {sentinel}".encode()
    evil = b"\x80\x02csubprocess\ncheck_call\nq\x00X" + len(cmd).to_bytes(4, "little") + cmd + b"\x85q\x01Rq\x02."
    src = fixture_dir / "models" / "best.ckpt"
    dst = tmp_path / "m" / "models" / "best.ckpt"
    dst.parent.mkdir(parents=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = evil if info.filename.endswith("data.pkl") else zin.read(info)
            zout.writestr(info, data)
    with pytest.raises(UnsafeCheckpointError, match=r"subprocess\.check_call"):
        load_lama(dst)
    assert not sentinel.exists()


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "best.ckpt"
    p.write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="not a torch zip-format checkpoint"):
        load_lama(p)
    with pytest.raises(WeightsError, match="not a LaMa model folder"):
        load_lama(tmp_path)


# --------------------------------------------------------------------------- wrong keys, round trip


def _tiny_model() -> FFCResNetGenerator:
    cfg, _ = config_from_yaml_text(TINY_YAML, "tiny.yaml")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return FFCResNetGenerator(cfg).eval()


def test_wrong_keys_are_listed(tmp_path):
    model = _tiny_model()
    sd = {"generator." + k: v for k, v in model.state_dict().items()}
    sd["generator.model.5.extra.weight"] = torch.zeros(1)
    del sd["generator.model.1.bn_l.running_var"]
    sd["generator.model.2.ffc.convl2l.weight"] = torch.zeros(1, 2, 3, 3)
    folder = tmp_path / "m"
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(TINY_YAML)
    torch.save({"state_dict": sd}, folder / "models" / "best.ckpt")
    with pytest.raises(WeightsError) as e:
        build_generator(load_lama(folder))
    msg = str(e.value)
    assert "1 missing keys: model.1.bn_l.running_var" in msg
    assert "1 unexpected keys: model.5.extra.weight" in msg
    assert "model.2.ffc.convl2l.weight (1, 2, 3, 3) != (16, 8, 3, 3)" in msg


def test_no_generator_keys_lists_prefixes(tmp_path):
    p = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"discriminator.a": torch.zeros(1), "val_evaluator.b": torch.zeros(1)}}, p)
    with pytest.raises(WeightsError, match=r"top-level prefixes found: discriminator\., val_evaluator\."):
        load_lama(p)


def test_round_trip_tiny_config(tmp_path):
    model = _tiny_model()
    folder = tmp_path / "tiny"
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(TINY_YAML)
    sd = OrderedDict({"generator." + k: v for k, v in model.state_dict().items()})
    sd["val_evaluator.scores.ssim.score.window"] = torch.ones(1, 1, 11, 11)
    torch.save({"epoch": 2, "state_dict": sd}, folder / "models" / "best.ckpt")
    ck = load_lama(folder)
    assert ck.config == LamaConfig(ngf=8, n_downsampling=2, n_blocks=1)
    loaded = build_generator(ck)
    x = torch.rand(1, 4, 16, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert ck.ignored_keys == ["val_evaluator.scores.ssim.score.window"]


def test_bare_state_dict_without_prefix(tmp_path):
    model = _tiny_model()
    p = tmp_path / "gen.pth"
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    p.write_bytes(buf.getvalue())
    ck = load_lama(p)  # no config.yaml, no hyper-parameters: Big LaMa assumed, so the strict load names the problem
    assert ck.config == BIG_LAMA and ck.config_source.startswith("default")
    with torch.device("meta"):
        big = FFCResNetGenerator(BIG_LAMA)
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_generator_state(big, ck.generator_state)
    built = FFCResNetGenerator(LamaConfig(ngf=8, n_downsampling=2, n_blocks=1)).eval()
    load_generator_state(built, ck.generator_state)
    x = torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(built(x), model(x))


# --------------------------------------------------------------------------- config.yaml


def test_interpolations():
    root = {"a": {"b": 2, "c": "${a.b}", "d": "x/${a.b}/${env:HOME}"}, "e": "${a.c}"}
    assert resolve_interpolations(root, root) == {"a": {"b": 2, "c": 2, "d": "x/2/${env:HOME}"}, "e": 2}


@pytest.mark.parametrize("bad,needle", [
    ("kind: pix2pixhd_global", "generator.kind 'pix2pixhd_global'"),
    ("spatial_transform_layers: [1]", "generator.spatial_transform_layers"),
    ("resnet_conv_kwargs: {ratio_gin: 0.75, enable_lfu: true}", "resnet_conv_kwargs.enable_lfu"),
    ("ngf: ${generator.nope}", "cannot resolve"),
])
def test_unsupported_generator_config(bad, needle):
    with pytest.raises(WeightsError, match="cfg.yaml") as e:
        config_from_yaml_text("generator:\n  " + bad + "\n", "cfg.yaml")
    assert needle in str(e.value)
