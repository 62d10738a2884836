"""The one place that converts boxes between dataset pixels and a model's coordinate convention.

Datasets store boxes in absolute pixels of the original image. Models answer in their own convention:

- ``"norm1000"``: Qwen2-VL and Qwen3-VL, integers 0-1000 relative to the image (x / width * 1000).
- ``"resized_pixels"``: Qwen2.5-VL, pixels of the image as the processor resized it
  (``resized`` = (width, height) after the processor's smart resize).

`visual_rft.models` decides which convention a model uses (from its config's model_type) and computes
the resized size; everything else calls `to_model` / `from_model` here and does no coordinate arithmetic.
Pure Python: no torch, no PIL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Target

CONVENTIONS = ("norm1000", "resized_pixels")


@dataclass(frozen=True)
class CoordFrame:
    """How to map original-image pixels to a model's answer space for ONE image.

    `convention`: one of CONVENTIONS. `size`: the original (width, height).
    `resized`: the processor's resized (width, height); needed for "resized_pixels" only.
    """

    convention: str
    size: tuple[int, int]
    resized: tuple[int, int] | None = None

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(
                f"unknown coordinate convention {self.convention!r}; expected one of {CONVENTIONS}"
            )
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise ValueError(f"image size must be positive, got {self.size}")
        if self.convention == "resized_pixels" and self.resized is None:
            raise ValueError("the 'resized_pixels' convention needs the resized image size")

    @property
    def scale(self) -> tuple[float, float]:
        """Model units per original pixel, along x and y."""
        w, h = self.size
        if self.convention == "norm1000":
            return 1000.0 / w, 1000.0 / h
        rw, rh = self.resized  # type: ignore[misc]
        return rw / w, rh / h

    @property
    def extent(self) -> tuple[float, float]:
        """The largest coordinate values in model units (the image's far corner)."""
        sx, sy = self.scale
        return self.size[0] * sx, self.size[1] * sy


def to_model(box: Box, frame: CoordFrame, *, integer: bool = True) -> Box:
    """Original-image pixels -> the model's convention (rounded to integers by default, as models answer)."""
    sx, sy = frame.scale
    vals = (box.x1 * sx, box.y1 * sy, box.x2 * sx, box.y2 * sy)
    if integer:
        vals = tuple(float(round(v)) for v in vals)
    return replace(box, x1=vals[0], y1=vals[1], x2=vals[2], y2=vals[3])


def from_model(box: Box, frame: CoordFrame) -> Box:
    """The model's convention -> original-image pixels (floats, not clipped)."""
    sx, sy = frame.scale
    return replace(box, x1=box.x1 / sx, y1=box.y1 / sy, x2=box.x2 / sx, y2=box.y2 / sy)


def answer_to_pixels(xyxy, frame: CoordFrame, *, clip: bool = False, category: str | None = None) -> Box:
    """A box as a model answered it, (x1, y1, x2, y2) in its convention -> a `Box` in original-image pixels.

    `clip`: limit the box to the image (a dataset importer does; evaluation scores the box as answered).
    """
    b = from_model(Box(*xyxy, category), frame)
    if clip:
        w, h = frame.size
        b = replace(b, x1=max(0.0, b.x1), y1=max(0.0, b.y1), x2=min(float(w), b.x2), y2=min(float(h), b.y2))
    return b


def target_to_model(target: Target, frame: CoordFrame) -> Target:
    """Convert every box of a target into the model's convention (class targets pass through)."""
    if isinstance(target, DetectionTarget):
        return replace(target, boxes=tuple(to_model(b, frame) for b in target.boxes))
    if isinstance(target, GroundingTarget):
        return replace(target, box=to_model(target.box, frame))
    if isinstance(target, ClassTarget):
        return target
    raise TypeError(f"not a target: {target!r}")
