#!/usr/bin/env bash
# The prepared GPU run of issue 23 on a bare GPU machine (benchmarks/gpu.py says what it checks and measures):
#
#   bash benchmarks/gpu.sh [--minutes 6] [other gpu.py options]      # results in $OUT (default $TMPDIR/gpu-out)
#
# Where the packages the image lacks are not importable, it installs them from .gpu-wheels/ (made here by
# benchmarks/gpu_wheels.sh, carried with the device tool's `carry`) into $TMPDIR/gpu-site; where the project is not
# installed, it installs it without dependencies (editable: the image's torch, numpy, h5py... serve). Then gpu.py,
# its output also in $OUT/gpu.log. Runs on a CPU machine too: bash benchmarks/gpu.sh --device cpu --minutes 1
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
tmp="${TMPDIR:-/tmp}"
site="$tmp/gpu-site"
if ! python3 -c "import soundfile, hdf5plugin" 2>/dev/null; then
  [ -d .gpu-wheels ] || { echo "soundfile or hdf5plugin missing and no .gpu-wheels/: run benchmarks/gpu_wheels.sh and carry .gpu-wheels" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu-wheels/*.whl
  python3 -m zipfile -e .gpu-wheels/hdf5plugin-bitshuffle.zip "$site"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c "import spatialdc.trainer" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
out="${OUT:-$tmp/gpu-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 benchmarks/gpu.py --out "$out" "$@" 2>&1 | tee "$out/gpu.log"
