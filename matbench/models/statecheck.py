"""One strict check of a loaded state dict against a network's own, shared by every model port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matbench.errors import WeightsError

_SHOW = 8


def _listing(items: Sequence[str]) -> str:
    more = f", … (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def state_dict_problems(state: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    """Missing, unexpected and shape-mismatched names, each group as one readable phrase."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in reference.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            parts.append(f"{len(items)} {label}: {_listing(items)}")
    return parts


def check_state_dict(state: Mapping[str, Any], reference: Mapping[str, Any], what: str, source: str) -> None:
    """Raise WeightsError naming the file (`source`), the network (`what`) and every problem group."""
    parts = state_dict_problems(state, reference)
    if parts:
        raise WeightsError(f"{source}: tensors do not match {what}: " + "; ".join(parts))
