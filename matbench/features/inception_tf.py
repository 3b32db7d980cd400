"""``inception-v3-compat``: torch-fidelity's TF-compatible Inception-v3 (resizes to 299 like TF inside the
network), 2048-d pool3 features. Weights are the torch-fidelity release file, resolved by :mod:`matbench.weights`
and read here weights-only (never by torch-fidelity, whose loader would unpickle with ``weights_only=False``), so
torch-fidelity neither downloads nor unpickles anything by itself.
"""

from __future__ import annotations

from pathlib import Path

import torch

from matbench import weights as W
from matbench.features.base import BUILD_LOCK, ExtractorSpec, FeatureOutput, FirstOutput, patched, seeded
from matbench.models.statecheck import check_state_dict, read_plain_state_dict

URL_TORCH_FIDELITY_INCEPTION = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)

W.register_weights(W.WeightsFile(
    name="inception-v3-compat",
    filename="weights-inception-2015-12-05-6726825d.pth",
    url=URL_TORCH_FIDELITY_INCEPTION,
    hash_prefix="6726825d",
    used_by="FID, P-IDS/U-IDS, KID (torch-fidelity inception-v3-compat, 2048-d pool3)",
))


def build_tf_inception(path: Path | None) -> torch.nn.Module:
    """torch-fidelity's module (returns a tuple of feature layers); path None = seeded smoke weights.

    torch-fidelity would read a weights path with ``torch.load(weights_only=False)``, which runs any code a
    pickle carries, so it never sees the path: the module is built with no weights and our tensors, read
    weights-only (or from .safetensors), are loaded strictly into it."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    if path is None:
        def make() -> torch.nn.Module:
            m = _bare(tfi)
            # He init keeps activations alive through ~50 random layers, so smoke features depend on the image.
            for mod in m.modules():
                if isinstance(mod, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            return m

        return seeded(make)
    sd = read_plain_state_dict(path, "torch-fidelity Inception-v3 state dict")  # weights-only: no code runs
    m = _bare(tfi)
    check_state_dict(sd, m.state_dict(), "torch-fidelity FeatureExtractorInceptionV3", str(path))
    torch.nn.Module.load_state_dict(m, sd, strict=True)  # copies into the float32 parameters it already has
    return m


def _bare(tfi) -> torch.nn.Module:
    """The module with its default init and no state dict loaded (its loader is given nothing to fetch)."""
    class _NoLoad(tfi.FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002
            return None

    # the patched loader is process-wide: one build at a time
    with BUILD_LOCK, patched(tfi, "load_state_dict_from_url", lambda *a, **k: {}):
        return _NoLoad("inception-v3-compat", ["2048"])


def build(path: Path | None) -> torch.nn.Module:
    return FirstOutput(build_tf_inception(path))


# sFID's spatial features (Nash et al. 2021, the guided-diffusion evaluator): the TF 2015 graph's mixed_6/conv,
# i.e. the 1x1 branch of Mixed_6d (TF's mixed, mixed_1, ... count Mixed_5b, 5c, 5d, 6a, 6b, 6c, 6d), after its ReLU,
# 17x17x192 at 299 px; its first 7 channels flattened NHWC give 17 * 17 * 7 = 2023 values.
SPATIAL_CHANNELS = 7
SPATIAL_DIM = 17 * 17 * SPATIAL_CHANNELS


def spatial_output(module: str) -> FeatureOutput:
    return FeatureOutput("spatial", SPATIAL_DIM, module, SPATIAL_CHANNELS,
                         doc="mixed_6/conv (Mixed_6d 1x1 branch), first 7 channels, NHWC-flattened (sFID)")


SPECS = (ExtractorSpec(
    name="inception-v3-compat", weights="inception-v3-compat", dim=2048, input_size=299, native_resize="legacy-tf",
    input="uint8 0..255; TF1 bilinear resize to 299 and normalisation inside the network, pool3",
    build=build, source="torch-fidelity FeatureExtractorInceptionV3", uint8_input=True,
    outputs=(spatial_output("module.Mixed_6d.branch1x1"),),
),)
