#!/usr/bin/env bash
# GPU: Qwen2.5-VL-7B-size throughput at two resolutions (random weights, bf16). Usage: bash benchmarks/gpu_qwen.sh OUT
set -u
out=${1:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee "$out/$name.log"
  timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.log" | grep -v -E "Loading weights|it/s\]" | tail -20
}
common="--random-7b --device cuda --dtype bfloat16 --batch-size 32 --repeat 1 --threads 8"
step q_global_1024 120 python3 benchmarks/throughput.py $common --side 1024 --crops 0 --images 64
step q_global_512 80 python3 benchmarks/throughput.py $common --side 512 --crops 0 --images 64
step q_mix_1024 150 python3 benchmarks/throughput.py $common --side 1024 --crops 7 --images 24 --pipeline --segmenter slic
