#!/usr/bin/env bash
# One-shot GPU benchmark for a session with a lent GPU (< 8 minutes, one command):
#     bash benchmarks/gpu.sh [OUT_DIR] [extra benchmarks.gpu args, e.g. --cpu-smoke]
# Results: OUT_DIR/gpu_results.md, gpu_results.json and gpu.log (OUT_DIR defaults to $OUT,
# else benchmarks/gpu_out). Works from a plain checkout: yolo_core is put on PYTHONPATH,
# and the repo's .venv is used when present, else python3 (which holds PyTorch there).
# It needs torch, torchvision, timm, opencv, numpy, pyyaml, pillow: no COCO tools.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks/gpu_out}}"
shift || true
mkdir -p "$out"
if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then py=.venv/bin/python; else py=python3; fi
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; } | tee "$out/gpu.log"
# 470 s hard stop; the script's own budget (420 s) skips what would not fit before that
timeout 470 "$py" -m benchmarks.gpu --out "$out" --budget 420 "$@" 2>&1 | tee -a "$out/gpu.log"
rc=${PIPESTATUS[0]}
echo "exit $rc" | tee -a "$out/gpu.log"
exit "$rc"
