"""The GRPO policy loss: PPO's clipped surrogate on group-relative advantages, plus k3 KL to a reference.

Per completion token (i = completion, t = token position)::

    ratio  = exp(logp - old_logp)
    pg     = -min(ratio * A_i, clamp(ratio, 1 - eps_low, 1 + eps_high) * A_i)
    kl     = exp(ref_logp - logp) - (ref_logp - logp) - 1            # k3 estimator, >= 0
    loss   = pg + beta * kl

and the token losses are reduced over the completion tokens (``mask``) by one of three aggregations:

- ``"token"``    (DAPO):     sum over masked tokens / number of masked tokens in the batch;
- ``"sequence"`` (GRPO):     mean over each completion's tokens, then mean over the N completions;
- ``"constant"`` (Dr. GRPO): sum over masked tokens / (N * max_len).

Numerical guards (documented choices, not in the formulas above):

- ``ref_logp - logp`` is clamped to [-20, 20] before ``exp`` in the KL, so the KL cannot overflow
  (exp(20) ~ 4.9e8) however far the policy drifts from the reference. Outside that range the KL's
  gradient is 0; inside it the formula is exact.
- Divisions by a token count use max(count, 1) semantics: a completion with no masked tokens
  contributes 0 (it still counts as one of the N completions in ``"sequence"``, like TRL), and an
  all-empty mask gives a loss of exactly 0 that is still connected to ``logp`` in the graph.
- The ratio itself is not clamped (as in TRL): masked-out positions must hold finite log-probs.

Masks may be bool or float (0/1); float masks act as token weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

AGGREGATIONS = ("token", "sequence", "constant")
KL_CLAMP = 20.0
"""Bound on |ref_logp - logp| inside the k3 KL, so exp() cannot overflow."""


# --------------------------------------------------------------------------- per-token pieces


def importance_ratio(logp: Tensor, old_logp: Tensor) -> Tensor:
    """pi_theta / pi_old per token: exp(logp - old_logp)."""
    return torch.exp(logp - old_logp)  # [N, T]


def clipped_surrogate(ratio: Tensor, advantages: Tensor, eps_low: float, eps_high: float) -> Tensor:
    """PPO's clipped policy-gradient loss per token: -min(ratio * A, clamp(ratio, 1-eps_low, 1+eps_high) * A)."""
    adv = advantages.unsqueeze(1)  # [N, 1]
    unclipped = ratio * adv  # [N, T]
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv  # [N, T]
    return -torch.min(unclipped, clipped)  # [N, T]


def clipped_tokens(
    ratio: Tensor, advantages: Tensor, eps_low: float, eps_high: float
) -> tuple[Tensor, Tensor]:
    """Where the clipped branch was taken (and has zero gradient): (low [N, T], high [N, T]) bool masks.

    Low: ratio < 1 - eps_low with A < 0. High: ratio > 1 + eps_high with A > 0.
    """
    adv = advantages.unsqueeze(1)  # [N, 1]
    low = (ratio < 1.0 - eps_low) & (adv < 0)  # [N, T]
    high = (ratio > 1.0 + eps_high) & (adv > 0)  # [N, T]
    return low, high


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 estimator of KL(pi_theta || pi_ref) per token: exp(d) - d - 1, d = ref_logp - logp clamped to +-20."""
    d = torch.clamp(ref_logp - logp, -KL_CLAMP, KL_CLAMP)  # [N, T]
    return torch.exp(d) - d - 1.0  # [N, T]


def per_token_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    *,
    eps_low: float,
    eps_high: float,
    beta: float,
) -> Tensor:
    """pg + beta * kl per token (no KL term at all when beta == 0)."""
    ratio = importance_ratio(logp, old_logp)  # [N, T]
    loss = clipped_surrogate(ratio, advantages, eps_low, eps_high)  # [N, T]
    if beta != 0.0:
        loss = loss + beta * k3_kl(logp, ref_logp)  # [N, T]
    return loss  # [N, T]


# --------------------------------------------------------------------------- aggregation


def _safe_count(count: Tensor) -> Tensor:
    """Token counts with 0 replaced by 1, so empty rows divide to 0 rather than NaN."""
    return torch.where(count > 0, count, torch.ones_like(count))


def aggregate(
    token_loss: Tensor, mask: Tensor, aggregation: str = "token", max_len: int | None = None
) -> Tensor:
    """Reduce token losses [N, T] over the masked tokens to a scalar (see the module docstring)."""
    n = token_loss.shape[0]
    masked = token_loss * mask  # [N, T]
    if aggregation == "token":
        return masked.sum() / _safe_count(mask.sum())  # []
    if aggregation == "sequence":
        per_seq = masked.sum(dim=1) / _safe_count(mask.sum(dim=1))  # [N]
        return per_seq.sum() / max(n, 1)  # []
    if aggregation == "constant":
        if max_len is None:
            raise ValueError('aggregation="constant" (Dr. GRPO) needs max_len, the maximum completion length')
        return masked.sum() / (max(n, 1) * max_len)  # []
    raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")


# --------------------------------------------------------------------------- public API


def _check_inputs(logp, old_logp, ref_logp, advantages, mask, eps_low, eps_high, beta, aggregation, max_len):
    if logp.dim() != 2:
        raise ValueError(f"logp must be [N, T], got shape {tuple(logp.shape)}")
    for name, t in (("old_logp", old_logp), ("mask", mask), ("ref_logp", ref_logp)):
        if t is not None and t.shape != logp.shape:
            raise ValueError(f"{name} must have the shape of logp {tuple(logp.shape)}, got {tuple(t.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be [N] = [{logp.shape[0]}], got shape {tuple(advantages.shape)}")
    if eps_low < 0 or eps_high < 0:
        raise ValueError(f"eps_low and eps_high must be >= 0, got {eps_low} and {eps_high}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta != 0.0 and ref_logp is None:
        raise ValueError(
            f"beta={beta} > 0 needs ref_logp (the reference model's log-probs); pass beta=0 to drop the KL"
        )
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")
    if aggregation == "constant" and (max_len is None or max_len < 1):
        raise ValueError(f'aggregation="constant" (Dr. GRPO) needs max_len >= 1, got {max_len!r}')


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    beta: float = 0.04,
    aggregation: str = "token",
    max_len: int | None = None,
) -> Tensor:
    """The GRPO loss (scalar) to minimise.

    logp, old_logp, ref_logp, mask: [N, T] over completion tokens; advantages: [N].
    ``old_logp`` and ``ref_logp`` are treated as constants (pass them detached).
    ``ref_logp`` may be None only when ``beta == 0``. ``max_len`` is required for ``"constant"``.
    """
    _check_inputs(logp, old_logp, ref_logp, advantages, mask, eps_low, eps_high, beta, aggregation, max_len)
    mask = mask.to(logp.dtype)  # [N, T]
    token_loss = per_token_loss(
        logp, old_logp, ref_logp, advantages, eps_low=eps_low, eps_high=eps_high, beta=beta
    )  # [N, T]
    return aggregate(token_loss, mask, aggregation, max_len)  # []


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over the masked tokens of the whole batch (0 when there are none)."""
    return (x * mask).sum() / _safe_count(mask.sum())  # []


@torch.no_grad()
def loss_stats(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> dict[str, float]:
    """Diagnostics for logging, each a mean over the masked tokens of the batch (0 when none).

    - ``kl``: mean k3 KL to the reference (only when ref_logp is given);
    - ``kl_old``: mean k3 KL to the sampling policy (how far the inner PPO iterations have moved);
    - ``clip_frac``: share of tokens where the clipped branch was taken (zero gradient),
      split into ``clip_frac_low`` (ratio < 1 - eps_low, A < 0) and ``clip_frac_high``
      (ratio > 1 + eps_high, A > 0) -- the same definitions as TRL's ``clip_ratio/*``;
    - ``ratio_mean``: mean importance ratio;
    - ``num_tokens``: number (total weight) of masked tokens.
    """
    mask = mask.to(logp.dtype)  # [N, T]
    ratio = importance_ratio(logp, old_logp)  # [N, T]
    low, high = clipped_tokens(ratio, advantages, eps_low, eps_high)  # [N, T], [N, T]
    stats = {
        "clip_frac": masked_mean((low | high).to(logp.dtype), mask),
        "clip_frac_low": masked_mean(low.to(logp.dtype), mask),
        "clip_frac_high": masked_mean(high.to(logp.dtype), mask),
        "ratio_mean": masked_mean(ratio, mask),
        "kl_old": masked_mean(k3_kl(logp, old_logp), mask),
        "num_tokens": mask.sum(),
    }
    if ref_logp is not None:
        stats["kl"] = masked_mean(k3_kl(logp, ref_logp), mask)
    return {k: float(v) for k, v in stats.items()}
