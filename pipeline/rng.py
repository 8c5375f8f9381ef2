"""All randomness of the project comes from here.

Every random draw is made by a generator keyed by ``(seed, *keys)``, e.g. ``(seed, "fm2", "train", 17)``,
so a mixture's content depends only on its key and never on worker count, shard size or order
(the approach of sms_wsj ``create_rirs.get_rng``).
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_int(seed: int, *keys: object) -> int:
    """Hash ``(seed, *keys)`` into a 64-bit non-negative integer.

    Args:
        seed: the user's seed.
        keys: strings or integers that identify the draw (dataset, split, mixture index, purpose).

    Returns:
        int in [0, 2**63): stable across processes, platforms and Python versions (SHA-256, not ``hash``).
    """
    text = "/".join([str(int(seed))] + [str(k) for k in keys])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A ``numpy.random.Generator`` (PCG64) keyed by ``(seed, *keys)``; see :func:`key_int`."""
    return np.random.default_rng(key_int(seed, *keys))


def random_state_for(seed: int, *keys: object) -> int:
    """A 31-bit ``random_state`` for scikit-learn, keyed like :func:`rng_for`."""
    return key_int(seed, *keys) % (2**31 - 1)
