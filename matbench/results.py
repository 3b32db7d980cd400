"""Result records: what every evaluation writes and every report/table/check reads.

A result directory holds `metrics.json` (one ResultRecord) and `per_image.csv`. A run directory
is any tree of result directories; readers find every `metrics.json` below the paths given.

metrics.json (schema "matbench.result/1"):
{
  "schema": "matbench.result/1",
  "smoke": false,                        # true => computed with random weights somewhere
  "job": {"dataset": "places365-val", "maskset": "mat-large", "model": "mat",
          "resolution": 512, "sample": 0},
  "metrics": {"fid": {"value": 2.9, "ci_low": 2.8, "ci_high": 3.0, "n": 36500,
                       "convention": "mat"}, "pids": {...}, ...},
  "bins": [{"lo": 0.0, "hi": 0.1, "n": 123, "metrics": {"lpips": {...}, ...}}, ...],
  "protocol": {"dataset_manifest_sha256": ..., "maskset_sha256": ..., "fid_convention": "mat",
               "feature_extractor": "inception-v3-compat", "extractor_sha256": ...,
               "n_images": 36500, "resolution": 512},
  "provenance": {"versions": {...}, "device": ..., "weights": {...}, "timings_s": {...},
                 "spec": {...}, "created": ISO time}
}
Metric values are stored as fractions (P-IDS 0.1 = 10 %); tables scale by matbench.metrics.METRIC_INFO, derived
from the metric registry (matbench/metrics/registry.py); `provenance.metric_info` describes metrics that are not
built in (label, direction, scale) so that readers need not import their module.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matbench
from matbench.errors import InputError
from matbench.io import write_json_atomic

SCHEMA = "matbench.result/1"
METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"

# Fields of `protocol` that must be equal for two results to be compared side by side.
PROTOCOL_FIELDS = (
    "dataset_manifest_sha256",
    "maskset_sha256",
    "fid_convention",
    "feature_extractor",
    "extractor_sha256",
    "n_images",
    "resolution",
)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str  # for tables, e.g. "P-IDS (%)"
    higher_is_better: bool
    scale: float = 1.0  # multiply the stored value for display
    digits: int = 2


def zero_width(value: float, lo: float, hi: float) -> bool:
    """An interval too narrow to say anything (every bootstrap resample or KID subset gave the same value):
    never shown as exact, never evidence that a published value agrees with ours."""
    return hi - lo <= 1e-12 * max(1.0, abs(value))


@dataclass
class MetricValue:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    convention: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}
        if self.convention is not None:
            d["convention"] = self.convention
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetricValue:
        return cls(value=d["value"], ci_low=d.get("ci_low"), ci_high=d.get("ci_high"), n=d.get("n", 0),
                   convention=d.get("convention"), extra=d.get("extra", {}))


@dataclass
class ResultRecord:
    job: dict[str, Any]
    metrics: dict[str, MetricValue]
    bins: list[dict[str, Any]] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    smoke: bool = False
    schema: str = SCHEMA
    path: Path | None = None  # where it was read from (not serialised)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "smoke": self.smoke,
            "job": self.job,
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
            "bins": [
                {**{k: v for k, v in b.items() if k != "metrics"},
                 "metrics": {k: (v.to_json() if isinstance(v, MetricValue) else v)
                             for k, v in b.get("metrics", {}).items()}}
                for b in self.bins
            ],
            "protocol": self.protocol,
            "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], path: Path | None = None) -> ResultRecord:
        check_result_json(d, str(path or "<result>"))
        bins = [{**b, "metrics": {k: MetricValue.from_json(v) for k, v in b.get("metrics", {}).items()}}
                for b in d.get("bins", [])]
        return cls(job=d["job"], metrics={k: MetricValue.from_json(v) for k, v in d["metrics"].items()},
                   bins=bins, protocol=d.get("protocol", {}), provenance=d.get("provenance", {}),
                   smoke=bool(d.get("smoke", False)), schema=d["schema"], path=path)


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_metrics(m: Any, where: str, key: str) -> None:
    if not isinstance(m, dict):
        raise InputError(f"{where}: '{key}' must be an object of metrics, got {type(m).__name__}")
    for name, v in m.items():
        if not isinstance(v, dict) or "value" not in v:
            raise InputError(f"{where}: '{key}.{name}' must be an object with a 'value', got {v!r:.60}")
        for f in ("value", "ci_low", "ci_high"):
            if v.get(f) is not None and not _is_num(v[f]):
                raise InputError(f"{where}: '{key}.{name}.{f}' must be a number, got {v[f]!r:.60}")
        if not isinstance(v.get("n", 0), int) or isinstance(v.get("n"), bool):
            raise InputError(f"{where}: '{key}.{name}.n' must be an integer, got {v['n']!r:.60}")
        if not isinstance(v.get("extra", {}), dict):
            raise InputError(f"{where}: '{key}.{name}.extra' must be an object")


def check_result_json(d: Any, where: str) -> None:
    """InputError (one line naming `where`) unless `d` has the structure of a metrics.json; readers then index it
    without KeyError/TypeError tracebacks (a broken baseline must not read as a regression, issue 21)."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: not a matbench result (a JSON {type(d).__name__}, not an object)")
    if d.get("schema") != SCHEMA:
        raise InputError(f"{where}: not a matbench result (schema {d.get('schema')!r})")
    for key in ("job", "metrics"):
        if key not in d:
            raise InputError(f"{where}: not a matbench result (no '{key}')")
    for key in ("job", "protocol", "provenance"):
        if not isinstance(d.get(key, {}), dict):
            raise InputError(f"{where}: '{key}' must be an object, got {type(d[key]).__name__}")
    if d["job"].get("sample") is not None and not isinstance(d["job"]["sample"], int):
        raise InputError(f"{where}: 'job.sample' must be an integer, got {d['job']['sample']!r:.60}")
    _check_metrics(d["metrics"], where, "metrics")
    bins = d.get("bins", [])
    if not isinstance(bins, list) or not all(isinstance(b, dict) for b in bins):
        raise InputError(f"{where}: 'bins' must be a list of objects")
    for i, b in enumerate(bins):
        _check_metrics(b.get("metrics", {}), where, f"bins[{i}].metrics")


def write_record(out_dir: str | os.PathLike, record: ResultRecord) -> Path:
    path = Path(out_dir) / METRICS_FILE
    write_json_atomic(path, record.to_json())
    return path


# Called with every record read. matbench.metrics installs one that learns how to show metrics of user modules
# from provenance.metric_info (results.py cannot import the registry: the registry imports it).
ON_READ: list[Callable[[ResultRecord], None]] = []


def read_record(path: str | os.PathLike) -> ResultRecord:
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such result file") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    record = ResultRecord.from_json(data, path=path)
    for hook in ON_READ:
        hook(record)
    return record


def find_records(paths: Iterable[str | os.PathLike]) -> list[ResultRecord]:
    """Every metrics.json at or below the given paths (sorted by path)."""
    out: list[ResultRecord] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise InputError(f"{p}: no such file or directory")
        files = [p] if p.is_file() else sorted(p.rglob(METRICS_FILE))
        if not files:
            raise InputError(f"{p}: contains no {METRICS_FILE}")
        out.extend(read_record(f) for f in files)
    return out


def environment_versions() -> dict[str, str]:
    """Versions of the packages that can change a number."""
    import importlib.metadata as md


    out = {"python": platform.python_version(), "matbench": matbench.__version__}
    for pkg in ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "torch-fidelity", "lpips",
                "opencv-python-headless", "pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def record_asdict(r: ResultRecord) -> dict[str, Any]:
    return asdict(r)
