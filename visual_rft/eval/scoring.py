"""Scoring one model's completions, per task (`score`).

Scoring, by task (a file may mix tasks: each task is then scored on its own samples, under its name):

- classification: ``accuracy`` is the strict rule of the training reward (``cls_reward == 1``: exact match
  after normalisation); ``lenient_accuracy`` the paper's substring rule (``cls_lenient_reward``), for
  comparison with its numbers; per-class strict accuracy; ``unparseable``: the share without an answer.
- detection: COCO-style AP (`metrics.detection_metrics`), one query per (image, category) as the paper asks;
  each query's predictions ranked by their stated confidence; boxes converted from the model's convention
  to original pixels with `visual_rft.data.coords.from_model` and the frame the prompt was written in. Samples
  with the same first image path are the same image. When samples carry ``meta["split"]`` in
  {"base", "novel"}, AP is also reported over base, novel and all categories (open vocabulary).
  ``unparseable``: the share of asked queries whose answer could not be read. LVIS's federated rule: a query
  with ``meta["not_exhaustive"]`` (written by `vrft data build lvis-*`) counts no unmatched box against AP.
- grounding: `metrics.grounding_metrics` on the one box of each answer, in original pixels: ``giou``
  (LISA's gIoU: the mean per-sample IoU), ``ciou`` (total intersection / total union), ``acc@0.5``,
  ``missing`` (no box could be read); with a box -> mask predictor (`visual_rft.eval.masks.SamMasks`, the
  `--sam` of `vrft eval`), ``mask_giou`` / ``mask_ciou`` on the samples whose meta.mask names their
  ground-truth mask, as the paper reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from visual_rft.data.answer import class_answer, detection_answer, grounding_answer
from visual_rft.data.coords import answer_to_pixels
from visual_rft.eval.completions import Completion
from visual_rft.eval.masks import mask_metrics, read_mask
from visual_rft.eval.metrics import (
    DetectionQuery,
    classification_metrics,
    detection_metrics,
    grounding_metrics,
    open_vocab_metrics,
)
from visual_rft.eval.queries import category_of, category_splits, image_key
from visual_rft.rewards.classification import cls_lenient_reward, cls_reward


def classification_scores(records: Sequence[Completion]) -> dict[str, Any]:
    """Strict accuracy (cls_reward), the paper's lenient accuracy, per-class accuracy, unparseable share."""
    labels = [r.sample.target.label for r in records]
    strict = [cls_reward(r.completion, r.sample.target) == 1.0 for r in records]
    lenient = [cls_lenient_reward(r.completion, r.sample.target) == 1.0 for r in records]
    parsed = [class_answer(r.completion) is not None for r in records]
    return classification_metrics(strict, lenient, labels, parsed)


def detection_queries(
    records: Sequence[Completion],
) -> tuple[list[DetectionQuery], dict[str, tuple[int, int]]]:
    """One `DetectionQuery` per record (boxes in original pixels) and {image: (width, height)}."""
    queries, sizes = [], {}
    for r in records:
        s = r.sample
        key = image_key(s)
        if r.frame is not None:
            sizes[key] = r.frame.size
        elif s.width and s.height:
            sizes.setdefault(key, (s.width, s.height))
        boxes, scores = [], []
        if r.asked and r.frame is not None:
            for p in detection_answer(r.completion).predictions:
                boxes.append(answer_to_pixels(p.box, r.frame).xyxy)
                scores.append(p.confidence)
        gt = [b.xyxy for b in s.target.boxes]
        not_exhaustive = bool(s.meta.get("not_exhaustive", False))
        queries.append(DetectionQuery(key, category_of(s), gt, boxes, scores, not_exhaustive))
    return queries, sizes


def detection_scores(records: Sequence[Completion]) -> dict[str, Any]:
    """COCO-style AP (open-vocabulary base / novel / all when the samples carry splits), unparseable share."""
    queries, sizes = detection_queries(records)
    splits = category_splits([r.sample for r in records])
    if splits:
        base = sorted(c for c, v in splits.items() if v == "base")
        novel = sorted(c for c, v in splits.items() if v == "novel")
        out = open_vocab_metrics(queries, base, novel, sizes)
    else:
        out = detection_metrics(queries, sizes)
    asked = [r for r in records if r.asked]
    out["unparseable"] = _share([not detection_answer(r.completion).readable for r in asked])
    out["n_asked"] = len(asked)
    return out


def grounding_scores(records: Sequence[Completion], masks=None) -> dict[str, Any]:
    """gIoU (mean IoU), cIoU, share with IoU > 0.5, share without a box; boxes in original pixels. With
    `masks` (box -> mask, e.g. `SamMasks`): mask gIoU / cIoU of the samples that carry meta.mask."""
    preds = []
    for r in records:
        box = grounding_answer(r.completion) if r.frame is not None else None
        preds.append(None if box is None else answer_to_pixels(box, r.frame).xyxy)
    out = grounding_metrics(preds, [r.sample.target.box.xyxy for r in records])
    with_mask = [(r, box) for r, box in zip(records, preds) if r.sample.meta.get("mask")]
    if masks is not None and with_mask:
        predicted = [masks(r.sample.image, box) for r, box in with_mask]
        out.update(mask_metrics(predicted, [read_mask(r.sample.meta["mask"]) for r, _ in with_mask]))
    return out


SCORERS = {
    "classification": classification_scores,
    "detection": detection_scores,
    "grounding": grounding_scores,
}


def score(records: Sequence[Completion], masks=None) -> dict[str, Any]:
    """The metrics of one model's completions (`masks`: a box -> mask predictor for grounding's mask metrics).

    One task: ``{"task": task, **metrics}``. Several: ``{"task": "mixed", "<task>": {metrics}, ...}``.
    """
    by_task: dict[str, list[Completion]] = {}
    for r in records:
        by_task.setdefault(r.sample.task, []).append(r)
    results = {
        task: grounding_scores(rs, masks) if task == "grounding" else SCORERS[task](rs)
        for task, rs in by_task.items()
    }
    if len(results) == 1:
        ((task, metrics),) = results.items()
        return {"task": task, **metrics}
    return {"task": "mixed", **results}


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None
