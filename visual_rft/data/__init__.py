"""Samples, targets, the JSONL format, prompts, converters and the synthetic world."""

from visual_rft.data.jsonl import DataError, check_file, iter_samples, read_samples, write_samples
from visual_rft.data.types import (
    TASKS,
    Box,
    ClassTarget,
    DetectionTarget,
    GroundingTarget,
    Sample,
    Target,
)

__all__ = [
    "TASKS",
    "Box",
    "ClassTarget",
    "DetectionTarget",
    "GroundingTarget",
    "Sample",
    "Target",
    "DataError",
    "check_file",
    "iter_samples",
    "read_samples",
    "write_samples",
]
