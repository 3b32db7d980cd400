"""Published evaluation protocols as data (presets.toml): conventions, sources and published numbers.

A run that names a protocol is checked field by field (`check`): a differing convention is refused with the
field named. `compare` puts a published value beside ours: difference and whether it lies inside our interval.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from matbench.errors import SpecError
from matbench.results import zero_width

PRESETS_FILE = Path(__file__).with_name("presets.toml")
DESCRIPTION_FIELDS = ("dataset", "masks", "extractor", "resize", "fid", "sampling", "deviation")


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    require: dict[str, Any]
    published: dict[str, dict[str, float]] = field(default_factory=dict)  # model label -> metric -> value
    description: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "require": dict(self.require), **self.description,
                "sources": list(self.sources), "published": {k: dict(v) for k, v in self.published.items()}}


@lru_cache(maxsize=1)
def _load() -> dict[str, Protocol]:
    with open(PRESETS_FILE, "rb") as f:
        raw = tomllib.load(f)
    out = {}
    for name, d in raw.items():
        out[name] = Protocol(name=name, title=d["title"], require=dict(d.get("require", {})),
                             published={k: dict(v) for k, v in d.get("published", {}).items()},
                             description={k: d[k] for k in DESCRIPTION_FIELDS if k in d},
                             sources=tuple(d.get("sources", ())))
    return out


def names() -> list[str]:
    return list(_load())


def get(name: str) -> Protocol:
    p = _load().get(name)
    if p is None:
        raise SpecError(f"unknown protocol {name!r}; known: {', '.join(names())}")
    return p


def differences(protocol: Protocol, run: dict[str, Any]) -> list[str]:
    """One phrase per required field whose run value differs (fields the run does not state are skipped)."""
    out = []
    for key, want in protocol.require.items():
        if key not in run or run[key] is None:
            continue
        allowed = want if isinstance(want, list) else [want]
        have = run[key]
        if not any(str(have) == str(a) for a in allowed):
            need = " or ".join(repr(a) for a in allowed)
            out.append(f"{key} is {have!r}, protocol {protocol.name} needs {need}")
    return out


def check(name: str, run: dict[str, Any]) -> Protocol:
    """The protocol, or SpecError naming every field in which the run differs from it."""
    p = get(name)
    diffs = differences(p, run)
    if diffs:
        raise SpecError(f"run does not follow protocol {name}: " + "; ".join(diffs))
    return p


def compare(published: float, value: float, ci_low: float | None, ci_high: float | None) -> dict[str, Any]:
    """Published value beside ours: difference (ours - published) and whether it lies inside our interval.
    No interval, or a zero-width one (every bootstrap resample gave the same value, e.g. P-IDS 0 on few images),
    says nothing about agreement: inside_ci is None then, not a hit."""
    if ci_low is None or ci_high is None or zero_width(value, ci_low, ci_high):
        inside = None
    else:
        inside = bool(ci_low <= published <= ci_high)
    return {"published": published, "diff": value - published, "inside_ci": inside}


def run_fields(record: Any) -> dict[str, Any]:
    """The protocol-relevant fields of a ResultRecord (or its dict form)."""
    d = record if isinstance(record, dict) else {"protocol": record.protocol, "job": record.job}
    proto, job = d.get("protocol", {}) or {}, d.get("job", {}) or {}
    out = {k: proto.get(k) for k in ("resolution", "n_images", "fid_convention", "feature_extractor")}
    out["resize"] = proto.get("resize", "legacy-tf" if proto.get("feature_extractor") else None)
    out["mask_kind"] = proto.get("mask_kind", job.get("mask_kind"))
    return out


def inception_resize(name: str) -> str:
    """The resize convention of an FID extractor backend (pytorch-fid's resizes like torch; the others like TF1)."""
    return "legacy-pytorch" if name == "pt-inception" else "legacy-tf"


def choose_row(protocol: Protocol, row: str | None, model: str | None) -> str | None:
    """The published row to compare with: the one asked for, the only one, or the one whose label starts with the
    model name when exactly one does (else None: nothing to put beside ours)."""
    rows = list(protocol.published)
    if row is not None:
        if row not in protocol.published:
            raise SpecError(f"--published-row {row!r}: protocol {protocol.name} publishes "
                            f"{', '.join(map(repr, rows)) or 'no rows'}")
        return row
    if len(rows) == 1:
        return rows[0]
    if model:
        hits = [r for r in rows if r.lower().startswith(str(model).lower())]
        if len(hits) == 1:
            return hits[0]
    return None


def annotate(record: Any, name: str, row: str | None = None) -> str | None:
    """Record the protocol on a ResultRecord and put each published value beside ours (metrics[m].extra)."""
    p = get(name)
    chosen = choose_row(p, row, record.job.get("model"))
    record.protocol["protocol"] = name
    if chosen is None:
        return None
    record.protocol["published_row"] = chosen
    for m, value in p.published[chosen].items():
        mv = record.metrics.get(m)
        if mv is None:
            continue
        mv.extra = {**(mv.extra or {}), "published": {"protocol": name, "row": chosen, "value": value,
                                                      **{k: v for k, v in compare(value, mv.value, mv.ci_low,
                                                                                  mv.ci_high).items()
                                                         if k != "published"}}}
    return chosen
