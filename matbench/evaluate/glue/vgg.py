"""VGG16 fc2 features (precision/recall)."""

from __future__ import annotations

from matbench.evaluate.hooks import ExtractorGlue


def build(ev):
    from matbench.features import get_extractor

    return get_extractor("vgg16", ev.device, ev.smoke, ev.vgg_path, batch_size=ev.net_batch,
                         allow_download=ev.allow_download)


EXTRACTOR = ExtractorGlue(name="vgg", build=build)
