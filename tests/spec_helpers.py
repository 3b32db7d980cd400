"""One way for tests to write run specs: a dict of the spec's keys -> a TOML file (instead of TOML text in each
test file). `write_spec(dir, stem, **keys)` starts from TINY, the smallest runnable spec, and overrides keys;
a key set to None is left out.

    spec = load_spec(write_spec(tmp_path, "r", models=[{"name": "opencv-telea", "label": "telea"}]))
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

TINY: dict[str, Any] = {
    "batch_size": 3,
    "resolutions": [32],
    "smoke": True,
    "datasets": [{"name": "tiny", "path": "imgs"}],
    "masksets": [{"kind": "mat-large"}],
    "models": [{"name": "mean-fill"}],
}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(spec: dict[str, Any]) -> str:
    """Top-level keys first, then each list of tables ([[datasets]], ...) in order."""
    tables = {k: v for k, v in spec.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
    lines = [f"{k} = {_value(v)}" for k, v in spec.items() if k not in tables and v is not None]
    for k, items in tables.items():
        for item in items:
            lines.append(f"[[{k}]]")
            lines += [f"{key} = {_value(v)}" for key, v in item.items() if v is not None]
    return "\n".join(lines) + "\n"


def spec_dict(**keys: Any) -> dict[str, Any]:
    d = copy.deepcopy(TINY)
    d.update(keys)
    return {k: v for k, v in d.items() if v is not None}


def write_spec(folder: Path, stem: str = "spec", /, **keys: Any) -> Path:
    """folder/stem.toml from TINY with `keys` overridden; output defaults to `stem` (relative to the file)."""
    keys.setdefault("output", stem)
    path = Path(folder) / f"{stem}.toml"
    path.write_text(to_toml(spec_dict(**keys)))
    return path
