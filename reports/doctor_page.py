"""The doctor's page of the HTML report: `matbench report RUN... -o OUT --doctor FILE` (FILE from
`matbench doctor ... --save FILE`) writes OUT/doctor.html with the doctor's table, linked from every page's header.

Without --doctor (and without --no-doctor) the report runs the doctor itself on every job whose record names a
protocol (the spec's `protocol`): the job's saved outputs, inputs and mask set (matbench.doctor.job_inputs), the
conventions the record states, the run's feature cache, and only the what-ifs that need no network pass beyond
the baseline (REPORT_WHAT_IFS). One page per job: doctor.html, then doctor-2.html, ..."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matbench.reports.tables import SMOKE_NOTE

import matbench
from matbench.doctor import REPORT_WHAT_IFS, diagnose, format_effect, format_metric, job_inputs
from matbench.errors import InputError
from matbench.evaluate.config import FID_CONVENTIONS, INCEPTIONS
from matbench.layout import RunLayout
from matbench.results import find_records

DOCTOR_PAGE = "doctor.html"


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_show(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_show(x) for x in v) or "none"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def page_name(k: int) -> str:
    """doctor.html, doctor-2.html, ... (one page per diagnosed job)."""
    return DOCTOR_PAGE if k == 0 else f"doctor-{k + 1}.html"


def doctor_runs(run_dirs: Sequence[str | os.PathLike], device: str | None = None) -> tuple[list[dict[str, Any]],
                                                                                            list[str]]:
    """(saved-form doctor reports, notes): the doctor on every run-directory job whose record names a protocol.
    A job the doctor cannot read (outputs or inputs not saved, ...) is a note, not an error of the report."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    docs, notes = [], []
    for rec in find_records(run_dirs):
        name = (rec.protocol or {}).get("protocol")
        if not name or rec.path is None:
            continue
        job_dir = Path(rec.path).parent
        if RunLayout.of_job_dir(job_dir) is None:
            notes.append(f"doctor: {job_dir}: not a run directory's job; run `matbench doctor` on its folders")
            continue
        spec = (rec.provenance or {}).get("spec") or {}
        t0 = time.perf_counter()
        try:
            results, gt, masks, polarity = job_inputs(job_dir)
            report = diagnose(results, gt, name, masks, mask_polarity=polarity, smoke=bool(rec.smoke), device=device,
                              cache_dir=spec.get("cache_dir"), what_ifs=REPORT_WHAT_IFS,
                              published_row=(rec.protocol or {}).get("published_row"),
                              stated=_stated(rec.protocol))
        except InputError as e:
            notes.append(f"doctor: job {job_dir.name} skipped: {e}")
            continue
        doc = {**report.to_file_dict(), "job": job_dir.name}
        doc["ran_by"] = (f"matbench report ran the doctor on job {job_dir.name} in {time.perf_counter() - t0:.1f} s: "
                         f"what-ifs {', '.join(REPORT_WHAT_IFS)} (no network pass beyond the baseline; ground-truth "
                         "features from the feature cache where the run left them); `matbench report --no-doctor` "
                         "skips it, `--doctor FILE` shows a saved report instead")
        docs.append(doc)
    return docs, notes


def _stated(protocol: dict[str, Any]) -> dict[str, str | None]:
    """The conventions a record states, as the doctor's --my-* (values it does not know are left out)."""
    conv, ext = protocol.get("fid_convention"), protocol.get("feature_extractor")
    return {"fid_convention": conv if conv in FID_CONVENTIONS else None,
            "inception": ext if ext in INCEPTIONS else None}


def render_doctor(doc: dict[str, Any], out_dir: str | os.PathLike, env: Any, title: str = "matbench report",
                  page: str = DOCTOR_PAGE) -> Path:
    """Write OUT/<page> (doctor.html) from a saved doctor report (matbench.doctor.read_saved)."""
    costs = doc.get("costs") or {}
    rows = [{"factor": f["factor"], "ok": bool(f["ok"]), "yours": _show(f["yours"]), "protocol": _show(f["protocol"]),
             "effect": format_effect(f.get("effect")), "fix": f.get("fix") or "-", "cost": costs.get(f["factor"], "")}
            for f in doc["factors"]]
    path = Path(out_dir) / page
    html = env.get_template("doctor.html.j2").render(
        title=title, root="", smoke=bool(doc.get("smoke")), smoke_note=SMOKE_NOTE, version=matbench.__version__,
        d=doc, rows=rows, metrics=[format_metric(k, v) for k, v in (doc.get("metrics") or {}).items()])
    path.write_text(html, encoding="utf-8")
    return path
