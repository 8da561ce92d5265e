#!/usr/bin/env bash
# Everything a session with a GPU checks, in one go, from the repository root:
#   bash tests/benchmarks/gpu_check.sh [gpu_check.py options]
# 1. the `cuda`-marked tests (NCCL DDP, FSDP2 in bf16, fp16's grad scaler, compiled bf16, the
#    GPU memory series, the estimate against torch.cuda.max_memory_allocated);
# 2. the GPT templates' tokens/s, MFU and peak memory against the estimate, and against the plain
#    torchrun loop (gpu_check.py).
# Output goes to $OUT (the device machine's folder that comes back) or /tmp/gpu_check.
set -u
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp}/gpu_check"
mkdir -p "$out"
export PYTHONPATH="$PWD" QT_QPA_PLATFORM=offscreen TORCHINDUCTOR_CACHE_DIR="$out/inductor"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
timeout 900 python -m pytest -q -p no:cacheprovider -m cuda -rs tests/ 2>&1 | tee "$out/cuda_tests.txt" | tail -40
echo "cuda tests exit: ${PIPESTATUS[0]}" | tee -a "$out/cuda_tests.txt"
timeout 1500 python tests/benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/gpu_check.txt"
rm -rf "$out/inductor"
