"""The data layer: samples and targets, the JSONL format, the answer format (writing and reading answers,
box geometry, coordinates), prompts, k-shot splits and the importer of the released datasets.

It imports nothing else of visual_rft; everything else builds on it.
"""

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
