"""GRPO for vision-language models: group sampling, group-relative advantages, the clipped policy loss."""

from visual_rft.models.forward import token_logprobs
from visual_rft.rl.advantages import group_advantages, keep_groups, zero_spread_groups
from visual_rft.rl.loss import loss_stats, policy_loss

__all__ = [
    "group_advantages",
    "keep_groups",
    "loss_stats",
    "policy_loss",
    "token_logprobs",
    "zero_spread_groups",
]
