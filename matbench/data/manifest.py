"""Dataset manifests: pin a dataset by every id, file name, byte size and sha256.

The manifest's own hash (``Dataset.manifest_sha256()``, stored as ``"sha256"`` in the file) is the sha256 of the
*canonical* JSON: ``{"files": [...], "format": ...}`` with sorted keys and no whitespace.  It depends only on the
contents (ids, relative file names, sizes, file hashes), not on where the dataset lives or when the manifest was made,
so the same images give the same hash as a folder or as a zip with the same member names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matbench.errors import InputError
from matbench.io import write_json_atomic

MANIFEST_FORMAT = "matbench-manifest/1"


def _canonical(files: list[dict[str, Any]]) -> bytes:
    return json.dumps({"files": files, "format": MANIFEST_FORMAT}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a manifest's files (recomputed; ignores name/source fields)."""
    return hashlib.sha256(_canonical(manifest["files"])).hexdigest()


def build_manifest(ds: Any) -> dict[str, Any]:
    """Read every file of a dataset (a matbench.data.datasets.Dataset) and return the manifest dict."""
    files = []
    for image_id in ds.ids:
        data = ds.read_bytes(image_id)
        files.append({"id": image_id, "file": ds.file_name(image_id), "bytes": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})
    digest = hashlib.sha256(_canonical(files)).hexdigest()
    return {"format": MANIFEST_FORMAT, "name": ds.name, "source": str(ds.path), "count": len(files),
            "sha256": digest, "files": files}


def write_manifest(ds: Any, out_json: str | Path) -> dict[str, Any]:
    """Build the manifest of dataset `ds` and write it atomically to `out_json`; returns it."""
    manifest = build_manifest(ds)
    write_json_atomic(out_json, manifest)
    return manifest


def load_manifest(manifest_json: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(manifest_json, dict):
        m = manifest_json
        src = "manifest"
    else:
        src = str(manifest_json)
        try:
            m = json.loads(Path(manifest_json).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{src}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{src}: not a readable manifest JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or not isinstance(m.get("files"), list):
        raise InputError(f"{src}: not a matbench manifest (expected format {MANIFEST_FORMAT!r} and a files list)")
    for i, f in enumerate(m["files"]):
        if not isinstance(f, dict) or not {"id", "file", "bytes", "sha256"} <= set(f):
            raise InputError(f"{src}: files[{i}] lacks one of id, file, bytes, sha256")
    return m


@dataclass
class ManifestReport:
    missing: list[str] = field(default_factory=list)  # ids in the manifest, not on disk
    extra: list[str] = field(default_factory=list)  # ids on disk, not in the manifest
    changed: list[str] = field(default_factory=list)  # ids whose file name, size or sha256 differ
    checked: int = 0
    manifest_sha256: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def lines(self, show: int = 20) -> list[str]:
        out = []
        for label, items in (("missing", self.missing), ("extra", self.extra), ("changed", self.changed)):
            for i in items[:show]:
                out.append(f"{label}: {i}")
            if len(items) > show:
                out.append(f"{label}: ... {len(items) - show:,} more")
        return out


def verify_manifest(ds: Any, manifest_json: str | Path | dict[str, Any]) -> ManifestReport:
    """Compare a dataset (a Dataset) with a manifest: missing, extra and changed files."""
    m = load_manifest(manifest_json)
    expected = {f["id"]: f for f in m["files"]}
    present = set(ds.ids)
    report = ManifestReport(manifest_sha256=manifest_digest(m))
    report.missing = sorted(set(expected) - present)
    report.extra = sorted(present - set(expected))
    for image_id in sorted(present & set(expected)):
        e = expected[image_id]
        report.checked += 1
        if ds.file_name(image_id) != e["file"] or ds.file_size(image_id) != e["bytes"]:
            report.changed.append(image_id)
            continue
        if hashlib.sha256(ds.read_bytes(image_id)).hexdigest() != e["sha256"]:
            report.changed.append(image_id)
    return report
