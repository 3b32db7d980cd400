"""Inception pool features (FID, P-IDS/U-IDS, KID): matbench.features' inception backends."""

from __future__ import annotations

from matbench.evaluate.hooks import ExtractorGlue


def build(ev):
    from matbench.features import get_extractor

    return get_extractor(ev.inception_name, ev.device, ev.smoke, ev.inception_path, batch_size=ev.net_batch,
                         allow_download=ev.allow_download)


EXTRACTOR = ExtractorGlue(name="inception", build=build)
