"""Separate a user's recording with a trained deep-clustering model: the library behind ``dcsep`` and the Python
API (:class:`Separator`).

    from spatialdc.eval import Separator
    sep = Separator.from_pretrained()            # the default shipped model (spatialdc.models)
    stems = sep.separate(waveform, 44100)        # (N, S) float32 at 16 kHz
    paths = sep.separate_file("talk.wav", "stems/")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatialdc import models
from spatialdc.pipeline import features
from spatialdc.pipeline.audio import resample
from spatialdc.pipeline.paths import check_out_dir

from .chunks import Stitcher, chunk_labels, plan_chunks, separated_chunks
from .count import CountHead, resolve_count_head
from .recording import MODEL_SAMPLE_RATE, ArrayRecording, RecordingFile, StemFiles, check_waveform
from .separate import DEFAULT_CLUSTER_DB, load_model


@dataclass(frozen=True)
class SeparationDetails:
    """What :func:`separate_recording` decided on the way, for a person to look at (``dcsep --report``).

    Attributes:
        labels: (F, T) int8, the stem each STFT bin of the recording went to (K-means of its chunk's embeddings,
            in the stems' order; from the middle of each chunk overlap on, the later chunk's); -1 where a chunk had
            fewer non-silent bins than stems (every stem got an equal share of it). T = ``features.num_frames(S)``.
        count_method: how N was chosen: ``"given"``, ``"count head"`` or ``"eigenvalue rule"``.
        count_evidence: what the estimate rests on, in words (class probabilities of the head, or the eigenvalues
            of the embeddings' second-moment matrix against the share threshold); empty for ``"given"``.
    """

    labels: np.ndarray
    count_method: str
    count_evidence: str


def separate_recording(x: np.ndarray, model, stats: dict, num_speakers: int | None, chunk_s: float = 8.0,
                       overlap_s: float = 2.0, max_speakers: int = 3, cluster_db: float = DEFAULT_CLUSTER_DB,
                       sample_rate: int = MODEL_SAMPLE_RATE, seed: int = 0,
                       count_head: CountHead | None = None, details: bool = False):
    """Separate a single-channel recording of any length held in memory, chunk by chunk
    (:mod:`~spatialdc.eval.chunks`: chunks of ``chunk_s`` seconds overlapping by ``overlap_s``, separated as
    ``dceval`` separates a mixture, stems matched and cross-faded over the overlaps). With ``num_speakers`` None the
    count is estimated: with ``count_head``, by :func:`~spatialdc.eval.chunks.count_probabilities` (windows as long
    as its training mixtures, probabilities averaged); without, by the eigenvalue rule per chunk, the largest
    estimate used for all chunks. The network sees the recording at the level of its training mixtures
    (:func:`~spatialdc.eval.recording.level_gain`), so the stems scale with the input.

    Args:
        x: (S,) float, at ``sample_rate``. model: a DeepClusteringNet in eval mode. stats: its input statistics.
        details: also return a :class:`SeparationDetails` (the bins' stem labels and how the count was chosen);
            the stems are the same either way.

    Returns:
        ((N, S) float32 stems, N), or ((N, S) float32 stems, N, SeparationDetails) with ``details``.

    Raises:
        ValueError: a silent recording with ``count_head``.
    """
    plan = plan_chunks(ArrayRecording(x), model, stats, num_speakers, chunk_s, overlap_s, max_speakers, cluster_db,
                       count_head, sample_rate)
    out = np.empty((plan.num_speakers, x.shape[0]), np.float32)  # (N, S)
    labels = np.full((features.N_FFT // 2 + 1, features.num_frames(x.shape[0])), -1, np.int8) if details else None
    stitcher = Stitcher(plan.bounds, plan.overlap)
    for sep in separated_chunks(ArrayRecording(x), model, stats, plan, seed, cluster_db):
        sep, ov, start, done = stitcher.add(sep)
        out[:, start: start + done.shape[1]] = done
        if details:
            chunk_labels(labels, sep, start, ov)
    if details:
        return out, plan.num_speakers, SeparationDetails(labels, plan.count_method, plan.count_evidence)
    return out, plan.num_speakers


def separate_file(path: str | Path, out_dir: str | Path, model, stats: dict, num_speakers: int | None,
                  chunk_s: float = 8.0, overlap_s: float = 2.0, max_speakers: int = 3,
                  cluster_db: float = DEFAULT_CLUSTER_DB, seed: int = 0, count_head: CountHead | None = None,
                  overwrite: bool = False) -> tuple[list[Path], int]:
    """Separate an audio file (any rate, channel 1 of several) of any length into
    ``out_dir/<name>_speaker<k>.wav`` in memory that does not grow with its length: the file is read in blocks
    (:class:`~spatialdc.eval.recording.RecordingFile`: once to check it, once for the level gain, once more per
    pass of :func:`~spatialdc.eval.chunks.plan_chunks`, once to separate) and the stems are written as the chunks
    are stitched (:class:`~spatialdc.eval.recording.StemFiles`). The stems are those of
    :func:`separate_recording` on the whole file read and resampled at once.

    Returns:
        (the N paths written, in stem order; N).

    Raises:
        FileNotFoundError: no such file. FileExistsError: a stem file exists and ``overwrite`` is False (before
            the separation pass). ValueError: unreadable or refused audio
            (:class:`~spatialdc.eval.recording.WaveformScan`), an output folder that is a file or under one.
    """
    check_out_dir(out_dir, "output folder")
    with RecordingFile(path) as recording:
        recording.check()
        plan = plan_chunks(recording, model, stats, num_speakers, chunk_s, overlap_s, max_speakers, cluster_db,
                           count_head)
        with StemFiles(out_dir, Path(path).stem, plan.num_speakers, overwrite) as files:
            stitcher = Stitcher(plan.bounds, plan.overlap)
            for sep in separated_chunks(recording, model, stats, plan, seed, cluster_db):
                files.write(stitcher.add(sep)[3])
            return files.finish(), plan.num_speakers


class Separator:
    """Separate single-channel recordings of several talkers with a trained deep-clustering model.

    The model sees mic 1's magnitude spectrogram at 16 kHz (:data:`MODEL_SAMPLE_RATE`); a recording at another
    rate is resampled to 16 kHz and the stems come out at 16 kHz. Long recordings are separated in overlapping
    chunks whose stems are matched and cross-faded (:func:`separate_recording`).

    Args:
        checkpoint: a ``dctrain`` checkpoint (``RUN/best.pt``) or a shipped model file.
        count_head: count head for ``num_speakers="auto"`` (default: ``count_head.json`` beside the checkpoint if
            there is one, else the eigenvalue rule).
        cluster_db: K-means fit range below the loudest bin (dB). chunk_s, overlap_s: chunking of long
            recordings (s). max_speakers: the largest count ``"auto"`` returns. seed: K-means seed.
        device: where the network computes: ``"auto"`` (a CUDA GPU where torch sees one, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` (STFT, K-means and resynthesis stay on the CPU).

    Raises:
        FileNotFoundError: no such checkpoint. ValueError: a junk or foreign checkpoint (checked here, before any
            recording is read); CUDA asked for where torch sees none.
    """

    sample_rate = MODEL_SAMPLE_RATE

    def __init__(self, checkpoint: str | Path, count_head: str | Path | None = None,
                 cluster_db: float = DEFAULT_CLUSTER_DB, chunk_s: float = 8.0, overlap_s: float = 2.0,
                 max_speakers: int = 3, seed: int = 0, name: str | None = None, device: str = "auto"):
        if overlap_s >= chunk_s:
            raise ValueError(f"overlap_s ({overlap_s}) must be shorter than chunk_s ({chunk_s})")
        loaded = load_model(checkpoint, device)
        self.checkpoint = loaded.path
        self.name = name or str(checkpoint)
        self.model, self.stats, self.config, self.card = loaded.net, loaded.stats, loaded.config, loaded.card
        self._count_head_arg = count_head
        self._count_head: CountHead | None = None
        self.cluster_db, self.chunk_s, self.overlap_s = cluster_db, chunk_s, overlap_s
        self.max_speakers, self.seed = max_speakers, seed

    @classmethod
    def from_pretrained(cls, name: str | None = None, **kwargs) -> "Separator":
        """A separator with a model shipped in the package (:mod:`spatialdc.models`; ``None``: the default,
        :data:`spatialdc.models.DEFAULT_MODEL`). Other arguments (``device=`` among them) as for
        :class:`Separator`.

        Raises:
            ValueError: no shipped model of that name (the message lists them).
        """
        name = name or models.DEFAULT_MODEL
        with models.model_path(name) as path:
            return cls(path, name=name, **kwargs)

    def _head(self) -> CountHead | None:
        if self._count_head is None:
            path = resolve_count_head(str(self.checkpoint), self._count_head_arg)
            self._count_head = CountHead.load(path) if path else None
        return self._count_head

    def separate(self, waveform: np.ndarray, sample_rate: int, num_speakers: int | str = 2) -> np.ndarray:
        """Separate one recording.

        Args:
            waveform: (S,) float, one microphone, at ``sample_rate`` Hz, any level.
            sample_rate: Hz, a whole number >= 1; resampled to 16 kHz if different.
            num_speakers: N >= 1, or ``"auto"`` to estimate it (count head or eigenvalue rule).

        Returns:
            (N, S16) float32 stems at 16 kHz (S16 = S at 16 kHz), scaled like the input: binary masks partition
            the spectrogram, so the stems add up to the (resampled) recording.

        Raises:
            ValueError: a bad count, or a sample rate or waveform :func:`~spatialdc.eval.recording.check_waveform`
                refuses (a rate that is not a whole number >= 1; empty, NaN or infinite samples, shorter than one
                STFT frame, silent); the message names the value.
        """
        x = self._prepare(waveform, sample_rate, num_speakers)
        return self._separate(x, num_speakers)[0]

    def separate_detailed(self, waveform: np.ndarray, sample_rate: int,
                          num_speakers: int | str = 2) -> tuple[np.ndarray, SeparationDetails]:
        """:meth:`separate`, with what was decided on the way (for ``dcsep --report``).

        Returns:
            ((N, S16) float32 stems at 16 kHz, exactly :meth:`separate`'s; :class:`SeparationDetails`: the stem of
            every STFT bin and how the count was chosen).

        Raises:
            ValueError: as :meth:`separate`.
        """
        x = self._prepare(waveform, sample_rate, num_speakers)
        stems, _, details = self._separate(x, num_speakers, details=True)
        return stems, details

    @staticmethod
    def _count(num_speakers: int | str) -> int | None:
        """``num_speakers`` checked: an int, or None for ``"auto"``."""
        if num_speakers != "auto" and not (isinstance(num_speakers, (int, np.integer)) and num_speakers >= 1):
            raise ValueError(f"num_speakers must be an int >= 1 or 'auto', got {num_speakers!r}")
        return None if num_speakers == "auto" else int(num_speakers)

    def _prepare(self, waveform: np.ndarray, sample_rate: int, num_speakers: int | str) -> np.ndarray:
        self._count(num_speakers)
        return resample(check_waveform(waveform, sample_rate), sample_rate, MODEL_SAMPLE_RATE)

    def _separate(self, x: np.ndarray, num_speakers: int | str, details: bool = False):
        count = self._count(num_speakers)
        return separate_recording(x, self.model, self.stats, count, self.chunk_s, self.overlap_s,
                                  self.max_speakers, self.cluster_db, seed=self.seed,
                                  count_head=self._head() if count is None else None, details=details)

    def separate_file(self, path: str | Path, out_dir: str | Path = "stems", num_speakers: int | str = 2,
                      overwrite: bool = False) -> list[Path]:
        """Separate a WAV / FLAC file (any rate; channel 1 of several) into ``out_dir/<name>_speaker<k>.wav``,
        16-bit PCM at 16 kHz, scaled down together if a stem would clip; each file written atomically. The file is
        streamed (:func:`separate_file`): memory does not grow with its length.

        Returns:
            the N paths written, in stem order.

        Raises:
            FileNotFoundError: no such file. FileExistsError: a stem file exists and ``overwrite`` is False.
            ValueError: unreadable or refused audio (:class:`~spatialdc.eval.recording.WaveformScan`), a bad count,
                an output folder that is a file or under one.
        """
        count = self._count(num_speakers)
        return separate_file(path, out_dir, self.model, self.stats, count, self.chunk_s, self.overlap_s,
                             self.max_speakers, self.cluster_db, self.seed,
                             self._head() if count is None else None, overwrite)[0]
