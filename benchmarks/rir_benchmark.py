"""Separation in measured rooms: the bundled test speakers convolved with a database of measured impulse responses,
scored on mic 1 for shipped or trained models (the `Separator` API, K = 2 given), the oracle dominant-source (DS)
mask and the spatial label masks of the mic pair.

    python benchmarks/rir_benchmark.py --rirdb <RealRoomBRIRs clone> [--mixtures 200] [--model fm2-bpd]
        [--model runs/x/best.pt] [--rooms Room_A,Anechoic] [--gender fm] [--seed 0] [--csv rir_benchmark.csv]

Database: the University of Surrey real-room BRIRs (``benchmarks/rirdb.py``: layout, licence, how to get it). Mic 1
and mic 2 are the two ears of a head and torso simulator (receivers 0.18 m apart with the head between them: the
largest inter-mic delay is ~11.8 samples at 16 kHz, against 0.47 for the paper's 1 cm pair, so the phase difference
wraps above ~680 Hz and the labels are wrapped-phase labels).

Mixture i (paired across rooms: the same speech, gains and positions in every room):

- speakers, utterances, 2 s offsets where each speaker talks, and gains are those of mixture i of the project's
  ``<gender>2`` test set (:meth:`spatialdc.pipeline.planner.Planner.plan_one`, split ``test``, keyed by the seed; with
  seed 0 these are the committed specs), the angles of those specs unused;
- two source positions of the database at least ``--min-angle`` degrees apart, drawn with
  :func:`~spatialdc.pipeline.rng.rng_for` ``(seed, "rir-benchmark", dataset, i)``;
- each segment (with its ``DELAY_MARGIN`` samples of context, :func:`spatialdc.pipeline.render.read_segment`) is
  leveled to unit RMS, scaled by its gain and convolved with its position's impulse responses at both mics; the
  room's measurement latency (the earliest direct sound, :func:`rirdb.direct_onset`) is removed, so that, as in
  ``render.py`` for simulated rooms, the images line up with the dry segment apart from the propagation delay, the
  same for the mixture and the references. References: each source's reverberant image at mic 1.

Methods, each scored with BSS Eval v3 (:func:`spatialdc.pipeline.metrics.bss_eval_sets`) against the mic-1
references, SDRi over the unprocessed mic-1 mixture:

- each ``--model``: ``Separator(...).separate(mic1, 16000, num_speakers=2)``;
- ``oracle_ds``: binary masks of the dominant source at mic 1 (eq. 4);
- ``labels``: binary masks of the spatial labels of the pair's NPD (:func:`spatialdc.pipeline.labels.spatial_labels`
  with the largest measured direct-path delay of the room as the delay range), and their accuracy against DS on the
  non-silent bins (``bpd_accuracy``, best permutation).

Prints mean +- 95 % CI (1.96 standard errors over sources, as dceval) per room and method; writes one CSV row per
mixture, room, method and source.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve
from tqdm.auto import tqdm

import rirdb  # benchmarks/rirdb.py, beside this script (the database reader)
from spatialdc.pipeline import features, label_quality, labels, manifest, metrics, specs
from spatialdc.pipeline.planner import Planner
from spatialdc.pipeline.acoustics import DELAY_MARGIN
from spatialdc.pipeline.atomic import write_text_atomic
from spatialdc.pipeline.render import read_segment
from spatialdc.pipeline.rng import rng_for

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"
MANIFEST = ROOT / "data_manifests" / "corpora" / "librispeech-clips.csv"
SAMPLE_RATE = 16000
NUM_SOURCES = 2
ORACLES = ("oracle_ds", "labels")


@dataclass(frozen=True)
class RirMixture:
    """One benchmark mixture, the same in every room.

    Attributes:
        spec: the project's test spec of this index (speakers, utterances, offsets in samples, gains).
        azimuths_deg: (2,) stored azimuths of the two source positions (one per source, in source order).
    """

    spec: specs.MixtureSpec
    azimuths_deg: tuple[float, float]


def common_azimuths(db: dict[str, rirdb.RoomRirs]) -> np.ndarray:
    """Azimuths (degrees, rounded to 0.1) measured in every room, sorted.

    Raises:
        ValueError: fewer than two in common.
    """
    sets = [set(np.round(r.azimuth_deg, 1).tolist()) for r in db.values()]
    common = np.array(sorted(set.intersection(*sets)))
    if common.size < 2:
        raise ValueError(f"rooms {sorted(db)} share {common.size} source azimuth(s); two sources need two")
    return common


def lateral(azimuth_deg: np.ndarray | float) -> np.ndarray:
    """Stored azimuths (0..360) as lateral angles in -180..180 (the database's -90..90)."""
    a = np.asarray(azimuth_deg, dtype=np.float64) % 360
    return np.where(a > 180, a - 360, a)


def draw_positions(rng: np.random.Generator, azimuths: np.ndarray, min_angle_deg: float) -> tuple[float, float]:
    """Two distinct azimuths whose lateral angles are at least ``min_angle_deg`` apart (rejection sampling).

    Raises:
        ValueError: no two positions are that far apart.
    """
    lat = lateral(azimuths)
    if np.ptp(lat) < min_angle_deg:
        raise ValueError(f"no two source positions are {min_angle_deg} degrees apart (lateral angles "
                         f"{lat.min():.0f}..{lat.max():.0f}); use a smaller --min-angle")
    while True:
        a, b = rng.choice(azimuths.size, size=NUM_SOURCES, replace=False)
        if abs(lat[a] - lat[b]) >= min_angle_deg:
            return float(azimuths[a]), float(azimuths[b])


def plan_mixtures(planner: Planner, gender: str, count: int, azimuths: np.ndarray, seed: int,
                  min_angle_deg: float) -> list[RirMixture]:
    """Mixtures 0..count-1: the test specs of the project (speech, offsets, gains) and two positions each."""
    planner.check(gender, NUM_SOURCES, "test")
    out = []
    for i in range(count):
        spec = planner.plan_one(gender, NUM_SOURCES, "test", i)
        rng = rng_for(seed, "rir-benchmark", spec.dataset, i)
        out.append(RirMixture(spec, draw_positions(rng, azimuths, min_angle_deg)))
    return out


def render_in_room(mix: RirMixture, room: rirdb.RoomRirs, mics: tuple[int, int],
                   corpus_dir: Path = CORPUS) -> tuple[np.ndarray, np.ndarray]:
    """Convolve a mixture's sources with a room's measured impulse responses.

    Returns:
        ((2, S) float64 mic 1 and mic 2, (N, S) float64 each source's image at mic 1: the references), S =
        ``spec.num_samples``.

    Raises:
        ValueError: a silent source segment, or the room's sample rate is not the spec's.
    """
    spec, m = mix.spec, DELAY_MARGIN
    if room.sample_rate != spec.sample_rate:
        raise ValueError(f"room {room.room} is at {room.sample_rate} Hz, the mixtures at {spec.sample_rate} Hz")
    s = spec.num_samples
    segs = np.stack([read_segment(spec.source_path(i, corpus_dir), o, s, spec.sample_rate)
                     for i, o in enumerate(spec.offsets)])  # (N, S + 2 m)
    rms = np.sqrt(np.mean(segs[:, m: m + s] ** 2, axis=1))  # (N,)
    if np.any(rms < 1e-6):
        raise ValueError(f"mixture {spec.mixture_id}: a source segment is silent")
    segs = segs * (np.asarray(spec.gains) / rms)[:, None]
    index = {round(float(a), 1): p for p, a in enumerate(room.azimuth_deg)}
    start = m + room.onset
    images = np.zeros((spec.num_speakers, 2, s))  # (N, 2, S)
    for i, az in enumerate(mix.azimuths_deg):
        for c, mic in enumerate(mics):
            full = fftconvolve(segs[i], room.irs[index[round(az, 1)], mic])
            part = full[start: start + s]
            images[i, c, : part.shape[0]] = part
    return images.sum(axis=0), images[:, 0]


def score_mixture(mixture: np.ndarray, refs: np.ndarray, separators: dict, max_delay_samples: float,
                  rng: np.random.Generator) -> tuple[dict[str, metrics.Scores], metrics.Scores, float]:
    """Separate mic 1 with every model and the two oracle masks, and score all against the references.

    Args:
        mixture: (2, S) mic 1 and mic 2. refs: (N, S) images at mic 1. separators: name -> ``Separator``.
        max_delay_samples: the pair's delay range for the spatial labels. rng: the K-means generator of the labels.

    Returns:
        (method -> Scores, Scores of the unprocessed mic 1, accuracy of the spatial labels against DS on the
        non-silent bins).
    """
    n, mic1 = refs.shape[0], mixture[0]
    spectra = features.stft(np.concatenate([mixture, refs]))  # (2 + N, F, T)
    active = features.active_bins(np.abs(spectra[0]))
    ds = labels.ds_labels(spectra[2:])
    spatial = labels.spatial_labels(features.npd(spectra[0], spectra[1]), active, n, max_delay_samples, rng)
    accuracy = label_quality.permutation_accuracy(spatial, ds, n, active)
    masks = np.concatenate([features.binary_masks(lab, n) for lab in (ds, spatial)])  # (2 N, F, T)
    oracle = np.split(features.apply_masks(mic1, masks), 2)  # one STFT of mic 1 for both oracles
    stems = [sep.separate(mic1, SAMPLE_RATE, num_speakers=n) for sep in separators.values()]  # (N, S) each
    base, *scores = metrics.bss_eval_sets(refs, [np.tile(mic1, (n, 1))] + stems + oracle)
    return dict(zip(list(separators) + list(ORACLES), scores)), base, accuracy


def mixture_rows(mix: RirMixture, room: rirdb.RoomRirs, mics: tuple[int, int], scores: dict, base: metrics.Scores,
                 accuracy: float) -> list[dict]:
    """CSV rows of one mixture in one room: one per method and source (reference order)."""
    spec, lat = mix.spec, lateral(mix.azimuths_deg)
    common = {"mixture_id": spec.mixture_id, "room": room.room, "rt60_s": room.rt60_s, "mics": f"{mics[0]},{mics[1]}",
              "mic_spacing_m": room.spacing_m(mics), "lateral_deg": f"{lat[0]:g},{lat[1]:g}",
              "speakers": ",".join(spec.speakers), "genders": ",".join(spec.genders),
              "gains": ",".join(f"{g:.4f}" for g in spec.gains), "bpd_accuracy": accuracy}
    rows = []
    for method, sc in scores.items():
        for j in range(len(sc.sdr)):
            rows.append(dict(common, method=method, source=j, sdr=sc.sdr[j], sir=sc.sir[j], sar=sc.sar[j],
                             si_sdr=sc.si_sdr[j], sdr_mixture=base.sdr[j], sdri=sc.sdr[j] - base.sdr[j],
                             si_sdri=sc.si_sdr[j] - base.si_sdr[j], silent_reference=bool(np.isnan(sc.sdr[j]))))
    return rows


def run(mixtures: list[RirMixture], db: dict[str, rirdb.RoomRirs], separators: dict, mics: tuple[int, int],
        seed: int, corpus_dir: Path = CORPUS, progress: bool = True) -> list[dict]:
    """Every mixture in every room, every method scored: the CSV rows. Runs on one thread (torch and BLAS), as
    the project's evaluation does per process."""
    rows = []
    delays = {name: room.max_delay_samples(mics) for name, room in db.items()}
    with features.single_threaded(), tqdm(total=len(mixtures) * len(db), disable=not progress,
                                          unit="mixture") as bar:
        for mix in mixtures:
            for name, room in db.items():
                mixture, refs = render_in_room(mix, room, mics, corpus_dir)
                rng = rng_for(seed, "rir-benchmark", mix.spec.dataset, mix.spec.index, name, "labels")
                scores, base, accuracy = score_mixture(mixture, refs, separators, delays[name], rng)
                rows += mixture_rows(mix, room, mics, scores, base, accuracy)
                bar.update()
    return rows


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, 95 % CI half-width = 1.96 standard errors, count) over the finite values."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"), v.size


def summary_table(rows: list[dict], db: dict[str, rirdb.RoomRirs], mics: tuple[int, int]) -> str:
    """Markdown table: per room and method, SDRi and SI-SDRi (mean +- 95 % CI), SDR, and the labels' accuracy."""
    lines = ["| room (RT60, spacing, max delay) | method | SDRi (dB) | SI-SDRi (dB) | SDR (dB) | accuracy vs DS | n |",
             "|---|---|---|---|---|---|---|"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for name, room in db.items():
        where = (f"{name} ({room.rt60_s:.2f} s, {room.spacing_m(mics):.2f} m, "
                 f"{room.max_delay_samples(mics):.1f} samples)")
        for method in methods:
            sel = [r for r in rows if r["room"] == name and r["method"] == method]
            sdri, sisdri, sdr = (mean_ci(r[k] for r in sel) for k in ("sdri", "si_sdri", "sdr"))
            acc = ""
            if method == "labels":
                a = mean_ci(r["bpd_accuracy"] for r in sel if r["source"] == 0)
                acc = f"{100 * a[0]:.1f} +- {100 * a[1]:.1f} %"
            lines.append(f"| {where} | {method} | {sdri[0]:.2f} +- {sdri[1]:.2f} | {sisdri[0]:.2f} +- {sisdri[1]:.2f} "
                         f"| {sdr[0]:.2f} | {acc} | {sdri[2]} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    """All rows as one CSV file, written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def load_separators(models: list[str]) -> dict:
    """name -> Separator: a shipped model's name (``spatialdc.models``) or a checkpoint path."""
    from spatialdc.eval import Separator

    return {m: (Separator(m, name=m) if Path(m).is_file() else Separator.from_pretrained(m)) for m in models}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rirdb", type=Path, required=True,
                    help="Folder of the database (UniS_<room>_BRIR_<16|48>k.sofa files; see benchmarks/rirdb.py).")
    ap.add_argument("--mixtures", type=int, default=200, help="Mixtures, each scored in every room [200].")
    ap.add_argument("--model", action="append", help="Shipped model name or checkpoint path; repeat for several "
                                                     "[fm2-bpd].")
    ap.add_argument("--rooms", help="Comma-separated rooms of the database [all in the folder].")
    ap.add_argument("--gender", choices=specs.DATASET_GENDERS, default="fm",
                    help="Gender mix of the speaker pairs [fm].")
    ap.add_argument("--mics", default="0,1", help="The two receivers of the database, mic 1 first [0,1].")
    ap.add_argument("--min-angle", type=float, default=specs.RenderConfig().min_angle_deg,
                    help="Least angle (degrees) between the two source positions [10].")
    ap.add_argument("--seed", type=int, default=0, help="Seed of every draw; 0 gives the committed test specs [0].")
    ap.add_argument("--csv", type=Path, default=Path("rir_benchmark.csv"),
                    help="Where the per-source rows go [rir_benchmark.csv].")
    ap.add_argument("--quiet", action="store_true", help="No progress bar.")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    mics = tuple(int(x) for x in args.mics.split(","))
    db = rirdb.read_database(args.rirdb, SAMPLE_RATE, args.rooms.split(",") if args.rooms else None)
    if len(mics) != 2 or mics[0] == mics[1] or max(mics) >= min(r.irs.shape[1] for r in db.values()):
        raise ValueError(f"--mics {args.mics}: give two different receivers of the database")
    utts = manifest.read_manifest(MANIFEST)
    planner = Planner(utts, lambda u: manifest.load_audio(u, CORPUS, SAMPLE_RATE), specs.RenderConfig(),
                            args.seed)
    mixtures = plan_mixtures(planner, args.gender, args.mixtures, common_azimuths(db), args.seed, args.min_angle)
    separators = load_separators(args.model or ["fm2-bpd"])
    t0 = time.perf_counter()
    rows = run(mixtures, db, separators, mics, args.seed, progress=not args.quiet)
    write_csv(args.csv, rows)
    print(f"{len(mixtures)} {mixtures[0].spec.dataset} test mixtures x {len(db)} room(s) of {args.rirdb}, mics "
          f"{mics}, seed {args.seed}: {time.perf_counter() - t0:.0f} s; rows in {args.csv}")
    print(summary_table(rows, db, mics))


if __name__ == "__main__":
    main()
