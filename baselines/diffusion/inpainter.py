"""Any diffusers inpainting pipeline behind the matbench Inpainter interface (`diffusers` model).

Conventions, made explicit because diffusers' differ from ours:
- mask: diffusers' mask_image is white (255) = repaint; ours is `hole` True = missing, converted here;
- size: H and W are padded bottom/right (mirrored, padding counted as known) to a multiple of the
  pipeline's latent grid (8 for SD/SDXL, 16 for FLUX Fill), passed as height/width so the pipeline never
  resizes, and the output is cropped back;
- output: float [0, 1] -> uint8 by round(x * 255) (diffusers' own numpy_to_pil); the known pixels are then
  the input's exactly ("blended" compositing, as BrushBench's blended mode; recorded in provenance);
- randomness: one torch.Generator per image, seeded from (seed, image id, sample), images run one at a
  time: outputs do not depend on batch size, order or rank.
The diffusers import is lazy: the core install does not need it (pip install matbench-inpaint[diffusion]).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from matbench import seeding
from matbench.errors import Hint, InputError, MatbenchError, SpecError, WeightsError
from matbench.models.base import Inpainter, Requirements, register_model

from .tiny import SMOKE_MARKER

PIPELINES = {
    "auto": "AutoPipelineForInpainting",
    "sd": "StableDiffusionInpaintPipeline",
    "sdxl": "StableDiffusionXLInpaintPipeline",
    "flux": "FluxFillPipeline",
}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
REQUIRES = Requirements(weights=(), size_multiple=8, samples=True, native_resolution=None)

# Declared options, as module data (matbench.models.options): unknown or ill-typed options are refused.
OPTIONS: dict[str, dict[str, Any]] = {
    "weights": {"type": "str", "default": None, "help": "hub id or local pipeline folder"},
    "model_id": {"type": "str", "default": None,
                 "help": "hub id or folder, for specs (a spec's weights must be a file)"},
    "pipeline": {"type": "str", "default": "auto", "choices": list(PIPELINES),
                 "help": "auto (AutoPipelineForInpainting) or a pipeline class (also a full class name)"},
    "prompt": {"type": "str", "default": "", "help": "prompt for every image"},
    "prompt_file": {"type": "str", "default": None, "help": "JSON {id: prompt} or lines 'id<TAB>prompt'"},
    "negative_prompt": {"type": "str", "default": "", "help": "negative prompt (pipelines that take one)"},
    "steps": {"type": "int", "default": 50, "help": "num_inference_steps"},
    "guidance_scale": {"type": "float", "default": None, "help": "default: the pipeline's"},
    "strength": {"type": "float", "default": 1.0, "help": "1.0 = start from pure noise in the hole"},
    "scheduler": {"type": "str", "default": None, "help": "a diffusers scheduler class, e.g. DDIMScheduler"},
    "dtype": {"type": "str", "default": "fp32", "choices": list(DTYPES), "help": "weights/compute dtype"},
    "smoke": {"type": "bool", "default": False, "help": "tiny random pipeline (results labelled smoke)"},
    "hash_weights": {"type": "bool", "default": True, "help": "record the sha256 of every weights file"},
}


@dataclass(frozen=True)
class DiffusersOptions:
    """The diffusers model's options, one field per TOML / --option name (OPTIONS holds their types and help)."""

    weights: str | None = None
    model_id: str | None = None
    pipeline: str = "auto"
    prompt: str = ""
    prompt_file: str | None = None
    negative_prompt: str = ""
    steps: int = 50
    guidance_scale: float | None = None
    strength: float = 1.0
    scheduler: str | None = None
    dtype: str = "fp32"
    smoke: bool = False
    hash_weights: bool = True


DEFAULT_OPTIONS = DiffusersOptions()


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as e:
        raise MatbenchError("the diffusers model needs the optional dependencies: "
                            f"pip install 'matbench-inpaint[diffusion]' ({e})") from None
    return diffusers


def hole_to_mask_image(hole: np.ndarray) -> Any:
    """bool [H, W] (True = missing) -> the PIL 'L' mask diffusers expects (255 = repaint, 0 = keep)."""
    from PIL import Image

    return Image.fromarray(np.where(hole, 255, 0).astype(np.uint8), mode="L")


def read_prompt_file(path: str | Path) -> dict[str, str]:
    """JSON object {id: prompt}, or text lines 'id<TAB>prompt' (blank lines and '#' comments skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: prompt file does not exist")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{p}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise InputError(f"{p}: expected a JSON object mapping image id -> prompt string")
        return data
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            raise InputError(f"{p}:{n}: expected 'id<TAB>prompt'")
        k, v = line.split("\t", 1)
        out[k.strip()] = v.strip()
    return out


def component_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every weights file of a pipeline folder, by relative path (what the results were made with)."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf"):
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
            out[str(f.relative_to(folder))] = h.hexdigest()
    return out


def _local_folder(weights: str) -> Path | None:
    p = Path(weights).expanduser()
    if p.is_dir():
        return p
    try:  # a hub id already in the cache
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(weights, local_files_only=True))
    except Exception:
        return None


class DiffusersInpainter(Inpainter):
    """A diffusers inpainting pipeline; stochastic: one sample per (seed, image id, sample)."""

    name = "diffusers"
    requires = REQUIRES

    def __init__(self, pipe: Any, opts: DiffusersOptions = DEFAULT_OPTIONS, prompts: dict[str, str] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        """`opts` gives the sampling settings (prompt, negative_prompt, steps, guidance_scale, strength, smoke);
        `prompts` (image id -> prompt, from opts.prompt_file) replaces opts.prompt when given."""
        super().__init__()
        self.pipe = pipe
        self.prompt = opts.prompt
        self.prompts = prompts or {}
        self.negative_prompt = opts.negative_prompt
        self.steps = int(opts.steps)
        self.guidance_scale = None if opts.guidance_scale is None else float(opts.guidance_scale)
        self.strength = float(opts.strength)
        self.info = info or {}
        self.smoke = bool(opts.smoke)
        accepted = set(inspect.signature(pipe.__call__).parameters)
        self.accepted = accepted
        vae_scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        # FLUX packs 2x2 latent patches: its grid is twice the VAE factor.
        self.multiple = vae_scale * (2 if "Flux" in type(pipe).__name__ else 1)

    def to(self, device: str | torch.device) -> DiffusersInpainter:
        super().to(device)
        self.pipe.to(self.device)
        return self

    def prompt_for(self, image_id: str) -> str:
        if not self.prompts:
            return self.prompt
        if image_id not in self.prompts:
            raise InputError(f"{self.info.get('prompt_file')}: no prompt for image id {image_id!r}")
        return self.prompts[image_id]

    def call_kwargs(self, image_id: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"prompt": self.prompt_for(image_id), "num_inference_steps": self.steps}
        if "strength" in self.accepted:
            kw["strength"] = self.strength
        if self.negative_prompt and "negative_prompt" in self.accepted:
            kw["negative_prompt"] = self.negative_prompt
        if self.guidance_scale is not None:
            kw["guidance_scale"] = self.guidance_scale
        return kw

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        from PIL import Image

        h, w = images.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        outs = []
        for i, image_id in enumerate(ids):
            img = images[i:i + 1].float()
            hol = hole[i:i + 1].float()
            if ph or pw:
                mode = "reflect" if ph < h and pw < w else "replicate"
                img = F.pad(img, (0, pw, 0, ph), mode=mode)
                hol = F.pad(hol, (0, pw, 0, ph), value=0.0)  # padding is known content
            pil = Image.fromarray(img[0].permute(1, 2, 0).round().to(torch.uint8).numpy(), mode="RGB")
            mask = hole_to_mask_image(hol[0, 0].numpy() > 0.5)
            gen = seeding.generator(seed, image_id, "diffusers", sample)
            res = self.pipe(image=pil, mask_image=mask, height=h + ph, width=w + pw, generator=gen,
                            output_type="np", **self.call_kwargs(image_id))
            arr = np.asarray(res.images[0], dtype=np.float32)[:h, :w]
            outs.append(torch.from_numpy(np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)).permute(2, 0, 1))
        return torch.stack(outs, 0)

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            **self.info,
            "pipeline_class": type(self.pipe).__name__,
            "scheduler_class": type(getattr(self.pipe, "scheduler", None)).__name__,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt if "negative_prompt" in self.accepted else None,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "strength": self.strength if "strength" in self.accepted else None,
            "compositing": "blended: known pixels copied from the input after decoding (as BrushBench 'blended')",
            "mask_convention": "diffusers mask_image 255 = repaint, from our hole",
            "padding": f"bottom/right to a multiple of {self.multiple}, mirrored, counted as known; cropped back",
            "randomness": "torch.Generator per image from (seed, image id, sample); images run one at a time",
            "output_quantize": "round(x * 255)",
        }


def load_pipeline(weights: str, pipeline: str = "auto", dtype: str = "fp32", scheduler: str | None = None) -> Any:
    diffusers = _import_diffusers()
    cls_name = PIPELINES.get(pipeline, pipeline)
    cls = getattr(diffusers, cls_name, None)
    if cls is None:
        raise SpecError(f"diffusers option pipeline: unknown {pipeline!r} (use {', '.join(PIPELINES)} or a "
                        "diffusers pipeline class name)")
    try:
        pipe = cls.from_pretrained(weights, dtype=DTYPES[dtype])
    except Exception as e:  # not found offline, missing files, wrong pipeline type
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{weights}: cannot load a diffusers inpainting pipeline ({type(e).__name__}: {msg}); "
                           "give a local pipeline folder or a hub id (downloaded into the hub cache unless "
                           "HF_HUB_OFFLINE=1)") from None
    set_scheduler(pipe, scheduler)
    return pipe


def set_scheduler(pipe: Any, scheduler: str | None) -> None:
    """Swap the scheduler by class name, keeping the pipeline's noise schedule config."""
    if not scheduler:
        return
    sch = getattr(_import_diffusers(), scheduler, None)
    if sch is None or not hasattr(sch, "from_config") or "Scheduler" not in scheduler:
        raise SpecError(f"diffusers option scheduler: {scheduler!r} is not a diffusers scheduler class")
    pipe.scheduler = sch.from_config(pipe.scheduler.config)


@register_model("diffusers", description="any diffusers inpainting pipeline (SD, SDXL, FLUX Fill; optional extra)",
                requires=REQUIRES, options=OPTIONS)
def diffusers_model(device: str = "cpu", **options: Any) -> Inpainter:
    """A diffusers inpainting pipeline from a hub id or a local folder (pip install 'matbench-inpaint[diffusion]').

    options: the fields of DiffusersOptions (declared in OPTIONS, checked by create_model before this runs).
    weights: e.g. stable-diffusion-v1-5/stable-diffusion-inpainting or a folder; smoke=True without weights
    builds a tiny random pipeline. Options: pipeline, prompt, prompt_file, negative_prompt, steps,
    guidance_scale, strength, scheduler, dtype, hash_weights.
    """
    o = DiffusersOptions(**options)  # an unknown name is a TypeError, which create_model reports as bad options
    weights, dtype, steps, strength, scheduler = o.weights, o.dtype, o.steps, o.strength, o.scheduler
    prompt_file, smoke = o.prompt_file, o.smoke
    if dtype not in DTYPES:
        raise SpecError(f"diffusers option dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if int(steps) < 1:
        raise SpecError(f"diffusers option steps must be >= 1, got {steps}")
    if not 0.0 < float(strength) <= 1.0:
        raise SpecError(f"diffusers option strength must be in (0, 1], got {strength}")
    if o.model_id is not None:
        if weights is not None:
            raise SpecError("diffusers: give weights or model_id (a hub id or folder), not both")
        weights = o.model_id
    prompts = read_prompt_file(prompt_file) if prompt_file else None
    info: dict[str, Any] = {"weights": weights, "prompt_file": prompt_file, "dtype": dtype}
    if weights is None:
        if not smoke:
            # --weights and a model --smoke together: `inpaint` (run's --smoke is the metric networks')
            raise SpecError("diffusers needs weights=HUB_ID_OR_FOLDER (a Hub id such as "
                            "stable-diffusion-v1-5/stable-diffusion-inpainting, or a folder), or smoke = true for a "
                            "tiny random pipeline", hints=[Hint("--weights", "e.g. --weights HUB_ID, or --smoke")])
        _import_diffusers()
        from .tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=0)
        set_scheduler(pipe, scheduler)
        info.update(weights="smoke (tiny random pipeline, torch seed 0)", component_sha256={})
    else:
        pipe = load_pipeline(str(weights), o.pipeline, dtype, scheduler)
        folder = _local_folder(str(weights))
        if folder is not None and (folder / SMOKE_MARKER).is_file():
            smoke = True  # a folder made by build_tiny_pipeline: random weights
        info["path"] = str(folder) if folder else None
        info["component_sha256"] = component_hashes(folder) if folder and o.hash_weights else None
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    model = DiffusersInpainter(pipe, replace(o, smoke=bool(smoke)), prompts=prompts, info=info)
    return model.to(device)

