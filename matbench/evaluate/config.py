"""Options of an evaluation, declared once: the Evaluator, `evaluate_folders`, `matbench eval` and a spec's
`[eval]` table all take these fields by these names (TOML keys equal field names), and the allowed choices are
data here (CHOICES), not tests repeated in each caller.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from matbench.errors import InputError
from matbench.evaluate.pairs import PAIR_TOL
from matbench.features.runtime import RUNTIMES

FID_CONVENTIONS = ("mat", "torch-fidelity")
INCEPTIONS = ("inception-v3-compat", "inception-nvidia", "pt-inception")
LPIPS_NETS = ("alex", "vgg")
CHOICES: dict[str, tuple[str, ...]] = {"fid_convention": FID_CONVENTIONS, "inception": INCEPTIONS,
                                       "lpips_net": LPIPS_NETS, "runtime": RUNTIMES}
_HINT = {"fid_convention": "FID convention", "inception": "Inception backend", "lpips_net": "LPIPS network",
         "runtime": "network runtime"}
CPU_NET_BATCH = 2


@dataclass(frozen=True)
class EvalConfig:
    """How metrics are computed (not which: the metric names are the Evaluator's first argument)."""

    device: str = "cpu"
    smoke: bool = False  # random-weight networks (labelled SMOKE everywhere)
    cache_dir: str | os.PathLike | bool | None = None  # feature cache: None/True default place, False none
    fid_convention: str = "mat"
    lpips_net: str = "alex"
    inception: str = "inception-v3-compat"
    inception_path: str | os.PathLike | None = None
    vgg_path: str | os.PathLike | None = None
    feature_weights: Mapping[str, str] = field(default_factory=dict)  # extractor name -> weights file
    n_bootstrap: int = 200
    seed: int = 0
    batch_size: int = 16
    net_batch: int | None = None  # images per network call (None: batch_size, or 2 on the CPU)
    pair_tol: float = PAIR_TOL
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    allow_download: bool = True
    # where the feature networks run on the CPU: torch eager (the reference), onnx, or auto (onnx when installed)
    runtime: str = "torch"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            v = getattr(self, name)
            if v not in allowed:
                extra = " (pytorch-fid's, LaMa's protocol)" if name == "inception" else ""
                raise InputError(f"unknown {_HINT[name]} {v!r}; use {', '.join(allowed[:-1])} or {allowed[-1]}"
                                 + extra)
        for name in ("n_bootstrap", "batch_size", "kid_subsets", "kid_subset_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "n_bootstrap" else 1):
                raise InputError(f"{name} must be a whole number >= {0 if name == 'n_bootstrap' else 1}, got {v!r}")

    @property
    def effective_net_batch(self) -> int:
        # On the CPU a few images already keep every core busy and each extra image costs tens of MB of
        # activations, so the default stays small there.
        if self.net_batch:
            return int(self.net_batch)
        return min(self.batch_size, CPU_NET_BATCH) if str(self.device).startswith("cpu") else self.batch_size

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "") -> EvalConfig:
        """From keyword options or a TOML table: unknown keys are one error line naming them."""
        unknown = sorted(set(options) - set(cls.fields()))
        if unknown:
            raise InputError(f"{where}unknown evaluation option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(cls.fields())}")
        return cls(**{k: v for k, v in options.items() if v is not None or k in ("cache_dir", "net_batch")})

    def replace(self, **changes: Any) -> EvalConfig:
        return dataclasses.replace(self, **changes)
