"""The on-disk feature cache: (extractor key, image content sha256) -> features in one SQLite file per cache
directory, so ground-truth features are computed once for every model and run. A full disk turns the cache off
for the rest of the run (features are still computed)."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from matbench.errors import InputError
from matbench.features.base import FeatureExtractor, check_u8
from matbench.io import free_bytes, is_disk_full

log = logging.getLogger(__name__)


def image_sha256(image: np.ndarray | torch.Tensor) -> str:
    """Content hash of one uint8 image (CHW or HWC): its shape and bytes."""
    a = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"image_sha256 expects uint8, got {a.dtype}")
    h = hashlib.sha256(f"u8{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def cache_root() -> Path:
    """$MATBENCH_CACHE, else ~/.cache/matbench: features/ and graphs/ live under it."""
    root = os.environ.get("MATBENCH_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "matbench"


def default_cache_dir() -> Path:
    return cache_root() / "features"


_WARNED_FULL: set[str] = set()  # caches already reported full in this process (warn once, not per job)


class FeatureCache:
    """SQLite store of features keyed by (extractor key, image content sha256).

    One file (features.sqlite) per directory; writes are single transactions, WAL mode lets
    several processes (torchrun ranks) read and write the same cache.
    """

    FILENAME = "features.sqlite"

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.dir = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.dir / self.FILENAME
        self.disabled = False  # set when the disk is full: features are then computed, not stored
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._connect() as con:
                con.execute("CREATE TABLE IF NOT EXISTS features (extractor TEXT NOT NULL, image TEXT NOT NULL, "
                            "dtype TEXT NOT NULL, dim INTEGER NOT NULL, data BLOB NOT NULL, "
                            "PRIMARY KEY (extractor, image))")
        except (OSError, sqlite3.Error) as e:
            if _disk_full(e):
                self._disable(e)
                return
            raise InputError(f"{self.path}: cannot open the feature cache ({e})") from None

    def _disable(self, e: BaseException) -> None:
        """A full disk must not stop a run: warn once, then compute every feature without storing it."""
        if not self.disabled and str(self.path) not in _WARNED_FULL:
            _WARNED_FULL.add(str(self.path))

            free = free_bytes(self.dir)
            log.warning("%s: the disk is full (%s; %s bytes free), so the feature cache is off for the rest of this "
                        "run: features are computed but not stored (free space to cache them next time)",
                        self.path, e, "unknown" if free is None else f"{free:,}")
        self.disabled = True

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=120.0)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def get_many(self, extractor_key: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.disabled:
            return out
        uniq = list(dict.fromkeys(hashes))
        try:
            con = self._connect()
        except (OSError, sqlite3.Error) as e:  # opening WAL mode writes; a full disk fails here
            if not _disk_full(e):
                raise
            self._disable(e)
            return out
        bad: dict[str, str] = {}
        try:
            for i in range(0, len(uniq), 500):
                chunk = uniq[i:i + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT image, dtype, dim, data FROM features WHERE extractor=? AND image IN ({marks})"
                for image, dtype, dim, data in con.execute(q, [extractor_key, *chunk]):
                    f, why = _decode(dtype, dim, data)
                    if f is None:
                        bad[image] = why
                    else:
                        out[image] = f
            if bad:
                self._drop(con, extractor_key, bad)
        finally:
            con.close()
        return out

    def _drop(self, con: sqlite3.Connection, extractor_key: str, bad: dict[str, str]) -> None:
        """Delete corrupt entries so that they are recomputed (and stored again) instead of poisoning the features."""
        log.warning("%s: %d corrupt feature cache entr%s (%s) dropped; recomputing them", self.path, len(bad),
                    "y" if len(bad) == 1 else "ies", ", ".join(sorted(set(bad.values()))))
        try:
            with con:
                con.executemany("DELETE FROM features WHERE extractor=? AND image=?",
                                [(extractor_key, h) for h in bad])
        except sqlite3.Error as e:  # a read-only cache: the entries are still ignored, and recomputed each time
            log.warning("%s: cannot delete the corrupt entries (%s)", self.path, e)

    def put_many(self, extractor_key: str, hashes: Sequence[str], feats: np.ndarray) -> None:
        if self.disabled:
            return
        rows = []
        for h, f in zip(hashes, feats, strict=True):
            f = np.asarray(f, dtype=np.float64)
            if not np.isfinite(f).all():  # never cache a NaN/inf feature: it would be read back as if valid
                continue
            f32 = f.astype(np.float32)
            # features come out of float32 networks; store float32 when that is lossless
            a = f32 if np.array_equal(f32.astype(np.float64), f) else f
            rows.append((extractor_key, h, a.dtype.str, a.shape[0], a.tobytes()))
        con = None
        try:
            con = self._connect()
            with con:  # one transaction (rolled back on error, so the cache stays consistent)
                con.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?)", rows)
        except (OSError, sqlite3.Error) as e:
            if not _disk_full(e):
                raise
            self._disable(e)
        finally:
            if con is not None:
                con.close()

    def count(self, extractor_key: str | None = None) -> int:
        con = self._connect()
        try:
            if extractor_key is None:
                return con.execute("SELECT COUNT(*) FROM features").fetchone()[0]
            return con.execute("SELECT COUNT(*) FROM features WHERE extractor=?", (extractor_key,)).fetchone()[0]
        finally:
            con.close()


def _decode(dtype: object, dim: object, data: object) -> tuple[np.ndarray | None, str]:
    """A stored feature vector as float64, or (None, why) for a truncated, mistyped or non-finite entry."""
    try:
        dt = np.dtype(str(dtype))
        if dt.kind != "f" or not isinstance(data, bytes) or not isinstance(dim, int):
            return None, "not a float vector"
        if len(data) != dt.itemsize * dim:
            return None, "truncated"
        f = np.frombuffer(data, dtype=dt).astype(np.float64)
    except (TypeError, ValueError):
        return None, "not a float vector"
    if not np.isfinite(f).all():
        return None, "NaN/inf"
    return f, ""


def _disk_full(e: BaseException) -> bool:
    """sqlite's SQLITE_FULL ("database or disk is full") or an ENOSPC/EDQUOT OSError."""
    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(e)
    return is_disk_full(e)


def extract_cached(extractor: FeatureExtractor, images: torch.Tensor, cache: FeatureCache | None,
                   hashes: Sequence[str] | None = None) -> np.ndarray:
    """Features of `images`, reading what the cache has and computing (and storing) the rest."""
    return extract_cached_outputs(extractor, images, cache, ("",), hashes)[""]


def extract_cached_outputs(extractor: FeatureExtractor, images: torch.Tensor, cache: FeatureCache | None,
                           outputs: Sequence[str], hashes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """{output: [N, dim]} of `images` (FeatureExtractor.extract): cached per output; an image missing any of
    them goes through the network once, for all of them."""
    check_u8(images, extractor.name)
    if cache is None:
        return _extract(extractor, images, outputs)
    if hashes is None:
        hashes = [image_sha256(im) for im in images]
    keys = {o: extractor.output_key(o) if o else extractor.key for o in outputs}
    have = {o: cache.get_many(keys[o], hashes) for o in outputs}
    missing = [i for i, h in enumerate(hashes) if any(h not in have[o] for o in outputs)]
    if missing:
        idx = torch.as_tensor(missing, dtype=torch.long)
        new = _extract(extractor, images.index_select(0, idx), outputs)
        for o in outputs:
            cache.put_many(keys[o], [hashes[i] for i in missing], new[o])
            for i, f in zip(missing, new[o], strict=True):
                have[o][hashes[i]] = f
    if not hashes:
        return {o: np.zeros((0, extractor.output_dim(o) if o else extractor.dim)) for o in outputs}
    return {o: np.stack([have[o][h] for h in hashes]).astype(np.float64) for o in outputs}


def _extract(extractor: FeatureExtractor, images: torch.Tensor, outputs: Sequence[str]) -> dict[str, np.ndarray]:
    # an extractor that is only a callable (name, key, dim, __call__: a plugin's or a test's) has the features only
    if tuple(outputs) == ("",) and not hasattr(extractor, "extract"):
        return {"": np.asarray(extractor(images), dtype=np.float64)}
    return extractor.extract(images, outputs)
