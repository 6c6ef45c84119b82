#!/usr/bin/env bash
# Issue 13 on one GPU, one call (<= 10 minutes): benchmarks/pipeline.py with random weights of the real sizes.
#   1. recommended preset: Qwen2.5-VL-7B size + SAM 2 Hiera-L size, expected readout, serial vs staged
#   2. paper preset: mPLUG-Owl3-7B size + SAM 2 Hiera-L size, int readout, the authors' loop vs serial vs staged
#   3. global only at 1024 px: Qwen2.5-VL-7B size, no segmentation, serial vs staged
# Each prints the table (images/s, s/image, GPU utilisation, MFU estimate) and a JSON line (*.json).
# Usage on a CUDA machine, from the repository root:  bash benchmarks/gpu_pipeline.sh OUT_DIR
set -u
out=${1:-gpu-out}
mkdir -p "$out/work"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$out/gpu.txt"
step() {  # step NAME SECONDS ARGS... : the table, then the same run's JSON report
  local name=$1 limit=$2; shift 2
  echo "=== $name: benchmarks/pipeline.py $*" | tee "$out/$name.log"
  timeout "$limit" python3 benchmarks/pipeline.py --json --work-dir "$out/work" "$@" 2>>"$out/$name.log" \
    > "$out/$name.json"
  echo "exit $?" >> "$out/$name.log"
  python3 benchmarks/pipeline.py --print "$out/$name.json" | tee -a "$out/$name.log"
}
gpu="--device cuda --dtype bfloat16 --side 1024 --threads 4 --load-workers 4 --repeat 2 --batch-size 32"
sam="--segmenters sam2 --sam2 hiera-large"
step recommended 190 $gpu --random-7b $sam --readout expected --images 24 --chunk-size 12 --modes serial staged
step paper 210 $gpu --family owl3 --size 7b $sam --readout int --images 16 --chunk-size 8 --batch-size 8
step global_1024 130 $gpu --random-7b --segmenters none --images 64 --chunk-size 32 --modes serial staged
nvidia-smi --query-gpu=memory.used --format=csv | tee -a "$out/gpu.txt"
