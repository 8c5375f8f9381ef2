#!/usr/bin/env bash
# Lever forks of a campaign model (issue 22, item 3): continuations of one checkpoint past the knee of its curve, at
# equal steps, one lever each, scored on the same 900 validation mixtures (300 each of f2, m2, fm2: validation
# speakers), so that levers against over-fitting are compared where over-fitting shows.
#
#   bash benchmarks/lever_forks.sh FORK_CHECKPOINT LR STEPS LEVER...     # e.g. runs/fork/any-bpd-e6.pt 1e-3 4500 base adults
#
# LEVER: base (none), vtlp (--freq-warp 0.1), adults (data/union-adults: + speechocean762 speakers >= 16 years),
# speed (data/any-speed: sources speed-perturbed 0.9-1.1), dm (--dynamic-mixing), drop (--dropout 0.5). Data: data/any
# (dcgen render --speakers 2 --gender G --num-mixtures 9000,300,300 --out data/any, G = f, m, fm), and for adults /
# speed the commands in RESULTS.md ("Campaign models"). Runs go to runs/lever-LEVER (re-running resumes), reports to
# runs/eval/lever-LEVER-valid-G.csv; compare them with benchmarks/paired.py. Niced; one training at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE  # idle OpenMP threads sleep instead of spinning when the cores are shared
fork=$1; lr=$2; steps=$3; shift 3
for lever in "$@"; do
  shards='data/any/*2/train-*.h5'; extra=()
  case $lever in
    base) ;;
    adults) shards='data/union-adults/*2/train-*.h5' ;;
    speed) shards='data/any-speed/*2/train-*.h5' ;;
    vtlp) extra=(--freq-warp 0.1) ;;
    dm) extra=(--dynamic-mixing --corpus corpora/librispeech-clips) ;;
    drop) extra=(--dropout 0.5) ;;
    *) echo "unknown lever $lever (base, vtlp, adults, speed, dm, drop)" >&2; exit 2 ;;
  esac
  nice -n 10 dctrain --shards "$shards" --valid 'data/any/*2/valid-*.h5' --target bpd --epochs 1000 --batch-size 8 \
    --hidden 200 --valid-mixtures 0 --lr-schedule plateau --lr "$lr" --cache-gb 9 --threads 2 --max-steps "$steps" \
    --init-from "$fork" --quiet --out "runs/lever-$lever" "${extra[@]}"
  for g in f2 m2 fm2; do
    nice -n 10 dceval --checkpoint "runs/lever-$lever/best.pt" --shards "data/any/$g/valid-*.h5" --max-mixtures 300 \
      --no-oracles --no-plots --examples 0 --quiet --report "runs/eval/lever-$lever-valid-$g.csv"
  done
done
