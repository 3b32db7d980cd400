"""A tiny random-weight Stable Diffusion inpainting pipeline, built locally (no download).

Used by `--smoke` and by the tests: a 2-level UNet (9 input channels like SD inpainting), a 4-level VAE (latent grid 8),
a 2-layer CLIP text encoder and a byte-level CLIP tokenizer whose vocabulary is written here (256 byte
symbols, no merges). Everything it produces is meaningless and labelled smoke.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

SMOKE_MARKER = "matbench_smoke.json"  # a folder with this file holds random weights: results are smoke


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2 / CLIP), in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def write_tokenizer(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    syms = _byte_symbols()
    vocab = {s: i for i, s in enumerate(syms)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(syms)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def build_tiny_pipeline(seed: int = 0, folder: str | Path | None = None) -> Any:
    """A StableDiffusionInpaintPipeline with tiny random weights (seeded; the global RNG is restored)."""
    import tempfile

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=9, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16, attention_head_dim=2,
            norm_num_groups=4)
        # four levels: the latent grid is 8 pixels, as in SD (padding is exercised for real)
        vae = AutoencoderKL(block_out_channels=(4, 4, 4, 4), in_channels=3, out_channels=3, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            norm_num_groups=2, sample_size=64, layers_per_block=1)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=514, hidden_size=16, intermediate_size=32,
                                            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                            bos_token_id=512, eos_token_id=513, pad_token_id=513))
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        tok = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if folder is not None:
        folder = Path(folder)
        pipe.save_pretrained(folder)
        (folder / SMOKE_MARKER).write_text(json.dumps({"random_weights": True, "seed": seed}) + "\n")
    return pipe
