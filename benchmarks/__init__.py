"""Benchmark pieces called by the top-level bench.py (repo only, not installed with matbench): each module exposes
`run(quick: bool, device: str) -> dict` returning named measurements (no assertions)."""
