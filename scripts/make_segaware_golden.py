"""Make tests/fixtures/ade20k/segaware.{npz,json}: LaMa's OFFICIAL segmentation-aware scores on tiny inputs.

Usage: python scripts/make_segaware_golden.py /tmp/seg-official
       (a folder holding `models/ade20k/` and `saicinpainting/` of https://github.com/advimman/lama; the official
       package imports easydict and pytorch_lightning.seed_everything, which these scores never use: put stubs for
       them on PYTHONPATH)

The scores are the official classes of saicinpainting/evaluation/losses/base_loss.py, run through their own
`forward` (per batch) and `get_value(groups)`: SegmentationAwareSSIM (with its real SSIM), a
SegmentationAwarePairwiseScore whose calc_score returns given per-image values (the formula LPIPS goes through, without
the VGG weights) and SegmentationAwareFID (n_jobs=1) whose activations are given features. Only the segmentation
network is replaced: a stub whose predict() returns given class maps (a fake segmentation), so the formulas are tested
apart from the network (tested by test_ade20k_golden.py). Groups are LaMa's hole-area bins
(InpaintingEvaluator._get_bin_edges: 10 bins, searchsorted right, area 1 in the last bin).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "ade20k"
N, H, W, D, BATCH = 14, 24, 24, 6, 4


class FakeSegmentation(torch.nn.Module):
    """predict(batch) -> (class map [N, H, W], None): the next queued map (forward asks for pred, then target)."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[torch.Tensor] = []

    def predict(self, batch):
        return self.queue.pop(0), None


def _plain(d):
    if isinstance(d, dict):
        return {str(k): _plain(v) for k, v in d.items()}
    return float(d)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(argv[0] if argv else "/tmp/seg-official").resolve()))
    from saicinpainting.evaluation.losses import base_loss as B  # official

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (N, 3, H, W), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-60, 61, (N, 3, H, W)), 0, 255).astype(np.uint8)
    hole = np.zeros((N, 1, H, W), dtype=bool)
    for i in range(N):  # rectangles of varied area: several hole-ratio bins, bin 0 with one image
        h, w = rng.integers(3, H + 1), rng.integers(3, W + 1)
        y, x = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        hole[i, 0, y:y + h, x:x + w] = True
    hole[0, 0] = True  # a full hole (area 1: the last bin)
    classes = np.array([0, 2, 4, 12, 21, 149])
    blocks = rng.integers(0, classes.size, (2, N, H // 6, W // 6))  # 6x6 blocks of one class
    target_map = classes[blocks[0]].repeat(6, 1).repeat(6, 2)
    pred_map = classes[blocks[1]].repeat(6, 1).repeat(6, 2)
    target_map[3] = 2  # an image of a single class
    values = rng.uniform(0.05, 0.6, N)  # per-image LPIPS-like values
    feats_real = rng.normal(size=(N, D))
    feats_fake = feats_real + rng.normal(scale=0.7, size=(N, D)) + 0.3
    area = hole.reshape(N, -1).mean(1)
    edges = np.linspace(0, 1, 11)
    groups = np.searchsorted(edges, area, side="right") - 1
    groups[groups == 10] = 9

    def build(cls, **attrs):
        obj = cls.__new__(cls)
        torch.nn.Module.__init__(obj)
        obj.segm_network = FakeSegmentation()
        obj.target_class_freq_by_image_total, obj.target_class_freq_by_image_mask = [], []
        obj.pred_class_freq_by_image_mask, obj.individual_values = [], []
        obj.segm_idx2name = B.get_segmentation_idx2name()
        for k, v in attrs.items():
            setattr(obj, k, v)
        return obj

    class GivenValues(B.SegmentationAwarePairwiseScore):
        def calc_score(self, pred_batch, target_batch, mask):
            return values[self.at:self.at + pred_batch.shape[0]]

    fid = build(B.SegmentationAwareFID, eps=1e-6, n_jobs=1)
    scores = {"segm_ssim": build(B.SegmentationAwareSSIM, score_impl=B.SSIM(window_size=11, size_average=False)),
              "segm_values": build(GivenValues), "segm_fid": fid}
    fid._get_activations = lambda batch: (feats_fake if batch is fid.pred_t else feats_real)[fid.at:fid.at + len(batch)]
    results = {}
    for name, score in scores.items():
        for s in range(0, N, BATCH):
            sl = slice(s, s + BATCH)
            score.at = s
            pred_t = torch.from_numpy(fake[sl]).float() / 255  # LaMa: images in [0, 1]
            target_t = torch.from_numpy(real[sl]).float() / 255
            score.pred_t = pred_t
            score.segm_network.queue = [torch.from_numpy(pred_map[sl]), torch.from_numpy(target_map[sl])]
            score(pred_t, target_t, torch.from_numpy(hole[sl]).float())
        total, by_group = score.get_value(groups=groups)
        results[name] = {"total": _plain(total), "groups": _plain(by_group)}
    results["ssim_values"] = [float(v) for v in np.concatenate(scores["segm_ssim"].individual_values)]
    results["groups"] = [int(g) for g in groups]
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "segaware.npz", real=real, fake=fake, hole=hole, target_map=target_map.astype(np.uint8),
                        pred_map=pred_map.astype(np.uint8), values=values, feats_real=feats_real,
                        feats_fake=feats_fake)
    (OUT / "segaware.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v["total"] for k, v in results.items() if isinstance(v, dict)}, indent=1)[:3000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
