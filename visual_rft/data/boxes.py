"""Box geometry, the one place for it: validity, IoU, GIoU, the paper's greedy matching, areas.

Used by the rewards, the evaluation metrics and the synthetic world's placement alike.

A box here is a plain tuple ``(x1, y1, x2, y2)`` of floats (tuples are faster than objects on the hot path).
A box is valid when its four values are finite real numbers with ``x2 > x1`` and ``y2 > y1``.

Both overlap measures are total: they never raise and always return a finite number in range, even for
boxes so large (or so small) that their areas overflow (or underflow) floating point; such pairs count as
not overlapping at all (IoU 0, GIoU -1) unless the two boxes are identical (IoU and GIoU 1).
"""

from __future__ import annotations

import math
import numbers

Box4 = tuple[float, float, float, float]

_INF = math.inf
_PLAIN_NUMBER_TYPES = frozenset({int, float})


def is_number(value: object) -> bool:
    """True for a real number (``bool`` is not a number here, although Python says it is an int)."""
    if type(value) in _PLAIN_NUMBER_TYPES:  # the common case, checked fast
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_box(values: object) -> Box4 | None:
    """``values`` as a valid box tuple of floats, or None when it is not four finite numbers with x2 > x1, y2 > y1."""
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None
    x1, y1, x2, y2 = values
    plain = _PLAIN_NUMBER_TYPES  # checked first: the fast path for what JSON and literals give
    if not (type(x1) in plain and type(y1) in plain and type(x2) in plain and type(y2) in plain):
        if not (is_number(x1) and is_number(y1) and is_number(x2) and is_number(y2)):
            return None
    try:
        x1, y1, x2, y2 = float(x1), float(y1), float(x2), float(y2)
    except OverflowError:  # an int too large for a float
        return None
    if not (x2 > x1 and y2 > y1):  # also False when any value is NaN
        return None
    if x1 == -_INF or y1 == -_INF or x2 == _INF or y2 == _INF:
        return None
    return (x1, y1, x2, y2)


def iou(a: Box4, b: Box4) -> float:
    """Intersection over union of two valid boxes, in [0, 1]."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
    if iw <= 0.0:
        return 0.0
    ih = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
    if ih <= 0.0:
        return 0.0
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if not 0.0 < union < _INF:  # areas overflowed or underflowed (NaN fails this test too)
        return 1.0 if a == b else 0.0
    value = inter / union
    return value if value < 1.0 else 1.0


def area(box: Box4) -> float:
    """The area of a box; 0 for a reversed or empty one."""
    x1, y1, x2, y2 = box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def intersection(a: Box4, b: Box4) -> float:
    """The area two boxes share (0 when they are disjoint); with `area`, what cumulative IoU adds up."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    return iw * ih if iw > 0 and ih > 0 else 0.0


def giou(a: Box4, b: Box4) -> float:
    """Generalised IoU (Rezatofighi et al., 2019) of two valid boxes, in [-1, 1].

    GIoU = IoU - (hull - union) / hull, with hull the area of the smallest box enclosing both.
    It equals IoU for a box that contains the other, and goes towards -1 as disjoint boxes move apart.
    """
    if a == b:
        return 1.0
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    if not (0.0 < union < _INF and 0.0 < hull < _INF):
        return -1.0
    value = inter / union - (hull - union) / hull
    return min(1.0, max(-1.0, value))


def match(predictions: tuple[Box4, ...], truths: tuple[Box4, ...], threshold: float = 0.5) -> list[float]:
    """The paper's greedy matching; returns, for each prediction in order, its matched IoU or 0.0.

    ``predictions`` must already be in priority order (most confident first). Each prediction in turn takes
    the still unmatched ground-truth box with the highest IoU (the first one on ties); it is matched when
    that IoU is above ``threshold``, and the ground-truth box is then used up. A matched IoU is always > 0.
    """
    taken = [False] * len(truths)
    matched = []
    for p in predictions:
        best, best_j = 0.0, -1
        for j, t in enumerate(truths):
            if not taken[j]:
                value = iou(p, t)
                if value > best:
                    best, best_j = value, j
        if best_j >= 0 and best > threshold:
            taken[best_j] = True
            matched.append(best)
        else:
            matched.append(0.0)
    return matched
