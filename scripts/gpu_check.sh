#!/usr/bin/env bash
# The GPU check: the training side of tickettune on one CUDA GPU, in about 5 minutes (at most 8), figures
# into OUT_DIR. Needs no Ray, Optuna, W&B, network or shared data folder: it runs on a machine with
# torch (CUDA), transformers, numpy, pyarrow, pandas, scikit-learn, scipy and pytest, plus the bundle
# (git-ignored; `datasets` wheels, the BERT vocabulary, SST-2 and WikiText-2) made beforehand, online, by
#     python scripts/gpu/check.py prepare gpu_bundle
#
#   scripts/gpu_check.sh OUT_DIR [--smoke]
#
# Steps (each logged to OUT_DIR/<step>.log, timed in OUT_DIR/steps.tsv):
#   cuda      the device (OUT_DIR/device.json); without CUDA the check stops here and exits 3
#   install   the bundle's wheels the machine lacks, into a temporary folder (install.json)
#   tests     pytest -m gpu: bf16/fp16 train steps, GradScaler, placement, pruned == masked dense, PLD, nccl+DDP
#   bert      a random BERT-base (12 layers, 12 heads, hidden 768, FFN 3072) saved with the vocabulary
#   ticket    scripts/bench/ticket_speed.py on it, fp32 (TF32) and bf16, batch 32 x 128 (ticket_speed.json)
#   pld       scripts/bench/pld_speed.py at BERT-base size, fp32 and bf16 (pld_speed.json)
#   fastpath  scripts/gpu/fast_path.py: dense vs ticket at 32x128 and 128x128, bf16, eager and torch.compile
#             in CUDA graphs (mode reduce-overhead), compile time apart (fast_path.json)
#   flow      one EarlyBERT trial (search -> early bird -> prune -> ticket -> eval) on the GPU (flow.json)
#   ddp       the same flow with PLD inside a one-process nccl group, model wrapped in DDP (ddp.json)
#   summary   summary.json and summary.txt, with the GPU's name; exit 0 only if every step passed
#
# --smoke runs every step on the CPU at toy sizes, to test this script where there is no GPU: its
# figures measure nothing. Environment: PYTHON (default python3), GPU_CHECK_BUNDLE (default gpu_bundle).
set -uo pipefail

usage() { echo "usage: $0 OUT_DIR [--smoke]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1
SMOKE=0
[ "${2:-}" = "--smoke" ] && SMOKE=1
[ $# -le 2 ] || usage
[ $# -eq 1 ] || [ $SMOKE -eq 1 ] || usage

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
BUNDLE=${GPU_CHECK_BUNDLE:-$REPO/gpu_bundle}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
: > "$OUT/steps.tsv"
rm -f "$OUT/SMOKE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# tickettune importable from this checkout without installing it (the package maps its three folders)
mkdir -p "$WORK/shim/tickettune" "$WORK/site"
: > "$WORK/shim/tickettune/__init__.py"
for d in searcher trainables spaces; do ln -s "$REPO/$d" "$WORK/shim/tickettune/$d"; done
export PYTHONPATH="$WORK/shim:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HOME="$WORK/hf" HF_DATASETS_DISABLE_PROGRESS_BARS=1 WANDB_MODE=disabled

step() {  # step NAME TIMEOUT_S CMD...: run, log, time; the check goes on after a failure
  local name=$1 limit=$2; shift 2
  local t0 rc tenths
  t0=$(date +%s%N)
  echo "== $name" >&2
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  tenths=$(( ($(date +%s%N) - t0) / 100000000 ))
  printf '%s\t%s\t%d.%d\n' "$name" "$rc" $((tenths / 10)) $((tenths % 10)) >> "$OUT/steps.tsv"
  [ $rc -eq 0 ] || { echo "   $name FAILED (rc=$rc); last lines of $OUT/$name.log:" >&2; tail -5 "$OUT/$name.log" >&2; }
  return $rc
}

# 1. the device
if [ $SMOKE -eq 1 ]; then
  touch "$OUT/SMOKE"
  "$PY" "$REPO/scripts/gpu/check.py" cuda --json "$OUT/device.json" > "$OUT/cuda.log" 2>&1
  echo "gpu_check: --smoke: every step on the CPU at toy sizes; nothing measured" >&2
  DEVICE=cpu
else
  if ! step cuda 120 "$PY" "$REPO/scripts/gpu/check.py" cuda --json "$OUT/device.json"; then
    echo "gpu_check: NO CUDA DEVICE: nothing was checked or measured ($(tail -1 "$OUT/cuda.log"))" >&2
    echo "NO CUDA DEVICE: nothing was checked or measured" > "$OUT/summary.txt"
    exit 3
  fi
  cat "$OUT/cuda.log" >&2
  DEVICE=cuda
fi

# 2. the bundle
if [ ! -d "$BUNDLE/wheels" ] || [ ! -d "$BUNDLE/data" ] || [ ! -d "$BUNDLE/tokenizer" ]; then
  echo "gpu_check: no bundle at $BUNDLE: run 'python scripts/gpu/check.py prepare gpu_bundle' online first" >&2
  exit 4
fi
step install 300 "$PY" "$REPO/scripts/gpu/check.py" install "$BUNDLE" "$WORK/site" --json "$OUT/install.json" \
  || { "$PY" "$REPO/scripts/gpu/check.py" summary "$OUT" >&2; exit 5; }
export TICKETTUNE_DATA="$BUNDLE/data"

# 3. the gpu-marked tests
step tests 240 "$PY" -m pytest -m gpu "$REPO/tests/trainables/training/test_gpu.py" -q -p no:cacheprovider -rs \
  --junitxml="$OUT/tests.xml" --rootdir "$REPO"
"$PY" - "$OUT" <<'EOF' || true
import json, sys, xml.etree.ElementTree as ET
out = sys.argv[1]
try:
    root = ET.parse(f"{out}/tests.xml").getroot()
    s = root if root.tag == "testsuite" else root.find("testsuite")
    json.dump({k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}, open(f"{out}/tests.json", "w"))
except Exception as e:
    print("no test report:", e)
EOF

# 4. a random BERT-base, then the benchmarks at that size
SMOKE_FLAG=()
[ $SMOKE -eq 1 ] && SMOKE_FLAG=(--smoke)
step bert 300 "$PY" "$REPO/scripts/gpu/check.py" bert "$WORK/bert" --tokenizer "$BUNDLE/tokenizer" "${SMOKE_FLAG[@]}"
PREC=()  # the benchmarks time fp32 and bf16 side by side where they take --precision
if [ $SMOKE -eq 1 ]; then
  TICKET_SIZE=(--steps 2 --warmup 1 --batch-size 4 --seq-len 16)
  PLD_SIZE=(--steps 2 --warmup 1 --batch-size 2 --seq-len 32 --layers 2 --hidden 64 --heads 4 --ffn 128)
else
  TICKET_SIZE=(--steps 30 --warmup 5 --batch-size 32 --seq-len 128)
  PLD_SIZE=(--steps 30 --warmup 5 --batch-size 32 --seq-len 128 --layers 12 --hidden 768 --heads 12 --ffn 3072)
fi
for b in ticket pld; do
  script="$REPO/scripts/bench/${b}_speed.py"
  PREC=()
  "$PY" "$script" --help 2>/dev/null | grep -q -- "--precision" && PREC=(--precision fp32,bf16)
  if [ $b = ticket ]; then
    step ticket 240 "$PY" "$script" --model "$WORK/bert" --device $DEVICE "${PREC[@]}" "${TICKET_SIZE[@]}" \
      --json "$OUT/ticket_speed.json"
  else
    step pld 240 "$PY" "$script" --tokenizer "$WORK/bert" --device $DEVICE "${PREC[@]}" "${PLD_SIZE[@]}" \
      --json "$OUT/pld_speed.json"
  fi
done

FAST=(--modes eager,cudagraphs)
[ $SMOKE -eq 1 ] && FAST=(--smoke)
step fastpath 360 "$PY" "$REPO/scripts/gpu/fast_path.py" --model "$WORK/bert" --device $DEVICE "${FAST[@]}" \
  --json "$OUT/fast_path.json"

# 5. one EarlyBERT trial on the GPU, then the same inside a one-process nccl group (DDP)
FLOW=(--model "$WORK/bert" --data-root "$BUNDLE/data" --device $DEVICE "${SMOKE_FLAG[@]}")
step flow 300 "$PY" "$REPO/scripts/gpu/check.py" flow "$OUT" "${FLOW[@]}"
step ddp 300 "$PY" "$REPO/scripts/gpu/check.py" ddp "$OUT" "${FLOW[@]}"

# 6. the summary; exit 0 only if every step passed
"$PY" "$REPO/scripts/gpu/check.py" summary "$OUT"
