#!/usr/bin/env bash
# What travels to the GPU machine (issue 23): the device tool sends the tracked files and the untracked files git does
# not ignore, plus the carried paths (.gpu-wheels), 64 MiB in all. The repository is larger (the bundled corpus is
# 57 MB, the shipped models 7.7 MB each), so a GPU session leaves behind, for the one device call, what
# benchmarks/gpu.sh does not read: the test speakers' clips (gpu.py renders training and validation mixtures only),
# every shipped model but the one gpu.py continues (models/any-bpd.pt), the 3-speaker dataset specs, the
# speechocean762 manifest and the docs' screenshot. Nothing is deleted or moved: `shrink` untracks those files in the
# index (`git rm --cached`) and ignores them in .git/info/exclude, between marker lines; `restore` undoes both.
#
#   bash benchmarks/gpu_tree.sh shrink     # then the device call: bash benchmarks/gpu.sh --minutes 6, carry .gpu-wheels
#   bash benchmarks/gpu_tree.sh restore    # at once after it; never commit while shrunk
#   bash benchmarks/gpu_tree.sh size       # MiB that would travel now (.gpu-wheels included)
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
[ -f .git ] && exclude="$(git rev-parse --git-path info/exclude)"
begin="# >>> gpu_tree shrink (undo: gpu_tree.sh restore)"
end="# <<< gpu_tree shrink"
limit_mib=64

left_behind() {
  awk -F, 'NR > 1 && $7 == "test" {print "corpora/librispeech-clips/" $2}' data_manifests/corpora/librispeech-clips.csv
  git ls-files 'models/*.pt' 'models/*.count_head.json' | grep -v '^models/any-bpd\.' || true
  git ls-files 'data_manifests/datasets/*/f3/*' 'data_manifests/datasets/*/m3/*' 'data_manifests/datasets/*/fm3/*'
  git ls-files data_manifests/corpora/speechocean762.csv docs/report.png
}

travel_mib() {
  { git ls-files -z --cached --others --exclude-standard; if [ -d .gpu-wheels ]; then find .gpu-wheels -type f -print0; fi; } |
    python3 -c 'import os, sys
paths = [p for p in sys.stdin.buffer.read().split(b"\0") if p]
print(f"{sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) / 2**20:.1f}")'
}

case "${1:-}" in
  shrink)
    grep -qxF "$begin" "$exclude" 2>/dev/null && { echo "already shrunk: run bash benchmarks/gpu_tree.sh restore" >&2; exit 1; }
    git diff --cached --quiet || { echo "the index has staged changes: commit or unstage them first" >&2; exit 1; }
    mapfile -t files < <(left_behind)
    git rm -q --cached -- "${files[@]}"
    { echo "$begin"; printf '/%s\n' "${files[@]}"; echo "$end"; } >> "$exclude"
    size=$(travel_mib)
    echo "left behind ${#files[@]} files (still on disk, untracked and ignored); ${size} MiB travel (limit ${limit_mib})"
    python3 -c "import sys; sys.exit(float('$size') >= $limit_mib)" ||
      { echo "still over ${limit_mib} MiB: leave more behind (edit left_behind in $0)" >&2; exit 1; }
    ;;
  restore)
    grep -qxF "$begin" "$exclude" 2>/dev/null || { echo "not shrunk: nothing to restore"; exit 0; }
    mapfile -t files < <(sed -n "/^$begin\$/,/^$end\$/p" "$exclude" | grep '^/' | sed 's|^/||')
    sed -i "/^$begin\$/,/^$end\$/d" "$exclude"
    git reset -q -- "${files[@]}"
    echo "restored ${#files[@]} files to the index; $(travel_mib) MiB would travel"
    ;;
  size)
    echo "$(travel_mib) MiB would travel (limit ${limit_mib})"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_tree.sh shrink|restore|size" >&2; exit 2 ;;
esac
