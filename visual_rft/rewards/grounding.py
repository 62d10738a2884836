"""Grounding reward: how well the one predicted box covers the one ground-truth box.

``solution`` is a `GroundingTarget` (its box already in the completion's coordinate convention) or a
solution string ``<answer> (x1,y1),(x2,y2) </answer>`` (tags optional; any grounding answer form works).
The answer forms are listed in `visual_rft.data.answer`: ``(x1,y1),(x2,y2)``, ``[x1, y1, x2, y2]``, or a
detection list holding exactly one object.

The reward is the IoU of the two boxes, in [0, 1]. With ``giou=True`` it is (GIoU + 1) / 2, also in
[0, 1]: it still separates boxes that miss the target by how far they miss, but note that any box
containing the target, however large, gets at least 0.5. A completion without one valid box, or an
unreadable solution, scores 0.0. Never raises.
"""

from __future__ import annotations

import functools

from visual_rft.data import boxes
from visual_rft.data.answer import grounding_answer, parse_box, solution_text
from visual_rft.data.boxes import Box4, as_box
from visual_rft.data.types import Box, GroundingTarget


@functools.lru_cache(maxsize=4096)
def _truth_from_text(solution: str) -> Box4 | None:
    return parse_box(solution_text(solution))


def truth_box(solution: object) -> Box4 | None:
    """The ground-truth box of a solution, or None when it cannot be read."""
    if isinstance(solution, GroundingTarget):
        return as_box(solution.box.xyxy) if isinstance(solution.box, Box) else None
    if isinstance(solution, str):
        return _truth_from_text(solution)
    return None


def grounding_reward(completion: object, solution: object, giou: bool = False) -> float:
    """IoU (or (GIoU + 1) / 2) of the predicted box with the ground-truth box, in [0, 1]."""
    truth = truth_box(solution)
    predicted = grounding_answer(completion)
    if truth is None or predicted is None:
        return 0.0
    if giou:
        return (boxes.giou(predicted, truth) + 1.0) / 2.0
    return boxes.iou(predicted, truth)


def grounding_giou_reward(completion: object, solution: object) -> float:
    """`grounding_reward` with ``giou=True``: (GIoU + 1) / 2."""
    return grounding_reward(completion, solution, giou=True)
