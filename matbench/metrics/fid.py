"""FID: the Fréchet distance (matbench.metrics.fd, the one implementation) on Inception pool features, with a
bias-corrected bootstrap interval over image pairs.

Conventions "mat" (1/N, MAT's evaluatoin/cal_fid_pids_uids.py) and "torch-fidelity" (1/(N-1)): see metrics.fd.
"""

from __future__ import annotations

import numpy as np

from matbench.metrics.fd import (
    CONVENTIONS,
    FDResampler,
    fd,
    fd_interval,
    feature_stats,
    frechet_distance,
    trace_sqrt_product,
)
from matbench.metrics.registry import DatasetContext, register_group, register_metric
from matbench.results import MetricValue

__all__ = ["CONVENTIONS", "FIDResampler", "feature_stats", "fid", "frechet_distance", "trace_sqrt_product"]
FIDResampler = FDResampler  # the name used before the Fréchet distance moved to metrics.fd


def fid(real_feats: np.ndarray, fake_feats: np.ndarray, convention: str = "mat") -> float:
    """FID between two feature sets [N, D] (sizes may differ); MAT's convention by default."""
    return fd(real_feats, fake_feats, convention)


def _evaluate(ctx: DatasetContext) -> dict[str, MetricValue]:
    ev = ctx.ev
    real, fake = ctx.features("inception")
    value, lo, hi, method = fd_interval(real, fake, ev.fid_convention, ctx.n_bootstrap, ctx.seed, ev.device)
    return {"fid": MetricValue(value, lo, hi, ctx.n, convention=ev.fid_convention,
                               extra={"extractor": ev.inception_name, "ci_method": method})}


register_group("fid", extractor="inception", dataset=_evaluate)
register_metric("fid", higher_is_better=False, label="FID", extractor="inception", group="fid",
                interval="bias-corrected", default=1, order=10,
                doc="Fréchet Inception distance, conventions mat (1/N) and torch-fidelity (1/(N-1))")(None)
