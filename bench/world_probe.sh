#!/usr/bin/env bash
# Screens candidate tiny worlds for a positive control (README: "A world where selection
# matters"), on a machine with a GPU and many CPU cores, in one command of a few minutes:
#   1. each world's tiny model is built on the GPU and its pool scored there (K=8 samples, the
#      oracle's pass rates; float32), the worlds side by side;
#   2. the oracle (pass rate nearest 0.5) and random 10% train with GRPO on the CPU cores, one
#      torch thread per job, every (world, selector, seed) at once, with held-out evaluations
#      every 10 steps (conf/experiment/controls.yaml);
#   3. the run folders (without weights) and each world's model land in OUT as archives.
# A world is NAME:OVERRIDES, e.g. "l2:model.tiny.sft_steps=1500 model.tiny.slip_levels=[2]".
#   bash bench/world_probe.sh OUT WORLD [WORLD ...]
# Environment: SEEDS (default "0 1"), STEPS (60), DEADLINE (seconds from the start after which
# unfinished training is stopped and what it wrote so far is packed; default 540), BUILD_DEVICE
# (cuda), EXTRA (overrides for every job), PYTHON.
set -uo pipefail
out=${1:?usage: bash bench/world_probe.sh OUT WORLD [WORLD ...]}
shift
py=${PYTHON:-python}
work=${WORK:-$(mktemp -d)}
start=$SECONDS
deadline=${DEADLINE:-540}
mkdir -p "$out" "$work"
export UFO_RL_CACHE=$work PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
common=(experiment=controls progress=false model.dtype=float32 "trainer.max_steps=${STEPS:-60}")
read -r -a extra <<< "${EXTRA:-}"
log() { echo "[$(date +%T) +$((SECONDS - start))s] $*" | tee -a "$out/probe.log"; }

log "1/3 build and score on ${BUILD_DEVICE:-cuda}: $*"
for w in "$@"; do
  name=${w%%:*}
  read -r -a ov <<< "${w#*:}"
  $py bench/run.py "${common[@]}" "${ov[@]}" "${extra[@]}" selector=oracle seed=0 stage=select \
    model.device="${BUILD_DEVICE:-cuda}" selector.batch_size=4096 results_dir="$work/$name" \
    > "$work/$name-score.log" 2>&1 &
done
wait
for w in "$@"; do
  name=${w%%:*}
  tail -n 2 "$work/$name-score.log" | sed "s/^/  $name: /" | tee -a "$out/probe.log"
done

log "2/3 GRPO on the CPU cores: seeds ${SEEDS:-0 1}"
for w in "$@"; do
  name=${w%%:*}
  read -r -a ov <<< "${w#*:}"
  for sel in oracle random; do
    for seed in ${SEEDS:-0 1}; do
      timeout $((deadline - (SECONDS - start))) \
        $py bench/run.py "${common[@]}" "${ov[@]}" "${extra[@]}" selector=$sel seed="$seed" \
        model.device=cpu model.threads=1 results_dir="$work/$name" \
        > "$work/$name-$sel-$seed.log" 2>&1 &
    done
  done
done
wait
log "3/3 pack"
for w in "$@"; do
  name=${w%%:*}
  for f in "$work/$name"-*.log; do tail -n 1 "$f" | sed "s|^|  $(basename "$f"): |"; done | tee -a "$out/probe.log"
done
(cd "$work" && tar czf "$out/probe_runs.tar.gz" --exclude='final' --exclude='checkpoint-*' \
  --exclude='eval_samples' --exclude='subset_*' --exclude='cache' ./*.log */runs models/*/ufo_rl_recipe.json)
for d in "$work"/models/tiny-*; do
  [ -d "$d" ] && (cd "$work/models" && tar czf "$out/$(basename "$d").tar.gz" "$(basename "$d")")
done
log "done"
