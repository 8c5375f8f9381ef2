#!/usr/bin/env bash
# Fetch, here, the Python packages benchmarks/gpu.sh needs on the GPU machine whose image lacks them, into
# .gpu-wheels/ (ignored by git; the device tool's `carry: [".gpu-wheels"]` takes it along; about 4.3 MB):
#
#   soundfile 0.14.0 (reads the bundled corpus's FLAC; its wheel bundles libsndfile), cffi 2.1.1 (soundfile's C
#   binding, cp312) and pycparser 3.12 (cffi's dependency); and hdf5plugin 7.1.0's Bitshuffle filter alone, the
#   shards' compression (pipeline/shards.py), as hdf5plugin-bitshuffle.zip: the whole wheel is 46 MB, most of it
#   other filters; without them `import hdf5plugin` logs "Cannot initialize filter ..." for each and goes on.
#
# The image has the rest that training, rendering and dceval import: torch, numpy, scipy, h5py, scikit-learn,
# threadpoolctl, click, tqdm, matplotlib (KINDS.md). Not carried: dask (gpu.py renders with dcgen --workers 0),
# pyroomacoustics (anechoic rooms only), mir_eval and fast_bss_eval (dceval's default BSS Eval is our own), lhotse.
# The versions are those of the project's environment; the machine runs Python 3.12 on x86-64.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu-wheels
mkdir -p "$dest"
fetch() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$@"
}
fetch "$dest" soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
tmp=$(mktemp -d)
fetch "$tmp" hdf5plugin==7.1.0
python3 - "$tmp"/hdf5plugin-*.whl "$dest/hdf5plugin-bitshuffle.zip" <<'PY'
import sys
import zipfile

source, target = sys.argv[1:3]
with zipfile.ZipFile(source) as wheel, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
    for name in wheel.namelist():
        other_filter = name.startswith("hdf5plugin/plugins/") and "bshuf" not in name
        if not (other_filter or name.endswith("/test.py")):
            out.writestr(name, wheel.read(name))
PY
rm -rf "$tmp"
du -cb "$dest"/*
