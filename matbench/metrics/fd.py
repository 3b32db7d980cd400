"""Fréchet distance on any feature space (FD_DINOv2, CLIP-FID, pytorch-fid FID): the FID formula of
matbench.metrics.fid applied to other features, with the same two covariance conventions
("mat": 1/N, "torch-fidelity": 1/(N-1), as numpy.cov and pytorch-fid).

`fd_to_stats` compares features with a reference statistics file (mean, covariance) instead of images.
"""

from __future__ import annotations

import numpy as np

from matbench.metrics.fid import CONVENTIONS, feature_stats, fid, frechet_distance

__all__ = ["CONVENTIONS", "fd", "fd_to_stats", "feature_stats"]


def fd(real_feats: np.ndarray, fake_feats: np.ndarray, convention: str = "torch-fidelity") -> float:
    """Fréchet distance between two feature sets [N, D] under the named covariance convention."""
    return fid(real_feats, fake_feats, convention)


def fd_to_stats(fake_feats: np.ndarray, mu: np.ndarray, sigma: np.ndarray, convention: str = "torch-fidelity"
                ) -> float:
    """Fréchet distance between features [N, D] and a Gaussian given by reference statistics."""
    mu2, s2 = feature_stats(fake_feats, convention)
    return frechet_distance(mu, sigma, mu2, s2)
