#!/usr/bin/env bash
# The GPU session (issues 11 and 12): one device call that measures vidprior's Stable Diffusion inference on the
# SD 1.5-sized model against PyTorch in the same call, end to end, then the training bench.
#
#   Here, first:   bash bench/gpu/prepare.sh            (builds dist, packs .gpu/, checks the 64 MiB limit)
#   Device call:   run(command="source .gpu/prelude.sh && bash bench/gpu/session.sh",
#                      carry=[".gpu", "dist"], timeout_s=600)
#   Dry run here:  OUT=$(mktemp -d) VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json \
#                  XDG_RUNTIME_DIR=$(mktemp -d) bash bench/gpu/session.sh --preset tiny --latent 16 --frames 3 \
#                  --size 128 --torch-args "--tiny --device cpu --repeats 3 --skip-train"
#
# Phases, each under its own `timeout`, in this order (what matters most first; the GPU idles during a):
#   a  inputs:   build the preset's model (seeded random weights, float32) and 30 test frames of 512²
#   c  torch:    .gpu/torch-baseline/baseline.py (PyTorch eager fp32/fp16 UNet steps/s, training step)
#   e  cuda:     does the machine's Python have onnxruntime-gpu of onnxruntime-node's version? (measure if so)
#   b  unet:     bench/optimize.ts: each UNet variant's steps/s (host round trip and GPU-resident), its max abs
#                diff vs the original graph, then if time is left the original on the CPU provider and an ORT
#                profile of the fastest correct variant
#   d  stylize:  `vidprior stylize` (dist/cli/main.js) of the frames with the fastest correct variant
#   f  training: issue 12's bench (bench/training.ts), with its own budget
# Results go to $OUT as they finish (what a timeout leaves still comes back; at most 8 files): results.jsonl
# (one JSON line per result), stylize.jsonl (the CLI's --json lines), session.log, summary.md, training/.
set -uo pipefail

PRESET=sd15            # model size: sd15 on the GPU machine, tiny for dry runs
EP=webgpu
TORCH_ARGS=""          # e.g. "--tiny --device cpu" for a dry run without a GPU
VARIANTS=fused,fused-geglu,fused-geglu-fp16,fused-fp16
FRAMES=30 SIZE=512 STEPS=50 STRENGTH=0.45 GUIDANCE=7.5
LATENT=""              # UNet bench latent side (default: the model's, 64 for SD 1.x); smaller for dry runs
# Budgets in seconds (estimates for an H200 in bench/gpu/README.md). The device call stops at 600 s.
INFER_BUDGET=${INFER_BUDGET:-320}   # phases a–e together
TRAIN_BUDGET=${TRAIN_BUDGET:-180}   # phase f
A_BUDGET=${A_BUDGET:-120} C_BUDGET=${C_BUDGET:-60} E_BUDGET=${E_BUDGET:-60} B_BUDGET=${B_BUDGET:-135} D_BUDGET=${D_BUDGET:-140}
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET=$2; shift 2 ;;
    --ep) EP=$2; shift 2 ;;
    --torch-args) TORCH_ARGS=$2; shift 2 ;;
    --variants) VARIANTS=$2; shift 2 ;;
    --frames) FRAMES=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --latent) LATENT=$2; shift 2 ;;
    *) echo "session.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f dist/cli/main.js ] || { echo "session.sh: run from the repo root with dist/ built (bench/gpu/prepare.sh)" >&2; exit 2; }
OUT=${OUT:?session.sh: set OUT to the folder for results}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
RESULTS=$OUT/results.jsonl
WORK=$(mktemp -d /tmp/vidprior-gpu.XXXXXX)
export VIDPRIOR_CACHE_DIR=$WORK/cache
START=$(date +%s)
now() { echo $(( $(date +%s) - START )); }
say() { echo "=== [$(now) s] $*"; }
record() { echo "$1" >> "$RESULTS"; }
# The phase's timeout: its own budget, cut to what is left of the inference budget.
budget() { local want=$1 left=$(( INFER_BUDGET - $(now) )); [ "$left" -lt "$want" ] && want=$left; [ "$want" -lt 1 ] && want=1; echo "$want"; }
# run_phase NAME SECONDS CMD...: runs CMD under timeout (SIGINT first: the CLI stops cleanly), records rc and time.
run_phase() {
  local name=$1 secs=$2; shift 2
  local t0; t0=$(date +%s)
  say "phase $name (timeout ${secs} s): $*"
  timeout -s INT -k 15 "$secs" "$@"
  local rc=$?
  record "{\"phase\":\"status\",\"name\":\"$name\",\"rc\":$rc,\"timedOut\":$([ $rc -eq 124 ] && echo true || echo false),\"seconds\":$(( $(date +%s) - t0 )),\"budget\":$secs}"
  say "phase $name: rc $rc after $(( $(date +%s) - t0 )) s"
  return 0
}

# GPU memory: nvidia-smi sampled every 200 ms during a phase; the peak is recorded (skipped without nvidia-smi).
POLLER=""
gpu_watch_start() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$WORK/mem-$1.csv" 2>/dev/null &
  POLLER=$!
}
gpu_watch_stop() {
  if [ -z "$POLLER" ]; then
    record "{\"phase\":\"gpu-memory\",\"name\":\"$1\",\"note\":\"nvidia-smi not found: no GPU memory figure\"}"
    return 0
  fi
  kill "$POLLER" 2>/dev/null; wait "$POLLER" 2>/dev/null; POLLER=""
  local peak; peak=$(sort -n "$WORK/mem-$1.csv" | tail -1)
  record "{\"phase\":\"gpu-memory\",\"name\":\"$1\",\"peakMiB\":${peak:-null},\"samples\":$(wc -l < "$WORK/mem-$1.csv")}"
}
cleanup() { [ -n "$POLLER" ] && kill "$POLLER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

say "vidprior GPU session: preset $PRESET, ep $EP, node $(node --version), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
record "{\"phase\":\"session\",\"preset\":\"$PRESET\",\"ep\":\"$EP\",\"date\":\"$(date -u +%FT%TZ)\",\"gpu\":\"$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)\",\"cpus\":$(nproc)}"

# Built models: in /dev/shm when it has room (writes of 10+ GB are the slow part of phases a and b), linked from
# .cache/bench-models where bench/common.ts (and so the training bench) looks for them.
MODELS=.cache/bench-models
if [ ! -e "$MODELS" ] && [ "$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)" -ge 40 ] 2>/dev/null; then
  mkdir -p /dev/shm/vidprior-bench-models .cache && ln -s /dev/shm/vidprior-bench-models "$MODELS"
  say "models in /dev/shm (linked from $MODELS)"
fi
MODEL_DIR=$MODELS/$PRESET-float32

# a. The model and the frames.
run_phase inputs "$(budget $A_BUDGET)" node dist/bench/gpu/inputs.js --preset "$PRESET" --models "$MODELS" \
  --frames "$WORK/frames" --count "$FRAMES" --size "$SIZE" --jsonl "$RESULTS"

# c. PyTorch on the same job, same call.
run_phase torch "$(budget $C_BUDGET)" bash -c "PYTHONUNBUFFERED=1 python3 .gpu/torch-baseline/baseline.py $TORCH_ARGS > $WORK/torch.out"
python3 -c 'import json,sys
lines=[l for l in open(sys.argv[1]).read().splitlines() if l.startswith("{")]
print(json.dumps({"phase":"torch",**json.loads(lines[-1])}) if lines else json.dumps({"phase":"torch","error":"no JSON line"}))' \
  "$WORK/torch.out" >> "$RESULTS" 2>/dev/null || record '{"phase":"torch","error":"no output"}'

# e. The CUDA provider: onnxruntime-gpu in the machine's Python, of onnxruntime-node's version?
run_phase cuda "$(budget $E_BUDGET)" bash bench/gpu/cuda-check.sh "$RESULTS" "$MODEL_DIR"

# b. UNet variants (the deadline leaves the bench time to write its last records).
B=$(budget $B_BUDGET)
gpu_watch_start unet
run_phase unet "$B" node dist/bench/optimize.js --ep "$EP" --model "$MODEL_DIR" --batch 2 --variants "$VARIANTS" ${LATENT:+--size $LATENT} \
  --deadline $(( B - 10 )) --cpu-check --profile --cache "$VIDPRIOR_CACHE_DIR" --jsonl "$RESULTS" --out "$WORK/optimize"
gpu_watch_stop unet

# d. End to end with the fastest correct variant (the default graph when none was measured correct).
BEST=$(node -e 'const fs=require("fs");let b=null;for(const l of fs.readFileSync(process.argv[1],"utf8").split("\n")){if(!l)continue;const r=JSON.parse(l);if(r.phase==="unet"&&r.correct&&r.stepsPerSecondResident&&(!b||r.stepsPerSecondResident>b.stepsPerSecondResident))b=r}process.stdout.write(b?b.variant:"")' "$RESULTS" 2>/dev/null)
record "{\"phase\":\"stylize-variant\",\"variant\":\"${BEST:-default}\"}"
gpu_watch_start stylize
run_phase stylize "$(budget $D_BUDGET)" env ${BEST:+VIDPRIOR_UNET_VARIANT=$BEST} node dist/cli/main.js stylize \
  --model "$MODEL_DIR" --input "$WORK/frames" --output "$WORK/styled" --prompt "an oil painting of a city at night" \
  --strength "$STRENGTH" --steps "$STEPS" --guidance "$GUIDANCE" --ep "$EP" --json > "$OUT/stylize.jsonl"
gpu_watch_stop stylize

# f. Training (issue 12): its own budget, whatever the inference phases left.
T=$TRAIN_BUDGET; LEFT=$(( INFER_BUDGET + TRAIN_BUDGET + 20 - $(now) )); [ "$LEFT" -lt "$T" ] && T=$LEFT
if [ -f dist/bench/training.js ] && [ "$T" -gt 10 ]; then
  gpu_watch_start training
  run_phase training "$T" node dist/bench/training.js --gpu --preset "$PRESET" --ep "$EP" --out "$OUT/training"
  gpu_watch_stop training
else
  record "{\"phase\":\"status\",\"name\":\"training\",\"skipped\":\"dist/bench/training.js missing or no time left ($T s)\"}"
fi

say "summary"
node dist/bench/gpu/summary.js --results "$RESULTS" --stylize "$OUT/stylize.jsonl" --out "$OUT/summary.md"
say "done in $(now) s"
