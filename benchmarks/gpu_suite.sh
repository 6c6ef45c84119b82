#!/usr/bin/env bash
# One GPU session, every device benchmark of the project (random weights of the real sizes).
# Usage on a CUDA machine, from the repository root:  bash benchmarks/gpu_suite.sh OUT_DIR
set -u
out=${1:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$out/gpu.txt"
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee "$out/$name.log"
  timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.log" | grep -v -E "Loading weights|it/s\]" | tail -40
}
# issue 3: Qwen2.5-VL-7B size, bf16: global-only images/s, then the mix-grained scoring (~7 regions)
step qwen_global 150 python3 benchmarks/throughput.py --random-7b --device cuda --dtype bfloat16 --side 1024 \
  --crops 0 --images 64 --batch-size 32 --repeat 2
step qwen_mix 170 python3 benchmarks/throughput.py --random-7b --device cuda --dtype bfloat16 --side 1024 \
  --crops 7 --images 24 --batch-size 32 --repeat 2 --pipeline --segmenter slic
# issue 5: mPLUG-Owl3-7B size, bf16
step owl3 110 python3 benchmarks/mplug_owl3.py --size 7b --device cuda --dtype bfloat16 --batch 1 4 8
# issue 7: SAM2 hiera-large size, paper preset, 1024x768 and 4032x3024
step sam2 110 python3 benchmarks/segmentation.py --model hiera-large --device cuda --dtype bfloat16
nvidia-smi --query-gpu=memory.used --format=csv | tee -a "$out/gpu.txt"
