"""Separate real two-speaker recordings made from the bundled corpus with `dcsep`, and score the stems.

    python benchmarks/dcsep.py --checkpoint runs/x/best.pt [--out stems/] [--pairs 5]

For each of ``--pairs`` female/male pairs of test speakers (the committed manifest's test split), two single-channel
recordings are written as 16 kHz WAV files: a short one (4 s of each speaker, equal RMS, summed) and a long one
(30 s: each speaker's utterances concatenated, summed). Each goes through the `dcsep` command line (chunks of 8 s with
2 s overlap for the long one), and each written stem is scored against the speaker it matches best: SI-SDR of the
stem minus SI-SDR of the recording itself (SI-SDRi, dB). The WAV files stay in ``--out`` to be listened to.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from spatialdc.pipeline.metrics import si_sdr
from spatialdc.pipeline.manifest import load_audio, read_manifest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"
SR = 16000


def speaker_audio(utts: list, seconds: float) -> np.ndarray:
    """A speaker's utterances concatenated (cycled if short) to ``seconds``, unit RMS."""
    need, parts = int(seconds * SR), []
    for u in itertools.cycle(utts):
        parts.append(load_audio(u, CORPUS, SR))
        if sum(p.size for p in parts) >= need:
            break
    y = np.concatenate(parts)[:need].astype(np.float64)
    return y / np.sqrt(np.mean(y**2))


def score(stems: np.ndarray, sources: np.ndarray, mixture: np.ndarray) -> list[float]:
    """SI-SDRi (dB) of each source's best-matching stem under the best permutation (stems (K, S), sources (N, S))."""
    n = sources.shape[0]
    base = si_sdr(sources, np.tile(mixture, (n, 1)))
    best = max(itertools.permutations(range(stems.shape[0]), n),
               key=lambda p: si_sdr(sources, stems[list(p)]).sum())
    return list(si_sdr(sources, stems[list(best)]) - base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", default="dcsep-bench")
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    utts = [u for u in read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv") if u.split == "test"]
    by_speaker: dict[str, list] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, []).append(u)
    females = sorted(s for s, us in by_speaker.items() if us[0].gender == "f")
    males = sorted(s for s, us in by_speaker.items() if us[0].gender == "m")
    results: dict[str, list[float]] = {"4 s": [], "30 s": []}
    for k, (f, m) in enumerate(zip(females[: args.pairs], males[: args.pairs])):
        for label, seconds in (("4 s", 4.0), ("30 s", 30.0)):
            sources = np.stack([speaker_audio(by_speaker[f], seconds), speaker_audio(by_speaker[m], seconds)])
            mixture = sources.sum(0)
            peak = np.abs(mixture).max() / 0.9
            sources, mixture = sources / peak, mixture / peak
            name = f"pair{k}-{f}-{m}-{label.replace(' ', '')}"
            wav = out / f"{name}.wav"
            sf.write(wav, mixture, SR, subtype="FLOAT")
            subprocess.run([sys.executable, "-m", "spatialdc.eval.dcsep", "--checkpoint", args.checkpoint, str(wav),
                            "--out", str(out / name), "--speakers", "2"], check=True, capture_output=True)
            stems = np.stack([sf.read(p, dtype="float64")[0] for p in sorted((out / name).glob("*.wav"))])
            gains = score(stems[:, : mixture.size], sources, mixture)
            results[label].extend(gains)
            print(f"{name}: stems {len(stems)}, SI-SDRi " + " ".join(f"{g:5.2f}" for g in gains) + " dB")
    for label, gains in results.items():
        print(f"{label} recordings: mean SI-SDRi {np.mean(gains):.2f} dB over {len(gains)} speakers "
              f"(min {np.min(gains):.2f}, max {np.max(gains):.2f})")
    print(f"recordings and stems in {out}/")


if __name__ == "__main__":
    main()
