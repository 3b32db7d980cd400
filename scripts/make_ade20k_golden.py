"""Make tests/fixtures/ade20k/ by running the OFFICIAL ADE20k segmentation network of LaMa's evaluation (not our port).

Usage: python scripts/make_ade20k_golden.py /tmp/seg-official
       (a folder holding `models/ade20k/` of https://github.com/advimman/lama, exported with `git archive`)

Nothing from that folder is copied here: the script imports it from the path given. The network is what
`SegmentationModule(weights_path, use_default_normalization=True)` builds (saicinpainting/evaluation/losses/
base_loss.py: SegmentationAwareScore): ResnetDilated(resnet50, dilate_scale=8) + PPMDeepsup(fc_dim 2048, 150 classes,
use_softmax=True), called through `SegmentationModule.predict` (imgSizes=(-1,)). The official builder would download
ImageNet weights or read the released files, so encoder and decoder are constructed the way the builder does it and
filled with deterministic weights: the shared rule (../shared/golden/fill.py) applied to a manifest of the official
init statistics (`torch.manual_seed(0)` before construction), with the BatchNorm running statistics calibrated on the
fixture images (see tests/fixtures/ade20k/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "golden"
OUT = ROOT / "tests" / "fixtures" / "ade20k"
LAMA_COMMIT = "786f5936b27fb3dacd2b1ad799e4de968ea697e7"


def _fill():
    spec = importlib.util.spec_from_file_location("golden_fill", SHARED / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sig4(x: float) -> float:
    return float(f"{x:.4g}")


def manifest_for(model: torch.nn.Module) -> list[dict]:
    params = {n for n, _ in model.named_parameters()}
    rows = []
    for name, t in model.state_dict().items():
        t64 = t.detach().to(torch.float64)
        rows.append({"name": name, "kind": "parameter" if name in params else "buffer", "shape": list(t.shape),
                     "dtype": str(t.dtype).replace("torch.", ""), "fill": not name.endswith("num_batches_tracked"),
                     "mean": float(t64.mean()), "std": float(t64.std(unbiased=False)) if t.numel() > 1 else 0.0,
                     "stats": "init"})
    return rows


def calibrate(seg, rows: list[dict], fill, x: torch.Tensor) -> None:
    """Set each BatchNorm's running mean/var entry (in forward order) from the statistics of its input."""
    by_name = {r["name"]: r for r in rows}
    names = {m: n for n, m in seg.named_modules()}

    def pre(mod, inp):
        a = inp[0].detach().to(torch.float64)
        m = float(a.mean())
        v = max(float(((a - m) ** 2).mean()), 0.5)
        n = names[mod]
        for key, val in (("running_mean", _sig4(m)), ("running_var", max(_sig4(v), 0.5))):
            r = by_name[f"{n}.{key}"]
            r.update(init_mean=r["mean"], init_std=r["std"], mean=val, std=0.0, stats="calibrated")
            getattr(mod, key).copy_(fill.fill_value(r["name"], r["shape"], r["mean"], r["std"]))

    hooks = [m.register_forward_pre_hook(pre) for m in seg.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seg.predict(x)
    for h in hooks:
        h.remove()


def main(argv: list[str]) -> int:
    ext = Path(argv[0] if argv else "/tmp/seg-official").resolve()
    sys.path.insert(0, str(ext))
    from models.ade20k import resnet  # official (CSAIL semantic-segmentation-pytorch, as vendored by LaMa)
    from models.ade20k.base import ModelBuilder, ResnetDilated, SegmentationModule

    torch.set_num_threads(1)
    fill = _fill()
    with np.load(SHARED / "lama" / "io.npz") as z:
        lama = {k: z[k] for k in z.files}

    def u8(name):
        return np.round(lama[f"{name}/image"][0] * 255).astype(np.uint8)

    # small inputs: every 2nd pixel of the 256 LaMa golden images (128x128), and a non-square 75x101 crop
    images = {"places_128": u8("places_256")[:, ::2, ::2], "celeba_128": u8("celeba_256")[:, ::2, ::2],
              "places_75x101": u8("places_256")[:, 40:115, 60:161]}
    holes = {"places_128": lama["places_256/mask"][0, 0, ::2, ::2] > 0.5,
             "celeba_128": lama["celeba_256/mask"][0, 0, ::2, ::2] > 0.5,
             "places_75x101": lama["places_256/mask"][0, 0, 40:115, 60:161] > 0.5}

    torch.manual_seed(0)
    # what ModelBuilder.build_encoder('resnet50dilated', fc_dim=2048, weights=path) builds before loading weights
    # (pretrained=False when a weights path is given, so no ImageNet download)
    enc = ResnetDilated(resnet.resnet50(pretrained=False), dilate_scale=8)
    # ModelBuilder.get_decoder: build_decoder(arch='ppm_deepsup', fc_dim=2048, use_softmax=True, ...) + weights_init
    dec = ModelBuilder.build_decoder(arch="ppm_deepsup", fc_dim=2048, num_class=150, weights="", use_softmax=True,
                                     drop_last_conv=False)
    seg = SegmentationModule(weights_path="", net_enc=enc, net_dec=dec, use_default_normalization=True).eval()
    rows = manifest_for(seg)
    seg.load_state_dict({**seg.state_dict(), **fill.fill_state_dict(rows)}, strict=True)
    batch = torch.from_numpy(np.stack([images["places_128"], images["celeba_128"]])).float() / 255
    calibrate(seg, rows, fill, batch)
    state = {**seg.state_dict(), **fill.fill_state_dict(rows)}
    seg.load_state_dict(state, strict=True)

    # the decoder's last conv output before the upsampling (for a low-resolution check)
    seen: dict[str, torch.Tensor] = {}
    seg.decoder.conv_last.register_forward_hook(lambda m, i, o: seen.update(logits=o.detach().clone()))
    arrays: dict[str, np.ndarray] = {}
    facts: dict = {"reference": {"repo": "https://github.com/advimman/lama", "commit": LAMA_COMMIT,
                                 "network": "models/ade20k/base.py: SegmentationModule(use_default_normalization="
                                            "True) with ResnetDilated(resnet50, 8) + PPMDeepsup(2048, 150, "
                                            "use_softmax=True)",
                                 "call": "SegmentationModule.predict(x) (imgSizes=(-1,)), x float32 [0,1] RGB",
                                 "torch": torch.__version__, "threads": 1, "cpu": platform.processor() or "",
                                 "init_seed": "torch.manual_seed(0) before construction"},
                   "n_parameters": sum(p.numel() for p in seg.parameters()), "n_state_entries": len(rows),
                   "cases": {}}
    runs = {"batch2": ["places_128", "celeba_128"], "single": ["places_75x101"]}
    for run, names in runs.items():
        x = torch.from_numpy(np.stack([images[n] for n in names])).float() / 255
        t0 = time.perf_counter()
        with torch.no_grad():
            pred, result = seg.predict(x)
        dt = time.perf_counter() - t0
        probs = result[0]
        top2 = probs.topk(2, dim=1).values
        for i, n in enumerate(names):
            arrays[f"{n}/image"] = images[n]
            arrays[f"{n}/hole"] = holes[n]
            arrays[f"{n}/pred"] = pred[i].numpy().astype(np.uint8)  # argmax class (0..149)
            arrays[f"{n}/margin"] = (top2[i, 0] - top2[i, 1]).numpy().astype(np.float32)
            arrays[f"{n}/probs_s8"] = probs[i, :, ::8, ::8].numpy().astype(np.float32)
            arrays[f"{n}/logits"] = seen["logits"][i].numpy().astype(np.float32)
            p = pred[i].numpy()
            facts["cases"][n] = {"run": run, "size": list(images[n].shape[1:]), "n_classes_predicted":
                                 int(np.unique(p).size), "top_class_fraction": float(np.bincount(p.ravel()).max()
                                                                                     / p.size),
                                 "max_prob_mean": float(top2[i, 0].mean()),
                                 "margin_below_1e-4": int((top2[i, 0] - top2[i, 1] < 1e-4).sum()),
                                 "logits_std": float(seen["logits"][i].std()), "seconds_batch": round(dt, 2)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "manifest.json").write_text(json.dumps({"reference": facts["reference"], "tensors": rows}, indent=1)
                                       + "\n")
    np.savez_compressed(OUT / "io.npz", **arrays)
    (OUT / "facts.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(json.dumps(facts, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
