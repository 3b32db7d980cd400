"""Atomic writes and image/mask file I/O shared by every stage.

Writes go to a temporary file in the same directory followed by os.replace, so a crash
never leaves a half-written result behind (reruns resume from what is on disk).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from matbench.errors import DiskFullError, InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
log = logging.getLogger("matbench.io")

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` (a zip member or id from an archive) is not a safe relative '/'-separated name, or None.

    Such names become output paths (OUT/<id>.png), so anything that could leave the output folder is refused:
    absolute names, '..' parts, drive letters, backslashes (Windows separators) and NUL bytes.
    """
    if not name:
        return "empty name"
    if "\\" in name:
        return "backslash in name"
    if "\0" in name:
        return "NUL byte in name"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter"
    if ".." in name.split("/"):
        return "'..' part"
    return None


_UMASK_LOCK = threading.Lock()


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); text cells get a leading "'".
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_cell(x: Any) -> Any:
    """A text cell a spreadsheet will not run: "'" before a formula start (and before a leading "'", so that
    csv_restore_cell undoes it exactly). Numbers, None and NaN are returned unchanged (-3.5 stays a number)."""
    if isinstance(x, str) and x.startswith((*FORMULA_START, "'")):
        return "'" + x
    return x


def csv_restore_cell(x: Any) -> Any:
    """The inverse of csv_safe_cell, for matbench's own readers."""
    if isinstance(x, str) and x.startswith("'"):
        return x[1:]
    return x


def csv_safe_text(df: Any) -> Any:
    """A copy of a pandas DataFrame whose text columns went through csv_safe_cell (numeric columns untouched)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype.kind not in "biufcmM":
            out[col] = out[col].map(csv_safe_cell)
    return out


def csv_restore_text(df: Any) -> Any:
    """The inverse of csv_safe_text, in place; returns df."""
    for col in df.columns:
        if df[col].dtype.kind not in "biufcmM":
            df[col] = df[col].map(csv_restore_cell)
    return df


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (/proc), since output threads write files."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # fallback: set and restore (brief, and serialised among our own writers)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a plain open(path, "w") would give a new file under the current umask (e.g. 0o644)."""
    return 0o666 & ~current_umask()


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space (bytes) on the file system holding `path` (its nearest existing parent), or None."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def disk_full_error(path: str | os.PathLike, need: int | None = None) -> DiskFullError:
    """One-line error for a full disk: the path, the free space there and (when known) what the file needs."""
    free = free_bytes(path)
    have = f"{_human(free)} free there" if free is not None else "free space unknown"
    needs = f"; this file needs about {_human(need)}" if need else ""
    return DiskFullError(f"{path}: no space left on the device ({have}{needs}); free some space (or write to "
                         "another disk) and rerun: completed work is kept")


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS


@contextmanager
def atomic_path(path: str | os.PathLike, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    mkstemp creates the temporary file 0600 and the rename keeps that mode; the file is given the umask's normal
    mode before the rename, so results (and the report's hard links to them) are readable as any file the user
    writes would be.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name is capped (name limit 255 bytes): a 244-character file name plus ".", 8 random, ".tmp" and the suffix
    # would not fit. The suffix is kept (np.savez, format-by-extension writers rely on it) when short.
    suffix = path.suffix if len(path.suffix.encode()) <= 16 else ""
    prefix = "." + path.name.encode()[:120].decode(errors="ignore") + "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    except OSError as e:
        if not is_disk_full(e):
            raise
        written = tmp_path.stat().st_size if tmp_path.exists() else 0
        tmp_path.unlink(missing_ok=True)  # free what the partial file took before measuring
        raise disk_full_error(path, max(size_hint or 0, written) or None) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path, size_hint=len(data)) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def walk_files(root: str | os.PathLike, skip_hidden_dirs: bool = True) -> list[str]:
    """Relative '/'-separated paths of the files below `root`, sorted, symlinked folders followed.

    Every image listing goes through here, so that a symlinked subfolder is never skipped silently. A folder is
    entered once per real path: a link back to an ancestor (a loop) or a second link to a folder already listed
    would repeat images, so it is skipped with a warning naming it."""
    root = Path(root)
    seen = {os.path.realpath(root)}
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if skip_hidden_dirs and d.startswith("."):
                continue
            full = os.path.join(dirpath, d)
            real = os.path.realpath(full)
            if real in seen:
                log.warning("%s: skipped, it leads to %s, which is already listed (symlink loop or duplicate)",
                            full, real)
                continue
            seen.add(real)
            keep.append(d)
        dirnames[:] = keep
        rel = Path(dirpath).relative_to(root)
        out += [(rel / f).as_posix() for f in filenames]
    return sorted(out)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode image bytes to uint8 RGB HxWx3 (gray -> 3 channels, alpha dropped).

    `name` is used in the error message (a path or a zip member).
    """
    import io as _io

    try:
        with Image.open(_io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # Scale by the file's bit depth, never by the data: a dark 16-bit image (max <= 255) is still
                # 16-bit, and guessing from the maximum turned it white.
                arr = np.asarray(im, dtype=np.float64)
                arr = np.clip(arr / 65535.0 * 255.0, 0, 255).astype(np.uint8)
                arr = np.repeat(arr[..., None], 3, axis=2)
                return np.ascontiguousarray(arr)
            rgb = im.convert("RGB")  # L -> RGB replicates gray; RGBA/LA drop alpha
            return np.asarray(rgb, dtype=np.uint8).copy()
    except Exception as e:  # PIL raises many types; the user needs the file and the reason
        # PIL names the in-memory buffer ("<_io.BytesIO object at 0x...>"); say the file instead.
        reason = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", repr(name), str(e))
        raise InputError(f"{name}: cannot decode image ({type(e).__name__}: {reason})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB HxWx3."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    return decode_image(data, str(path))


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read a (mask) image as uint8 HxW; RGB files are converted with PIL's 'L' conversion."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as e:
        raise InputError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save uint8 HxW or HxWx3 as PNG atomically."""
    if array.dtype != np.uint8:
        raise TypeError(f"save_png expects uint8, got {array.dtype}")
    with atomic_path(path, size_hint=array.nbytes) as tmp:  # raw size: a PNG is at most about that
        Image.fromarray(array).save(tmp, format="PNG")


# --------------------------------------------------------------------------- output locations


def _inside(a: Path, b: Path) -> bool:
    """a is b or lies inside b (both resolved)."""
    return a == b or b in a.parents


def _probe_writable(folder: Path) -> str | None:
    """Why files cannot be created in the existing folder `folder`, or None.  A real probe (create + delete):
    os.access is wrong for root and for read-only mounts."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".matbench-probe.", dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.unlink(tmp)
    return None


def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), *,
                 kind: str = "dir", what: str = "-o") -> Path:
    """Refuse an output location before any work is done; return it as a Path.

    kind "dir": an output folder that is, contains or is inside one of `inputs` would overwrite (or be read back
    as) inputs; an existing non-folder is refused.  kind "file": an output file that is one of the inputs, or an
    existing folder, is refused.  In both cases the nearest existing folder must accept new files, so a
    read-only destination fails in one line now rather than after the whole computation.
    """
    out = Path(out)
    target = out.resolve()
    for inp in inputs:
        if inp is None:
            continue
        src = Path(inp).resolve()
        if kind == "dir":
            clash = "is" if target == src else "is inside" if _inside(target, src) else \
                "contains" if _inside(src, target) else None
        else:
            clash = "is" if target == src else None
        if clash:
            raise InputError(f"{out}: refused: the output {clash} the input {inp}, whose files would be "
                             f"overwritten; choose another {what}")
    if out.exists():
        if kind == "dir" and not out.is_dir():
            raise InputError(f"{out}: exists and is not a folder; choose another {what}")
        if kind == "file" and out.is_dir():
            raise InputError(f"{out}: is a folder; {what} must name a file")
    folder = out if kind == "dir" and out.is_dir() else out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{out}: cannot be created: {folder} is not a folder")
    reason = _probe_writable(folder)
    if reason:
        raise InputError(f"{out}: not writable ({folder}: {reason}); choose another {what}")
    return out


def shown_path(path: str | os.PathLike) -> str:
    """A path as a command prints it: normalized (no `specs/../../runs`), relative to the current directory when it
    lies below it, else absolute."""
    norm = os.path.normpath(os.path.abspath(path))
    rel = os.path.relpath(norm)
    return norm if rel == ".." or rel.startswith(".." + os.sep) else rel
