"""tests/spec_helpers.py writes what tomllib reads back, and the result is a spec matbench accepts."""

from __future__ import annotations

import tomllib

from spec_helpers import TINY, spec_dict, to_toml, write_spec

from matbench.spec import load_spec


def test_toml_round_trip_and_spec_loads(tmp_path):
    d = spec_dict(name="x", output="o", metrics=["psnr"], models=[
        {"name": "runner_helpers:killer", "label": 'a "q"', "options": {"inner": "mean-fill", "k": 2.5}}])
    assert tomllib.loads(to_toml(d)) == d
    assert "metrics" not in TINY and spec_dict(smoke=None).get("smoke") is None
    (tmp_path / "imgs").mkdir()
    spec = load_spec(write_spec(tmp_path, "r", metrics=["psnr"]))
    assert spec.output == tmp_path / "r" and spec.metrics == ["psnr"] and spec.resolutions == [32]
