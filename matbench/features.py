"""Feature extractors (Inception-v3 pool3, VGG16 fc2) and the on-disk feature cache.

Extractors take uint8 RGB images [N, 3, H, W] at any size and return float64 features [N, D]:

- ``inception-v3-compat``: torch-fidelity's TF-compatible Inception-v3 (resizes to 299 like TF),
  2048-d pool3 features. Weights are the torch-fidelity release file, resolved by
  :mod:`matbench.weights` and handed to torch-fidelity as ``feature_extractor_weights_path``,
  so torch-fidelity never downloads by itself.
- ``inception-nvidia``: NVIDIA's TorchScript ``inception-2015-12-05.pt`` (what MAT's scripts use),
  called as ``detector(x_uint8, return_features=True)``.
- ``vgg16``: torch-fidelity's VGG16 fc2 features (4096-d, before ReLU) for precision/recall.

``smoke=True`` builds the same architecture with seeded random weights (no download); such
extractors say so (``smoke`` is True and the weights hash starts with the smoke label).

The cache maps (extractor name, weights sha256, image content sha256) -> features in one SQLite
file per cache directory, so ground-truth features are computed once for every model and run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from matbench import weights as W
from matbench.errors import InputError, WeightsError

log = logging.getLogger(__name__)

URL_TORCH_FIDELITY_INCEPTION = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
URL_NVIDIA_INCEPTION = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
URL_VGG16 = "https://download.pytorch.org/models/vgg16-397923af.pth"

W.register_weights(W.WeightsFile(
    name="inception-v3-compat",
    filename="weights-inception-2015-12-05-6726825d.pth",
    url=URL_TORCH_FIDELITY_INCEPTION,
    hash_prefix="6726825d",
    used_by="FID, P-IDS/U-IDS, KID (torch-fidelity inception-v3-compat, 2048-d pool3)",
))
W.register_weights(W.WeightsFile(
    name="inception-nvidia",
    filename="inception-2015-12-05.pt",
    url=URL_NVIDIA_INCEPTION,
    used_by="FID, P-IDS/U-IDS, KID (NVIDIA TorchScript Inception, as MAT's evaluation scripts)",
))
# VGG16 for precision/recall is torchvision's ImageNet file, registered once as "torchvision-vgg16"
# (matbench.metrics.lpips uses the same file for LPIPS-vgg); torch-fidelity loads it from our path.

# extractor name -> (weights registry name, feature dimension)
EXTRACTORS: dict[str, tuple[str, int]] = {
    "inception-v3-compat": ("inception-v3-compat", 2048),
    "inception-nvidia": ("inception-nvidia", 2048),
    "vgg16": ("torchvision-vgg16", 4096),
}
SMOKE_SEED = 20240601
_BUILD_LOCK = threading.Lock()


class FeatureExtractor:
    """A callable uint8 [N,3,H,W] -> float64 [N, dim] numpy array, with its identity."""

    def __init__(self, name: str, forward: Callable[[torch.Tensor], torch.Tensor], dim: int,
                 weights_sha256: str, smoke: bool, device: str = "cpu", path: Path | None = None,
                 batch_size: int = 32) -> None:
        self.name = name
        self.dim = dim
        self.weights_sha256 = weights_sha256
        self.smoke = smoke
        self.device = torch.device(device)
        self.path = path
        self.batch_size = batch_size
        self._forward = forward
        self.calls = 0  # number of network forward passes (tests count cache hits with it)

    @property
    def key(self) -> str:
        """Cache key of this extractor: name and weights hash."""
        return f"{self.name}@{self.weights_sha256}"

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        _check_u8(images, self.name)
        out = []
        with torch.inference_mode():
            for i in range(0, images.shape[0], self.batch_size):
                x = images[i:i + self.batch_size].to(self.device, non_blocking=True)
                self.calls += 1
                f = self._forward(x)
                out.append(f.float().cpu().numpy().astype(np.float64))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float64)
        feats = np.concatenate(out, axis=0)
        if feats.shape[1] != self.dim:
            raise WeightsError(f"{self.name}: network returned {feats.shape[1]}-d features, expected {self.dim}")
        return feats

    def describe(self) -> dict:
        return {"name": self.name, "dim": self.dim, "weights_sha256": self.weights_sha256, "smoke": self.smoke,
                "path": str(self.path) if self.path else None}

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name!r}, dim={self.dim}, smoke={self.smoke}, device={self.device})"


def _check_u8(images: torch.Tensor, who: str) -> None:
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        dtype = images.dtype if torch.is_tensor(images) else ""
        raise TypeError(f"{who}: expects uint8 [N,3,H,W] images, got {dtype} {shape}")


def smoke_weights_sha256(name: str) -> str:
    """Identity of the seeded random weights: depends on the seed and on torch's init code."""
    return "smoke-" + hashlib.sha256(f"{name}:{SMOKE_SEED}:{torch.__version__}".encode()).hexdigest()[:32]


@contextlib.contextmanager
def _patched(obj: object, attr: str, value: object) -> Iterator[None]:
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, old)


def _build_tf_inception(path: Path | None) -> torch.nn.Module:
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    if path is not None:
        return tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                               feature_extractor_weights_path=str(path))

    # Smoke: same module, default (seeded) init, no state dict loaded.
    class _Smoke(tfi.FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002
            return None

    with _BUILD_LOCK, _patched(tfi, "load_state_dict_from_url", lambda *a, **k: {}), \
            torch.random.fork_rng(devices=[]):
        torch.manual_seed(SMOKE_SEED)
        m = _Smoke("inception-v3-compat", ["2048"])
        # He init keeps activations alive through ~50 random layers, so smoke features depend on the image.
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
    return m


def _build_vgg16(path: Path | None) -> torch.nn.Module:
    import torch_fidelity.feature_extractor_vgg16 as tfv
    import torchvision

    if path is not None:
        return tfv.FeatureExtractorVGG16("vgg16", ["fc2"], feature_extractor_weights_path=str(path))
    with _BUILD_LOCK, _patched(tfv, "torchvision_load_pretrained_vgg16",
                               lambda **k: torchvision.models.vgg16(weights=None)), torch.random.fork_rng(devices=[]):
        torch.manual_seed(SMOKE_SEED)
        return tfv.FeatureExtractorVGG16("vgg16", ["fc2"])


def load_nvidia_inception(path: Path, device: str = "cpu") -> torch.jit.ScriptModule:
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:
        raise WeightsError(f"{path}: cannot load as a TorchScript Inception ({type(e).__name__}: {e})") from None


def get_extractor(name: str, device: str = "cpu", smoke: bool = False, path: str | os.PathLike | None = None,
                  batch_size: int = 32, allow_download: bool = True) -> FeatureExtractor:
    """Build a feature extractor by name (see EXTRACTORS); real weights come from matbench.weights.resolve."""
    if name not in EXTRACTORS:
        # registry hook: DINOv2, CLIP, pytorch-fid Inception (matbench/extractors/, one file each)
        from matbench import extractors

        return extractors.build(name, device, smoke, path, batch_size=batch_size, allow_download=allow_download)
    wname, dim = EXTRACTORS[name]
    if smoke:
        # The NVIDIA backend's smoke twin is the torch-fidelity architecture (same role, same 2048-d output).
        module = _build_vgg16(None) if name == "vgg16" else _build_tf_inception(None)
        module = module.to(device).eval()
        return FeatureExtractor(name, lambda x: module(x)[0], dim, smoke_weights_sha256(name), True, device,
                                batch_size=batch_size)
    resolved = W.resolve(wname, path, allow_download=allow_download, check_hash=False)
    digest = verified_sha256(wname, resolved)
    if name == "inception-nvidia":
        det = load_nvidia_inception(resolved, device)
        return FeatureExtractor(name, lambda x: det(x, return_features=True), dim, digest, False, device,
                                path=resolved, batch_size=batch_size)
    builder = _build_vgg16 if name == "vgg16" else _build_tf_inception
    try:
        module = builder(resolved)
    except Exception as e:
        raise WeightsError(f"{resolved}: cannot load {name} weights ({type(e).__name__}: {e})") from None
    module = module.to(device).eval()
    return FeatureExtractor(name, lambda x: module(x)[0], dim, digest, False, device, path=resolved,
                            batch_size=batch_size)


_VERIFIED: dict[tuple[str, str, int, int], str] = {}


def verified_sha256(wname: str, path: Path) -> str:
    """sha256 of a weights file checked against its registry entry (memoised per file version)."""
    st = path.stat()
    key = (wname, str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = W.verify(W.get(wname), path)
    return _VERIFIED[key]


# --------------------------------------------------------------------------------------------- cache

def image_sha256(image: np.ndarray | torch.Tensor) -> str:
    """Content hash of one uint8 image (CHW or HWC): its shape and bytes."""
    a = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"image_sha256 expects uint8, got {a.dtype}")
    h = hashlib.sha256(f"u8{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    root = os.environ.get("MATBENCH_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "matbench") / "features"


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
            from matbench.io import free_bytes

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
        try:
            for i in range(0, len(uniq), 500):
                chunk = uniq[i:i + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT image, dtype, dim, data FROM features WHERE extractor=? AND image IN ({marks})"
                for image, dtype, dim, data in con.execute(q, [extractor_key, *chunk]):
                    out[image] = np.frombuffer(data, dtype=dtype).reshape(dim).astype(np.float64)
        finally:
            con.close()
        return out

    def put_many(self, extractor_key: str, hashes: Sequence[str], feats: np.ndarray) -> None:
        if self.disabled:
            return
        rows = []
        for h, f in zip(hashes, feats, strict=True):
            f = np.asarray(f, dtype=np.float64)
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


def _disk_full(e: BaseException) -> bool:
    """sqlite's SQLITE_FULL ("database or disk is full") or an ENOSPC/EDQUOT OSError."""
    from matbench.io import is_disk_full

    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(e)
    return is_disk_full(e)


def extract_cached(extractor: FeatureExtractor, images: torch.Tensor, cache: FeatureCache | None,
                   hashes: Sequence[str] | None = None) -> np.ndarray:
    """Features of `images`, reading what the cache has and computing (and storing) the rest."""
    _check_u8(images, extractor.name)
    if cache is None:
        return extractor(images)
    if hashes is None:
        hashes = [image_sha256(im) for im in images]
    have = cache.get_many(extractor.key, hashes)
    missing = [i for i, h in enumerate(hashes) if h not in have]
    if missing:
        idx = torch.as_tensor(missing, dtype=torch.long)
        new = extractor(images.index_select(0, idx))
        cache.put_many(extractor.key, [hashes[i] for i in missing], new)
        for i, f in zip(missing, new, strict=True):
            have[hashes[i]] = f
    if not hashes:
        return np.zeros((0, extractor.dim))
    return np.stack([have[h] for h in hashes]).astype(np.float64)


# --------------------------------------------------------------------------------------------- folders

def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files below `folder` by id (relative path without extension, '/' separated)."""
    from matbench.io import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    out: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            iid = p.relative_to(folder).with_suffix("").as_posix()
            if iid in out:
                raise InputError(f"{folder}: two files share the id {iid!r}: {out[iid].name} and {p.name}")
            out[iid] = p
    return out


class ImageFolderDataset(torch.utils.data.Dataset):
    """(id, uint8 [3,H,W]) for a list of files; read in DataLoader workers."""

    def __init__(self, ids: Sequence[str], paths: Sequence[Path]) -> None:
        self.ids, self.paths = list(ids), list(paths)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
        from matbench.io import read_image

        return self.ids[i], torch.from_numpy(read_image(self.paths[i])).permute(2, 0, 1).contiguous()


def _list_collate(items: list) -> list:
    return items


def same_size_runs(items: Sequence[tuple]) -> Iterator[list]:
    """Split consecutive items into runs whose image tensors (item[1]) have equal shape."""
    run: list = []
    for it in items:
        if run and run[-1][1].shape != it[1].shape:
            yield run
            run = []
        run.append(it)
    if run:
        yield run


def extract_folder(extractor: FeatureExtractor, folder: str | os.PathLike, cache: FeatureCache | None = None,
                   batch_size: int = 32, workers: int = 0, progress: bool = True) -> tuple[list[str], np.ndarray]:
    """Features of every image in a folder (ids sorted), batched through a DataLoader."""
    from tqdm import tqdm

    files = list_images(folder)
    ds = ImageFolderDataset(list(files), list(files.values()))
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=_list_collate,
                                     pin_memory=extractor.device.type == "cuda")
    ids: list[str] = []
    feats: list[np.ndarray] = []
    with tqdm(total=len(ds), desc=f"{extractor.name} features", unit="img", disable=not progress) as bar:
        for batch in dl:
            for run in same_size_runs(batch):
                ids.extend(r[0] for r in run)
                feats.append(extract_cached(extractor, torch.stack([r[1] for r in run]), cache))
                bar.update(len(run))
    return ids, (np.concatenate(feats) if feats else np.zeros((0, extractor.dim)))
