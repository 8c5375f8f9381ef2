"""Estimating the number of speakers of a mixture from its deep-clustering embeddings.

With ideal embeddings, the bins of each source sit at one of K mutually orthogonal unit vectors (Hershey et al.
2016, Sec. 3: the affinity V V^T approximates Y Y^T), so the D x D second-moment matrix C = V^T V / L of the L
non-silent bins has K non-zero eigenvalues, each the share of bins a source owns. We count the eigenvalues above
a share threshold (an eigenvalue-gap rule; the "Learning to Cluster" approach of Meier et al. 2018, which learns the
count, is the seed of the idea but needs a trained head). The threshold is chosen on a validation set with
``benchmarks/count.py``.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SHARE = 0.12  # smallest bin share of a counted source; a rule of thumb for well-trained embeddings, NOT yet
# validated: with the 30-minute models of RESULTS.md no threshold exceeds 55 % accuracy (benchmarks/count.py)


def embedding_spectrum(embeddings: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Eigenvalues of C = V^T V / L over the active bins, descending; they sum to 1 for unit embeddings.

    Args:
        embeddings: (F, T, D) float. active: (F, T) bool.

    Returns:
        (D,) float64.

    Raises:
        ValueError: no active bin.
    """
    v = embeddings[active].astype(np.float64)  # (L, D)
    if v.shape[0] == 0:
        raise ValueError("no non-silent bin: cannot estimate the number of speakers of a silent mixture")
    c = v.T @ v / v.shape[0]
    return np.sort(np.linalg.eigvalsh(c))[::-1]


def estimate_num_speakers(embeddings: np.ndarray, active: np.ndarray, max_speakers: int = 3,
                          share: float = DEFAULT_SHARE) -> int:
    """Number of eigenvalues of :func:`embedding_spectrum` above ``share``, clipped to 1..``max_speakers``.

    Raises:
        ValueError: no active bin, or ``max_speakers`` < 1.
    """
    if max_speakers < 1:
        raise ValueError(f"max_speakers must be >= 1, got {max_speakers}")
    ev = embedding_spectrum(embeddings, active)
    return int(np.clip(np.count_nonzero(ev > share), 1, max_speakers))
