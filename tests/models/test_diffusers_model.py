"""The `diffusers` model on a tiny random pipeline built here (no download): the Inpainter contract
(known pixels, batch/seed independence, padding, mask polarity), prompts, provenance, CLI and runner."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from spec_helpers import write_spec

pytest.importorskip("diffusers")

from matbench.baselines.diffusion.inpainter import (  # noqa: E402
    OPTIONS,
    DiffusersInpainter,
    DiffusersOptions,
    diffusers_model,
    hole_to_mask_image,
)
from matbench.baselines.diffusion.tiny import build_tiny_pipeline  # noqa: E402

from matbench.errors import InputError, SpecError  # noqa: E402
from matbench.models.base import create_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny_sd")
    build_tiny_pipeline(seed=0, folder=d)
    return d


@pytest.fixture(scope="module")
def model(tiny_dir) -> DiffusersInpainter:
    return create_model("diffusers", weights=str(tiny_dir), steps=2, device="cpu")


class Spy:
    """Wraps a pipeline: records what it is called with (mask image, size, prompt)."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []

    def __getattr__(self, k):
        return getattr(self.pipe, k)

    def __call__(self, **kw):
        self.calls.append(kw)
        return self.pipe(**kw)


def _batch(n=3, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    hole = torch.zeros(n, 1, h, w, dtype=torch.bool)
    for i in range(n):
        hole[i, :, 8 + 4 * i: 40 + 4 * i, 10:50] = True
    return imgs, hole, [f"im{i}" for i in range(n)]


def test_known_pixels_exact_and_smoke_detected(model):
    imgs, hole, ids = _batch(1)
    out = model(imgs, hole, ids, seed=0)
    assert out.dtype == torch.uint8 and out.shape == imgs.shape
    known = ~hole.expand_as(imgs)
    assert torch.equal(out[known], imgs[known])
    assert (out[~known].int() - imgs[~known].int()).abs().float().mean() > 5  # the hole was repainted
    assert model.smoke  # the folder carries the tiny builder's marker: random weights


def test_batch_of_three_equals_one_at_a_time_and_seeds(model):
    imgs, hole, ids = _batch(3)
    together = model(imgs, hole, ids, seed=7)
    alone = torch.cat([model(imgs[i:i + 1], hole[i:i + 1], ids[i:i + 1], seed=7) for i in (2, 0, 1)])
    assert torch.equal(together, alone[[1, 2, 0]])
    again = model(imgs[:1], hole[:1], ids[:1], seed=7)
    assert torch.equal(again, together[:1])  # reproducible
    other = model(imgs[:1], hole[:1], ids[:1], seed=8)
    assert not torch.equal(other, together[:1])  # the seed matters
    sample1 = model(imgs[:1], hole[:1], ids[:1], seed=7, sample=1)
    assert not torch.equal(sample1, together[:1])  # so does the sample index (pluralistic)


def test_size_padded_to_latent_grid_and_cropped(model):
    imgs, hole, ids = _batch(1, h=50, w=61)
    spy = Spy(model.pipe)
    model.pipe = spy
    try:
        out = model(imgs, hole, ids)
    finally:
        model.pipe = spy.pipe
    kw = spy.calls[0]
    assert (kw["height"], kw["width"]) == (56, 64) and kw["image"].size == (64, 56)
    m = np.asarray(kw["mask_image"])
    assert m.shape == (56, 64) and not m[50:].any() and not m[:, 61:].any()  # padding is known
    assert out.shape == imgs.shape


def test_mask_polarity(model):
    hole = np.zeros((4, 4), bool)
    hole[1:3, 2] = True
    assert np.array_equal(np.asarray(hole_to_mask_image(hole)), np.where(hole, 255, 0))  # white = repaint
    imgs, _, ids = _batch(1)
    spy = Spy(model.pipe)
    model.pipe = spy
    try:
        none = model(imgs, torch.zeros(1, 1, 64, 64, dtype=torch.bool), ids)
        everything = model(imgs, torch.ones(1, 1, 64, 64, dtype=torch.bool), ids)
    finally:
        model.pipe = spy.pipe
    assert not np.asarray(spy.calls[0]["mask_image"]).any()
    assert (np.asarray(spy.calls[1]["mask_image"]) == 255).all()
    assert torch.equal(none, imgs)
    assert (everything != imgs).float().mean() > 0.9


def test_prompt_file_per_image_and_provenance(tiny_dir, tmp_path):
    pf = tmp_path / "prompts.txt"
    pf.write_text("# id<TAB>prompt\nim0\ta red car\nim1\ta lake\n")
    m = create_model("diffusers", weights=str(tiny_dir), steps=1, prompt_file=str(pf), negative_prompt="blurry",
                     scheduler="EulerDiscreteScheduler", guidance_scale=3.0)
    spy = Spy(m.pipe)
    m.pipe = spy
    imgs, hole, ids = _batch(2)
    m(imgs, hole, ids)
    assert [c["prompt"] for c in spy.calls] == ["a red car", "a lake"]
    assert all(c["negative_prompt"] == "blurry" and c["guidance_scale"] == 3.0 for c in spy.calls)
    with pytest.raises(InputError, match="no prompt for image id 'im9'"):
        m(imgs[:1], hole[:1], ["im9"])
    m.pipe = spy.pipe
    prov = m.provenance()
    assert prov["scheduler_class"] == "EulerDiscreteScheduler" and prov["smoke"] is True
    assert prov["steps"] == 1 and prov["compositing"].startswith("blended")
    f = tiny_dir / "unet" / "diffusion_pytorch_model.safetensors"
    assert prov["component_sha256"]["unet/diffusion_pytorch_model.safetensors"] == hashlib.sha256(
        f.read_bytes()).hexdigest()
    (tmp_path / "p.json").write_text(json.dumps({"im0": "x"}))
    assert create_model("diffusers", weights=str(tiny_dir), prompt_file=str(tmp_path / "p.json"),
                        hash_weights=False).prompts == {"im0": "x"}


def test_bad_options_are_one_line_errors(tiny_dir):
    with pytest.raises(SpecError, match="needs weights"):
        create_model("diffusers")
    with pytest.raises(SpecError, match="not a diffusers scheduler"):
        create_model("diffusers", weights=str(tiny_dir), scheduler="NoSuchScheduler")
    with pytest.raises(SpecError, match="dtype"):
        create_model("diffusers", weights=str(tiny_dir), dtype="fp8")


def test_cli_inpaint_on_demo_photos(tiny_dir, tmp_path):
    from matbench.cli import main
    from matbench.data.demo import demo_images
    from matbench.io import read_image

    demo_images(tmp_path / "photos", n=2)
    photos = sorted(p for p in (tmp_path / "photos").rglob("*.png"))
    masks = tmp_path / "masks"
    masks.mkdir()
    from PIL import Image

    holes = {}
    for p in photos:
        w, h = Image.open(p).size
        hole = np.zeros((h, w), bool)
        hole[h // 4: h // 2, w // 4: w // 2] = True
        rel = p.relative_to(tmp_path / "photos").with_suffix(".png")
        (masks / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(hole, 255, 0).astype(np.uint8)).save(masks / rel)
        holes[rel.with_suffix("").as_posix()] = hole
    out = tmp_path / "out"
    assert main(["inpaint", "--model", "diffusers", "--weights", str(tiny_dir), "--images", str(tmp_path / "photos"),
                 "--masks", str(masks), "--mask-polarity", "hole=255", "-o", str(out), "--option", "steps=1"]) == 0
    for image_id, hole in holes.items():
        res, src = read_image(out / f"{image_id}.png"), read_image(tmp_path / "photos" / f"{image_id}.png")
        assert res.shape == src.shape and np.array_equal(res[~hole], src[~hole])


def test_spec_runs_through_runner_and_report(tiny_dir, tmp_path):
    from matbench import runner
    from matbench.cli import main
    from matbench.data.demo import demo_images
    from matbench.spec import load_spec

    demo_images(tmp_path / "data", n=2)
    write_spec(tmp_path, "spec", name="diff", output="run", batch_size=2, device="cpu", resolutions=[64],
               metrics=["psnr", "l1"], datasets=[{"preset": "folder", "path": "data"}],
               models=[{"name": "diffusers", "samples": 2, "options": {"model_id": str(tiny_dir), "steps": 1}},
                       {"name": "mean-fill"}])
    runner.run(load_spec(tmp_path / "spec.toml"), runner.RunOptions(progress=False))
    recs = [json.loads(p.read_text()) for p in (tmp_path / "run" / "jobs").glob("*diffusers*/metrics.json")]
    assert len(recs) == 1 and recs[0]["smoke"] is True
    div = recs[0]["metrics"]["diversity"]  # pluralistic samples, scored as for MAT
    assert div["n"] == 2 and div["extra"]["samples"] == 2 and div["value"] > 0
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "site")]) == 0
    assert "diffusers" in (tmp_path / "site" / "index.html").read_text()


def test_smoke_without_weights_builds_the_tiny_pipeline():
    m = create_model("diffusers", smoke=True, steps=1)
    imgs, hole, ids = _batch(1, h=40, w=40)
    out = m(imgs, hole, ids)
    assert out.shape == imgs.shape and m.smoke and m.provenance()["weights"].startswith("smoke")


class FluxFillPipeline:
    """A stand-in with FLUX Fill's call signature (no strength, no negative prompt) and VAE factor 8."""

    vae_scale_factor = 8

    def __init__(self):
        self.calls = []

    def to(self, device):
        return self

    def __call__(self, prompt=None, image=None, mask_image=None, height=None, width=None, guidance_scale=30.0,
                 num_inference_steps=50, generator=None, output_type="pil"):
        self.calls.append(dict(prompt=prompt, height=height, width=width, guidance_scale=guidance_scale))
        from types import SimpleNamespace

        arr = np.asarray(image, dtype=np.float32) / 255  # echo the input back, as floats in [0, 1]
        return SimpleNamespace(images=[arr])


def test_flux_grid_is_16_and_only_accepted_kwargs_are_passed():
    pipe = FluxFillPipeline()
    m = DiffusersInpainter(pipe, DiffusersOptions(negative_prompt="ugly", strength=0.5, guidance_scale=30.0, steps=3))
    imgs, hole, ids = _batch(1, h=50, w=70)
    out = m(imgs, hole, ids)
    assert (pipe.calls[0]["height"], pipe.calls[0]["width"]) == (64, 80)  # multiples of 16
    assert pipe.calls[0]["guidance_scale"] == 30.0
    assert torch.equal(out, imgs)  # echo: round(x/255*255) is exact, and cropping undoes the padding
    prov = m.provenance()
    assert prov["strength"] is None and prov["negative_prompt"] is None  # not taken by this pipeline


def test_options_dataclass_is_the_declared_options():
    """DiffusersOptions and the declared OPTIONS (what `matbench models diffusers` lists) name the same defaults."""
    fields = {f: getattr(DiffusersOptions(), f) for f in DiffusersOptions.__dataclass_fields__}
    assert fields == {k: v["default"] for k, v in OPTIONS.items()}
    with pytest.raises(TypeError, match="stepz"):  # called directly (create_model checks names first)
        diffusers_model(smoke=True, stepz=3)
