"""Seeded mixture specs: every choice that makes one mixture, planned before any rendering.

A :class:`MixtureSpec` is complete: rendering is a pure function of the spec and the corpus audio
(:func:`pipeline.render.render_mixture`). Specs are stored one JSON object per line (JSONL).

Paper setup (Tzinis et al. 2019, Sec. 2.1 and 4.1): N speakers at random angles, pairwise at least
10 degrees apart; gains a_i > 0 with sum 1 (drawn a_i ~ U(0.2, 1), then normalized, as the authors' code);
2 s segments in which every speaker is active.

Leveling: each 2 s segment is scaled to unit RMS before its gain is applied, so the gains alone set the
relative levels. Activity check (:func:`active_offsets`): 25 ms frames with a 10 ms hop; a frame is active
when its energy is within ``ACTIVITY_RANGE_DB`` of the utterance's 99th-percentile frame energy; a segment
is usable when each of its two halves has at least ``ACTIVITY_MIN_FRACTION`` active frames.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .acoustics import ROOM_RT60_RANGE, ROOM_SOURCE_DISTANCE_RANGE, draw_room
from .atomic import atomic_path, write_text_atomic
from .corpus import GENDERS, SPLITS, Utterance
from .rng import rng_for

DATASET_GENDERS = ("f", "m", "fm")
ACTIVITY_FRAME = 400  # samples at 16 kHz = 25 ms
ACTIVITY_HOP = 160  # 10 ms
ACTIVITY_RANGE_DB = 30.0
ACTIVITY_MIN_FRACTION = 0.5
OFFSET_STEP_FRAMES = 5  # candidate offsets every 5 hops = 50 ms
SOUND_SPEED_M_S = 343.0
PAPER_SIZES = {"train": 5400, "valid": 900, "test": 1800}
ROOMS = ("anechoic", "reverberant")


@dataclass(frozen=True)
class RenderConfig:
    """Physical setup shared by all mixtures of a dataset (units in names; defaults = the paper's)."""

    sample_rate: int = 16000
    duration_s: float = 2.0
    mic_spacing_m: float = 0.01
    sound_speed_m_s: float = SOUND_SPEED_M_S
    min_angle_deg: float = 10.0
    gain_low: float = 0.2
    gain_high: float = 1.0
    room: str = "anechoic"
    speed_perturb: float = 0.0  # > 0: each source's speed factor drawn from U(1 - x, 1 + x), to 0.01 (Ko et al. 2015)
    rt60_range_s: tuple[float, float] = ROOM_RT60_RANGE  # reverberant rooms: RT60 drawn from U(low, high)
    source_distance_range_m: tuple[float, float] = ROOM_SOURCE_DISTANCE_RANGE  # and source distances

    def __post_init__(self) -> None:
        for name in ("rt60_range_s", "source_distance_range_m"):
            lo, hi = getattr(self, name)
            object.__setattr__(self, name, (float(lo), float(hi)))  # JSON gives lists
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be 0 < low <= high, got {lo}, {hi}")
        if self.source_distance_range_m[1] > 3.0:
            raise ValueError(f"sources farther than 3 m ({self.source_distance_range_m[1]}) do not fit the drawn "
                             f"rooms (5-10 m with 0.5 m clearance)")

    @property
    def num_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate))

    @property
    def max_delay_samples(self) -> float:
        """Largest inter-mic delay d * fs / c (samples); phase differences alias above 0.5 (paper Sec. 2.2)."""
        return self.mic_spacing_m * self.sample_rate / self.sound_speed_m_s


@dataclass(frozen=True)
class MixtureSpec:
    """Everything that defines one mixture. Lists are per source, in source order.

    Attributes:
        dataset: e.g. ``"fm2"`` (genders + number of speakers).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        index: mixture index within (dataset, split).
        seed: the seed its draws were keyed with.
        utterance_ids, speakers, genders, paths: the chosen utterances (paths relative to the corpus folder).
        offsets: first sample of each segment in its audio file (samples; for a Kaldi segment or a lhotse
            supervision, the utterance's own start is included).
        angles_deg: direction of arrival of each source, 0..180 degrees from the mic axis.
        gains: a_i > 0, summing to 1.
        sample_rate, num_samples, mic_spacing_m, sound_speed_m_s, room: the physical setup.
        room_params: room geometry for reverberant rooms (empty for anechoic).
        corpora: per source, the corpus its path is relative to, for specs planned from a manifest of several
            corpora (empty: one corpus).
        speeds: per source, the speed perturbation factor (Ko et al. 2015: the segment resampled so that it plays
            ``speed`` times faster, pitch and tempo together; empty: none).

    Optional fields left at their defaults are not written to JSON, so specs without them hash as before.
    """

    dataset: str
    split: str
    index: int
    seed: int
    utterance_ids: tuple[str, ...]
    speakers: tuple[str, ...]
    genders: tuple[str, ...]
    paths: tuple[str, ...]
    offsets: tuple[int, ...]
    angles_deg: tuple[float, ...]
    gains: tuple[float, ...]
    sample_rate: int
    num_samples: int
    mic_spacing_m: float
    sound_speed_m_s: float
    room: str = "anechoic"
    room_params: dict = field(default_factory=dict)
    corpora: tuple[str, ...] = ()
    speeds: tuple[float, ...] = ()

    @property
    def num_speakers(self) -> int:
        return len(self.utterance_ids)

    @property
    def mixture_id(self) -> str:
        return f"{self.dataset}-{self.split}-{self.index:06d}"

    @property
    def delays_samples(self) -> np.ndarray:
        """Inter-mic delay of each source, tau_i = d cos(theta_i) fs / c (samples), shape (N,) float64."""
        return (self.mic_spacing_m * np.cos(np.deg2rad(np.asarray(self.angles_deg)))
                * self.sample_rate / self.sound_speed_m_s)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        for key in OPTIONAL_SPEC_FIELDS:
            if not d[key]:
                del d[key]
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "MixtureSpec":
        d = json.loads(text)
        for key in ("utterance_ids", "speakers", "genders", "paths", "offsets", "angles_deg", "gains") + \
                OPTIONAL_SPEC_FIELDS:
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def source_path(self, i: int, corpus_dir) -> Path:
        """Audio file of source ``i``: ``paths[i]`` under ``corpus_dir`` (a folder, or for specs of several corpora
        a mapping corpus name -> folder, see :func:`spatialdc.pipeline.corpus.corpus_root`)."""
        from .corpus import corpus_root

        return corpus_root(corpus_dir, self.corpora[i] if self.corpora else "") / self.paths[i]


OPTIONAL_SPEC_FIELDS = ("corpora", "speeds")


def dataset_name(gender: str, num_speakers: int) -> str:
    """``("fm", 2) -> "fm2"``. Raises ValueError for an unknown gender or fewer than 2 speakers."""
    if gender not in DATASET_GENDERS:
        raise ValueError(f"unknown gender {gender!r}: choose one of {DATASET_GENDERS}")
    if num_speakers < 2:
        raise ValueError(f"a mixture needs at least 2 speakers, got {num_speakers}")
    return f"{gender}{num_speakers}"


def parse_dataset_name(name: str) -> tuple[str, int]:
    """``"fm2" -> ("fm", 2)``. Raises ValueError for a malformed name."""
    gender, digits = name.rstrip("0123456789"), name[len(name.rstrip("0123456789")):]
    if gender not in DATASET_GENDERS or not digits:
        raise ValueError(f"dataset name {name!r} is not GENDER+N such as 'fm2' or 'f3'")
    return gender, int(digits)


def frame_energies_db(x: np.ndarray) -> np.ndarray:
    """Energy (dB) of 25 ms frames with a 10 ms hop. x: (S,) float. Returns (num_frames,) float64."""
    if x.shape[0] < ACTIVITY_FRAME:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, ACTIVITY_FRAME)[::ACTIVITY_HOP]  # (frames, 400)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def active_offsets(x: np.ndarray, num_samples: int) -> np.ndarray:
    """Start samples of the ``num_samples``-long segments of ``x`` in which the speaker is active.

    See the module docstring for the check. Candidate starts lie every 50 ms.

    Returns:
        (K,) int64 array of offsets in samples, possibly empty (utterance too short or too quiet).
    """
    energy = frame_energies_db(x)
    seg_frames = (num_samples - ACTIVITY_FRAME) // ACTIVITY_HOP + 1
    if energy.size < seg_frames or not np.any(energy > -100):
        return np.zeros(0, dtype=np.int64)
    active = energy >= np.percentile(energy, 99) - ACTIVITY_RANGE_DB
    csum = np.concatenate([[0], np.cumsum(active)])
    half = seg_frames // 2
    starts = np.arange(0, energy.size - seg_frames + 1, OFFSET_STEP_FRAMES)
    first = (csum[starts + half] - csum[starts]) / half
    second = (csum[starts + seg_frames] - csum[starts + half]) / (seg_frames - half)
    ok = (first >= ACTIVITY_MIN_FRACTION) & (second >= ACTIVITY_MIN_FRACTION)
    offsets = starts[ok] * ACTIVITY_HOP
    return offsets[offsets + num_samples <= x.shape[0]].astype(np.int64)


def draw_angles(rng: np.random.Generator, num_sources: int, min_angle_deg: float) -> np.ndarray:
    """N angles uniform in [0, 180] degrees with every pair at least ``min_angle_deg`` apart (rejection sampling).

    Raises:
        ValueError: the constraint cannot hold, (N - 1) * min_angle_deg > 180.
    """
    if (num_sources - 1) * min_angle_deg > 180:
        raise ValueError(f"{num_sources} sources cannot be pairwise {min_angle_deg} degrees apart within 0..180 "
                         f"degrees: use at most {int(180 // min_angle_deg) + 1} sources or a smaller --min-angle")
    for _ in range(10000):
        angles = rng.uniform(0.0, 180.0, size=num_sources)
        gaps = np.abs(angles[:, None] - angles[None, :]) + np.eye(num_sources) * 1e9
        if gaps.min() >= min_angle_deg:
            return angles
    # dense packing: place on a grid with random slack (still seeded and valid)
    slack = 180 - (num_sources - 1) * min_angle_deg
    cuts = np.sort(rng.uniform(0, slack, size=num_sources))
    return rng.permutation(cuts + np.arange(num_sources) * min_angle_deg)


def draw_gains(rng: np.random.Generator, num_sources: int, low: float, high: float) -> np.ndarray:
    """a_i ~ U(low, high), normalized to sum 1 (the authors' public code). Returns (N,) float64."""
    gains = rng.uniform(low, high, size=num_sources)
    return gains / gains.sum()


class Planner:
    """Plans mixtures of one corpus. Audio activity of each utterance is computed once and cached.

    Args:
        utterances: the manifest.
        load: ``load(utterance) -> (S,) float array``, the corpus audio.
        config: the physical setup.
        seed: keys every draw with :func:`pipeline.rng.rng_for`.
    """

    def __init__(self, utterances: Sequence[Utterance], load: Callable[[Utterance], np.ndarray],
                 config: RenderConfig, seed: int):
        self.utterances = list(utterances)
        self.load = load
        self.config = config
        self.seed = seed
        self._offsets: dict[str, np.ndarray] = {}
        self._eligible: dict[tuple[str, str], dict[str, list[Utterance]]] = {}
        for u in self.utterances:
            if u.sample_rate != config.sample_rate:
                raise ValueError(f"utterance {u.utterance_id} is at {u.sample_rate} Hz but the render is at "
                                 f"{config.sample_rate} Hz; resample the corpus or pass --sample-rate {u.sample_rate}")

    def offsets_of(self, u: Utterance) -> np.ndarray:
        if u.utterance_id not in self._offsets:
            if u.num_samples < self.config.num_samples:
                self._offsets[u.utterance_id] = np.zeros(0, dtype=np.int64)
            else:
                self._offsets[u.utterance_id] = active_offsets(self.load(u), self.config.num_samples)
        return self._offsets[u.utterance_id]

    def eligible(self, split: str, gender: str) -> dict[str, list[Utterance]]:
        """Speakers of ``split`` and ``gender`` with at least one usable segment -> their usable utterances.

        Computed once per (split, gender) and shared: callers must not modify it."""
        key = (split, gender)
        if key not in self._eligible:
            by_speaker: dict[str, list[Utterance]] = {}
            for u in self.utterances:
                if u.split == split and u.gender == gender and self.offsets_of(u).size:
                    by_speaker.setdefault(u.speaker, []).append(u)
            self._eligible[key] = by_speaker
        return self._eligible[key]

    def check(self, gender: str, num_speakers: int, split: str) -> None:
        """Raise ValueError with the numbers if (gender, N, split) cannot be planned."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: choose one of {SPLITS} or 'all'")
        dataset_name(gender, num_speakers)
        if self.config.room not in ROOMS:
            raise ValueError(f"unknown room {self.config.room!r}: choose one of {ROOMS}")
        draw_angles(np.random.default_rng(0), num_speakers, self.config.min_angle_deg)  # raises if infeasible
        from .features import N_FFT
        from .labels import check_spacing

        check_spacing(N_FFT // 2 + 1, self.config.max_delay_samples, self.config.mic_spacing_m,
                      self.config.sample_rate)  # phase differences may wrap (any spacing), but not everywhere
        # f / m: N speakers of that gender; fm: one of each plus N - 2 of either, so N - 1 of each gender suffice
        need = {gender: num_speakers} if gender in GENDERS else {g: num_speakers - 1 for g in GENDERS}
        for g, n in need.items():
            have = len(self.eligible(split, g))
            if have < n:
                raise ValueError(f"split {split!r} has {have} usable speakers of gender {g!r} (with "
                                 f"{self.config.duration_s} s of active speech) but {gender}{num_speakers} mixtures "
                                 f"need {n}; use fewer speakers or a larger corpus")

    def plan_one(self, gender: str, num_speakers: int, split: str, index: int,
                 stream: tuple = ()) -> MixtureSpec:
        """The spec of mixture ``index`` of dataset (gender, N) and ``split``: a pure function of its key.
        ``stream``: further keys of the draws (dynamic mixing draws from its own stream, so its mixtures are not
        those of a rendered dataset with the same indices)."""
        dataset = dataset_name(gender, num_speakers)
        rng = rng_for(self.seed, dataset, split, *stream, index)
        if gender == "fm":
            genders = ["f", "m"] + list(rng.choice(GENDERS, size=num_speakers - 2))
            genders = [genders[i] for i in rng.permutation(num_speakers)]
        else:
            genders = [gender] * num_speakers
        pools = {g: self.eligible(split, g) for g in set(genders)}
        picked: dict[str, list[str]] = {}
        for g in sorted(pools):
            speakers = sorted(pools[g])
            count = genders.count(g)
            picked[g] = [speakers[i] for i in rng.choice(len(speakers), size=count, replace=False)]
        chosen = [picked[g].pop() for g in genders]
        utts, offsets = [], []
        for spk, g in zip(chosen, genders):
            options = pools[g][spk]
            u = options[int(rng.integers(len(options)))]
            valid = self.offsets_of(u)
            utts.append(u)
            offsets.append(u.start_sample + int(valid[int(rng.integers(valid.size))]))  # in the file
        angles = draw_angles(rng, num_speakers, self.config.min_angle_deg)
        gains = draw_gains(rng, num_speakers, self.config.gain_low, self.config.gain_high)
        c = self.config
        room_params = (draw_room(rng, angles, c.mic_spacing_m, c.rt60_range_s, c.source_distance_range_m)
                       if c.room == "reverberant" else {})
        speeds = ()  # drawn last, so specs without speed perturbation are those of earlier versions
        if c.speed_perturb:
            speeds = tuple(round(float(v), 2) for v in rng.uniform(1 - c.speed_perturb, 1 + c.speed_perturb,
                                                                   size=num_speakers))
        return MixtureSpec(dataset, split, index, self.seed, tuple(u.utterance_id for u in utts), tuple(chosen),
                           tuple(genders), tuple(u.path for u in utts), tuple(offsets),
                           tuple(round(float(a), 6) for a in angles), tuple(round(float(a), 8) for a in gains),
                           c.sample_rate, c.num_samples, c.mic_spacing_m, c.sound_speed_m_s, c.room, room_params,
                           tuple(u.corpus for u in utts) if any(u.corpus for u in utts) else (), speeds)

    def plan(self, gender: str, num_speakers: int, split: str, num_mixtures: int) -> list[MixtureSpec]:
        """Check feasibility, then plan mixtures 0..num_mixtures-1 of (gender, N, split)."""
        if num_mixtures < 1:
            raise ValueError(f"--num-mixtures must be >= 1, got {num_mixtures}")
        self.check(gender, num_speakers, split)
        return [self.plan_one(gender, num_speakers, split, i) for i in range(num_mixtures)]


def write_specs(path: str | Path, specs: Iterable[MixtureSpec]) -> None:
    """Write specs as JSONL, atomically; gzip-compressed (reproducibly, no timestamp) if ``path`` ends in ``.gz``."""
    text = "".join(s.to_json() + "\n" for s in specs)
    if str(path).endswith(".gz"):
        with atomic_path(path) as tmp, open(tmp, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(text.encode("utf-8"))
    else:
        write_text_atomic(path, text)


def read_specs(path: str | Path) -> list[MixtureSpec]:
    """Read a JSONL spec file (``.jsonl`` or ``.jsonl.gz``).

    Raises:
        FileNotFoundError: no such file. ValueError: a corrupt file, or naming the bad line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec file {path} not found; make it with `dcgen plan`")
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8") if path.suffix == ".gz" else \
            path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable spec file ({exc}); re-write it with `dcgen plan`") from exc
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(MixtureSpec.from_json(line))
            except (ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"{path}:{lineno}: not a mixture spec ({exc})") from exc
    return out


def specs_hash(specs: Iterable[MixtureSpec]) -> str:
    """SHA-256 (hex) of the specs' canonical JSON lines: names a set of mixtures exactly."""
    h = hashlib.sha256()
    for s in specs:
        h.update(s.to_json().encode("utf-8") + b"\n")
    return h.hexdigest()
