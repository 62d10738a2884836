"""A deterministic data order that a resumed run can pick up exactly: a function of (seed, step, rank) only."""

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


def rank_indices(
    step: int, per_rank: int, n: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1
) -> list[int]:
    """This rank's share of step `step`'s global batch of `world_size * per_rank` samples: the slice
    [rank * per_rank, (rank + 1) * per_rank) of it. One process (world_size 1): `batch_indices`; the
    ranks of an N-process run together take exactly the batch of one process with N x per_rank."""
    batch = batch_indices(step, per_rank * world_size, n, seed, shuffle)
    return batch[rank * per_rank : (rank + 1) * per_rank]


def sampling_seed(seed: int, step: int, prompt: int) -> int:
    """The seed of the rollout noise of the `prompt`-th prompt (its index in the step's global batch) of
    step `step`: the completions of a prompt do not depend on which rank samples it, nor on its neighbours."""
    return int(np.random.SeedSequence([seed, step, prompt]).generate_state(1, np.uint64)[0] >> 1)


JITTER_STREAM = 7
"""A non-zero tag that keeps `position_offsets`' stream apart from the data order's ([seed, epoch]): numpy's
SeedSequence ignores trailing zeros."""


def position_offsets(seed: int, step: int, batch: int, most: int) -> list[int]:
    """`sft.position_jitter`'s offsets, 0..most, of the `batch` samples of step `step`'s global batch in order:
    a sample's offset depends on its index there, not on which rank or micro-batch takes it."""
    return np.random.default_rng([seed, step, JITTER_STREAM]).integers(0, most + 1, batch).tolist()
