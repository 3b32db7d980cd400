"""One batch's per-image rows and features, as stored between `process_batch` and `finalize`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from matbench.errors import InputError
from matbench.io import atomic_path


@dataclass
class BatchResult:
    ids: list[str]
    rows: list[dict]
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> None:
        """Atomic .npz: ids, rows (JSON) and feature arrays."""
        arrays = {f"feat__{k}": _compact(np.asarray(v)) for k, v in self.features.items()}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=np.asarray(self.ids, dtype=str), rows=np.asarray(json.dumps(self.rows)), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BatchResult:
        try:
            with np.load(path, allow_pickle=False) as z:
                ids = [str(s) for s in z["ids"]]
                rows = json.loads(str(z["rows"]))
                feats = {k[len("feat__"):]: z[k].astype(np.float64) for k in z.files if k.startswith("feat__")}
        except FileNotFoundError:
            raise InputError(f"{path}: no such batch file") from None
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{path}: not a matbench batch file ({e})") from None
        return cls(ids=ids, rows=rows, features=feats)


def _compact(a: np.ndarray) -> np.ndarray:
    """float32 copy when it is lossless (features of float32 networks), else the array itself."""
    if a.dtype == np.float64:
        a32 = a.astype(np.float32)
        if np.array_equal(a32.astype(np.float64), a):
            return a32
    return a
