"""The shipped base model: where it lives in the package, and the think text it was pre-trained to write.

`vrft world pretrain ship=true` writes it; `vrft demo` and every few-shot recipe start from it.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_BASE = Path(__file__).resolve().parents[1] / "assets" / "base-5m"
"""Where the shipped base checkpoint lives inside the package."""

THINK = "Let me look at the image."
"""The fixed reasoning text the base model was pre-trained to write (and SFT keeps writing)."""


def default_base_model() -> Path:
    """The base checkpoint shipped with the package (see `vrft world pretrain`)."""
    if not (SHIPPED_BASE / "config.json").exists():
        raise FileNotFoundError(
            f"{SHIPPED_BASE}: the shipped base model is missing; build it with `vrft world pretrain ship=true`"
        )
    return SHIPPED_BASE
