"""Detection rewards: the paper's IoU reward and confidence reward.

``solution`` is a `DetectionTarget` (boxes already in the completion's coordinate convention) or a
solution string of Visual-RFT's datasets, ``<answer>[{'Position': [x1, y1, x2, y2], 'Confidence': 1}]</answer>``
(the tags may be left out; ``[]`` or ``No Objects`` means no box). Ground-truth boxes that are not valid
(e.g. collapsed to zero width by rounding) are ignored, and identical ones count once, as predictions do
(so a perfect answer always scores 1.0). An unreadable solution scores 0.

How a completion's answer is read (tags, JSON or Python literal, key names, invalid and duplicate
predictions, a missing confidence read as 1.0) is described in `visual_rft.data.answer`.

**Matching** (`visual_rft.data.boxes.match`): the valid predictions, most confident first, each take the
unmatched ground-truth box with the highest IoU; a prediction is *matched* when that IoU is above
``iou_threshold`` (0.5).

**iou_reward** = sum of the matched IoUs / max(number of ground-truth boxes, number of valid predictions).
Extra predictions, missed boxes and loose boxes all cost. With no ground-truth box: 1.0 for an empty answer
('No Objects' or []), 0.0 for anything else.

**confidence_reward** = the mean over valid predictions of c when matched and 1 - c when not (c the
prediction's confidence): confident hits and unconfident misses are rewarded. With no ground-truth box: 1.0
for an empty answer, 0.0 for an answer with no valid prediction, else the mean of 1 - c. Against
ground-truth boxes, an answer with no valid prediction scores 0.0.

Both rewards give 0.0 to a completion without a readable answer, are in [0, 1], and never raise.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from visual_rft.data.answer import (
    DetectionAnswer,
    detection_answer,
    is_no_objects,
    load_literal,
    read_object,
    solution_text,
)
from visual_rft.data.boxes import Box4, as_box, match
from visual_rft.data.types import Box, DetectionTarget

IOU_THRESHOLD = 0.5


# ----------------------------------------------------------------------------------------------------------
# The ground truth


def _truth_box(item: object) -> Box4 | None:
    if isinstance(item, Box):
        return as_box(item.xyxy)
    if isinstance(item, dict):
        prediction = read_object(item)
        return None if prediction is None else prediction.box
    return as_box(item)


def _valid_boxes(items: object) -> tuple[Box4, ...] | None:
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, (list, tuple)):
        return None
    boxes = (_truth_box(item) for item in items)
    return tuple(dict.fromkeys(b for b in boxes if b is not None))  # valid, each distinct box once, in order


@functools.lru_cache(maxsize=4096)
def _truth_from_text(solution: str) -> tuple[Box4, ...] | None:
    text = solution_text(solution)
    if is_no_objects(text):
        return ()
    return _valid_boxes(load_literal(text))


def truth_boxes(solution: object) -> tuple[Box4, ...] | None:
    """The valid ground-truth boxes of a solution, or None when the solution cannot be read."""
    if isinstance(solution, DetectionTarget):
        return _valid_boxes(solution.boxes)
    if isinstance(solution, str):
        return _truth_from_text(solution)
    return None


# ----------------------------------------------------------------------------------------------------------
# One completion against one solution, shared by both rewards


class Outcome(NamedTuple):
    """A detection answer matched against the ground truth."""

    answer: DetectionAnswer
    n_truth: int
    matched: tuple[float, ...]  # for each valid prediction (most confident first): its matched IoU, or 0.0


def _compute_outcome(completion: object, solution: object, iou_threshold: float) -> Outcome | None:
    truths = truth_boxes(solution)
    if truths is None:
        return None
    answer = detection_answer(completion)
    boxes = tuple(p.box for p in answer.predictions)
    return Outcome(answer, len(truths), tuple(match(boxes, truths, iou_threshold)))


_cached_outcome = functools.lru_cache(maxsize=4096)(_compute_outcome)


def outcome(completion: object, solution: object, iou_threshold: float = IOU_THRESHOLD) -> Outcome | None:
    """Match a completion's answer against a solution; None when the solution cannot be read.

    Cached, so that the IoU and the confidence reward of one completion match it once.
    """
    try:
        return _cached_outcome(completion, solution, iou_threshold)
    except TypeError:  # an unhashable argument: compute without the cache
        return _compute_outcome(completion, solution, iou_threshold)


# ----------------------------------------------------------------------------------------------------------
# The rewards


def iou_reward(completion: object, solution: object, iou_threshold: float = IOU_THRESHOLD) -> float:
    """The paper's IoU reward, in [0, 1] (rules in the module docstring)."""
    result = outcome(completion, solution, iou_threshold)
    if result is None or not result.answer.readable:
        return 0.0
    if result.n_truth == 0:
        return 1.0 if result.answer.empty else 0.0
    value = sum(result.matched) / max(result.n_truth, len(result.matched))
    return min(1.0, value)


def confidence_reward(completion: object, solution: object, iou_threshold: float = IOU_THRESHOLD) -> float:
    """The paper's confidence reward, in [0, 1] (rules in the module docstring)."""
    result = outcome(completion, solution, iou_threshold)
    if result is None or not result.answer.readable:
        return 0.0
    if result.n_truth == 0 and result.answer.empty:
        return 1.0
    predictions = result.answer.predictions
    if not predictions:
        return 0.0
    total = 0.0
    for prediction, matched_iou in zip(predictions, result.matched):
        total += prediction.confidence if matched_iou > 0.0 else 1.0 - prediction.confidence
    return min(1.0, total / len(predictions))


def clear_caches() -> None:
    """Forget cached ground truths and outcomes (for benchmarks that measure cold scoring)."""
    _truth_from_text.cache_clear()
    _cached_outcome.cache_clear()
