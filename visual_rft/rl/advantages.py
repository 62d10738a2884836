"""Group-relative advantages (GRPO): rewards normalised within each group of samples for one prompt.

Rewards arrive flat, as consecutive groups: ``rewards[g * G : (g + 1) * G]`` are the G completions
sampled for prompt ``g``. There is no critic: each completion's advantage is its reward compared with
its own group's.

- ``scale=True`` (GRPO):       A = (r - mean_g) / (std_g + 1e-4), std the unbiased sample std;
- ``scale=False`` (Dr. GRPO):  A = r - mean_g.

A group whose rewards are all equal carries no learning signal (every advantage is 0); dynamic
sampling (DAPO) drops such groups, see :func:`zero_spread_groups` and :func:`keep_groups`.
"""

from __future__ import annotations

import torch
from torch import Tensor

STD_EPS = 1e-4
"""Added to the group std before dividing, so a zero-spread group gives 0 advantages, not NaN."""


def _check_groups(rewards: Tensor, group_size: int) -> int:
    """Validate the flat reward layout; return the number of groups."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {group_size!r}")
    n = rewards.numel()
    if n % group_size != 0:
        raise ValueError(
            f"the number of rewards ({n}) is not divisible by group_size ({group_size}): "
            "rewards must come as consecutive, complete groups"
        )
    return n // group_size


def group_rewards(rewards: Tensor, group_size: int) -> Tensor:
    """View flat rewards [N] as [N // group_size, group_size] (validated)."""
    num_groups = _check_groups(rewards, group_size)
    if not rewards.is_floating_point():
        rewards = rewards.float()  # [N]
    return rewards.view(num_groups, group_size)  # [B, G]


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True) -> Tensor:
    """Group-relative advantages [N] for rewards [N] laid out as consecutive groups of ``group_size``.

    ``scale=True``: (r - group mean) / (group std + 1e-4), with torch's default unbiased std.
    ``scale=False`` (Dr. GRPO): r - group mean.

    ``group_size == 1``: the unbiased std of one sample is undefined (NaN), and r - mean is 0 anyway,
    so the advantages are defined as 0 (with and without scaling). TRL does the same (its std is
    replaced by 0 when there is one generation per prompt).
    """
    grouped = group_rewards(rewards, group_size)  # [B, G]
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # [B, G]
    if group_size == 1 or grouped.numel() == 0:
        return torch.zeros_like(centred).view(-1)  # [N]
    if scale:
        std = grouped.std(dim=1, keepdim=True)  # [B, 1]  unbiased (Bessel)
        centred = centred / (std + STD_EPS)  # [B, G]
    return centred.reshape(-1)  # [N]


def zero_spread_groups(rewards: Tensor, group_size: int, *, atol: float = 0.0) -> Tensor:
    """Bool [N // group_size]: True for groups whose rewards are all equal (max - min <= atol).

    Such groups have all-zero advantages and contribute no policy gradient (only KL);
    dynamic sampling drops them. ``atol=0`` means exact equality.
    """
    grouped = group_rewards(rewards, group_size)  # [B, G]
    spread = grouped.amax(dim=1) - grouped.amin(dim=1)  # [B]
    return spread <= atol  # [B]


def keep_groups(rewards: Tensor, group_size: int, *, atol: float = 0.0) -> Tensor:
    """Bool [N]: True for every completion whose group has reward spread (the rows dynamic sampling keeps).

    Use it to index any per-completion tensor: ``logp[keep]``, ``advantages[keep]``.
    """
    keep = ~zero_spread_groups(rewards, group_size, atol=atol)  # [B]
    return keep.repeat_interleave(group_size)  # [N]
