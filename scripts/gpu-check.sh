#!/usr/bin/env bash
# The GPU check of issue 10: golden equivalence of MAT/LaMa/CoModGAN on CUDA (fp32 limits; tf32/bf16 differences),
# images/s at 512 for batch 1/8/32 in fp32/tf32/bf16 with FLOPs and fraction of peak, and an end-to-end
# `matbench run` of MAT (smoke weights) on 2,000 generated 512 JPEGs. Target: <= 8 minutes on one H100/H200.
#
#   scripts/gpu-check.sh [OUT_DIR] [extra args for `bench.py gpu`, e.g. --device cpu --quick]
#
# Writes OUT_DIR/gpu-check.json and OUT_DIR/gpu-check.md (default OUT_DIR: $OUT if set, else gpu-check-out).
# On a fresh machine it installs the project (pip install -e .) if matbench cannot be imported; nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check-out}}"
[[ $# -gt 0 ]] && shift
py="${PYTHON:-python}"
if ! "$py" -c "import matbench, torch" 2>/dev/null; then
    "$py" -m pip install -q -e .
fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
export MATBENCH_SHARED="${MATBENCH_SHARED:-$PWD/shared}"
[[ -d "$MATBENCH_SHARED/golden" ]] || export MATBENCH_SHARED="$PWD/../shared"
exec timeout 900 "$py" bench.py gpu --out "$out" "$@"
