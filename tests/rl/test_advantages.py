"""Group-relative advantages: hand-computed values, zero-spread groups, validation, TRL parity."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from visual_rft import rl
from visual_rft.rl.advantages import keep_groups, zero_spread_groups

# Three groups of G = 3 (float64 so the hand values are exact):
#   group 0: [1, 2, 3]  mean 2, deviations (-1, 0, 1), unbiased var (1 + 0 + 1) / 2 = 1, std 1
#   group 1: [0, 0, 3]  mean 1, deviations (-1, -1, 2), unbiased var (1 + 1 + 4) / 2 = 3, std sqrt(3)
#   group 2: [5, 5, 5]  mean 5, deviations 0, std 0 -> 0 / (0 + 1e-4) = 0
REWARDS = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 3.0, 5.0, 5.0, 5.0], dtype=torch.float64)


def test_scaled_hand_values():
    s0, s1 = 1.0 + 1e-4, math.sqrt(3.0) + 1e-4
    expected = torch.tensor(
        [-1 / s0, 0.0, 1 / s0, -1 / s1, -1 / s1, 2 / s1, 0.0, 0.0, 0.0], dtype=torch.float64
    )
    assert_close(rl.group_advantages(REWARDS, 3), expected)
    assert_close(rl.group_advantages(REWARDS, 3, scale=True), expected)


def test_unscaled_hand_values_dr_grpo():
    expected = torch.tensor([-1.0, 0.0, 1.0, -1.0, -1.0, 2.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert_close(rl.group_advantages(REWARDS, 3, scale=False), expected)


def test_binary_rewards_one_success_in_four():
    # [1, 0, 0, 0]: mean 0.25, deviations (0.75, -0.25 x 3),
    # unbiased var (0.5625 + 3 * 0.0625) / 3 = 0.25, std 0.5
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    s = 0.5 + 1e-4
    assert_close(rl.group_advantages(r, 4), torch.tensor([0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s]))


def test_std_is_unbiased_not_population():
    # [0, 1]: population std 0.5, unbiased std sqrt(0.5) ~ 0.7071 -> advantages +-0.5 / (0.7071 + 1e-4)
    a = rl.group_advantages(torch.tensor([0.0, 1.0]), 2)
    s = math.sqrt(0.5) + 1e-4
    assert_close(a, torch.tensor([-0.5 / s, 0.5 / s]))


def test_groups_are_consecutive_not_strided():
    # With G = 2, groups are [0, 10] and [1, 11]; a strided reading would pair 0 with 1.
    r = torch.tensor([0.0, 10.0, 1.0, 11.0])
    assert_close(rl.group_advantages(r, 2, scale=False), torch.tensor([-5.0, 5.0, -5.0, 5.0]))


def test_group_size_one_gives_zero_advantages():
    r = torch.tensor([0.3, 1.0, -2.0])
    for scale in (True, False):
        a = rl.group_advantages(r, 1, scale=scale)
        assert_close(a, torch.zeros(3))


def test_single_group_and_empty_batch():
    assert_close(rl.group_advantages(torch.tensor([2.0, 4.0]), 2, scale=False), torch.tensor([-1.0, 1.0]))
    assert rl.group_advantages(torch.zeros(0), 4).shape == (0,)


def test_integer_rewards_become_float():
    a = rl.group_advantages(torch.tensor([0, 1, 1, 0]), 2, scale=False)
    assert a.is_floating_point()
    assert_close(a, torch.tensor([-0.5, 0.5, 0.5, -0.5]))


def test_zero_spread_groups_and_keep_groups():
    assert zero_spread_groups(REWARDS, 3).tolist() == [False, False, True]
    assert keep_groups(REWARDS, 3).tolist() == [True] * 6 + [False] * 3
    # the kept rows index any per-completion tensor
    assert REWARDS[keep_groups(REWARDS, 3)].tolist() == [1.0, 2.0, 3.0, 0.0, 0.0, 3.0]
    # a tiny spread is a spread unless atol says otherwise
    r = torch.tensor([1.0, 1.0 + 1e-6, 0.0, 1.0])
    assert zero_spread_groups(r, 2).tolist() == [False, False]
    assert zero_spread_groups(r, 2, atol=1e-5).tolist() == [True, False]
    # a group of one has no spread
    assert zero_spread_groups(torch.tensor([1.0, 2.0]), 1).tolist() == [True, True]


def test_zero_spread_groups_have_zero_advantages():
    a = rl.group_advantages(REWARDS, 3).view(3, 3)
    assert torch.all(a[zero_spread_groups(REWARDS, 3)] == 0)


@pytest.mark.parametrize("fn", [rl.group_advantages, zero_spread_groups, keep_groups])
def test_indivisible_batch_names_both_numbers(fn):
    with pytest.raises(ValueError, match=r"\(10\).*\(4\)"):
        fn(torch.zeros(10), 4)


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, None])
def test_bad_group_size(bad):
    with pytest.raises(ValueError, match="group_size"):
        rl.group_advantages(torch.zeros(4), bad)


def test_rewards_must_be_flat():
    with pytest.raises(ValueError, match="1-D"):
        rl.group_advantages(torch.zeros(2, 2), 2)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(2, 6),
    st.lists(st.floats(-5, 5, width=32), min_size=24, max_size=24),
)
def test_property_groups_are_centred(num_groups, group_size, values):
    r = torch.tensor(values[: num_groups * group_size])
    for scale in (True, False):
        a = rl.group_advantages(r, group_size, scale=scale).view(num_groups, group_size)
        assert torch.isfinite(a).all()
        assert_close(a.sum(dim=1), torch.zeros(num_groups), atol=1e-4, rtol=0)
    # with a spread far above 1e-4, scaled advantages have (unbiased) std ~ 1 per group
    a = rl.group_advantages(r, group_size).view(num_groups, group_size)
    spread = r.view(num_groups, group_size).std(dim=1) > 0.1
    if spread.any():
        assert_close(a[spread].std(dim=1), torch.ones(int(spread.sum())), atol=2e-3, rtol=0)


def test_matches_trl_group_normalisation():
    """TRL 1.16 grpo_trainer.py lines 2763-2787 (sum_then_normalize, scale_rewards='group'/'none'),
    replayed with TRL's own nanstd (trl/trainer/utils.py:1021, Bessel-corrected) and epsilon 1e-4."""
    nanstd = pytest.importorskip("trl.trainer.utils").nanstd
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(24, generator=g).round(decimals=1)
    rewards[6:12] = 0.5  # one zero-spread group
    num_generations = 6
    mean = torch.nanmean(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations, dim=0)
    std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations, dim=0)
    trl_scaled = (rewards - mean) / (std + 1e-4)
    trl_unscaled = rewards - mean
    assert_close(rl.group_advantages(rewards, num_generations), trl_scaled)
    assert_close(rl.group_advantages(rewards, num_generations, scale=False), trl_unscaled)
