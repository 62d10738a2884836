"""AdamW with warm-up and constant / linear / cosine decay (transformers' schedulers); the vision tower may
learn at a rate of its own (`optim.vision_lr`), as VLMs are fine-tuned."""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor
from transformers import get_scheduler

from visual_rft.config import OptimConfig

SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def build_optimizer(params, cfg: OptimConfig, vision_params=()) -> torch.optim.Optimizer:
    """AdamW over the trainable `params`; those also in `vision_params` form a group at cfg.vision_lr."""
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters (everything is frozen?)")
    vision = {id(p) for p in vision_params}
    groups = [{"params": [p for p in params if id(p) not in vision], "lr": cfg.lr, "name": "language"}]
    if cfg.vision_lr is not None:
        groups.append(
            {"params": [p for p in params if id(p) in vision], "lr": cfg.vision_lr, "name": "vision"}
        )
    else:
        groups[0]["params"] = params
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


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
    if isinstance(norm, DTensor):  # sharded gradients (FSDP2): the norm over every rank's shards
        norm = norm.full_tensor()
    return float(norm), bool(torch.isfinite(norm))


def learning_rates(optimizer, scheduler) -> dict[str, float]:
    """The current learning rate of each group, for the log: "lr" (the language model, or all), "lr/vision"."""
    out = {}
    for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
        out["lr" if group.get("name", "language") == "language" else f"lr/{group['name']}"] = lr
    return out
