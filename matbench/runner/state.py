"""Run state on disk: paths, job fingerprints, resume (finished batches, corrupt records) and the run lock."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np

from matbench.errors import Hint, MatbenchError, SpecError
from matbench.evaluate import BatchResult
from matbench.io import atomic_path, sha256_bytes, write_json_atomic
from matbench.layout import LOCK_FILE as LOCK_FILE  # re-exported by matbench.runner
from matbench.layout import LOG_FILE as LOG_FILE
from matbench.layout import RUN_FILE as RUN_FILE
from matbench.layout import STATE_FILE as STATE_FILE
from matbench.layout import RunLayout
from matbench.results import now_iso
from matbench.runner.inputs import PreparedDataset, PreparedMaskSet
from matbench.runner.models import model_modes
from matbench.runner.plan import Job, job_batch_size
from matbench.spec import DEFAULT_INCEPTION, Spec

log = logging.getLogger("matbench.runner")


def job_dir(run_dir: Path, jid: str) -> Path:
    return RunLayout(run_dir).job_dir(jid)


def batch_file(run_dir: Path, jid: str, k: int) -> Path:
    return RunLayout(run_dir).batch_file(jid, k)


def diversity_file(run_dir: Path, jid: str, k: int) -> Path:
    return RunLayout(run_dir).diversity_file(jid, k)


def batch_done(run_dir: Path, jid: str, k: int, needs_diversity: bool) -> bool:
    # The npz is written last, so its presence means the whole batch (outputs, diversity) is on disk.
    return batch_file(run_dir, jid, k).is_file() and (not needs_diversity or diversity_file(run_dir, jid, k).is_file())


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def save_batch_result(br: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        br.save(tmp)


def load_batch_result(path: Path) -> Any:

    return BatchResult.load(path)


def read_diversity(path: Path) -> list[float]:
    d = read_json(path)
    if d is None or not isinstance(d.get("diversity"), list):
        raise MatbenchError(f"{path}: unreadable diversity record")
    return [float(x) for x in d["diversity"]]


def load_finished(run_dir: Path, jid: str, k: int, needs_div: bool, loader: Any) -> tuple[Any, Any] | None:
    """(batch result, diversity) of a finished batch; None (and the record discarded, with a log line naming the
    file) if it cannot be read — the batch is then recomputed."""
    path = batch_file(run_dir, jid, k)
    try:
        br = loader(path)
        _check_finite_features(br)
        div = read_diversity(diversity_file(run_dir, jid, k)) if needs_div else None
        return br, div
    except Exception as e:  # a truncated npz raises BadZipFile, EOFError, ValueError, ... depending on where
        log.warning("%s: corrupt batch record (%s: %s); discarded, batch %d will be recomputed",
                    path, type(e).__name__, str(e).splitlines()[0] if str(e) else "", k)
        for p in (path, diversity_file(run_dir, jid, k)):
            p.unlink(missing_ok=True)
        return None


def _check_finite_features(br: Any) -> None:
    """ValueError for NaN/inf features in a batch record: they would make FID/KID NaN. Networks give finite
    features on uint8 images, so such a record is corrupt and is recomputed like an unreadable one."""
    feats = getattr(br, "features", None)
    if not isinstance(feats, dict):
        return
    bad = [k for k, v in feats.items() if not np.isfinite(np.asarray(v, dtype=np.float64)).all()]
    if bad:
        raise ValueError(f"NaN/inf features ({', '.join(sorted(bad))})")


# --------------------------------------------------------------------------- fingerprints


def job_fingerprint(spec: Spec, job: Job, ds: PreparedDataset, ms: PreparedMaskSet, metric_smoke: bool) -> dict:
    """Everything that can change a job's numbers; a stored job is reused only if this is equal."""
    m = job.model
    model = {"name": m.name, "weights": str(m.weights) if m.weights else None, "smoke": m.smoke,
             "samples": m.samples, "options": m.options}
    # Speed modes that can change numbers, only when not the default (older run directories stay valid).
    model.update({k: v for k, v in model_modes(m).items() if v not in ("fp32", False)})
    return {
        "dataset": {"name": ds.name, "preset": job.dataset.preset, "policy": job.dataset.policy,
                    "manifest_sha256": ds.manifest_sha256, "n_images": len(ds.ids),
                    "ids_sha256": sha256_bytes("\n".join(ds.ids).encode())},
        "maskset": {"name": ms.name, "sha256": ms.sha256, "kind": ms.kind, "seed": ms.seed},
        "model": model,
        "resolution": job.resolution, "seed": spec.seed, "batch_size": job_batch_size(spec, job),
        "metrics": spec.metrics, "metric_smoke": metric_smoke, "fid_convention": spec.fid_convention,
        "lpips_net": spec.lpips_net, "n_bootstrap": spec.n_bootstrap,
        # the Inception backend, only when not the default (older run directories stay valid)
        **({"inception": spec.inception} if getattr(spec, "inception", DEFAULT_INCEPTION) != DEFAULT_INCEPTION
           else {}),
    }


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(prefix + k)
    return out


def check_job_state(run_dir: Path, job: Job, fp: dict, restart: bool) -> bool:
    """True if the job is complete on disk with this configuration; raise/clear if it differs."""
    lay = RunLayout(run_dir)
    jd, state_path = lay.job_dir(job.id), lay.state_file(job.id)
    state = read_json(state_path)
    if state is None:
        if state_path.exists():
            log.warning("%s: unreadable; the job's finished batches are kept and checked", state_path)
        if jd.exists() and restart:
            shutil.rmtree(jd)
        return False
    stored = json.loads(json.dumps(state.get("fingerprint", {})))
    current = json.loads(json.dumps(fp, default=str))
    if stored != current:
        if not restart:
            raise SpecError(f"{jd}: holds results of a different configuration "
                            f"({', '.join(_diff_keys(stored, current)) or 'fingerprint'} changed); "
                            "use another output directory",
                            hints=[Hint("--restart", "or --restart to discard them")])
        shutil.rmtree(jd)
        return False
    if state.get("status") != "complete":
        return False
    if read_json(lay.metrics_file(job.id)) is None:
        log.warning("%s: missing or unreadable; the job is finalized again from its batches", lay.metrics_file(job.id))
        return False
    return True


# --------------------------------------------------------------------------- the run-directory lock


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), to tell a live holder from a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _proc_start(pid)
    return start is None or now is None or now == start


class RunLock:
    """RUN_DIR/.lock: {pid, host, start, started}. A second `matbench run` into the directory is refused at once
    while the holder lives; a lock whose process is gone (same host) is taken over with a log note."""

    def __init__(self, run_dir: Path) -> None:
        self.path = RunLayout(run_dir).lock_file
        self.held = False

    def _mine(self) -> dict[str, Any]:

        pid = os.getpid()
        return {"pid": pid, "host": socket.gethostname(), "start": _proc_start(pid), "started": now_iso()}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_holder()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._mine(), f)
            self.held = True
            return
        raise MatbenchError(f"{self.path}: could not take the run lock (another run keeps re-taking it)")

    def _check_holder(self) -> None:
        """Raise if a live process holds the lock; remove it (with a note) if its process is gone."""
        info = read_json(self.path)
        if info is None:  # being written right now, or garbage: garbage is stale after a moment
            import time

            time.sleep(0.2)
            info = read_json(self.path) or {}
        pid, host = info.get("pid"), info.get("host", "?")
        here = host == socket.gethostname()
        if isinstance(pid, int) and (not here or _alive(pid, info.get("start"))):
            raise MatbenchError(f"{self.path.parent}: in use by another matbench run (pid {pid} on {host}, "
                                f"since {info.get('started', '?')}); wait for it, or delete {self.path} "
                                "if that process is gone")
        log.warning("%s: stale lock of pid %s on %s (process gone) taken over", self.path, pid, host)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            info = read_json(self.path)
            if info and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False


def write_state(run_dir: Path, jid: str, state: dict[str, Any]) -> None:
    write_json_atomic(RunLayout(run_dir).state_file(jid), {**state, "job_id": jid})
