#!/usr/bin/env bash
# The GPU check, one command of at most 8 minutes on one GPU (bench/gpu_check.py says what each
# part measures). Run it from the project root in an environment with the project installed:
#   bash bench/gpu_check.sh [OUT_DIR]          # default OUT_DIR: results/bench
# Optional: UFO_GPU_TOKENIZER (a tokenizer folder, e.g. a converted model=smollm2 folder) and
# UFO_GPU_GSM8K (a GSM8K train JSONL) make the timed prompts real chat prompts; without them the
# tiny model's tokenizer and the embedded pool are used. UFO_GPU_SHAPE picks the architecture,
# PYTHON the interpreter (default: python).
set -uo pipefail
out=${1:-results/bench}
py=${PYTHON:-python}
tag=${UFO_GPU_TAG:-$($py -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower() if torch.cuda.is_available() else 'cpu')")}
mkdir -p "$out"
status=0
args=(--shape "${UFO_GPU_SHAPE:-qwen2.5-7b}" --n "${UFO_GPU_N:-128}")
[ -n "${UFO_GPU_TOKENIZER:-}" ] && args+=(--tokenizer "$UFO_GPU_TOKENIZER")
[ -n "${UFO_GPU_GSM8K:-}" ] && args+=(--gsm8k "$UFO_GPU_GSM8K")
[ -n "${UFO_GPU_EXTRA:-}" ] && args+=($UFO_GPU_EXTRA)
echo "== 1/3 scoring timings ($(date +%T))"
$py bench/gpu_check.py scoring "${args[@]}" --out "$out/gpu_check-scoring-$tag.json" || status=1
echo "== 2/3 the decoding loop against generate ($(date +%T))"
$py bench/gpu_check.py decoding --out "$out/gpu_check-decoding-$tag.json" || status=1
echo "== 3/3 the pipeline: score, GRPO in bf16, evaluate ($(date +%T))"
runs=$(mktemp -d)
UFO_GPU_RESULTS=$runs $py bench/run.py -m experiment=gpu_check ${UFO_GPU_OVERRIDES:-} || status=1
$py bench/gpu_check.py summarize "$runs/runs/gpu_check" --out "$out/gpu_check-pipeline-$tag.json" || status=1
echo "== done ($(date +%T)), status $status"
exit $status
