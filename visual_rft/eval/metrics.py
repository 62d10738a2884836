"""Evaluation metrics over already-parsed predictions and ground truth.

Pure functions: no model, no torch. Parsing completions happens in `visual_rft.data.answer`; the eval
runner converts model coordinates with `visual_rft.data.coords` first, so every box here is
(x1, y1, x2, y2) in pixels of the ORIGINAL image. A box may be a 4-sequence or anything with an
``.xyxy`` attribute (`visual_rft.data.types.Box`).

- classification: `classification_metrics` (strict accuracy, the paper's lenient accuracy beside it,
  per-class accuracy, unparseable share);
- detection: `detection_metrics` (COCO AP through pycocotools' COCOeval, one query per
  (image, category) as in the paper), `open_vocab_metrics` (base / novel / all);
- reasoning grounding: `grounding_metrics` (gIoU, cIoU, share of IoU > 0.5), on `visual_rft.data.boxes`'
  one IoU.

Fractions (accuracies, AP, IoU) are returned in [0, 1]; `visual_rft.eval.table` shows them x100.
A metric that is undefined (no samples, a category with no ground truth) is None, never NaN.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from visual_rft.data import boxes

# --------------------------------------------------------------------------------------------------
# classification


def classification_metrics(
    strict_correct: Sequence[bool],
    lenient_correct: Sequence[bool] | None,
    labels: Sequence[str],
    parsed: Sequence[bool],
) -> dict[str, Any]:
    """Accuracy under the strict rule, the paper's lenient rule beside it, and per-class accuracy.

    All arguments are per sample. `strict_correct`: exact match after normalisation (the training
    reward's rule, `visual_rft.rewards.cls_reward`); `lenient_correct`: the paper's lenient rule (or None when not computed);
    `labels`: the ground-truth class names, used to group per-class (strict) accuracy;
    `parsed`: whether the completion could be parsed at all.

    Returns ``accuracy``, ``lenient_accuracy``, ``unparseable`` (share not parsed), ``n`` and
    ``per_class`` ({label: strict accuracy}, labels sorted). Empty input gives None fractions and n = 0.
    """
    lenient = strict_correct if lenient_correct is None else lenient_correct
    _same_length(strict_correct=strict_correct, lenient_correct=lenient, labels=labels, parsed=parsed)
    by_class: dict[str, list[bool]] = {}
    for ok, label in zip(strict_correct, labels):
        by_class.setdefault(label, []).append(bool(ok))
    return {
        "accuracy": _mean(strict_correct),
        "lenient_accuracy": None if lenient_correct is None else _mean(lenient_correct),
        "unparseable": _mean([not p for p in parsed]),
        "n": len(labels),
        "per_class": {label: _mean(by_class[label]) for label in sorted(by_class)},
    }


# --------------------------------------------------------------------------------------------------
# detection


class DetectionQuery(NamedTuple):
    """One detection query, as the paper asks: one image, one category.

    `gt_boxes`: every ground-truth box of `category` in the image (empty when it is absent);
    `pred_boxes`: the model's boxes for this query; `pred_scores`: their confidences, the AP ranking
    score (None: every box scores 1.0); `not_exhaustive`: LVIS's not-exhaustively-labelled (image,
    category): a box that matches no ground truth is ignored, not a false positive (LVIS's federated
    rule). A plain 5- or 6-tuple in this order works too.
    """

    image_id: Hashable
    category: str
    gt_boxes: Sequence[Any]
    pred_boxes: Sequence[Any] = ()
    pred_scores: Sequence[float] | None = None
    not_exhaustive: bool = False


_AP_KEYS = ("mAP", "AP50", "AP75")


def detection_metrics(
    queries: Sequence[DetectionQuery | tuple],
    image_sizes: Mapping[Hashable, tuple[int, int]] | None = None,
    categories: Sequence[str] | None = None,
    *,
    splits: Mapping[str, Sequence[str]] | None = None,
    max_dets: int = 100,
) -> dict[str, Any]:
    """COCO-style box AP (pycocotools' COCOeval), with each query's predictions as its detections.

    `queries`: one per (image, category); each (image_id, category, gt_boxes, pred_boxes, pred_scores),
    boxes xyxy in original pixels. `image_sizes`: {image_id: (width, height)}, recorded in the COCO
    images (box AP does not depend on them). `categories`: the categories mAP / AP50 / AP75 average
    over (default: all queried). Categories without ground truth have no AP (None) and are left out of
    every mean. `splits`: extra named category lists, each adding ``mAP_<name>``, ``AP50_<name>``,
    ``AP75_<name>``. `max_dets`: COCO's per-image-per-category detection cap.

    Returns ``mAP`` (AP at IoU 0.50:0.95), ``AP50``, ``AP75``, ``per_category`` and
    ``per_category_AP50`` ({category: AP or None}, sorted), and counts ``n_queries``, ``n_images``,
    ``n_gt``, ``n_pred``, ``n_categories`` (categories in the mean that have ground truth).
    """
    queries = [DetectionQuery(*q) for q in queries]
    names, ap, ap50, ap75 = _per_category_ap(queries, image_sizes, max_dets)
    out: dict[str, Any] = {}
    chosen = names if categories is None else list(categories)
    for key, value in zip(_AP_KEYS, _means([ap, ap50, ap75], chosen)):
        out[key] = value
    for split, cats in (splits or {}).items():
        for key, value in zip(_AP_KEYS, _means([ap, ap50, ap75], cats)):
            out[f"{key}_{split}"] = value
    out["per_category"] = {c: ap[c] for c in names}
    out["per_category_AP50"] = {c: ap50[c] for c in names}
    out["n_queries"] = len(queries)
    out["n_images"] = len({q.image_id for q in queries})
    out["n_gt"] = sum(len(q.gt_boxes) for q in queries)
    out["n_pred"] = sum(len(q.pred_boxes) for q in queries)
    out["n_categories"] = sum(ap.get(c) is not None for c in dict.fromkeys(chosen))
    return out


def open_vocab_metrics(
    queries: Sequence[DetectionQuery | tuple],
    base: Sequence[str],
    novel: Sequence[str],
    image_sizes: Mapping[Hashable, tuple[int, int]] | None = None,
    *,
    max_dets: int = 100,
) -> dict[str, Any]:
    """Open-vocabulary detection: AP over base, novel and all (base + novel) categories separately.

    One COCOeval run; adds ``mAP_base``, ``AP50_base``, ``AP75_base``, the same for ``_novel`` and
    ``_all``, to everything `detection_metrics` returns (whose plain ``mAP`` is over base + novel).
    """
    everything = list(dict.fromkeys([*base, *novel]))
    splits = {"base": list(base), "novel": list(novel), "all": everything}
    return detection_metrics(queries, image_sizes, everything, splits=splits, max_dets=max_dets)


def _per_category_ap(
    queries: list[DetectionQuery], image_sizes: Mapping | None, max_dets: int
) -> tuple[list[str], dict[str, float | None], dict[str, float | None], dict[str, float | None]]:
    """Run COCOeval; return sorted category names and their AP, AP50, AP75 (None where no GT)."""
    names = sorted({q.category for q in queries})
    none = dict.fromkeys(names)
    if not any(q.gt_boxes for q in queries):
        return names, none, dict(none), dict(none)
    evaluator = _run_cocoeval(queries, names, image_sizes, max_dets)
    precision = evaluator.eval["precision"][:, :, :, 0, 0]  # [T, R, K]: area "all", maxDets = max_dets
    thresholds = evaluator.params.iouThrs
    i50, i75 = (int(np.argmin(np.abs(thresholds - t))) for t in (0.5, 0.75))
    ap, ap50, ap75 = dict(none), dict(none), dict(none)
    for k, name in enumerate(names):
        if precision[0, 0, k] > -1:  # -1 marks a category with no ground truth
            ap[name] = float(precision[:, :, k].mean())
            ap50[name] = float(precision[i50, :, k].mean())
            ap75[name] = float(precision[i75, :, k].mean())
    return names, ap, ap50, ap75


def _run_cocoeval(
    queries: list[DetectionQuery], names: list[str], image_sizes: Mapping | None, max_dets: int
):
    """Build COCO ground truth and detections in memory and evaluate only the queried (image, category) pairs.

    pycocotools' own `evaluate()` visits every (image, category) pair, most of them empty here; the
    result of an unqueried pair is None either way, so evaluating only the queried ones (with COCOeval's
    own `computeIoU` / `evaluateImg` / `accumulate`) gives identical numbers, much faster.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    image_index: dict[Hashable, int] = {}
    cat_ids = {name: k + 1 for k, name in enumerate(names)}
    gt_anns: list[dict] = []
    dt_anns: list[dict] = []
    pairs: set[tuple[int, int]] = set()
    not_exhaustive: set[tuple[int, int]] = set()
    for q in queries:
        img = image_index.setdefault(q.image_id, len(image_index) + 1)
        cat = cat_ids[q.category]
        if (img, cat) in pairs:
            raise ValueError(f"two queries for image {q.image_id!r} and category {q.category!r}")
        pairs.add((img, cat))
        if q.not_exhaustive:
            not_exhaustive.add((img, cat))
        scores = [1.0] * len(q.pred_boxes) if q.pred_scores is None else list(q.pred_scores)
        if len(scores) != len(q.pred_boxes):
            raise ValueError(
                f"query ({q.image_id!r}, {q.category!r}): {len(q.pred_boxes)} boxes, {len(scores)} scores"
            )
        for box in q.gt_boxes:
            gt_anns.append(_coco_ann(len(gt_anns) + 1, img, cat, box, iscrowd=0))
        for box, score in zip(q.pred_boxes, scores):
            dt_anns.append(_coco_ann(len(dt_anns) + 1, img, cat, box, iscrowd=0, score=float(score)))
    # Annotation ids start at 1: COCOeval stores matched ids in dtMatches / gtMatches and reads 0 as
    # "unmatched", so an id of 0 would silently turn a true positive into a false positive.
    images = [{"id": i, **_size(image_sizes, image_id)} for image_id, i in image_index.items()]
    cats = [{"id": i, "name": name} for name, i in cat_ids.items()]
    coco_gt = _coco(COCO, {"images": images, "categories": cats, "annotations": gt_anns})
    # Detections are built directly rather than through COCO.loadRes, which fails on an empty list
    # (it reads anns[0]); the fields are the ones loadRes sets for boxes (area = w * h, iscrowd = 0).
    coco_dt = _coco(COCO, {"images": images, "categories": cats, "annotations": dt_anns})

    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        p = ev.params
        p.imgIds = sorted(image_index.values())
        p.catIds = sorted(cat_ids.values())
        p.areaRng, p.areaRngLbl = [p.areaRng[0]], [p.areaRngLbl[0]]  # "all" only
        p.maxDets = [max_dets]
        ev._prepare()
        ev.ious = {pair: ev.computeIoU(*pair) for pair in pairs}
        n_img = len(p.imgIds)
        evaluated: list[dict | None] = [None] * (len(p.catIds) * n_img)  # COCOeval's layout: [K, A=1, I]
        for img, cat in pairs:
            result = ev.evaluateImg(img, cat, p.areaRng[0], max_dets)
            if result is not None and (img, cat) in not_exhaustive:  # LVIS: unmatched boxes are ignored
                result["dtIgnore"] = np.logical_or(result["dtIgnore"], result["dtMatches"] == 0)  # [T, D]
            evaluated[(cat - 1) * n_img + (img - 1)] = result
        ev.evalImgs = evaluated
        ev._paramsEval = copy.deepcopy(p)
        ev.accumulate()
    return ev


def _coco_ann(ann_id: int, img: int, cat: int, box: Any, iscrowd: int, score: float | None = None) -> dict:
    x1, y1, x2, y2 = (float(v) for v in _xyxy(box))
    w, h = max(0.0, x2 - x1), max(0.0, y2 - y1)  # a reversed box is empty, not negative
    ann = {"id": ann_id, "image_id": img, "category_id": cat, "bbox": [x1, y1, w, h], "area": w * h}
    ann["iscrowd"] = iscrowd
    if score is not None:
        ann["score"] = score
    return ann


def _coco(coco_cls, dataset: dict):
    coco = coco_cls()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _size(image_sizes: Mapping | None, image_id: Hashable) -> dict:
    if image_sizes is None or image_id not in image_sizes:
        return {}
    w, h = image_sizes[image_id]
    return {"width": int(w), "height": int(h)}


def _means(per_category: list[dict[str, float | None]], chosen: Sequence[str]) -> list[float | None]:
    """Mean over the chosen categories that have an AP (i.e. ground truth); None when none has."""
    chosen = list(dict.fromkeys(chosen))
    return [_mean([v for c in chosen if (v := table.get(c)) is not None]) for table in per_category]


# --------------------------------------------------------------------------------------------------
# reasoning grounding


def grounding_metrics(
    pred_boxes: Sequence[Any | None], gt_boxes: Sequence[Any], threshold: float = 0.5
) -> dict[str, Any]:
    """Reasoning-grounding metrics of one predicted box per sample (None: no box could be parsed).

    - ``giou``: the mean of per-sample IoUs (LISA's "gIoU"; i.e. the mean box IoU);
    - ``ciou``: cumulative IoU, total intersection over total union;
    - ``acc@0.5``: the share of samples with IoU > `threshold` (the key follows `threshold`);
    - ``missing``: the share of samples without a box; ``n``: the number of samples.

    A missing prediction counts as IoU 0, intersection 0 and union = the ground-truth area.
    """
    _same_length(pred_boxes=pred_boxes, gt_boxes=gt_boxes)
    ious, inters, unions = [], [], []
    for pred, gt in zip(pred_boxes, gt_boxes):
        gt = _xyxy(gt)
        pred = None if pred is None else _xyxy(pred)
        inter = 0.0 if pred is None else boxes.intersection(pred, gt)
        union = boxes.area(gt) + (0.0 if pred is None else boxes.area(pred)) - inter
        ious.append(0.0 if pred is None else boxes.iou(pred, gt))
        inters.append(inter)
        unions.append(union)
    total_union = sum(unions)
    return {
        "giou": _mean(ious),
        "ciou": (sum(inters) / total_union if total_union > 0 else 0.0) if ious else None,
        f"acc@{threshold:g}": _mean([iou > threshold for iou in ious]),
        "missing": _mean([p is None for p in pred_boxes]),
        "n": len(ious),
    }


# --------------------------------------------------------------------------------------------------
# helpers


def _xyxy(box: Any) -> tuple[float, float, float, float]:
    values = getattr(box, "xyxy", box)
    if len(values) != 4:
        raise ValueError(f"a box is 4 numbers (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def _mean(values: Sequence[Any]) -> float | None:
    values = list(values)
    if not values:
        return None
    m = float(sum(float(v) for v in values) / len(values))
    return None if math.isnan(m) else m


def _same_length(**named: Sequence[Any]) -> None:
    lengths = {name: len(v) for name, v in named.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-sample lists differ in length: {lengths}")
