"""Known weights files: where they come from, how to check them, where to find them.

Resolution order for a registered file:
  explicit path -> $MATBENCH_WEIGHTS/<filename> -> torch hub cache (<hub>/checkpoints/<filename>)
  -> download from the official URL with hash check (if allowed) -> WeightsError that names the
  file, the URL and where to put it.

Entries are data (`WeightsFile`), registered beside the model or extractor that uses them
(timm style), e.g. `register_weights(WeightsFile(name="mat-places512", ...))` in the MAT module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from matbench.errors import Hint, WeightsError
from matbench.io import default_file_mode, sha256_file
from matbench.progress import bar as progress_bar
from matbench.progress import is_terminal, wanted


@dataclass(frozen=True)
class WeightsFile:
    name: str  # registry key, e.g. "inception-v3-compat"
    filename: str  # file name on disk
    url: str | None = None  # official direct URL (None if the host needs a browser)
    sha256: str | None = None  # full sha256 if known
    hash_prefix: str | None = None  # torch hub style: prefix of sha256 carried in the file name
    manual: str = ""  # how to get it by hand (browser share links, archives to unpack)
    used_by: str = ""  # which model / extractor
    extra: dict = field(default_factory=dict)  # e.g. resolution, mapping depth
    dirname: str | None = None  # an unpacked folder accepted in place of the file (archives)
    hf_repo: str | None = None  # a Hugging Face mirror (model repository) holding the file
    hf_filename: str | None = None  # path of the file in that repository (default: filename)
    hf_revision: str | None = None  # a pinned revision (commit) of the mirror, if known


_REGISTRY: dict[str, WeightsFile] = {}


def register_weights(entry: WeightsFile) -> WeightsFile:
    if not entry.name or not entry.filename:
        raise ValueError("WeightsFile needs a name and a filename")
    if entry.sha256 is not None and len(entry.sha256) != 64:
        raise ValueError(f"{entry.name}: sha256 must be 64 hex digits")
    existing = _REGISTRY.get(entry.name)
    if existing is not None and existing != entry:
        raise ValueError(f"weights {entry.name!r} already registered differently")
    _REGISTRY[entry.name] = entry
    return entry


def _load_all() -> None:
    """Import the modules that register weights (extractors and models)."""
    import importlib

    for mod in ("matbench.features", "matbench.features.segmentation", "matbench.metrics.lpips",
                "matbench.models.mat.inpainter", "matbench.baselines.lama.inpainter",
                "matbench.baselines.comodgan.inpainter", "matbench.baselines.migan.inpainter"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and (mod == e.name or mod.startswith(e.name + ".")):
                continue
            raise


def get(name: str) -> WeightsFile:
    if name not in _REGISTRY:
        _load_all()
    if name not in _REGISTRY:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def all_weights() -> list[WeightsFile]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def weights_dir() -> Path | None:
    d = os.environ.get("MATBENCH_WEIGHTS")
    return Path(d) if d else None


def hub_checkpoints_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def candidates(entry: WeightsFile) -> list[Path]:
    out = []
    if (d := weights_dir()) is not None:
        out.append(d / entry.filename)
    out.append(hub_checkpoints_dir() / entry.filename)
    return out


def verify(entry: WeightsFile, path: Path) -> str:
    """Check the file's hash against the entry; return its sha256."""
    digest = sha256_file(path)
    if entry.sha256 and digest != entry.sha256:
        raise WeightsError(f"{path}: sha256 {digest} does not match the expected {entry.sha256} for {entry.name}")
    recorded = None if entry.sha256 else recorded_sha256(entry.name)
    if recorded and digest != recorded:
        raise WeightsError(f"{path}: sha256 {digest} does not match the {recorded} recorded on first download "
                           f"for {entry.name} ({recorded_hashes_path()})")
    if entry.hash_prefix and not digest.startswith(entry.hash_prefix):
        raise WeightsError(f"{path}: sha256 {digest[:16]}… does not start with {entry.hash_prefix} "
                           f"(the hash prefix in {entry.filename})")
    return digest


def hash_check_note(entry: WeightsFile) -> str:
    """What a passed `verify` proves for this entry: a full sha256, a recorded one, only a prefix, or nothing.

    A prefix of 8 hex digits (torch hub file names) can be brute-forced in minutes, so a matching prefix alone is
    never called a verified file; such files are safe only because matbench reads them weights-only."""
    if entry.sha256:
        return "ok, full sha256 matches the published value"
    if recorded_sha256(entry.name):
        return "ok, sha256 matches the value recorded on first download"
    if entry.hash_prefix:
        return f"prefix ok, full hash unknown (only the 8-digit prefix {entry.hash_prefix} is published)"
    return "present, no published hash to compare with"


def find(name: str) -> Path | None:
    """The first existing candidate path (file, or unpacked folder if the entry has one), or None.

    After $MATBENCH_WEIGHTS and the torch hub cache, a file fetched from the entry's Hugging Face
    mirror is found in the Hugging Face hub cache (looked up on disk only)."""
    entry = get(name)
    for p in candidates(entry):
        if p.is_file():
            return p
        if entry.dirname and (p.parent / entry.dirname).is_dir():
            return p.parent / entry.dirname
    return hf_cached(entry)


# --------------------------------------------------------------------------- Hugging Face mirrors


def hf_cached(entry: WeightsFile) -> Path | None:
    """The mirror's file if it is already in the Hugging Face hub cache (no network), else None."""
    if not entry.hf_repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(entry.hf_repo, entry.hf_filename or entry.filename,
                                 revision=entry.hf_revision)
    return Path(hit) if isinstance(hit, str) and Path(hit).is_file() else None


def recorded_hashes_path() -> Path:
    """Where sha256s recorded on first download live (entries without a published hash)."""
    return (weights_dir() or hub_checkpoints_dir()) / "matbench-recorded-sha256.json"


def recorded_sha256(name: str) -> str | None:
    import json

    p = recorded_hashes_path()
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text()).get(name, {}).get("sha256")
    except (ValueError, AttributeError):
        raise WeightsError(f"{p}: not a valid recorded-hashes file (JSON object name -> {{sha256, source}})") from None


def record_sha256(name: str, digest: str, source: str) -> None:
    """Remember a first download's sha256 (atomic rewrite), so later copies are checked against it."""
    import json

    p = recorded_hashes_path()
    data = json.loads(p.read_text()) if p.is_file() else {}
    data[name] = {"sha256": digest, "source": source}
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, p)


def fetch_hf(entry: WeightsFile) -> tuple[Path, str]:
    """Download the entry's file from its Hugging Face mirror into the hub cache; check or record its sha256.

    Returns (path, note) where note says whether the hash was checked against a pinned or a recorded
    value, or recorded now (first download)."""
    if not entry.hf_repo:
        if entry.url:
            raise WeightsError(f"weights {entry.name} has no Hugging Face mirror",
                               hints=[Hint("--source", "use --source official")])
        raise WeightsError(f"weights {entry.name} has no Hugging Face mirror; "
                           f"{entry.manual or 'get it from the authors'}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise WeightsError("fetching from Hugging Face needs huggingface_hub: "
                           "pip install 'matbench-inpaint[hub]'") from None
    if not (wanted() and is_terminal()):  # the hub's own tqdm bar redraws with \r: only on a terminal (progress.py)
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    fname = entry.hf_filename or entry.filename
    source = f"hf:{entry.hf_repo}/{fname}" + (f"@{entry.hf_revision}" if entry.hf_revision else "")
    try:
        path = Path(hf_hub_download(entry.hf_repo, fname, revision=entry.hf_revision))
    except Exception as e:  # offline, repo gone, file renamed, no auth
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise WeightsError(f"{source}: download failed ({type(e).__name__}: {msg})") from None
    digest = sha256_file(path)
    expected = entry.sha256 or recorded_sha256(entry.name)
    if expected and digest != expected:
        kind = "pinned sha256" if entry.sha256 else f"sha256 recorded on first download ({recorded_hashes_path()})"
        raise WeightsError(f"{path}: sha256 {digest} does not match the {kind} {expected} for {entry.name} "
                           f"(from {source})")
    if entry.sha256:
        note = "sha256 matches the pinned value"
    elif expected:
        note = "sha256 matches the value recorded on first download"
    else:
        record_sha256(entry.name, digest, source)
        note = f"no published sha256: recorded {digest} in {recorded_hashes_path()}"
    return path, note


def download(entry: WeightsFile, dest_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """Download from the official URL into dest_dir (default: hub cache), checking the hash."""
    if not entry.url:
        raise WeightsError(_missing_message(entry, reason="no direct download URL"), hints=SMOKE_HINTS)
    dest_dir = dest_dir or weights_dir() or hub_checkpoints_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.filename
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.filename}.", dir=dest_dir)
    os.close(fd)
    try:
        h = hashlib.sha256()
        with urllib.request.urlopen(entry.url, timeout=timeout) as r, open(tmp, "wb") as f:
            size = int((getattr(r, "headers", None) or {}).get("Content-Length") or 0)
            with progress_bar(round(size / 2**20, 1) or None, f"download {entry.filename}", "MiB") as b:
                while block := r.read(1 << 20):
                    h.update(block)
                    f.write(block)
                    b.update(len(block) / 2**20)
        digest = h.hexdigest()
        if entry.sha256 and digest != entry.sha256:
            raise WeightsError(f"download of {entry.url}: sha256 {digest} != expected {entry.sha256}")
        if entry.hash_prefix and not digest.startswith(entry.hash_prefix):
            raise WeightsError(f"download of {entry.url}: sha256 does not start with {entry.hash_prefix}")
        os.chmod(tmp, default_file_mode())  # mkstemp's 0600 would survive the move
        shutil.move(tmp, dest)
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(_missing_message(entry, reason=f"download failed: {type(e).__name__}: {e}"),
                           hints=SMOKE_HINTS) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def resolve(name: str, path: str | os.PathLike | None = None, allow_download: bool = True,
            check_hash: bool = True) -> Path:
    """Find (or fetch) a registered weights file and return its verified path."""
    entry = get(name)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsError(f"{p}: weights file for {name} does not exist")
        if check_hash:
            verify(entry, p)
        return p
    found = find(name)
    if found is not None:
        if check_hash and found.is_file():  # an unpacked folder has no file hash to check
            verify(entry, found)
        return found
    if allow_download and entry.url and os.environ.get("MATBENCH_OFFLINE") != "1":
        return download(entry)
    raise WeightsError(_missing_message(entry), hints=SMOKE_HINTS)

# where the command has --smoke (inpaint, eval, run, stats, doctor), it runs without these weights
SMOKE_HINTS = (Hint("--smoke", "use --smoke to run on random weights"),)


def _missing_message(entry: WeightsFile, reason: str = "not found") -> str:
    where = ", ".join(str(p) for p in candidates(entry))
    how = f"download {entry.url}" if entry.url else (entry.manual or "obtain it from the model's authors")
    return (f"weights {entry.name} ({entry.filename}) {reason}: {how}, then put it at one of: {where} "
            "(or set MATBENCH_WEIGHTS, or pass the path explicitly)")


def status(name: str) -> tuple[str, Path | None]:
    """('found', path) | ('missing', None) without downloading or hashing."""
    p = find(name)
    return ("found", p) if p else ("missing", None)
