"""sFID (Nash et al. 2021, "Generating images with sparse representations"), as the guided-diffusion evaluator
(openai/guided-diffusion, evaluations/evaluator.py) computes it: the Fréchet distance on Inception's spatial
features instead of pool3.

Features: the TF 2015 Inception graph's `mixed_6/conv` (the 1×1 branch of Mixed_6d, 17×17×192 at 299 px), its
first 7 channels, flattened in NHWC order as TensorFlow lays them out: 17 · 17 · 7 = 2023 values per image. They
come from the same forward pass as the pool3 features of FID (a forward hook, the extractor's declared
"spatial" output: matbench.features.inception_tf), so sFID costs no second network pass. With the
torch-fidelity Inception (inception-v3-compat, the TF graph's weights) they are the TF graph's tensor; real
`inception-nvidia` (a TorchScript file, no hooks) is refused, pt-inception uses pytorch-fid's port.

Distance: mean and covariance of the flattened features, Fréchet distance (metrics.fd, the one implementation).
The guided-diffusion evaluator's covariance is np.cov (1/(N-1)): the evaluation's `fid_convention =
"torch-fidelity"` gives its number, the default "mat" divides by N as MAT's FID does (the same convention as the
record's FID). Interval: FID's (metrics.fd.fd_interval).
"""

from __future__ import annotations

from matbench.metrics.fd import fd_interval
from matbench.metrics.registry import INCEPTION, DatasetContext, register_group, register_metric
from matbench.results import MetricValue

SPATIAL = f"{INCEPTION}:spatial"


def _evaluate(ctx: DatasetContext) -> dict[str, MetricValue]:
    ev = ctx.ev
    real, fake = ctx.features(SPATIAL)
    value, lo, hi, method = fd_interval(real, fake, ev.fid_convention, ctx.n_bootstrap, ctx.seed, ev.device)
    return {"sfid": MetricValue(value, lo, hi, ctx.n, convention=ev.fid_convention,
                                extra={"extractor": ev.extractor_name(SPATIAL), "ci_method": method})}


register_group("sfid", extractor=SPATIAL, dataset=_evaluate)
register_metric("sfid", higher_is_better=False, label="sFID", extractor=SPATIAL, group="sfid",
                interval="bias-corrected", order=143,
                doc="FID on Inception's spatial features (mixed_6/conv, first 7 channels; Nash et al. 2021)")(None)
