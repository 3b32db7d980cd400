"""Planning: which jobs a spec makes, their batching, which weights are missing, and `--dry-run`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matbench import weights as weights_mod
from matbench.data.maskset import MaskSet
from matbench.errors import MatbenchError, WeightsError
from matbench.features import get_spec
from matbench.io import shown_path
from matbench.layout import RunLayout
from matbench.metrics import INCEPTION, extractors_for
from matbench.metrics.lpips import BACKBONE_WEIGHTS
from matbench.runner.inputs import enlargement_notes, open_dataset
from matbench.spec import DatasetSpec, MaskSetSpec, ModelSpec, Spec, check_protocol


@dataclass(frozen=True)
class Job:
    dataset: DatasetSpec
    maskset: MaskSetSpec
    model: ModelSpec
    resolution: int

    @property
    def id(self) -> str:
        return job_id(self.dataset.name, self.maskset.name, self.model.label, self.resolution)

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.dataset.name, "maskset": self.maskset.name, "model": self.model.label,
                "model_name": self.model.name, "resolution": self.resolution, "sample": 0}


def job_id(dataset: str, maskset: str, model: str, resolution: int) -> str:
    return f"{dataset}__{maskset}__{model}__{resolution}"


def plan_jobs(spec: Spec) -> list[Job]:
    """Every (dataset, resolution, mask set, model) combination, in a fixed order."""
    return [Job(d, m, mo, r) for d in spec.datasets for r in spec.resolutions
            for m in spec.masksets for mo in spec.models]


def job_batch_size(spec: Spec, job: Job) -> int:
    """The model's own batch size if its spec sets one, else the run's (the unit of resume and sharding)."""
    return getattr(job.model, "batch_size", None) or spec.batch_size


def missing_weights(spec: Spec) -> list[str]:
    """One line per model whose weights are neither given, found in the cache, nor smoke."""
    out = []
    for m in spec.models:
        if m.weights is not None or m.smoke:
            continue
        from matbench.models.base import get_model_info

        for w in get_model_info(m.name).requires.weights:
            try:
                entry = weights_mod.get(w)
            except WeightsError:
                out.append(f"{m.key} ({m.label}): weights {w!r} are not registered")
                continue
            if weights_mod.find(w) is None:
                how = f"download from {entry.url}" if entry.url else (entry.manual or "obtain from the authors")
                out.append(f"{m.key} ({m.label}): {entry.filename} not found ({how}; or set weights = PATH, "
                           "or smoke = true)")
    return out


def _dataset_counts(spec: Spec) -> dict[str, int | str]:
    counts: dict[str, int | str] = {}
    for d in spec.datasets:
        try:
            n = len(open_dataset(d).ids)
            counts[d.name] = min(n, d.limit) if d.limit else n
        except MatbenchError as e:
            counts[d.name] = f"unreadable: {e}"
        except ImportError:
            counts[d.name] = "?"
    return counts


def _enlargements(spec: Spec) -> list[str]:
    """Datasets whose images the run would pad or upscale (SpecError where the spec does not allow it)."""
    notes = []
    for d in spec.datasets:
        try:
            ds = open_dataset(d)
        except (MatbenchError, ImportError):
            continue  # already shown as unreadable in the job list
        ids = ds.ids[: d.limit] if d.limit else ds.ids
        notes += enlargement_notes(d, ds, list(ids), spec.resolutions)
    return notes


def _imported_kinds(spec: Spec) -> dict[str, str | None]:
    """The generator each imported mask set names in its maskset.json (None when it names none)."""

    out: dict[str, str | None] = {}
    for m in spec.masksets:
        if m.path is not None:
            try:
                out[m.name] = (MaskSet.open(m.path).meta or {}).get("generator")
            except MatbenchError:
                out[m.name] = None
    return out


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def dry_run(spec: Spec) -> str:
    """What would run: jobs, image counts (per job and in total), missing weights. Touches no outputs."""

    lines = [f"run {spec.name!r} -> {shown_path(spec.output)}", f"device {spec.device}, batch size {spec.batch_size}, "
             f"resolutions {spec.resolutions}" + (" (generalization table)" if spec.generalization else ""),
             f"metrics: {', '.join(spec.metrics)}; metric networks: "
             + {True: "SMOKE (random weights)", False: "released weights", "auto": "auto"}[spec.smoke]]
    counts = _dataset_counts(spec)
    total = 0
    lines.append("jobs:")
    for job in plan_jobs(spec):
        n = counts[job.dataset.name]
        state = _read_state(RunLayout(spec.output).state_file(job.id))
        status = f"  [{state.get('status')} on disk]" if state else ""
        if isinstance(n, int):
            total += n * job.model.samples
            extra = f" x {job.model.samples} samples" if job.model.samples > 1 else ""
            lines.append(f"  {job.id}: {n} images{extra}{status}")
        else:
            lines.append(f"  {job.id}: {n}{status}")
    lines.append(f"total: {len(plan_jobs(spec))} jobs, {total} model evaluations (images x samples)")
    if spec.protocol:
        check_protocol(spec, f"{spec.source}: " if spec.source else "",
                       {k: v for k, v in counts.items() if isinstance(v, int)}, _imported_kinds(spec))
        rows = {m.label: m.published_row for m in spec.models if m.published_row}
        lines.append(f"protocol: {spec.protocol} (conventions checked"
                     + (f"; published rows: {rows})" if rows else ")"))
    enlarged = _enlargements(spec)
    if enlarged:
        lines.append("enlarged images:")
        lines += [f"  {n}" for n in enlarged]
    if spec.save_features:
        lines.append("save_features: jobs/<job>/features.npz")
    missing = missing_weights(spec)
    lines.append("missing weights: " + ("none" if not missing else ""))
    lines += [f"  {m}" for m in missing]
    lines += smoke_lines(spec)
    return "\n".join(lines)


# `matbench run --dry-run` exits with this when the run, as the machine stands, would not give real numbers.
EXIT_NOT_REAL = 3


def metric_networks(spec: Spec) -> dict[str, tuple[str, list[str]]]:
    """Weights registry name -> (network, the spec's metrics that need it) of every metric network the run builds."""
    def need(ext: str) -> list[str]:
        return [m for m in spec.metrics if ext in extractors_for([m])]

    out: dict[str, tuple[str, list[str]]] = {}
    if inc := need(INCEPTION):
        out[get_spec(spec.inception).weights] = (f"Inception ({spec.inception})", inc)
    diversity = any(m.samples > 1 for m in spec.models)  # pluralistic models: LPIPS diversity
    if "lpips" in spec.metrics or diversity:
        name = BACKBONE_WEIGHTS[spec.lpips_net].name
        out[name] = (f"LPIPS trunk ({spec.lpips_net})", ["lpips"] * ("lpips" in spec.metrics)
                     + ["diversity"] * diversity)
    if vgg := need("vgg16"):
        w = get_spec("vgg16").weights
        prev = out.get(w, ("", []))[1]
        out[w] = ("VGG16" + (" (and the LPIPS trunk)" if prev else ""), prev + vgg)
    for e in extractors_for(spec.metrics):
        if e not in (INCEPTION, "vgg16"):
            out.setdefault(get_spec(e).weights, (e, need(e)))
    return out


def not_real(spec: Spec) -> list[str]:
    """One line per network that should run on released weights but has none on this machine.

    Empty: the run gives real numbers from files on disk (or random weights were asked for, spec or --smoke)."""
    out = [f"model {m}" for m in missing_weights(spec)]
    if spec.smoke is not True:
        for w, (net, _) in metric_networks(spec).items():
            if weights_mod.find(w) is None:
                out.append(f"metric network {net}: weights {w} not on this machine")
    return out


def smoke_lines(spec: Spec) -> list[str]:
    """What `--dry-run` says will be smoke: each model and each metric network, and why."""
    lines = ["smoke (random weights):"]
    asked = [m.label for m in spec.models if m.smoke]
    lines.append("  models: " + (", ".join(asked) + " (smoke = true in the spec)" if asked else "none asked"))
    nets = metric_networks(spec)
    if not nets:
        lines.append("  metric networks: none needed (pixel metrics only)")
    for w, (net, metrics) in nets.items():
        entry, found = weights_mod.get(w), weights_mod.find(w)
        if spec.smoke is True:
            state = "SMOKE (smoke = true / --smoke)"
        elif found is not None:
            state = f"real ({found})"
        elif spec.smoke == "auto":
            state = (f"SMOKE: {entry.filename} not on this machine (smoke = \"auto\": random weights unless "
                     + (f"the download of {entry.url} at start succeeds)" if entry.url else "you put it there)"))
        else:
            state = (f"MISSING: {entry.filename} not on this machine; the run will download {entry.url} or stop"
                     if entry.url else f"MISSING: {entry.filename} not on this machine; the run will stop")
        lines.append(f"  metric network {net} for {', '.join(metrics)}: {state}")
    problems = not_real(spec)
    if problems:
        names = sorted(w for w in nets if weights_mod.find(w) is None) if spec.smoke is not True else []
        lines.append(f"NOT REAL NUMBERS: {len(problems)} network(s) have no weights on this machine "
                     f"(exit {EXIT_NOT_REAL}; "
                     + (f"`matbench weights fetch NAME` for {', '.join(names)}; " if names else "")
                     + "or --smoke / smoke = true to accept random weights)")
    else:
        lines.append("real numbers: every network that should be real has its weights on this machine"
                     if not (spec.smoke is True or asked) else "smoke asked for: these numbers will NOT be real")
    return lines
