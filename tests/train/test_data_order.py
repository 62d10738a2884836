"""batch_indices: the batch of a step is a function of (seed, step) only, epoch by epoch."""

import numpy as np
import pytest

from visual_rft.train.data_order import batch_indices, rank_indices, sampling_seed


def _epoch(n, batch_size, seed, epoch=0, shuffle=True):
    steps_per_epoch = n // batch_size
    start = epoch * steps_per_epoch
    return [
        i
        for s in range(start, start + steps_per_epoch)
        for i in batch_indices(s, batch_size, n, seed, shuffle)
    ]


def test_same_seed_and_step_give_the_same_batch():
    first = [batch_indices(s, 3, 10, seed=7) for s in range(8)]
    # asked in another order, in another "process": the same batches
    again = {s: batch_indices(s, 3, 10, seed=7) for s in reversed(range(8))}
    assert first == [again[s] for s in range(8)]
    assert all(len(b) == 3 and all(0 <= i < 10 for i in b) for b in first)


def test_shuffled_epochs_hold_every_sample_once():
    for epoch in range(3):
        order = _epoch(12, 4, seed=1, epoch=epoch)
        assert sorted(order) == list(range(12))
    assert _epoch(12, 4, seed=1, epoch=0) != _epoch(12, 4, seed=1, epoch=1)  # a new permutation each epoch


def test_shuffled_order_is_the_seeded_permutation_of_each_epoch():
    # sample k of the stream is permutation(seed, epoch)[k mod n], epoch = k // n
    n, seed = 5, 3
    stream = [i for s in range(5) for i in batch_indices(s, 2, n, seed)]  # 10 = two epochs
    expected = list(np.random.default_rng([seed, 0]).permutation(n)) + list(
        np.random.default_rng([seed, 1]).permutation(n)
    )
    assert stream == [int(i) for i in expected]


def test_batch_crossing_an_epoch_boundary_takes_the_next_epoch():
    # n = 5, batch 2: step 2 holds position 4 of epoch 0 and position 0 of epoch 1
    n, seed = 5, 0
    e0 = np.random.default_rng([seed, 0]).permutation(n)
    e1 = np.random.default_rng([seed, 1]).permutation(n)
    assert batch_indices(2, 2, n, seed) == [int(e0[4]), int(e1[0])]


def test_unshuffled_order_is_the_dataset_order_repeated():
    assert [batch_indices(s, 3, 5, seed=0, shuffle=False) for s in range(4)] == [
        [0, 1, 2],
        [3, 4, 0],
        [1, 2, 3],
        [4, 0, 1],
    ]
    assert batch_indices(2, 3, 5, seed=0, shuffle=False) == batch_indices(2, 3, 5, seed=99, shuffle=False)


def test_different_seeds_give_different_orders():
    orders = {tuple(_epoch(20, 5, seed=s)) for s in range(5)}
    assert len(orders) == 5
    assert all(sorted(o) == list(range(20)) for o in orders)


def test_batch_larger_than_the_dataset_wraps_into_later_epochs():
    batch = batch_indices(0, 7, 3, seed=2)
    assert sorted(batch[:3]) == [0, 1, 2] and sorted(batch[3:6]) == [0, 1, 2] and len(batch) == 7


def test_no_samples_is_an_error():
    with pytest.raises(ValueError, match="no training samples"):
        batch_indices(0, 2, 0, seed=0)


def test_the_ranks_share_out_the_global_batch_of_one_process():
    """N ranks of per_rank samples each take, together and in rank order, one process's batch of N x per_rank."""
    for step in range(5):
        one = batch_indices(step, 6, 10, seed=3)
        ranks = [rank_indices(step, 2, 10, seed=3, rank=r, world_size=3) for r in range(3)]
        assert [i for r in ranks for i in r] == one
    assert rank_indices(4, 3, 10, seed=3) == batch_indices(4, 3, 10, seed=3)  # one process: unchanged


def test_sampling_seeds_are_a_function_of_seed_step_and_prompt():
    seeds = {(s, t, p): sampling_seed(s, t, p) for s in range(2) for t in range(3) for p in range(4)}
    assert len(set(seeds.values())) == len(seeds)  # all different
    assert all(sampling_seed(*k) == v for k, v in seeds.items())  # and the same when asked again
    assert all(0 <= v < 2**63 for v in seeds.values())  # a valid torch.Generator seed
