"""Mask metrics of reasoning grounding as the paper reports them: SAM turns each predicted box into a mask
(the official lisa_evaluation/box2mask.py does the same with the segment_anything package), and gIoU / cIoU
are computed on masks, LISA's way.

    masks = SamMasks("models/sam-vit-h")   # visual_rft.eval.sam: a local transformers SamModel folder
    mask_metrics(pred_masks, gt_masks)    # {"mask_giou", "mask_ciou", "n_masks"}

Ground-truth masks are the PNGs `vrft data build lisa` writes (meta.mask): 255 target, 128 ignore, 0
background; ignored pixels count neither in the intersection nor in the union (LISA's ignore index).
- ``mask_giou``: the mean of per-sample IoUs (a sample whose union is empty counts 1.0, as LISA counts it);
- ``mask_ciou``: total intersection over total union
(checked against LISA's train_ds.py `validate` and utils/utils.py `intersectionAndUnionGPU`, ignore index 255
there, 128 in our PNGs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from visual_rft.data.builders.lisa import IGNORE, TARGET


def read_mask(path: str) -> np.ndarray:
    """[H, W] uint8 ground truth: 255 target, 128 ignore, 0 background."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def mask_metrics(pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray]) -> dict:
    """LISA's gIoU and cIoU of predicted bool masks against ground-truth masks (ignored pixels left out)."""
    if len(pred_masks) != len(gt_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks, {len(gt_masks)} ground-truth masks")
    ious, inters, unions = [], [], []
    for pred, gt in zip(pred_masks, gt_masks):
        if pred.shape != gt.shape:
            raise ValueError(f"a predicted mask of shape {pred.shape} for a ground truth of shape {gt.shape}")
        valid = gt != IGNORE  # [H, W]
        truth = gt == TARGET
        inter = float(np.logical_and(pred, truth)[valid].sum())
        union = float(np.logical_or(pred, truth)[valid].sum())
        ious.append(inter / union if union > 0 else 1.0)
        inters.append(inter)
        unions.append(union)
    return {
        "mask_giou": float(np.mean(ious)) if ious else None,
        "mask_ciou": (sum(inters) / sum(unions) if sum(unions) > 0 else 1.0) if ious else None,
        "n_masks": len(ious),
    }
