"""The data model: a `Sample` and its typed `target`.

Boxes are stored in absolute pixels of the ORIGINAL image, as (x1, y1, x2, y2) with x2 > x1, y2 > y1.
Conversion to a model's own convention (0-1000 integers, or pixels of the resized image) happens
in exactly one place: `visual_rft.data.coords`.

This module imports nothing heavy (no torch, no PIL): rewards and data code build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TASKS = ("classification", "detection", "grounding")
"""The task names a `Sample` can carry. Open-vocabulary detection is `detection` with a category split."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box (x1, y1, x2, y2), with an optional category name."""

    x1: float
    y1: float
    x2: float
    y2: float
    category: str | None = None

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


@dataclass(frozen=True)
class ClassTarget:
    """Fine-grained classification: the one correct class name."""

    label: str


@dataclass(frozen=True)
class DetectionTarget:
    """Detection of every instance of `category` (the paper asks one category per query).

    An empty `boxes` means the category is absent and the right answer is 'No Objects'.
    """

    boxes: tuple[Box, ...] = ()
    category: str | None = None


@dataclass(frozen=True)
class GroundingTarget:
    """Reasoning grounding: the one box the instruction refers to."""

    box: Box


Target = ClassTarget | DetectionTarget | GroundingTarget

TARGET_FOR_TASK = {"classification": ClassTarget, "detection": DetectionTarget, "grounding": GroundingTarget}


@dataclass
class Sample:
    """One training or test example.

    `images` are paths (absolute, or relative to the JSONL file that holds the sample, resolved on load).
    `width`/`height` are the original image size in pixels when known (needed for coordinate conversion).
    `meta` carries anything else (split, shot index, source id) and is written back unchanged.
    """

    id: str
    images: list[str]
    task: str
    problem: str
    target: Target
    width: int | None = None
    height: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def image(self) -> str:
        """The first (usually only) image path."""
        return self.images[0]
