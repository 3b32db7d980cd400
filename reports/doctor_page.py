"""The doctor's page of the HTML report: `matbench report RUN... -o OUT --doctor FILE` (FILE from
`matbench doctor ... --save FILE`) writes OUT/doctor.html with the doctor's table, linked from every page's header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matbench.reports.tables import SMOKE_NOTE

import matbench
from matbench.doctor import format_effect, format_metric

DOCTOR_PAGE = "doctor.html"


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_show(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_show(x) for x in v) or "none"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_doctor(doc: dict[str, Any], out_dir: str | os.PathLike, env: Any, title: str = "matbench report") -> Path:
    """Write OUT/doctor.html from a saved doctor report (matbench.doctor.read_saved)."""
    costs = doc.get("costs") or {}
    rows = [{"factor": f["factor"], "ok": bool(f["ok"]), "yours": _show(f["yours"]), "protocol": _show(f["protocol"]),
             "effect": format_effect(f.get("effect")), "fix": f.get("fix") or "-", "cost": costs.get(f["factor"], "")}
            for f in doc["factors"]]
    page = Path(out_dir) / DOCTOR_PAGE
    html = env.get_template("doctor.html.j2").render(
        title=title, root="", smoke=bool(doc.get("smoke")), smoke_note=SMOKE_NOTE, version=matbench.__version__,
        d=doc, rows=rows, metrics=[format_metric(k, v) for k, v in (doc.get("metrics") or {}).items()])
    page.write_text(html, encoding="utf-8")
    return page
