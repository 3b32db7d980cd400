"""Feature-space metrics (fd_dinov2, cmmd, clip_fid, fid_pt, kid/pr/dc/ids on any extractor): one MetricGlue per
name of matbench.metrics.featspace.FEATURE_METRICS and one ExtractorGlue per extractor of matbench/extractors/.
Features travel as `<extractor>_real` / `<extractor>_fake` (e.g. `dinov2-vitl14_real`)."""

from __future__ import annotations

from matbench.evaluate.hooks import DatasetContext, ExtractorGlue, MetricGlue
from matbench.metrics import featspace as FS
from matbench.results import MetricValue

# extractor of matbench.extractors (or features.py) -> the ExtractorGlue name whose features a metric reads
_GLUE_NAME = {"vgg16": "vgg"}


def glue_extractor(extractor: str) -> str:
    return _GLUE_NAME.get(extractor, extractor)


def _builder(name: str):
    def build(ev):
        from matbench.features import get_extractor

        path = (getattr(ev, "feature_weights", None) or {}).get(name)
        return get_extractor(name, ev.device, ev.smoke, path, batch_size=ev.net_batch,
                             allow_download=ev.allow_download)

    return build


def _dataset(fm: FS.FeatureMetric):
    key = glue_extractor(fm.extractor)

    def dataset(ev, ctx: DatasetContext) -> dict[str, MetricValue]:
        idx = ctx.idx
        real, fake = ctx.feats[f"{key}_real"][idx], ctx.feats[f"{key}_fake"][idx]
        scores = ctx.state.setdefault("featspace_ids", {})
        state = {fm.name: tuple(s[idx] for s in scores[fm.name])} if ctx.in_bin and fm.kind == "ids" else scores
        return FS.compute(fm, real, fake, FS.identity(ev.extractor(key)), n_bootstrap=ctx.n_bootstrap,
                          seed=ctx.seed, convention=ev.fid_convention, device=ev.device,
                          kid_subsets=ev.kid_subsets, kid_subset_size=ev.kid_subset_size, ids_state=state)

    return dataset


def _extractor_names() -> list[str]:
    from matbench import features as extractors

    return extractors.names()


GLUES: tuple[MetricGlue, ...] = tuple(
    MetricGlue(name=fm.name, metrics=(fm.name,), extractor=glue_extractor(fm.extractor), dataset=_dataset(fm))
    for fm in FS.FEATURE_METRICS.values())
EXTRACTOR_GLUES: tuple[ExtractorGlue, ...] = tuple(ExtractorGlue(name=n, build=_builder(n)) for n in _extractor_names())
METRICS: tuple[str, ...] = tuple(FS.FEATURE_METRICS)
