"""Make tests/fixtures/migan/ by running the OFFICIAL MI-GAN generator (not our port) on CPU.

Usage: python scripts/make_migan_golden.py /work/ext/MI-GAN   (a checkout of Picsart-AI-Research/MI-GAN)

Nothing from that checkout is copied here: the script imports it from the path given. Weights are the
shared deterministic fill rule (../shared/golden/fill.py) applied to a manifest of the official
generator's tensors (init statistics from `torch.manual_seed(0)` before construction). The fixed
filters and upsampling masks are constants (fill: false, sha256 recorded); the port must build them
itself. Inputs are the LaMa golden test images (../shared/golden/lama/io.npz, uint8 = x * 255).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "golden"
OUT = ROOT / "tests" / "fixtures" / "migan"
WEIGHT_GAIN = 0.72


def _fill():
    spec = importlib.util.spec_from_file_location("golden_fill", SHARED / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def is_constant(name: str) -> bool:
    return name.endswith("filter.weight") or name.endswith("filter_const")


def manifest_for(gen: torch.nn.Module, fill) -> list[dict]:
    params = {n for n, _ in gen.named_parameters()}
    rows = []
    for name, t in gen.state_dict().items():
        t64 = t.detach().to(torch.float64)
        row = {"name": name, "kind": "parameter" if name in params else "buffer", "shape": list(t.shape),
               "dtype": str(t.dtype).replace("torch.", ""), "fill": not is_constant(name),
               "mean": float(t64.mean()), "std": float(t64.std(unbiased=False)) if t.numel() > 1 else 0.0,
               "stats": "init"}
        if not row["fill"]:
            row["sha256"] = fill.tensor_sha256(t)
        elif name.endswith(".weight") and t.ndim >= 2:
            # The plain rule (std floored at 0.1) drives every activation into the +-256 clamp (99.7 % of
            # outputs saturate, none depends on the input). Rescale to a variance-keeping std instead:
            # 0.72 / sqrt(fan_in) (0.75 is already chaotic), to-RGB 1x1 convs 10x smaller, biases x0.1.
            row["scale"] = WEIGHT_GAIN / math.sqrt(math.prod(t.shape[1:])) / 0.1 * (0.1 if ".torgb." in name else 1.0)
        elif name.endswith(".bias"):
            row["scale"] = 0.1
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    ext = Path(argv[0] if argv else "/work/ext/MI-GAN").resolve()
    sys.path.insert(0, str(ext))
    from lib.model_zoo.migan_inference import Generator  # official inference generator
    from PIL import Image
    from scripts.demo import preprocess  # official input convention (mask 255 = known)

    commit = subprocess.run(["git", "-C", str(ext), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    fill = _fill()
    torch.set_num_threads(1)
    with np.load(SHARED / "lama" / "io.npz") as z:
        lama = {k: z[k] for k in z.files}
    cases = {256: ["places_256", "celeba_256"], 512: ["places_512"]}
    OUT.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    facts: dict = {"reference": {"repo": "https://github.com/Picsart-AI-Research/MI-GAN", "commit": commit,
                                 "generator": "lib/model_zoo/migan_inference.py: Generator(resolution)",
                                 "preprocess": "scripts/demo.py: preprocess(img, mask, resolution)",
                                 "torch": torch.__version__, "init_seed": "torch.manual_seed(0) before construction"},
                   "fill_rule": "../shared/golden/fill.py fill_state_dict(tensors), then entries with a 'scale' "
                                "are multiplied "
                                "by it (float32); constants (fill: false) keep the official init",
                   "postprocess": "demo.py: ((y * 0.5 + 0.5).clamp(0, 1) * 255).to(uint8), then "
                                  "image * known + result * (1 - known)",
                   "resolutions": {}}
    for res, names in cases.items():
        torch.manual_seed(0)
        gen = Generator(resolution=res).eval()
        rows = manifest_for(gen, fill)
        state = fill.fill_state_dict(rows)
        for r in rows:
            if "scale" in r:
                state[r["name"]] = state[r["name"]] * r["scale"]
        state.update({k: v for k, v in gen.state_dict().items() if is_constant(k)})
        gen.load_state_dict(state, strict=True)
        (OUT / f"manifest_{res}.json").write_text(json.dumps({"resolution": res, "tensors": rows}, indent=1) + "\n")
        facts["resolutions"][res] = {"n_parameters": sum(p.numel() for p in gen.parameters()),
                                     "n_state_entries": len(rows), "cases": names}
        for name in names:
            img_u8 = np.round(lama[f"{name}/image"][0] * 255).astype(np.uint8)  # [3,H,W]
            hole = lama[f"{name}/mask"][0, 0] > 0.5  # LaMa: 1 = hole
            known_u8 = np.where(hole, 0, 255).astype(np.uint8)
            x = preprocess(Image.fromarray(img_u8.transpose(1, 2, 0)), Image.fromarray(known_u8).convert("L"), res)
            with torch.no_grad():
                y = gen(x.clone())
            result = ((y[0] * 0.5 + 0.5).clamp(0, 1) * 255).to(torch.uint8).numpy()
            known = (known_u8 // 255)[None]
            composed = img_u8 * known + result * (1 - known)
            arrays[f"{name}/image"] = img_u8
            arrays[f"{name}/hole"] = hole
            arrays[f"{name}/gen_input_s4"] = x.numpy()[:, :, ::4, ::4]  # every 4th pixel (size)
            # full raw output at 256; every 8th pixel at 512 keeps the file small
            arrays[f"{name}/raw"] = y.numpy() if res == 256 else y.numpy()[:, :, ::8, ::8]
            arrays[f"{name}/output_u8"] = composed.astype(np.uint8)
            ya = y.numpy()
            facts["resolutions"][res][name] = {"raw_min": float(ya.min()), "raw_max": float(ya.max()),
                                               "raw_std": float(ya.std()),
                                               "saturated_fraction": float((np.abs(ya) >= 1).mean()),
                                               "hole_fraction": float(hole.mean())}
    # A non-square image smaller than 512 through the demo's whole path: PIL bicubic stretch to 512x512
    # (mask nearest), generator, truncation, cv2 bicubic back to the image size, composite (scripts/demo.py).
    import cv2

    torch.manual_seed(0)
    gen = Generator(resolution=512).eval()
    rows = json.loads((OUT / "manifest_512.json").read_text())["tensors"]
    state = fill.fill_state_dict(rows)
    for r in rows:
        if "scale" in r:
            state[r["name"]] = state[r["name"]] * r["scale"]
    state.update({k: v for k, v in gen.state_dict().items() if is_constant(k)})
    gen.load_state_dict(state, strict=True)
    crop = "places_crop373x500"
    img_u8 = np.round(lama["places_crop373x500_pad8/image"][0, :, :373, :500] * 255).astype(np.uint8)
    hole = lama["places_crop373x500_pad8/mask_orig"][0, 0] > 0.5
    known_u8 = np.where(hole, 0, 255).astype(np.uint8)
    img_pil = Image.fromarray(img_u8.transpose(1, 2, 0))
    x = preprocess(img_pil, Image.fromarray(known_u8).convert("L"), 512)
    with torch.no_grad():
        y = gen(x.clone())[0]
    result = ((y * 0.5 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    result = cv2.resize(result, dsize=img_pil.size, interpolation=cv2.INTER_CUBIC)
    known = (known_u8 // 255)[:, :, None]
    composed = np.asarray(img_pil) * known + result * (1 - known)
    arrays[f"{crop}/image"] = img_u8
    arrays[f"{crop}/hole"] = hole
    arrays[f"{crop}/output_u8_resize"] = composed.transpose(2, 0, 1).astype(np.uint8)
    facts["resize_case"] = {"name": crop, "size": [373, 500], "resolution": 512,
                            "path": "demo.py: preprocess (PIL bicubic / nearest to 512), generator, "
                                    "truncation, cv2.resize INTER_CUBIC back, composite"}
    np.savez_compressed(OUT / "io.npz", **arrays)
    (OUT / "facts.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(json.dumps(facts, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
