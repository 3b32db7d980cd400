"""Evaluation datasets: a directory tree or a zip of images with stable ids.

An id is the file's path relative to the dataset root (or the zip member name) without its extension, with '/'
separators; ids are sorted (Python string order).  Recognised extensions: png, jpg, jpeg, webp, bmp
(case-insensitive).  Hidden files and folders (name starting with '.') and ``__MACOSX/`` zip entries are ignored.
Two files that would get the same id (``a.png`` and ``a.jpg``) are an error.

Images decode to uint8 HxWx3 RGB (gray -> 3 channels, alpha dropped) and are prepared for evaluation by
:func:`matbench.data.preprocess.prepare` (policy "mat-val" by default).
"""

from __future__ import annotations

import io
import os
import re
import threading
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from matbench.data.manifest import build_manifest, manifest_digest
from matbench.data.preprocess import DEFAULT_POLICY, enlargement, prepare
from matbench.data.presets import check_preset, get_preset
from matbench.errors import InputError
from matbench.io import IMAGE_EXTENSIONS, decode_image, unsafe_name_reason, walk_files


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


class Dataset:
    """Images of a folder tree or zip, addressed by id (see module docstring)."""

    def __init__(self, path: Path, kind: str, files: dict[str, str], preset: str = "folder") -> None:
        self.path = path
        self.kind = kind  # "dir" | "zip"
        self._files = files  # id -> relative file name / zip member
        self.ids: list[str] = sorted(files)
        self.name: str = path.stem if kind == "zip" else path.name
        self.preset = preset
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()
        self._manifest_sha: str | None = None

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, preset: str = "folder") -> Dataset:
        """Open a dataset directory or .zip; checks the preset's count and names (InputError says what is missing)."""
        get_preset(preset)  # unknown preset -> SpecError before touching the disk
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if path.is_dir():
            kind, names = "dir", cls._scan_dir(path)
        elif path.is_file():
            if path.suffix.lower() != ".zip":
                raise InputError(f"{path}: a dataset must be a directory or a .zip archive")
            kind, names = "zip", cls._scan_zip(path)
        else:
            raise InputError(f"{path}: not a regular file or directory")
        if not names:
            exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
            raise InputError(f"{path}: no image files ({exts}) found")
        files: dict[str, str] = {}
        for name in names:
            image_id = str(PurePosixPath(name).with_suffix(""))
            if image_id in files:
                raise InputError(f"{path}: {files[image_id]} and {name} both give the id {image_id!r}")
            files[image_id] = name
        ds = cls(path, kind, files, preset)
        if preset != "folder":
            report = check_preset(ds.ids, preset)
            if not report.ok:
                raise InputError(report.message(str(path)))
        return ds

    @staticmethod
    def _scan_dir(root: Path) -> list[str]:
        # symlinked subfolders are followed (once each, see walk_files)
        return [n for n in walk_files(root) if _is_image(n) and not PurePosixPath(n).name.startswith(".")]

    @staticmethod
    def _scan_zip(path: Path) -> list[str]:
        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a zip archive (no zip central directory found)")
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as e:
            raise InputError(f"{path}: cannot read zip archive ({e})") from None
        # Unsafe names are checked before the hidden-file filter: '..' starts with '.', so it used to vanish silently.
        bad = [(i.filename, r) for i in infos if (r := unsafe_name_reason(i.filename)) is not None]
        if bad:
            shown = ", ".join(f"{n!r} ({r})" for n, r in bad[:3])
            shown += f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise InputError(f"{path}: refused: {len(bad)} member(s) with unsafe names that could be written outside "
                             f"the output folder: {shown}")
        return [i.filename for i in infos
                if not i.is_dir() and _is_image(i.filename) and not _hidden(PurePosixPath(i.filename).parts)]

    # -- access -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, {len(self)} images, preset={self.preset!r})"

    def __getstate__(self) -> dict:  # picklable for worker processes: reopen the zip lazily
        state = dict(self.__dict__)
        state["_zip"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _member(self, image_id: str) -> str:
        try:
            return self._files[image_id]
        except KeyError:
            raise InputError(f"{self.path}: no image with id {image_id!r}") from None

    def source_name(self, image_id: str) -> str:
        """Where the image comes from, for messages: a file path, or ``archive.zip:member``."""
        member = self._member(image_id)
        return f"{self.path}:{member}" if self.kind == "zip" else str(self.path / member)

    def read_bytes(self, image_id: str) -> bytes:
        member = self._member(image_id)
        if self.kind == "dir":
            try:
                return (self.path / member).read_bytes()
            except OSError as e:
                raise InputError(f"{self.path / member}: cannot read ({e.strerror or e})") from None
        with self._lock:
            try:
                if self._zip is None:
                    self._zip = zipfile.ZipFile(self.path)
                return self._zip.read(member)
            except (zipfile.BadZipFile, OSError, KeyError) as e:
                raise InputError(f"{self.path}:{member}: cannot read from zip ({e})") from None

    def file_size(self, image_id: str) -> int:
        member = self._member(image_id)
        if self.kind == "dir":
            return (self.path / member).stat().st_size
        with self._lock:
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            return self._zip.getinfo(member).file_size

    def file_name(self, image_id: str) -> str:
        """The relative file name / zip member of an id."""
        return self._member(image_id)

    def read(self, image_id: str) -> np.ndarray:
        """Decoded uint8 HxWx3 RGB; InputError naming the file and the decoder's reason if it cannot be decoded."""
        try:
            return decode_image(self.read_bytes(image_id), self.source_name(image_id))
        except InputError as e:
            # PIL names the in-memory buffer ("<_io.BytesIO object at 0x...>"), which means nothing to the user.
            raise InputError(re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(e))) from None

    def image_size(self, image_id: str) -> tuple[int, int]:
        """(height, width) from the file's header, without decoding the pixels."""
        try:
            src = self.path / self._member(image_id) if self.kind == "dir" else io.BytesIO(self.read_bytes(image_id))
            with Image.open(src) as im:
                w, h = im.size
        except InputError:
            raise
        except Exception as e:  # PIL raises many types; the user needs the file and the reason
            raise InputError(f"{self.source_name(image_id)}: cannot read the image size ({type(e).__name__})") from None
        return int(h), int(w)

    def load(self, image_id: str, resolution: int = 512, policy: str = DEFAULT_POLICY) -> np.ndarray:
        """Decoded and prepared RxRx3 uint8 (see matbench.data.preprocess)."""
        return prepare(self.read(image_id), resolution, policy)

    def manifest_sha256(self) -> str:
        """sha256 of the canonical manifest JSON (ids, files, sizes, sha256 of bytes); computed once, cached."""
        if self._manifest_sha is None:
            self._manifest_sha = manifest_digest(build_manifest(self))
        return self._manifest_sha

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


def enlarged_images(ds: Dataset, ids: list[str], resolution: int) -> list[tuple[str, int, int]]:
    """(id, height, width) of the images smaller than `resolution` on a side: the ones preparation would pad or
    upscale (see matbench.data.preprocess.enlargement)."""
    out = []
    for i in ids:
        h, w = ds.image_size(i)
        if h < resolution or w < resolution:
            out.append((i, h, w))
    return out


def enlargement_message(ds: Dataset, small: list[tuple[str, int, int]], n: int, resolution: int, policy: str) -> str:
    """One line: how many of n images would be enlarged at `resolution`, and the first of them."""
    i, h, w = small[0]
    how = enlargement(h, w, resolution, policy)
    return (f"{len(small)} of {n} images are smaller than {resolution}x{resolution} and would be {how} by the "
            f"{policy} policy (first: {ds.source_name(i)}, {w}x{h})")
