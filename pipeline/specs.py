"""Mixture specs: the record of every choice that makes one mixture, and its files.

A :class:`MixtureSpec` is complete: rendering is a pure function of the spec and the corpus audio
(:func:`spatialdc.pipeline.render.render_mixture`). Specs are planned by :mod:`spatialdc.pipeline.planner` and stored
one JSON object per line (JSONL, gzipped for the committed ones: ``data_manifests/datasets/<corpus>/<dataset>/``).
A dataset is named by its genders and speaker count (``fm2``: one female and one male speaker at least, 2 speakers).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .acoustics import ROOM_RT60_RANGE, ROOM_SOURCE_DISTANCE_RANGE
from .atomic import atomic_path, write_text_atomic
from .manifest import corpus_root

DATASET_GENDERS = ("f", "m", "fm")
ALL_DATASETS = tuple((g, n) for n in (2, 3) for g in DATASET_GENDERS)  # the paper's six datasets
SOUND_SPEED_M_S = 343.0
ROOMS = ("anechoic", "reverberant")


def max_delay_samples(mic_spacing_m: float, sample_rate: int,
                      sound_speed_m_s: float = SOUND_SPEED_M_S) -> float:
    """The largest inter-mic delay d fs / c (samples) of two mics ``mic_spacing_m`` apart at ``sample_rate`` Hz and
    speed of sound ``sound_speed_m_s`` (m/s): a source on the mic axis. Phase differences alias above 0.5 sample
    (Tzinis et al. 2019, Sec. 2.2)."""
    return mic_spacing_m * sample_rate / sound_speed_m_s


def check_setup(sample_rate: int, mic_spacing_m: float, sound_speed_m_s: float = SOUND_SPEED_M_S) -> None:
    """Refuse a physical setup without spatial cues or time: a sample rate under 1 Hz, a mic spacing <= 0 m (two
    mics in one place see no delay: every label would be noise) or a speed of sound <= 0.

    Raises:
        ValueError: naming the value and the option that sets it.
    """
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate < 1:
        raise ValueError(f"the sample rate (--sample-rate) must be a whole number of Hz >= 1, got {sample_rate}")
    if not mic_spacing_m > 0:
        raise ValueError(f"the mic spacing (--mic-spacing) must be > 0 m, got {mic_spacing_m}: two microphones in "
                         f"one place give no inter-mic delay, so no spatial label; e.g. 0.01 (the paper's 1 cm)")
    if not sound_speed_m_s > 0:
        raise ValueError(f"the speed of sound must be > 0 m/s, got {sound_speed_m_s}")


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
        check_setup(self.sample_rate, self.mic_spacing_m, self.sound_speed_m_s)
        if not self.duration_s > 0:
            raise ValueError(f"the mixture length (--duration) must be > 0 s, got {self.duration_s}")
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
        """Largest inter-mic delay of this setup (samples), :func:`max_delay_samples`."""
        return max_delay_samples(self.mic_spacing_m, self.sample_rate, self.sound_speed_m_s)


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

    def __post_init__(self) -> None:
        check_setup(self.sample_rate, self.mic_spacing_m, self.sound_speed_m_s)
        if self.num_samples < 1:
            raise ValueError(f"mixture {self.mixture_id}: num_samples must be >= 1, got {self.num_samples}")

    @property
    def num_speakers(self) -> int:
        return len(self.utterance_ids)

    @property
    def mixture_id(self) -> str:
        return f"{self.dataset}-{self.split}-{self.index:06d}"

    @property
    def max_delay_samples(self) -> float:
        """Largest inter-mic delay of this mixture's setup (samples), :func:`max_delay_samples`."""
        return max_delay_samples(self.mic_spacing_m, self.sample_rate, self.sound_speed_m_s)

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
        a mapping corpus name -> folder, see :func:`spatialdc.pipeline.manifest.corpus_root`)."""
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


def read_spec_dir(spec_dir: Path, splits: Sequence[str]) -> dict[str, list[MixtureSpec]]:
    """The specs of one dataset from ``spec_dir/<split>.jsonl.gz`` or ``<split>.jsonl`` (as ``dcgen plan`` writes).

    Raises:
        FileNotFoundError: none of the requested splits has a spec file (names the folder and the fix).
        ValueError: a malformed line, or files of several datasets mixed in one folder.
    """
    by_split = {}
    for s in splits:
        for name in (f"{s}.jsonl.gz", f"{s}.jsonl"):
            if (spec_dir / name).is_file():
                by_split[s] = read_specs(spec_dir / name)
                break
    by_split = {s: v for s, v in by_split.items() if v}
    if not by_split:
        raise FileNotFoundError(f"{spec_dir} has no spec file for split(s) {', '.join(splits)}; "
                                "write them with `dcgen plan` or pick another --split")
    names = {x.dataset for v in by_split.values() for x in v}
    if len(names) != 1:
        raise ValueError(f"{spec_dir} mixes specs of datasets {sorted(names)}; keep one dataset per folder")
    return by_split
