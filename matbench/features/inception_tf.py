"""``inception-v3-compat``: torch-fidelity's TF-compatible Inception-v3 (resizes to 299 like TF inside the
network), 2048-d pool3 features. Weights are the torch-fidelity release file, resolved by :mod:`matbench.weights`
and handed to torch-fidelity as ``feature_extractor_weights_path``, so torch-fidelity never downloads by itself.
"""

from __future__ import annotations

from pathlib import Path

import torch

from matbench import weights as W
from matbench.features.base import ExtractorSpec, FirstOutput, patched, seeded

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
    """torch-fidelity's module (returns a tuple of feature layers); path None = seeded smoke weights."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    if path is not None:
        return tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                               feature_extractor_weights_path=str(path))

    # Smoke: same module, default (seeded) init, no state dict loaded.
    class _Smoke(tfi.FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002
            return None

    def make() -> torch.nn.Module:
        with patched(tfi, "load_state_dict_from_url", lambda *a, **k: {}):
            m = _Smoke("inception-v3-compat", ["2048"])
        # He init keeps activations alive through ~50 random layers, so smoke features depend on the image.
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
        return m

    return seeded(make)


def build(path: Path | None) -> torch.nn.Module:
    return FirstOutput(build_tf_inception(path))


SPECS = (ExtractorSpec(
    name="inception-v3-compat", weights="inception-v3-compat", dim=2048, input_size=299, native_resize="legacy-tf",
    input="uint8 0..255; TF1 bilinear resize to 299 and normalisation inside the network, pool3",
    build=build, source="torch-fidelity FeatureExtractorInceptionV3", uint8_input=True,
),)
