"""Shared test fixtures. `../shared` (golden fixtures) sits beside the checkout, in CI too."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as matbench/__init__.py: torch below loads OpenMP
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATBENCH_SHARED", ROOT.parent / "shared"))
GOLDEN = SHARED / "golden"

# Metric networks must never be downloaded in tests; weights are created or smoke.
os.environ.setdefault("MATBENCH_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# Nothing a test runs may append to the user's results history (not even module-scoped fixtures that run
# before the per-test fixture below, nor a MATBENCH_HISTORY set in the developer's shell).
_HISTORY_DIR = tempfile.mkdtemp(prefix="matbench-test-history-")
atexit.register(shutil.rmtree, _HISTORY_DIR, ignore_errors=True)
os.environ["MATBENCH_HISTORY"] = str(Path(_HISTORY_DIR) / "history.db")
# The suite's stand-in models are named as 'module:factory' in specs; like a user, the suite trusts those modules
# explicitly (matbench.trust; subprocesses inherit it). Tests of the refusal unset or replace it.
os.environ["MATBENCH_TRUSTED_MODULES"] = "runner_helpers,test_faults"


@pytest.fixture(scope="session")
def golden() -> Path:
    if not GOLDEN.is_dir():
        raise RuntimeError(f"golden fixtures not found at {GOLDEN} (set MATBENCH_SHARED)")
    return GOLDEN


@pytest.fixture(autouse=True)
def _private_history(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs and evals in tests append to a throw-away history, never the user's ~/.local/share one
    (subprocesses inherit the variable)."""
    path = tmp_path_factory.mktemp("history") / "history.db"
    monkeypatch.setenv("MATBENCH_HISTORY", str(path))
    return path
