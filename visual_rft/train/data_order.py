"""A deterministic data order that a resumed run can pick up exactly: a function of (seed, step) only."""

from __future__ import annotations

import numpy as np


def batch_indices(step: int, batch_size: int, n: int, seed: int, shuffle: bool = True) -> list[int]:
    """Indices of the samples for optimizer step `step` (0-based): epochs of seeded permutations."""
    if n <= 0:
        raise ValueError("no training samples")
    out = []
    for k in range(step * batch_size, (step + 1) * batch_size):
        epoch, pos = divmod(k, n)
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        out.append(int(order[pos]))
    return out
