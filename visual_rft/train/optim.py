"""AdamW with warm-up and constant / linear / cosine decay (transformers' schedulers)."""

from __future__ import annotations

import torch
from transformers import get_scheduler

from visual_rft.config import OptimConfig

SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters (everything is frozen?)")
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


def build_scheduler(optimizer, cfg: OptimConfig, total_steps: int):
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {sorted(SCHEDULES)}, got {cfg.schedule!r}")
    return get_scheduler(
        SCHEDULES[cfg.schedule], optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps
    )


def clip_and_check(params, max_norm: float) -> tuple[float, bool]:
    """Clip gradients; returns (norm before clipping, whether every gradient is finite)."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0, True
    norm = torch.nn.utils.clip_grad_norm_(grads, max_norm if max_norm > 0 else float("inf"))
    return float(norm), bool(torch.isfinite(norm))
