"""Plan mixtures: draw every choice that makes one mixture, seeded, before any rendering.

The plan of a mixture is a :class:`~spatialdc.pipeline.specs.MixtureSpec`, a pure function of its key (seed,
dataset, split, index: :func:`spatialdc.pipeline.rng.rng_for`) and the manifest.

Paper setup (Tzinis et al. 2019, Sec. 2.1 and 4.1): N speakers at random angles, pairwise at least
10 degrees apart; gains a_i > 0 with sum 1 (drawn a_i ~ U(0.2, 1), then normalized, as the authors' code);
2 s segments in which every speaker is active.

Leveling: each 2 s segment is scaled to unit RMS before its gain is applied, so the gains alone set the
relative levels. Activity check (:func:`active_offsets`): 25 ms frames with a 10 ms hop; a frame is active
when its energy is within ``ACTIVITY_RANGE_DB`` of the utterance's 99th-percentile frame energy; a segment
is usable when each of its two halves has at least ``ACTIVITY_MIN_FRACTION`` active frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .acoustics import draw_room
from .features import N_FFT
from .labels import check_spacing
from .manifest import GENDERS, SPLITS, Utterance, load_audio
from .rng import rng_for
from .specs import ROOMS, MixtureSpec, RenderConfig, dataset_name

ACTIVITY_FRAME = 400  # samples at 16 kHz = 25 ms
ACTIVITY_HOP = 160  # 10 ms
ACTIVITY_RANGE_DB = 30.0
ACTIVITY_MIN_FRACTION = 0.5
OFFSET_STEP_FRAMES = 5  # candidate offsets every 5 hops = 50 ms
PAPER_SIZES = {"train": 5400, "valid": 900, "test": 1800}


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
        seed: keys every draw with :func:`spatialdc.pipeline.rng.rng_for`.
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

    @classmethod
    def of_corpus(cls, utterances: Sequence[Utterance], corpus_dir: Path | dict, config: RenderConfig,
                  seed: int) -> "Planner":
        """A planner that reads the utterances' audio from ``corpus_dir`` (a folder, or for a manifest of several
        corpora the mapping name -> folder) with :func:`spatialdc.pipeline.manifest.load_audio`."""
        return cls(utterances, lambda u: load_audio(u, corpus_dir, config.sample_rate), config, seed)

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


def parse_sizes(num_mixtures: str | None, splits: Sequence[str]) -> dict[str, int]:
    """Mixtures per split. ``None``: the paper's 5400 / 900 / 1800. One integer with one split: that many.
    One integer with all splits: train = n, valid = n / 6, test = n / 3 (the paper's ratios).
    ``"600,100,200"``: train, valid, test.

    Raises:
        ValueError: a malformed value, with what is accepted.
    """
    if num_mixtures is None:
        return {s: PAPER_SIZES[s] for s in splits}
    try:
        values = [int(v) for v in str(num_mixtures).split(",")]
    except ValueError:
        raise ValueError(f"--num-mixtures {num_mixtures!r}: give N or TRAIN,VALID,TEST such as 600,100,200") from None
    if any(v < 1 for v in values) or len(values) not in (1, 3):
        raise ValueError(f"--num-mixtures {num_mixtures!r}: give N or TRAIN,VALID,TEST, each >= 1")
    if len(values) == 3:
        return {s: values[SPLITS.index(s)] for s in splits}
    if len(splits) == 1:
        return {splits[0]: values[0]}
    return {"train": values[0], "valid": max(1, round(values[0] / 6)), "test": max(1, round(values[0] / 3))}


def plan_dataset(utterances, corpus_dir: Path | dict, config: RenderConfig, seed: int, gender: str,
                 num_speakers: int, sizes: dict[str, int]) -> dict[str, list[MixtureSpec]]:
    """Specs per split for one dataset (raises ValueError with the numbers if impossible)."""
    planner = Planner.of_corpus(utterances, corpus_dir, config, seed)
    for split in sizes:  # fail at once, before any planning work, if any split is impossible
        planner.check(gender, num_speakers, split)
    return {split: planner.plan(gender, num_speakers, split, n) for split, n in sizes.items()}
