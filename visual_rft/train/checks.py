"""Config checks that need no model, data or device: each trainer runs its own before anything loads, and a
recipe runs them on every section it will train with before its first expensive step (a world drawn, a
stage trained), so that a typo in its last stage does not wait for the others.

`check_train_config` covers what every trainer shares (run, model, optim, data, dist); `sft.trainer`'s
`check_sft_config` and `rl.trainer`'s `check_grpo_config` add their own sections. Checks name the field as
a command line sets it (`optim.schedule`); `config_section` prefixes a recipe's section ("joint: ...").
What needs the device (bf16 on this GPU) is checked when the device is known.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from visual_rft.models.loading import resolve_dtype
from visual_rft.train.distributed import resolve_strategy
from visual_rft.train.optim import SCHEDULES
from visual_rft.train.precision import policy_dtype, resolve_precision

CPU = torch.device("cpu")


@contextmanager
def config_section(name: str) -> Iterator[None]:
    """A check's error inside names the recipe's section it comes from: "joint: run.precision must be ..."."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def check_share(value: float, field: str) -> None:
    """Refuse a share (of steps, of samples) outside [0, 1], naming the config field."""
    if not 0 <= value <= 1:
        raise ValueError(f"{field}: {value} is not a share in [0, 1]")


def check_at_least(values: dict[str, float], least: float) -> None:
    """Refuse any of {field: value} below `least` (or not a number), naming the first."""
    for name, value in values.items():
        if not value >= least:
            raise ValueError(f"{name} must be >= {least}, got {value}")


def check_train_config(cfg) -> None:
    """The sections every trainer's config has (`TrainConfig`, `SFTTrainConfig`)."""
    run, m, o = cfg.run, cfg.model, cfg.optim
    resolve_precision(run.precision, CPU)  # the name; a GPU without bf16 is refused once it is known
    resolve_strategy(cfg.dist.strategy, run.precision)
    policy_dtype(m.dtype, m.lora.enabled)  # a full fine-tune keeps fp32 master weights
    try:
        resolve_dtype(m.dtype, CPU)
    except ValueError as error:
        raise ValueError(f"model.dtype: {error}") from error
    if o.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {sorted(SCHEDULES)}, got {o.schedule!r}")
    if not (o.lr >= 0 and math.isfinite(o.lr)):  # 0: the loss without updates (tests measure that)
        raise ValueError(f"optim.lr must be a number >= 0, got {o.lr}")
    if o.vision_lr is not None and not (o.vision_lr >= 0 and math.isfinite(o.vision_lr)):
        raise ValueError(f"optim.vision_lr must be >= 0 (or unset: optim.lr), got {o.vision_lr}")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ValueError(f"optim.betas must be two numbers in [0, 1), got {o.betas}")
    check_at_least(
        {
            "run.steps": run.steps,
            "optim.warmup_steps": o.warmup_steps,
            "data.max_samples": cfg.data.max_samples,
            "model.logprob_chunk_size": m.logprob_chunk_size,  # 0: no chunking
        },
        0,
    )
