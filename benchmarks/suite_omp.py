"""`python bench.py omp [--rounds 3] [--n 8] [--json]`: OpenMP's wait policy, spinning (ACTIVE) against PASSIVE.

Each round runs the same Inception pass (smoke weights: the same architecture, so the same cost; 512², batch 2)
in a fresh process under each policy in turn, since OpenMP reads the policy once when torch loads it. Reported:
the CPU-seconds and wall seconds of the timed pass per round, their medians, and the ratio ACTIVE / PASSIVE, with
the 1-minute load average before and after (the waste of spinning grows with the load of other jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_CHILD = """
import time, matbench, torch
from matbench import features as F
x = torch.randint(0, 256, ({n}, 3, 512, 512), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
ex = F.get_extractor("inception-v3-compat", smoke=True, batch_size=2)
ex(x[:2])
c, w = time.process_time(), time.perf_counter()
ex(x)
print(time.process_time() - c, time.perf_counter() - w)
"""


def measure(policy: str, n: int) -> tuple[float, float]:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, "-c", _CHILD.format(n=n)], env=env, capture_output=True, text=True,
                         check=True)
    cpu, wall = out.stdout.split()[-2:]
    return float(cpu), float(wall)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.py omp", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--n", type=int, default=8, help="images in the timed pass (default 8)")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, float]]] = {"ACTIVE": [], "PASSIVE": []}
    for _ in range(args.rounds):
        for policy in runs:
            runs[policy].append(measure(policy, args.n))
    res = {"n": args.n, "rounds": args.rounds, "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
           "policies": {p: {"cpu_s": [round(c, 2) for c, _ in r], "wall_s": [round(w, 2) for _, w in r],
                            "median_cpu_s": round(statistics.median(c for c, _ in r), 2),
                            "median_wall_s": round(statistics.median(w for _, w in r), 2)} for p, r in runs.items()}}
    a, p = res["policies"]["ACTIVE"], res["policies"]["PASSIVE"]
    res["active_over_passive"] = {"cpu": round(a["median_cpu_s"] / p["median_cpu_s"], 2),
                                  "wall": round(a["median_wall_s"] / p["median_wall_s"], 2)}
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"Inception pass, {args.n} images of 512², load {res['load_1min'][0]} -> {res['load_1min'][1]}")
    for name, r in res["policies"].items():
        print(f"{name:8} CPU-s {r['cpu_s']} (median {r['median_cpu_s']})  wall-s {r['wall_s']} "
              f"(median {r['median_wall_s']})")
    ratio = res["active_over_passive"]
    print(f"ACTIVE / PASSIVE: {ratio['cpu']}x CPU time, {ratio['wall']}x wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
