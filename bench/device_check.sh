#!/usr/bin/env bash
# The GPU checks, as one short script for a machine with a CUDA GPU (a few minutes):
#   1. the tests marked `cuda` (tests/engine/test_cuda.py): scores and maps on cuda equal the
#      CPU's, and moving a scored session to cuda recomputes no stage;
#   2. the fast engine tests as they are: their sessions use device "auto", which is cuda on
#      this machine, so they run the engine's tensor code on the GPU (real-data, slow and GUI
#      tests are left out).
# Exits non-zero when there is no GPU: on a machine without one the cuda tests would only skip.
#
#   bash bench/device_check.sh            # from the repository root or anywhere
#   PYTHON=/path/to/python bash bench/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
ENGINE_LIMIT_S="${ENGINE_LIMIT_S:-420}"  # the engine tests stop here, leaving time to rerun

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader
"$PYTHON" - <<'EOF' || { echo "device_check: torch sees no CUDA GPU; nothing to check" >&2; exit 2; }
import sys
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"available: {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    sys.exit(1)
print("device 0:", torch.cuda.get_device_name(0))
EOF

status=0
echo "== 1/2 pytest -m cuda"
"$PYTHON" -m pytest -q -ra -m cuda tests/engine/test_cuda.py || status=1

echo "== 2/2 fast engine tests on the GPU (device auto = cuda), at most ${ENGINE_LIMIT_S} s"
timeout "$ENGINE_LIMIT_S" "$PYTHON" -m pytest -q -ra -x tests/engine \
  -m "not cuda and not realdata and not slow" || status=1

if [ "$status" -eq 0 ]; then echo "device_check: all passed"; else echo "device_check: FAILED"; fi
exit "$status"
