#!/usr/bin/env bash
# Issue 13 on one GPU, one call (<= 10 minutes): benchmarks/pipeline.py with random weights of the real sizes.
#   1. recommended preset: Qwen2.5-VL-7B size + SAM 2 Hiera-L size, expected readout, serial vs staged
#   2. paper preset: mPLUG-Owl3-7B size + SAM 2 Hiera-L size, int readout, the authors' loop vs serial vs staged
#   3. global only at 1024 px: Qwen2.5-VL-7B size, no segmentation, serial vs staged
#   4. where global-only time goes: processor, vision tower, whole forward by batch size (gpu_breakdown.py)
# Each prints the table (images/s, s/image, GPU utilisation, MFU estimate) and a JSON line (*.json).
# Usage on a CUDA machine, from the repository root:  bash benchmarks/gpu_pipeline.sh OUT_DIR
# The device image has torch, transformers, scikit-image, typer and rich but not pydantic (dogiqa.config needs
# it). Carry its wheels in .whl/ (ignored by git); this script installs them into /tmp/site when present.
# Fetch them here, once:  bash benchmarks/gpu_pipeline.sh --fetch-wheels
# Before spending device time:  bash benchmarks/gpu_pipeline.sh --cpu-check OUT_DIR  runs the same steps on this
# CPU with the same code and widths, 2 layers deep, 2 small images (about 10 minutes on 2 cores; PYTHON=python
# with torch, ideally with the device's transformers version).
set -u
small="" scale=1
if [ "${1:-}" = "--cpu-check" ]; then
  shift
  small="--device cpu --dtype float32 --side 320 --threads 2 --load-workers 2 --repeat 1 --layers 2 --sam2 tiny"
  small="$small --images 2 --chunk-size 2 --batch-size 4"
  scale=6
fi
if [ "${1:-}" = "--fetch-wheels" ]; then
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "pydantic>=2.6"  # with what it needs (pydantic-core at its pinned version, ...)
  exit
fi
py=${PYTHON:-python3}  # --cpu-check: PYTHON=.venv/bin/python
if [ -z "$small" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
out=${1:-gpu-out}
work=${WORK_DIR:-/tmp/dogiqa-gpu-work}  # built SAM 2 folders, shared by the steps (not under OUT: large files)
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
$py -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$out/gpu.txt"
step() {  # step NAME SECONDS ARGS... : the table, then the same run's JSON report
  local name=$1 limit=$(($2 * scale)); shift 2
  set -- "$@" $small  # --cpu-check: later options win
  echo "=== $name: benchmarks/pipeline.py $*" | tee "$out/$name.log"
  timeout "$limit" $py benchmarks/pipeline.py --json --work-dir "$work" "$@" 2>>"$out/$name.log" \
    > "$out/$name.json"
  echo "exit $?" >> "$out/$name.log"
  $py benchmarks/pipeline.py --print "$out/$name.json" | tee -a "$out/$name.log"
}
gpu="--device cuda --dtype bfloat16 --side 1024 --threads 4 --load-workers 4 --repeat 2 --batch-size 32"
sam="--segmenters sam2 --sam2 hiera-large"
step recommended 170 $gpu --random-7b $sam --readout expected --images 24 --chunk-size 12 --modes serial staged
step paper 170 $gpu --family owl3 --size 7b $sam --readout int --images 16 --chunk-size 8 --batch-size 8
step global_1024 110 $gpu --random-7b --segmenters none --images 64 --chunk-size 32 --modes serial staged
echo "=== breakdown: benchmarks/gpu_breakdown.py" | tee "$out/breakdown.log"
brk="--device cuda --side 1024 --batch 8 16 32"
[ -n "$small" ] && brk="--device cpu --dtype float32 --side 320 --batch 2 --repeat 1 --layers 2"
timeout $((90 * scale)) $py benchmarks/gpu_breakdown.py $brk 2>&1 \
  | grep -v -E "Loading weights|it/s\]" | tee -a "$out/breakdown.log"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=memory.used --format=csv | tee -a "$out/gpu.txt"; fi
