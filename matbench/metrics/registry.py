"""The one metric registry: every metric `matbench eval` computes is declared once, next to its math.

A metric is declared with `register_metric` in its family file (fid.py, ids.py, kid.py, prc.py, pixel.py,
lpips.py, featspace.py) or in a user's module, with the contract of docs/metrics.md:

    @register_metric("hole_mse", per_image=True, higher_is_better=False, label="Hole MSE")
    def hole_mse(real, fake, hole):            # uint8 N×3×H×W, uint8 N×3×H×W, bool N×1×H×W -> float array [N]

    @register_metric("feat_mean_gap", extractor="inception", higher_is_better=False, label="Feature mean gap")
    def feat_mean_gap(real_features, fake_features):   # float N×D each -> float

Everything else is derived from these declarations: METRIC_INFO (label, direction, display scale), the default
metric set, the names `--metrics` and a spec's `metrics = [...]` accept, per_image.csv columns, which extractors
the Evaluator runs and in which order the computations run.

Built-in families compute several outputs in one pass (P-IDS and U-IDS share one SVM fit, PSNR/SSIM/L1 one pixel
pass): `register_group` declares that computation once, and each output is still a registered metric with its
own info (`group=`). `request=` is the name a user asks for when it differs from the output (`pr` gives precision
and recall). A metric registered with a plain function gets a computation of its own: per-image values averaged
with a bootstrap of the mean, or a dataset value with a percentile bootstrap over images.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import math
import pkgutil
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matbench import results, trust
from matbench.errors import InputError
from matbench.metrics.bootstrap import bootstrap_interval
from matbench.results import MetricInfo, MetricValue, ResultRecord

ENTRY_POINT_GROUP = "matbench.metrics"
# how a metric's interval is computed (documentation in tables and docs/metrics.md)
INTERVALS = ("bootstrap-mean", "percentile", "bias-corrected", "subset-normal", "membership", "fit-se", "none")
# extractor= "inception" is the configured Inception backend (inception-v3-compat, inception-nvidia, pt-inception)
INCEPTION = "inception"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Metric:
    """One registered metric: one key of metrics.json."""

    name: str
    label: str
    higher_is_better: bool
    per_image: bool = False  # a per_image.csv column, averaged with a bootstrap of the mean
    extractor: str | None = None  # features it needs: a matbench.features name, or "inception"
    scale: float = 1.0  # display value = stored value * scale
    digits: int = 2
    interval: str = "percentile"  # one of INTERVALS
    group: str = ""  # the computation that yields it (its own name for a plain function)
    request: str = ""  # the name users ask for (its own name unless several outputs share one request)
    default: int = 0  # position in the default set (0: not in it)
    order: float = math.inf  # display order of built-ins (tables follow METRIC_INFO order)
    evaluated: bool = True  # False: computed outside the Evaluator (diversity), display information only
    source: str = ""  # the module that registered it
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # fixed facts copied into each value's extra (per-image)

    @property
    def info(self) -> MetricInfo:
        return MetricInfo(self.name, self.label, self.higher_is_better, self.scale, self.digits)

    @property
    def builtin(self) -> bool:
        return self.source.startswith("matbench.")


@dataclass
class BatchContext:
    """One batch inside `Evaluator.process_batch`: uint8 N×3×H×W images, the bool hole (or None) and its rows."""

    ids: list[str]
    real: torch.Tensor
    fake: torch.Tensor
    hole: torch.Tensor | None
    rows: list[dict]
    ev: Any  # the Evaluator: its options (config) and networks (LPIPS)
    # per-image arrays [N, ...] a computation keeps for its dataset step (a group with batch= and dataset=): they
    # are concatenated over batches and read back as DatasetContext.feats[key]; not written to per_image.csv
    features: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DatasetContext:
    """The subset `idx` of all images inside `Evaluator.finalize` (all of them, or one hole-ratio bin)."""

    feats: dict[str, np.ndarray]
    idx: np.ndarray
    n_bootstrap: int
    seed: int
    ev: Any
    in_bin: bool = False
    # whole-set pass: a computation may store state here under its name; bins read the whole set's state
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.idx.size)

    def features(self, extractor: str) -> tuple[np.ndarray, np.ndarray]:
        """(real, fake) features [n, D] of the subset from `extractor` (a matbench.features name or inception)."""
        key = self.ev.feature_key(extractor)
        real, fake = self.feats[f"{key}_real"], self.feats[f"{key}_fake"]
        if not self.in_bin and self.idx.size == real.shape[0]:  # the whole set: no 600 MB copy per metric
            return real, fake
        return real[self.idx], fake[self.idx]


@dataclass(frozen=True)
class Group:
    """A computation that yields one or several registered metrics.

    per-image: batch(ctx: BatchContext) fills ctx.rows[i][metric]; dataset: dataset(ctx: DatasetContext) ->
    {metric: MetricValue} for the requested ones. A dataset computation may also have a batch step that keeps
    per-image arrays in ctx.features for it (segmentation-aware metrics: class counts under the hole).
    """

    name: str
    per_image: bool = False
    extractor: str | None = None
    batch: Callable[[BatchContext], None] | None = None
    dataset: Callable[[DatasetContext], dict[str, MetricValue]] | None = None
    source: str = ""


# A view turns a batch into the images an extractor sees instead of the whole images (fid_local's hole crops):
# view(real, fake, hole, extractor) -> (indices of the images it keeps, their real images, their result images),
# uint8 N×3×S×S; the other images get NaN feature rows.
View = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", Any], tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor]]

_METRICS: dict[str, Metric] = {}
_GROUPS: dict[str, Group] = {}
_VIEWS: dict[str, View] = {}
# Families whose computations run first, in this order (per-image passes, then Inception, VGG, other spaces); every
# other module of matbench.metrics is imported after them, so a new family file needs no edit here.
_BUILTIN_MODULES = ("pixel", "lpips", "region", "fid", "ids", "kid", "prc", "featspace", "fdinf")
_state = {"loaded": False}


def _ensure_builtins() -> None:
    if not _state["loaded"]:
        _state["loaded"] = True
        others = sorted(m.name for m in pkgutil.iter_modules(_package_path()))
        for mod in dict.fromkeys((*_BUILTIN_MODULES, *others)):  # by name: the family files import this module
            importlib.import_module(f"matbench.metrics.{mod}")


def _package_path() -> list[str]:
    return [str(Path(__file__).resolve().parent)]


def split_extractor(extractor: str) -> tuple[str, str, str]:
    """extractor= of a metric, `BASE[:OUTPUT][@VIEW]` -> (base, output, view): BASE a matbench.features name or
    inception, OUTPUT a further output of its forward pass (ExtractorSpec.outputs; "" its features), VIEW a
    registered view of the images ("" the whole images). sFID uses "inception:spatial", fid_local "inception@local"."""
    rest, _, view = extractor.partition("@")
    base, _, output = rest.partition(":")
    return base, output, view


def join_extractor(base: str, output: str = "", view: str = "") -> str:
    return base + (f":{output}" if output else "") + (f"@{view}" if view else "")


def register_view(name: str, fn: View) -> View:
    """Declare a view of the images (see View) that metrics name as extractor="BASE@name"."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"view name must be lower-case letters, digits, underscores; got {name!r}")
    _VIEWS[name] = fn
    return fn


def get_view(name: str) -> View:
    _ensure_builtins()
    if name not in _VIEWS:
        raise InputError(f"unknown image view {name!r}; known: {', '.join(_VIEWS) or 'none'}")
    return _VIEWS[name]


def register_group(name: str, *, per_image: bool = False, extractor: str | None = None,
                   batch: Callable[[BatchContext], None] | None = None,
                   dataset: Callable[[DatasetContext], dict[str, MetricValue]] | None = None) -> Group:
    """Declare a computation shared by several metrics (they name it with group=...)."""
    if (batch is None and dataset is None) or per_image != (dataset is None):
        raise ValueError(f"metric group {name!r}: give batch= (per_image=True) or dataset= (dataset level, "
                         "optionally with a batch= step that keeps per-image arrays in ctx.features)")
    g = Group(name, per_image, extractor, batch, dataset, getattr(batch or dataset, "__module__", "") or "")
    old = _GROUPS.get(name)
    if old is not None and old.source != g.source:
        raise ValueError(f"metric group {name!r} already registered by {old.source}")
    _GROUPS[name] = g
    return g


def register_metric(name: str, *, higher_is_better: bool, label: str | None = None, per_image: bool = False,
                    extractor: str | None = None, **meta: Any) -> Callable[[Callable[..., Any] | None], Any]:
    """Decorator declaring metric `name` (the function's contract: module doc, docs/metrics.md).

    meta: scale, digits, interval, group, request, default, order, evaluated, doc, extra (the fields of Metric).
    Metrics of a group (group=...) are computed by it: decorate nothing (`register_metric(...)(None)`)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"metric name must be lower-case letters, digits, underscores; got {name!r}")
    if not isinstance(higher_is_better, bool):
        raise ValueError(f"metric {name!r}: higher_is_better must be True or False")
    unknown = set(meta) - {"scale", "digits", "interval", "group", "request", "default", "order", "evaluated", "doc",
                              "extra"}
    if unknown:
        raise ValueError(f"metric {name!r}: unknown option(s) {', '.join(sorted(unknown))}")
    interval = meta.get("interval") or ("bootstrap-mean" if per_image else "percentile")
    if interval not in INTERVALS:
        raise ValueError(f"metric {name!r}: interval must be one of {INTERVALS}, got {interval!r}")
    if per_image and extractor is not None:
        raise ValueError(f"metric {name!r}: per-image metrics take images, not features (no extractor)")

    def deco(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
        group = meta.get("group") or ""
        evaluated = bool(meta.get("evaluated", True))
        if not group and evaluated:
            if not callable(fn):
                raise ValueError(f"metric {name!r}: needs a function (or group=...)")
            group = name
            register_group(name, per_image=per_image, extractor=extractor,
                           **({"batch": _per_image_step(name, fn)} if per_image
                              else {"dataset": _dataset_step(name, fn, extractor)}))
        source = getattr(fn, "__module__", None) or (_GROUPS[group].source if group in _GROUPS else "")
        m = Metric(name=name, label=label or name, higher_is_better=higher_is_better, per_image=per_image,
                   extractor=extractor, scale=float(meta.get("scale", 1.0)), digits=int(meta.get("digits", 2)),
                   interval=interval, group=group, request=meta.get("request") or name,
                   default=int(meta.get("default", 0)), order=float(meta.get("order", math.inf)),
                   evaluated=evaluated, source=source,
                   doc=meta.get("doc") or ((fn.__doc__ or "").strip().split("\n")[0] if fn else ""),
                   extra=dict(meta.get("extra") or {}))
        old = _METRICS.get(name)
        if old is not None and old.source != m.source and old.evaluated:  # display-only entries give way
            raise ValueError(f"metric {name!r} already registered by {old.source or 'another module'}")
        _METRICS[name] = m
        return fn

    return deco


def unregister_metric(name: str) -> None:
    """Forget a metric and its own computation (tests; a module registering a metric for a short while)."""
    m = _METRICS.pop(name, None)
    if m is not None and m.group == name:
        _GROUPS.pop(name, None)


def _per_image_step(name: str, fn: Callable[..., Any]) -> Callable[[BatchContext], None]:
    def batch(ctx: BatchContext) -> None:
        vals = np.asarray(fn(ctx.real, ctx.fake, ctx.hole), dtype=np.float64).reshape(-1)
        if vals.size != len(ctx.ids):
            raise InputError(f"metric {name!r} returned {vals.size} values for {len(ctx.ids)} images")
        for r, v in zip(ctx.rows, vals.tolist(), strict=True):
            r[name] = v

    return batch


def _dataset_step(name: str, fn: Callable[..., Any], extractor: str | None
                  ) -> Callable[[DatasetContext], dict[str, MetricValue]]:
    if extractor is None:
        raise ValueError(f"metric {name!r}: a dataset-level metric needs extractor= (its features)")

    def dataset(ctx: DatasetContext) -> dict[str, MetricValue]:
        real, fake = ctx.features(extractor)
        value = float(fn(real, fake))
        lo, hi = bootstrap_interval(lambda j: float(fn(real[j], fake[j])), ctx.n, ctx.n_bootstrap, ctx.seed)
        return {name: MetricValue(value, lo, hi, ctx.n, extra={"extractor": ctx.ev.extractor_name(extractor),
                                                                "ci_method": "percentile"})}

    return dataset


# --------------------------------------------------------------------------------------------- queries

def registered() -> dict[str, Metric]:
    """Every registered metric by name: built-ins in display order, then the others in registration order."""
    _ensure_builtins()
    return dict(sorted(_METRICS.items(), key=lambda kv: kv[1].order))  # stable: ties keep registration order


def get_metric(name: str) -> Metric:
    reg = registered()
    if name not in reg:
        raise InputError(f"unknown metric {name!r}; known: {', '.join(reg)}")
    return reg[name]


def groups() -> dict[str, Group]:
    _ensure_builtins()
    return dict(_GROUPS)


def _requests() -> dict[str, tuple[str, ...]]:
    """Requestable name -> the metrics it selects; the default set first (by position), then registration order."""
    _ensure_builtins()
    out: dict[str, list[str]] = {}
    ms = [m for m in _METRICS.values() if m.evaluated]
    for m in sorted(ms, key=lambda m: m.default if m.default else math.inf):
        out.setdefault(m.request, []).append(m.name)
    return {k: tuple(v) for k, v in out.items()}


def default_metrics() -> tuple[str, ...]:
    """The default set of `matbench eval` and specs, in canonical order."""
    _ensure_builtins()
    return tuple(dict.fromkeys(m.request for m in sorted(_METRICS.values(), key=lambda m: m.default)
                               if m.default and m.evaluated))


def known_metrics() -> tuple[str, ...]:
    """Every name `--metrics` accepts without a module prefix, in canonical order."""
    return tuple(_requests())


def outputs_of(requests: Iterable[str]) -> list[str]:
    """The metric names (metrics.json keys) that the requested names select."""
    req = _requests()
    return [m for r in requests for m in req.get(r, ())]


def groups_for(requests: Iterable[str]) -> list[Group]:
    """The computations the requested metrics need, in registration order (built-ins first)."""
    reg = registered()
    wanted = {reg[m].group for m in outputs_of(requests)}
    return [g for n, g in _GROUPS.items() if n in wanted]


def extractors_for(requests: Iterable[str]) -> list[str]:
    """Extractors (matbench.features names or inception) the requested metrics need, in order of first need."""
    return list(dict.fromkeys(g.extractor for g in groups_for(requests) if g.extractor))


def per_image_metrics(requests: Iterable[str] | None = None) -> tuple[str, ...]:
    """Per-image metrics: the built-in ones of the default set (the fixed per_image.csv columns; others, such as the
    region metrics, are columns only when requested), or those the requests select."""
    reg = registered()
    if requests is None:
        return tuple(n for n, m in reg.items() if m.per_image and m.evaluated and m.builtin and m.default)
    chosen = set(outputs_of(requests))
    return tuple(n for n, m in reg.items() if m.per_image and n in chosen)


def load_metric(name: str, source: str = "the command line") -> str:
    """Resolve one requested name to a request name: a registered name as it is; `module:name` imports the
    module (which registers the metric) when matbench.trust allows it (an entry point, --trust MODULE or
    MATBENCH_TRUSTED_MODULES; never the standard library); an unknown name is looked up in the `matbench.metrics`
    entry points. source: where the name was given (a spec file), for the refusal message."""
    n = name.strip()
    if ":" in n:
        mod, _, n = n.partition(":")
        trust.allow_import(mod, f"metric {name!r}", source, attr=n, group=ENTRY_POINT_GROUP)
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise InputError(f"metric {name!r}: cannot import module {mod!r} ({e})") from None
        if n not in _requests():
            raise InputError(f"metric {name!r}: module {mod!r} registers no metric {n!r}")
        return n
    n = n.lower()
    if n in _requests():
        return n
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == n:
            obj = ep.load()  # importing it registers the metric; a function named there may register too
            if n not in _requests() and callable(obj) and not isinstance(obj, type):
                obj()
            break
    if n not in _requests():
        raise InputError(f"unknown metric {n!r}; known: {', '.join(default_metrics())}, and on other feature "
                         "spaces fd_dinov2, cmmd, clip_fid, fid_pt, dc, {fd,kid,pr,dc,ids,cmmd}_X with X in "
                         "dinov2, dinov2s, dinov2b, dinov2g, clip, clipb32, pt; a metric of your own as "
                         f"module:name or an entry point of group {ENTRY_POINT_GROUP} (docs/metrics.md)")
    return n


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """Requested names (a comma list or a sequence) -> request names in canonical order, no duplicates."""
    raw = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    if not raw:
        raise InputError("no metrics requested")
    names = {load_metric(m) for m in raw}
    return [r for r in _requests() if r in names]


def external_info(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What a record stores about metrics that are not built in, so that readers in another process (tables,
    reports, check) can show them without importing the user's module."""
    out = {}
    for n in names:
        m = _METRICS.get(n)
        if m is not None and not m.builtin:
            out[n] = {"label": m.label, "higher_is_better": m.higher_is_better, "scale": m.scale,
                      "digits": m.digits, "per_image": m.per_image, "source": m.source}
    return out


def metric_info(name: str, record: ResultRecord | None = None) -> MetricInfo | None:
    """Display information of a metric: the registry's, else what `record` stored (provenance.metric_info)."""
    m = registered().get(name)
    if m is not None:
        return m.info
    if record is not None:
        d = (record.provenance or {}).get("metric_info", {}).get(name)
        if isinstance(d, dict) and isinstance(d.get("higher_is_better"), bool):
            return MetricInfo(name, str(d.get("label") or name), d["higher_is_better"],
                              float(d.get("scale", 1.0)), int(d.get("digits", 2)))
    return None


class _InfoView(Mapping[str, MetricInfo]):
    """METRIC_INFO: the registry's display information, always current (user metrics registered later too)."""

    def __getitem__(self, name: str) -> MetricInfo:
        m = registered().get(name)
        if m is None:
            raise KeyError(name)
        return m.info

    def __iter__(self) -> Iterator[str]:
        return iter(registered())

    def __len__(self) -> int:
        return len(registered())

    def learn(self, records: Iterable[ResultRecord]) -> None:
        """Register display-only entries for the non-built-in metrics that `records` describe (their module is
        not imported: tables, reports and check show such a metric from what its record stored)."""
        for r in records:
            for n, d in ((r.provenance or {}).get("metric_info") or {}).items():
                if n in _METRICS or metric_info(n, r) is None:
                    continue
                register_metric(n, higher_is_better=d["higher_is_better"], label=str(d.get("label") or n),
                                per_image=bool(d.get("per_image")), scale=float(d.get("scale", 1.0)),
                                digits=int(d.get("digits", 2)), evaluated=False,
                                doc=f"from {d.get('source', 'a user module')} (display only)")(None)


METRIC_INFO = _InfoView()
results.ON_READ.append(lambda r: METRIC_INFO.learn([r]))
