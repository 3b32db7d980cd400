"""Benchmark specs: a TOML file that names datasets, mask sets, models, resolutions and metrics.

Everything is validated up front (before any image is touched); every error names the key,
e.g. ``models[1].weights: file /x/mat.pkl does not exist``. Relative paths are relative to the
spec file. See docs/runner.md for the full key reference; examples/specs/ has a small example.

    name = "places-large"            # run name (default: the spec file's stem)
    output = "runs/places-large"     # run directory
    seed = 0                         # base seed (masks, sampling, bootstrap)
    batch_size = 8
    device = "auto"                  # auto | cpu | cuda | cuda:N
    resolutions = [512]
    generalization = false           # true: every job at 512 and 1024, plus the delta table
    metrics = ["fid", "pids", "uids", "lpips"]
    smoke = false                    # metric networks on random weights: false | true | "auto"
    inception = "inception-v3-compat"  # FID/IDS/KID backend: inception-v3-compat | inception-nvidia | pt-inception
    protocol = "mat-places512-large" # optional: a published protocol (matbench protocols); a differing run is refused
    save_features = false            # true: jobs/<job>/features.npz ({extractor}.real / .fake, per_image.csv order)

    [[datasets]]
    preset = "places365-val"         # places365-val | celeba-hq-val | folder
    path = "/data/places365_val"
    limit = 1000                     # optional: the first N ids

    [[masksets]]
    kind = "mat-large"               # generated (matbench.data.masks.MASK_KINDS) ...
    # path = "masks/large512"        # ... or an existing mask set directory

    [[models]]
    name = "mat"
    weights = "weights/Places_512_FullData.pkl"
    samples = 5                      # k samples per image -> diversity (pluralistic models)
    options = { truncation_psi = 1.0 }  # declared per model: `matbench models mat` lists them
    published_row = "MAT (8M)"       # with protocol: the published row to put beside this model's numbers
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matbench import protocols as P
from matbench.data.masks import spec_hole_range
from matbench.errors import InputError, SpecError
from matbench.evaluate.config import CHOICES, INCEPTIONS, EvalConfig
from matbench.metrics import INCEPTION, extractors_for, load_metric
from matbench.models.base import get_model_info
from matbench.models.options import check_options
from matbench.trust import TrustError

DATASET_PRESETS = ("places365-val", "celeba-hq-val", "folder")
POLICIES = ("mat-val", "resize-crop")
DEFAULT_METRICS = ("fid", "pids", "uids", "lpips")
GENERALIZATION_RESOLUTIONS = (512, 1024)
PRECISIONS = ("fp32", "tf32", "bf16")
DEFAULT_INCEPTION = INCEPTIONS[0]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class DatasetSpec:
    name: str
    preset: str
    path: Path | None
    policy: str = "mat-val"
    limit: int | None = None
    allow_upscale: bool = False  # images smaller than a resolution may be reflect-padded / upscaled


@dataclass
class MaskSetSpec:
    name: str
    kind: str | None = None  # generated ...
    path: Path | None = None  # ... or imported (a MaskSet directory)
    seed: int = 0
    hole_range: tuple[float, float] | None = None  # MAT kinds: official RandomMask hole_range [lo, hi]


@dataclass
class ModelSpec:
    label: str  # unique within the spec; used in job ids
    name: str  # registry name or "pkg.mod:factory"
    weights: Path | None = None
    smoke: bool = False  # random (not released) weights
    samples: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # "models[i]" for messages
    precision: str = "fp32"  # fp32 | tf32 | bf16 (autocast); known pixels stay exact in every mode
    channels_last: bool = False
    compile: bool = False  # torch.compile the model's networks
    batch_size: int | None = None  # this model's batch size (default: the run's)
    published_row: str | None = None  # with the spec's protocol: the published row beside this model's numbers


@dataclass
class Spec:
    name: str
    output: Path
    datasets: list[DatasetSpec]
    masksets: list[MaskSetSpec]
    models: list[ModelSpec]
    resolutions: list[int]
    metrics: list[str]
    seed: int = 0
    batch_size: int = 8
    device: str = "auto"
    generalization: bool = False
    smoke: bool | str = False  # metric networks: False | True | "auto"
    save_outputs: str = "all"  # all | none | sample:N (a fixed, seeded sample of N ids per dataset)
    save_inputs: bool = True
    pipeline: bool = True  # false: the stages of a batch run one after the other (the serial reference)
    input_workers: int = 0  # threads of the input / output stages; 0 = from the available cores
    output_workers: int = 0
    fid_convention: str = "mat"
    lpips_net: str = "alex"
    n_bootstrap: int = 200
    cache_dir: Path | None = None
    inception: str = DEFAULT_INCEPTION  # the Inception backend of FID/IDS/KID
    runtime: str = "torch"  # where the feature networks run on the CPU (matbench.features.runtime)
    protocol: str | None = None  # a published protocol (matbench.protocols) the run must follow
    save_features: bool = False  # jobs/<job>/features.npz
    source: Path | None = None  # the spec file, if any
    raw: dict[str, Any] = field(default_factory=dict)  # the TOML as read (for provenance)

    def eval_config(self, device: str, smoke: bool) -> EvalConfig:
        """The evaluation options this spec sets (the same fields, by the same names, as `matbench eval`)."""
        return EvalConfig(device=device, smoke=smoke, cache_dir=self.cache_dir, fid_convention=self.fid_convention,
                          lpips_net=self.lpips_net, n_bootstrap=self.n_bootstrap, seed=self.seed,
                          batch_size=self.batch_size, inception=self.inception, runtime=self.runtime)

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON (resolved paths, defaults filled in) for run.json and provenance."""
        def p(x: Path | None) -> str | None:
            return None if x is None else str(x)

        return {
            "name": self.name, "output": p(self.output), "seed": self.seed, "batch_size": self.batch_size,
            "device": self.device, "resolutions": self.resolutions, "generalization": self.generalization,
            "metrics": self.metrics, "smoke": self.smoke, "save_outputs": self.save_outputs,
            "save_inputs": self.save_inputs, "pipeline": self.pipeline, "input_workers": self.input_workers,
            "output_workers": self.output_workers, "fid_convention": self.fid_convention, "lpips_net": self.lpips_net,
            "n_bootstrap": self.n_bootstrap, "cache_dir": p(self.cache_dir), "source": p(self.source),
            "datasets": [{"name": d.name, "preset": d.preset, "path": p(d.path), "policy": d.policy,
                          "limit": d.limit, **({"allow_upscale": True} if d.allow_upscale else {})}
                         for d in self.datasets],
            "masksets": [{"name": m.name, "kind": m.kind, "path": p(m.path), "seed": m.seed,
                          **({"hole_range": list(m.hole_range)} if m.hole_range else {})} for m in self.masksets],
            "models": [{"label": m.label, "name": m.name, "weights": p(m.weights), "smoke": m.smoke,
                        "samples": m.samples, "options": m.options, **_speed_keys(m),
                        **({"published_row": m.published_row} if m.published_row else {})} for m in self.models],
            **_evaluation_keys(self),
        }


def _evaluation_keys(spec: Spec) -> dict[str, Any]:
    """inception / protocol / save_features when not the defaults (specs without them serialize as before)."""
    keys = {"inception": spec.inception, "protocol": spec.protocol, "save_features": spec.save_features}
    return {k: v for k, v in keys.items() if v not in (DEFAULT_INCEPTION, None, False)}


def _speed_keys(m: ModelSpec) -> dict[str, Any]:
    """A model's speed keys that differ from the defaults (so specs without them serialize as before)."""
    keys = {"precision": m.precision, "channels_last": m.channels_last, "compile": m.compile,
            "batch_size": m.batch_size}
    return {k: v for k, v in keys.items() if v not in ("fp32", False, None)}


# --------------------------------------------------------------------------- reading


def load_spec(path: str | Path, output: str | Path | None = None, check_paths: bool = True) -> Spec:
    """Read and validate a TOML spec file. `output` overrides the spec's output directory."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec ({e.strerror or e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML ({e})") from None
    return parse_spec(data, base_dir=path.resolve().parent, source=path, output=output, check_paths=check_paths)


def parse_spec(data: dict[str, Any], base_dir: str | Path = ".", source: Path | None = None,
               output: str | Path | None = None, check_paths: bool = True) -> Spec:
    """Validate a spec given as a dict (as read from TOML); raise SpecError naming the key."""
    base = Path(base_dir)
    where = f"{source}: " if source else ""
    raw = copy.deepcopy(data)
    r = _Reader(data, "", where)
    name = r.str("name", source.stem if source else "run")
    spec_out = r.str("output", None)
    out = output if output is not None else spec_out
    seed = r.int("seed", 0)
    batch_size = r.int("batch_size", 8, minimum=1)
    device = r.str("device", "auto")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
        raise SpecError(f"{where}device: must be auto, cpu, cuda or cuda:N, got {device!r}")
    generalization = r.bool("generalization", False)
    resolutions = r.get("resolutions", None)
    if resolutions is None:
        resolutions = list(GENERALIZATION_RESOLUTIONS) if generalization else [512]
    if (not isinstance(resolutions, list) or not resolutions
            or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in resolutions)):
        raise SpecError(f"{where}resolutions: must be a non-empty list of positive integers, got {resolutions!r}")
    if len(set(resolutions)) != len(resolutions):
        raise SpecError(f"{where}resolutions: duplicate entries in {resolutions}")
    if generalization and len(resolutions) != 2:
        raise SpecError(f"{where}resolutions: generalization = true needs exactly two resolutions "
                        f"(base, target), got {resolutions}")
    metrics = r.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise SpecError(f"{where}metrics: must be a non-empty list of metric names")
    metrics = list(metrics)
    for i, m in enumerate(metrics):
        try:
            metrics[i] = load_metric(m, str(source or "the spec"))  # built-in, trusted module:name, entry point
        except TrustError:
            raise
        except InputError as e:
            raise SpecError(f"{where}metrics[{i}]: {e}") from None
    smoke = r.get("smoke", False)
    if smoke not in (True, False, "auto"):
        raise SpecError(f"{where}smoke: must be true, false or \"auto\", got {smoke!r}")
    save_outputs = _save_outputs(r.get("save_outputs", "all"), where)
    save_inputs = r.bool("save_inputs", True)
    pipeline = r.bool("pipeline", True)
    input_workers = r.int("input_workers", 0, minimum=0)
    output_workers = r.int("output_workers", 0, minimum=0)
    fid_convention = _choice(r.str("fid_convention", "mat"), "fid_convention", where)
    lpips_net = _choice(r.str("lpips_net", "alex"), "lpips_net", where)
    n_bootstrap = r.int("n_bootstrap", 200, minimum=0)
    cache_dir = r.str("cache_dir", None)
    inception = _choice(r.str("inception", DEFAULT_INCEPTION), "inception", where)
    runtime = _choice(r.str("runtime", "torch"), "runtime", where)
    protocol = r.str("protocol", None)
    save_features = r.bool("save_features", False)

    datasets = [_dataset(d, f"datasets[{i}]", base, where, check_paths)
                for i, d in enumerate(r.tables("datasets"))]
    masksets = [_maskset(m, f"masksets[{i}]", base, where, seed, check_paths)
                for i, m in enumerate(r.tables("masksets"))]
    models = [_model(m, f"models[{i}]", base, where, check_paths) for i, m in enumerate(r.tables("models"))]
    for what, items, attr in (("datasets", datasets, "name"), ("masksets", masksets, "name"),
                              ("models", models, "label")):
        seen: dict[str, int] = {}
        for i, it in enumerate(items):
            n = getattr(it, attr)
            if n in seen:
                raise SpecError(f"{where}{what}[{i}].{attr if attr != 'label' else 'label'}: "
                                f"{n!r} is already used by {what}[{seen[n]}] (give a distinct name/label)")
            seen[n] = i
    r.finish()
    if out is None:
        raise SpecError(f"{where}output: no output directory (set output = \"DIR\" or pass -o)")
    out_path = Path(out)
    if not out_path.is_absolute() and output is None:
        out_path = base / out_path
    spec = Spec(name=name, output=out_path, datasets=datasets, masksets=masksets, models=models,
                resolutions=list(resolutions), metrics=list(metrics), seed=seed, batch_size=batch_size,
                device=device, generalization=generalization, smoke=smoke, save_outputs=save_outputs,
                save_inputs=save_inputs, pipeline=pipeline, input_workers=input_workers,
                output_workers=output_workers, fid_convention=fid_convention, lpips_net=lpips_net,
                n_bootstrap=n_bootstrap, cache_dir=_path(cache_dir, base) if cache_dir else None,
                inception=inception, runtime=runtime, protocol=protocol, save_features=save_features, source=source,
                raw=raw)
    check_protocol(spec, where)
    return spec


def check_protocol(spec: Spec, where: str = "", n_images: dict[str, int] | None = None,
                   mask_kinds: dict[str, str | None] | None = None) -> None:
    """Refuse a spec that names a protocol but differs from it, naming each differing key. What parsing knows is
    checked here; `n_images` (dataset name -> images) and `mask_kinds` (imported mask sets: the generator in
    their maskset.json) once the inputs are read (`matbench run`, `--dry-run`)."""
    for i, m in enumerate(spec.models):
        if m.published_row is not None and spec.protocol is None:
            raise SpecError(f"{where}models[{i}].published_row: set protocol = \"NAME\" too (the row is one of "
                            "that protocol's published rows)")
    if spec.protocol is None:
        return
    try:
        p = P.get(spec.protocol)
    except SpecError as e:
        raise SpecError(f"{where}protocol: {e}") from None
    checks: list[tuple[str, dict[str, Any]]] = [("fid_convention", {"fid_convention": spec.fid_convention})]
    if INCEPTION in extractors_for(spec.metrics):
        checks.append(("inception", {"feature_extractor": spec.inception,
                                     "resize": P.inception_resize(spec.inception)}))
    checks += [("resolutions", {"resolution": r}) for r in spec.resolutions]
    for i, ms in enumerate(spec.masksets):
        kind = ms.kind if ms.kind is not None else (mask_kinds or {}).get(ms.name)
        checks.append((f"masksets[{i}]" + (".kind" if ms.kind is not None else ".path"), {"mask_kind": kind}))
    for i, d in enumerate(spec.datasets):
        if n_images is not None and d.name in n_images:
            checks.append((f"datasets[{i}]", {"n_images": n_images[d.name]}))
    diffs = [f"{key}: {phrase}" for key, run in checks for phrase in P.differences(p, run)]
    for i, m in enumerate(spec.models):
        if m.published_row is not None and m.published_row not in p.published:
            diffs.append(f"models[{i}].published_row: {m.published_row!r} is not published by {p.name} "
                         f"({', '.join(map(repr, p.published)) or 'no rows'})")
    if diffs:
        raise SpecError(f"{where}the run does not follow protocol {p.name}:\n  " + "\n  ".join(diffs))


def _save_outputs(v: Any, where: str) -> str:
    """true/false (older specs) or "all" | "none" | "sample:N" -> the string form."""
    if v is True or v is False:
        return "all" if v else "none"
    if isinstance(v, str) and (v in ("all", "none") or re.fullmatch(r"sample:[1-9]\d*", v)):
        return v
    raise SpecError(f"{where}save_outputs: must be \"all\", \"none\" or \"sample:N\" (N >= 1), got {v!r}")


def _choice(v: str, key: str, where: str) -> str:
    """A spec key whose allowed values are data of matbench.evaluate.config (CHOICES)."""
    allowed = CHOICES[key]
    if v not in allowed:
        if len(allowed) == 2:
            raise SpecError(f"{where}{key}: must be {allowed[0]} or {allowed[1]}, got {v!r}")
        raise SpecError(f"{where}{key}: must be one of {', '.join(allowed)}, got {v!r}")
    return v


def _path(p: str, base: Path) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else base / q


def _dataset(d: dict[str, Any], key: str, base: Path, where: str, check: bool) -> DatasetSpec:
    r = _Reader(d, key + ".", where)
    preset = r.str("preset", "folder")
    if preset not in DATASET_PRESETS:
        raise SpecError(f"{where}{key}.preset: unknown preset {preset!r}; known: {', '.join(DATASET_PRESETS)}")
    path_s = r.str("path", None)
    if path_s is None:
        raise SpecError(f"{where}{key}.path: missing (the dataset's folder or zip)")
    path = _path(path_s, base)
    if check and not path.exists():
        raise SpecError(f"{where}{key}.path: {path} does not exist")
    policy = r.str("policy", "mat-val")
    if policy not in POLICIES:
        raise SpecError(f"{where}{key}.policy: unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    name = r.str("name", preset if preset != "folder" else path.stem)
    _check_name(name, f"{key}.name", where)
    limit = r.int("limit", None, minimum=1)
    allow_upscale = r.bool("allow_upscale", False)
    r.finish()
    return DatasetSpec(name=name, preset=preset, path=path, policy=policy, limit=limit, allow_upscale=allow_upscale)


def _maskset(d: dict[str, Any], key: str, base: Path, where: str, seed: int, check: bool) -> MaskSetSpec:
    r = _Reader(d, key + ".", where)
    kind = r.str("kind", None)
    path_s = r.str("path", None)
    if (kind is None) == (path_s is None):
        raise SpecError(f"{where}{key}: give exactly one of kind (generated masks) or path (a mask set directory)")
    if kind is not None:
        kinds = _mask_kinds()
        if kinds is not None and kind not in kinds:
            raise SpecError(f"{where}{key}.kind: unknown mask kind {kind!r}; known: {', '.join(kinds)}")
    path = _path(path_s, base) if path_s else None
    if check and path is not None and not path.is_dir():
        raise SpecError(f"{where}{key}.path: {path} is not a directory")
    if check and path is not None:
        from matbench.data.maskset import check_maskset_dir  # 0/1 masks, hole ratio 0 or 1 everywhere

        check_maskset_dir(path, f"{where}{key}.path")
    name = r.str("name", kind if kind else path.name)  # type: ignore[union-attr]
    _check_name(name, f"{key}.name", where)
    ms_seed = r.int("seed", seed)

    hole_range = spec_hole_range(r.get("hole_range", None), kind, f"{where}{key}.hole_range")
    r.finish()
    return MaskSetSpec(name=name, kind=kind, path=path, seed=ms_seed, hole_range=hole_range)


def _model(d: dict[str, Any], key: str, base: Path, where: str, check: bool) -> ModelSpec:
    r = _Reader(d, key + ".", where)
    name = r.str("name", None)
    if name is None:
        raise SpecError(f"{where}{key}.name: missing (a registered model name or 'package.module:factory')")

    try:
        info = get_model_info(name, source=f"{where}{key}.name")
    except TrustError:
        raise  # already names the spec and the key
    except SpecError as e:
        raise SpecError(f"{where}{key}.name: {e}") from None
    label = r.str("label", name.replace(":", "-").replace("/", "-"))
    _check_name(label, f"{key}.label", where)
    weights_s = r.str("weights", None)
    weights = _path(weights_s, base) if weights_s else None
    if check and weights is not None and not weights.is_file():
        raise SpecError(f"{where}{key}.weights: file {weights} does not exist")
    smoke = r.bool("smoke", False)
    samples = r.int("samples", 1, minimum=1)
    if samples > 1 and not info.requires.samples:
        raise SpecError(f"{where}{key}.samples: model {name!r} is deterministic (it does not sample), "
                        "so k samples per image would be identical; use samples = 1")
    options = r.get("options", {})
    if not isinstance(options, dict):
        raise SpecError(f"{where}{key}.options: must be a table, got {type(options).__name__}")
    for k in ("weights", "smoke", "device"):
        if k in options:
            raise SpecError(f"{where}{key}.options.{k}: set {k} on the model itself, not in options")
    precision = r.str("precision", "fp32")
    if precision not in PRECISIONS:
        raise SpecError(f"{where}{key}.precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    channels_last = r.bool("channels_last", False)
    compile_ = r.bool("compile", False)
    batch_size = r.int("batch_size", None, minimum=1)
    published_row = r.str("published_row", None)

    check_options(name, info.options, options, info.factory, prefix=f"{where}{key}.options.")
    check_options(name, info.options, {k: v for k, v in (("weights", weights_s), ("smoke", smoke)) if v},
                  info.factory, prefix=f"{where}{key}.")
    r.finish()
    return ModelSpec(label=label, name=name, weights=weights, smoke=smoke, samples=samples,
                     options=dict(options), key=key, precision=precision, channels_last=channels_last,
                     compile=compile_, batch_size=batch_size, published_row=published_row)


def _check_name(name: str, key: str, where: str) -> None:
    if not _NAME_RE.match(name) or "__" in name:
        raise SpecError(f"{where}{key}: {name!r} must be letters, digits, '.', '_', '+', '-' "
                        "(no '__', which separates job id parts)")


def _mask_kinds() -> tuple[str, ...] | None:
    try:
        from matbench.data.masks import MASK_KINDS
    except ImportError:  # masks module not present in this tree: checked when the run starts
        return None
    return tuple(MASK_KINDS)


class _Reader:
    """Typed access to one TOML table that remembers which keys were used (unknown keys are errors)."""

    def __init__(self, data: Any, prefix: str, where: str) -> None:
        if not isinstance(data, dict):
            raise SpecError(f"{where}{prefix.rstrip('.') or 'spec'}: must be a table")
        self.data, self.prefix, self.where, self.used = data, prefix, where, set()

    def err(self, k: str, msg: str) -> SpecError:
        return SpecError(f"{self.where}{self.prefix}{k}: {msg}")

    def get(self, k: str, default: Any) -> Any:
        self.used.add(k)
        return self.data.get(k, default)

    def str(self, k: str, default: str | None) -> Any:
        v = self.get(k, default)
        if v is not None and not isinstance(v, str):
            raise self.err(k, f"must be a string, got {v!r}")
        return v

    def int(self, k: str, default: int | None, minimum: int | None = None) -> Any:
        v = self.get(k, default)
        if v is None:
            return v
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.err(k, f"must be an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.err(k, f"must be >= {minimum}, got {v}")
        return v

    def bool(self, k: str, default: bool) -> bool:
        v = self.get(k, default)
        if not isinstance(v, bool):
            raise self.err(k, f"must be true or false, got {v!r}")
        return v

    def tables(self, k: str) -> list[dict[str, Any]]:
        v = self.get(k, None)
        if v is None or v == []:
            raise self.err(k, f"missing: add at least one [[{k}]] table")
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise self.err(k, f"must be an array of tables ([[{k}]])")
        return v

    def finish(self) -> None:
        for k in self.data:
            if k not in self.used:
                raise self.err(k, "unknown key")
