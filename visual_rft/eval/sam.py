"""SAM as a box -> mask predictor, for grounding's mask metrics (`visual_rft.eval.masks`), from a local
transformers `SamModel` folder (e.g. facebook/sam-vit-huge saved with save_pretrained; nothing is downloaded).
The official evaluation (lisa_evaluation/box2mask.py) prompts segment_anything's SAM ViT-H with each box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import SamModel, SamProcessor

from visual_rft.models.loading import resolve_device


class SamMasks:
    """A box -> mask predictor from a local SamModel folder (one mask per box, `multimask_output=False`)."""

    def __init__(self, folder: str, device: str = "auto"):
        self.device = resolve_device(device)
        self.model = SamModel.from_pretrained(folder, use_kernels=False).to(self.device).eval()
        self.processor = SamProcessor.from_pretrained(folder)

    @torch.no_grad()
    def __call__(self, image_path: str, box: Sequence[float] | None) -> np.ndarray:
        """[H, W] bool: SAM's mask for the box (x1, y1, x2, y2, original pixels); all False without a box."""
        with Image.open(image_path) as im:
            image = im.convert("RGB")
        if box is None:
            return np.zeros((image.height, image.width), dtype=bool)
        inputs = self.processor(image, input_boxes=[[list(map(float, box))]], return_tensors="pt").to(
            self.device
        )
        out = self.model(**inputs, multimask_output=False)
        masks = self.processor.image_processor.post_process_masks(
            out.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
        )  # one [boxes=1, masks=1, H, W] per image
        return masks[0][0, 0].numpy().astype(bool)
