"""Helpers of the config checks, which need no model, data or device: each trainer and the evaluation check
their own settings before anything loads (`train.base.check_train_config`, `sft.trainer.check_sft_config`,
`rl.trainer.check_grpo_config`, `eval.runner.check_eval_options`), and a recipe checks every section it will
run with before its first expensive step (a world drawn, a stage trained), so that a typo in its last stage
does not wait for the others. Errors name the field as a command line sets it (`optim.schedule`);
`config_section` prefixes a recipe's section ("joint: optim.schedule ..."). Imports nothing of ours.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager


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


def check_rate(value: float, field: str) -> None:
    """Refuse a learning rate below 0 or not finite (0 is allowed: the loss without updates), naming the field."""
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{field} must be a number >= 0, got {value}")
