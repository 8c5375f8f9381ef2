"""Reader for a database of measured room impulse responses: the University of Surrey real-room BRIRs.

Database: C. Hummersone, "RealRoomBRIRs: binaural impulse responses captured in real rooms", Institute of Sound
Recording, University of Surrey, 2016, https://github.com/IoSR-Surrey/RealRoomBRIRs (MIT licence, stated in the
repository's LICENSE and in every file's ``License`` attribute). Measurements: a Cortex Mk.2 head and torso simulator
(HATS) with a microphone in each ear (receivers 0.18 m apart, the head between them), a Genelec 8020A loudspeaker at
1.5 m, 37 azimuths from -90 to +90 degrees in 5 degree steps at 0 degrees elevation, swept sines at 48 kHz (also
given resampled to 16 kHz). Rooms (RT60 by ISO 3382, mean of the 500 Hz and 1 kHz bands, from the repository's
Documentation/Content.tex): A, an office, 0.32 s; B, a small class room, 0.47 s; C, a lecture theatre, 0.68 s; D, a
seminar room with a high ceiling, 0.89 s; and a pseudo-anechoic set (a large hall, truncated before the first
reflection).

Layout (what :func:`read_database` expects): one folder holding ``UniS_<room>_BRIR_<16|48>k.sofa`` files, ``<room>``
being ``Anechoic`` or ``Room_<letter>``. Each is a SOFA file (AES69, ``SimpleFreeFieldHRIR`` convention; HDF5
underneath, read here with h5py) with ``Data.IR`` (M positions, R receivers, N samples), ``Data.SamplingRate`` (Hz),
``SourcePosition`` (M, 3) spherical (azimuth degrees, elevation degrees, distance m) and ``ReceiverPosition`` (R, 3, 1)
cartesian (m). Where both rates of a room are there the 16 kHz file (the authors' resampling) is read; a 48 kHz file
alone is resampled (:func:`spatialdc.pipeline.audio.resample`).

Azimuths are kept as stored (0..355: 270..355 is one side, 0..90 the other); ``lateral_deg`` maps them to -90..90.
In the data, receiver 0 is nearer the sources at negative lateral angles (its direct sound comes first and louder),
whatever ear the SOFA coordinates call it. Receiver 0 is mic 1 of the benchmark.

Cite: the repository above; the measurements are those of C. Hummersone, R. Mason and T. Brookes, "Dynamic precedence
effect modeling for source separation in reverberant environments", IEEE TASLP 18(7), 2010.

Get it: ``git clone https://github.com/IoSR-Surrey/RealRoomBRIRs`` and point the benchmark at the folder. Only
``UniS_Anechoic_BRIR_{16,48}k.sofa`` and ``UniS_Room_A_BRIR_16k.sofa`` are under 4 MB; a copy that skips larger files
holds the anechoic set and room A alone (the reader reads whatever rooms are there).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatialdc.pipeline.audio import resample

REPOSITORY = "https://github.com/IoSR-Surrey/RealRoomBRIRs"
HOW_TO_GET = (f"get the Surrey real-room BRIRs (MIT licence) with `git clone {REPOSITORY} <folder>` and pass that "
              f"folder")
FILE_PATTERN = re.compile(r"^UniS_(?P<room>Anechoic|Room_[A-Z])_BRIR_(?P<khz>16|48)k\.sofa$")
EXPECTED_FILES = "UniS_<Anechoic|Room_A..Room_D>_BRIR_<16|48>k.sofa"
REQUIRED_VARIABLES = ("Data.IR", "Data.SamplingRate", "SourcePosition", "ReceiverPosition")
RT60_S = {"Anechoic": 0.0, "Room_A": 0.32, "Room_B": 0.47, "Room_C": 0.68, "Room_D": 0.89}  # Content.tex, Table 1
SOUND_SPEED_M_S = 343.0
DIRECT_WINDOW_S = 0.004  # direct-path window after the onset for the inter-mic delay (before the first reflection)


@dataclass(frozen=True)
class RirEntry:
    """One (room, source position, mic pair) of the database: what the benchmark draws from.

    Attributes:
        room: e.g. ``"Room_A"``. position: index of the source position in the room's file.
        azimuth_deg: as stored (0..360). lateral_deg: the same in -90..90. distance_m: loudspeaker to head centre.
        mics: the two receiver indices (the first is mic 1). mic_spacing_m: distance between them (m).
        delay_samples: direct-path delay of the second mic relative to the first at the database's sample rate
            (> 0: the sound reaches the first mic first), measured by :func:`direct_path_delays`.
    """

    room: str
    position: int
    azimuth_deg: float
    lateral_deg: float
    distance_m: float
    mics: tuple[int, int]
    mic_spacing_m: float
    delay_samples: float


@dataclass(frozen=True)
class RoomRirs:
    """The impulse responses of one room (one SOFA file).

    Attributes:
        room: ``"Anechoic"`` or ``"Room_<letter>"``. path: the file read. rt60_s: from the documentation (nan if
            unknown). sample_rate: Hz, after resampling.
        irs: (P, R, L) float64, P source positions, R receivers, L samples at ``sample_rate``.
        azimuth_deg, distance_m: (P,) float64. receivers_m: (R, 3) float64 cartesian positions.
        delays_samples: (P, R) float64, direct-path delay of each receiver relative to receiver 0 (samples).
        onset: first sample of the earliest direct sound over all positions and receivers (the measurement
            latency, removed when signals are aligned).
    """

    room: str
    path: Path
    rt60_s: float
    sample_rate: int
    irs: np.ndarray
    azimuth_deg: np.ndarray
    distance_m: np.ndarray
    receivers_m: np.ndarray
    delays_samples: np.ndarray
    onset: int

    @property
    def lateral_deg(self) -> np.ndarray:
        """(P,) azimuths in -90..90 degrees (stored 270..355 become -90..-5)."""
        return np.where(self.azimuth_deg > 180, self.azimuth_deg - 360, self.azimuth_deg)

    def spacing_m(self, mics: tuple[int, int]) -> float:
        """Distance (m) between two receivers."""
        return float(np.linalg.norm(self.receivers_m[mics[0]] - self.receivers_m[mics[1]]))

    def max_delay_samples(self, mics: tuple[int, int]) -> float:
        """The largest |direct-path delay| between two receivers over the positions (samples): the physical delay
        range the spatial labels assume (around a head it exceeds spacing * fs / c)."""
        return float(np.max(np.abs(self.delays_samples[:, mics[1]] - self.delays_samples[:, mics[0]])))

    def entries(self) -> list[RirEntry]:
        """Every (position, receiver pair) of the room."""
        pairs = list(itertools.combinations(range(self.irs.shape[1]), 2))
        return [RirEntry(self.room, p, float(self.azimuth_deg[p]), float(self.lateral_deg[p]),
                         float(self.distance_m[p]), pair, self.spacing_m(pair),
                         float(self.delays_samples[p, pair[1]] - self.delays_samples[p, pair[0]]))
                for p in range(self.irs.shape[0]) for pair in pairs]


def find_files(root: str | Path) -> dict[str, Path]:
    """The SOFA file of each room under ``root`` (16 kHz preferred over 48 kHz).

    Raises:
        FileNotFoundError: no folder ``root``, or no file of the layout in it (the message lists what is there).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"RIR database folder {root} not found; {HOW_TO_GET}")
    found: dict[str, tuple[int, Path]] = {}
    for path in sorted(root.iterdir()):
        m = FILE_PATTERN.match(path.name)
        if m and path.is_file():
            rank = 0 if m["khz"] == "16" else 1
            if m["room"] not in found or rank < found[m["room"]][0]:
                found[m["room"]] = (rank, path)
    if not found:
        there = sorted(p.name for p in root.iterdir())
        shown = ", ".join(there[:8]) + (", ..." if len(there) > 8 else "") if there else "nothing"
        raise FileNotFoundError(f"{root} holds no {EXPECTED_FILES} file (it holds {shown}); {HOW_TO_GET}")
    return {room: path for room, (_, path) in sorted(found.items())}


def read_sofa(path: str | Path, room: str, sample_rate: int = 16000) -> RoomRirs:
    """Read one room's SOFA file, resampled to ``sample_rate``.

    Raises:
        ValueError: not an HDF5/SOFA file (e.g. a Git LFS pointer or a truncated download), a required variable
            missing, shapes that disagree, or positions that are not spherical; the message names the file.
    """
    import h5py

    path = Path(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a SOFA (HDF5) file ({exc}); re-download it: {HOW_TO_GET}") from exc
    with fh:
        missing = [v for v in REQUIRED_VARIABLES if v not in fh]
        if missing:
            raise ValueError(f"{path} lacks the SOFA variable(s) {missing}; expected {REQUIRED_VARIABLES} "
                             f"(SimpleFreeFieldHRIR convention)")
        irs = np.asarray(fh["Data.IR"][()], dtype=np.float64)  # (M, R, N)
        rate = float(np.ravel(fh["Data.SamplingRate"][()])[0])
        positions = np.asarray(fh["SourcePosition"][()], dtype=np.float64)  # (M, 3)
        kind = fh["SourcePosition"].attrs.get("Type", b"spherical")
        receivers = np.asarray(fh["ReceiverPosition"][()], dtype=np.float64)  # (R, 3, 1) or (R, 3)
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if (irs.ndim != 3 or irs.shape[1] < 2 or positions.shape != (irs.shape[0], 3)
            or receivers.shape[0] != irs.shape[1] or receivers.size != 3 * irs.shape[1]):
        raise ValueError(f"{path}: Data.IR {irs.shape} must be (positions, receivers >= 2, samples), SourcePosition "
                         f"{positions.shape} (positions, 3) and ReceiverPosition {receivers.shape} (receivers, 3, 1)")
    receivers = receivers.reshape(irs.shape[1], 3)
    if kind != "spherical":
        raise ValueError(f"{path}: SourcePosition is {kind!r}, expected spherical (azimuth deg, elevation deg, m)")
    if rate != int(rate) or rate <= 0:
        raise ValueError(f"{path}: Data.SamplingRate {rate} is not a positive whole number of Hz")
    irs = resample(irs, int(rate), sample_rate, axis=-1)
    onset = direct_onset(irs)
    return RoomRirs(room, path, RT60_S.get(room, float("nan")), sample_rate, irs, positions[:, 0] % 360,
                    positions[:, 2], receivers, direct_path_delays(irs, onset, sample_rate), onset)


def read_database(root: str | Path, sample_rate: int = 16000, rooms: list[str] | None = None) -> dict[str, RoomRirs]:
    """Every room of the database under ``root`` (or the ``rooms`` named), resampled to ``sample_rate``.

    Raises:
        FileNotFoundError: see :func:`find_files`. ValueError: a room not in the folder (the message lists those
            there are), or a file :func:`read_sofa` refuses.
    """
    files = find_files(root)
    if rooms:
        unknown = [r for r in rooms if r not in files]
        if unknown:
            raise ValueError(f"room(s) {unknown} are not in {root}; it holds {sorted(files)}")
        files = {r: files[r] for r in rooms}
    return {room: read_sofa(path, room, sample_rate) for room, path in files.items()}


def list_entries(db: dict[str, RoomRirs]) -> list[RirEntry]:
    """(room, position, mic pair) entries of a database read by :func:`read_database`."""
    return [e for room in db.values() for e in room.entries()]


def direct_onset(irs: np.ndarray, threshold: float = 0.25) -> int:
    """First sample at which any impulse response reaches ``threshold`` times its own peak: the earliest direct
    sound, i.e. the measurement latency before it. irs: (P, R, L)."""
    peak = np.abs(irs).max(axis=-1, keepdims=True)  # (P, R, 1)
    hits = np.abs(irs) >= threshold * np.maximum(peak, 1e-30)
    return int(np.argmax(hits, axis=-1).min())


def direct_path_delays(irs: np.ndarray, onset: int, sample_rate: int) -> np.ndarray:
    """Delay (samples) of each receiver's direct sound relative to receiver 0: the peak of the phase transform
    generalized cross-correlation (GCC-PHAT; Knapp and Carter 1976) of the first :data:`DIRECT_WINDOW_S` after the
    onset, interpolated 8 times (zero-padded spectrum) and refined by a parabola through the peak and its neighbours.

    Args:
        irs: (P, R, L). onset: :func:`direct_onset`.

    Returns:
        (P, R) float64; column 0 is zero; > 0 where the sound reaches that receiver after receiver 0.
    """
    lo = max(onset - int(0.001 * sample_rate), 0)
    seg = irs[..., lo: onset + int(DIRECT_WINDOW_S * sample_rate)]  # (P, R, W)
    n, up = 2 * seg.shape[-1], 8
    spec = np.fft.rfft(seg, n)  # (P, R, K)
    cross = spec * np.conj(spec[:, :1])  # (P, R, K): receiver r against receiver 0
    cc = np.fft.irfft(cross / np.maximum(np.abs(cross), 1e-12), n * up)  # (P, R, n up), lag k / up at k mod n up
    cc = np.fft.fftshift(cc, axes=-1)  # lags -n/2 .. n/2 - 1/up
    k = np.clip(np.argmax(cc, axis=-1), 1, n * up - 2)  # (P, R)
    y0, y1, y2 = (np.take_along_axis(cc, (k + d)[..., None], axis=-1)[..., 0] for d in (-1, 0, 1))
    den = y0 - 2 * y1 + y2
    frac = np.where(np.abs(den) > 1e-12, 0.5 * (y0 - y2) / np.where(np.abs(den) > 1e-12, den, 1.0), 0.0)
    return ((k - n * up // 2 + np.clip(frac, -0.5, 0.5)) / up).astype(np.float64)
