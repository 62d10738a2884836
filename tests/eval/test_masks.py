"""Mask metrics of grounding: LISA's gIoU / cIoU by hand (ignored pixels), the wiring from boxes through a
box -> mask predictor, and a tiny random-init transformers SamModel through `vrft eval --rescore --sam`."""

import json

import numpy as np
import pytest
from PIL import Image

from visual_rft.cli import main
from visual_rft.data.builders.lisa import IGNORE, TARGET
from visual_rft.data.coords import CoordFrame
from visual_rft.data.types import Box, GroundingTarget, Sample
from visual_rft.eval.completions import COMPLETIONS, Completion, write_completions
from visual_rft.eval.masks import mask_metrics
from visual_rft.eval.scoring import grounding_scores


def _gt(size=(6, 8), box=(1, 1, 3, 3), ignore=None):
    """[H, W] ground truth: target rows/cols box[1]:box[3], box[0]:box[2]; one ignored pixel at `ignore`."""
    gt = np.zeros(size, np.uint8)
    x1, y1, x2, y2 = box
    gt[y1:y2, x1:x2] = TARGET
    if ignore is not None:
        gt[ignore] = IGNORE
    return gt


def test_giou_and_ciou_by_hand_with_ignored_pixels():
    gt1 = _gt(ignore=(5, 7))  # target 2x2 = 4 pixels
    pred1 = np.zeros((6, 8), bool)
    pred1[1:3, 1:4] = True  # 6 pixels, 4 on the target: IoU 4/6
    pred1[5, 7] = True  # on the ignored pixel: counts nowhere
    gt2 = _gt(box=(0, 0, 4, 4))  # 16 pixels, nothing predicted: IoU 0
    m = mask_metrics([pred1, np.zeros((6, 8), bool)], [gt1, gt2])
    assert m["mask_giou"] == pytest.approx((4 / 6 + 0) / 2)
    assert m["mask_ciou"] == pytest.approx(4 / (6 + 16))
    assert m["n_masks"] == 2
    assert mask_metrics([np.zeros((2, 2), bool)], [np.zeros((2, 2), np.uint8)])["mask_giou"] == 1.0  # LISA
    with pytest.raises(ValueError, match="shape"):
        mask_metrics([np.zeros((2, 2), bool)], [np.zeros((3, 2), np.uint8)])


def _records(tmp_path):
    """Two grounding samples on 8x6 images with their mask PNGs: one answered with the exact box, one not."""
    records = []
    for i, answer in enumerate(["<think>x</think><answer>(1,1),(3,3)</answer>", "<answer>none</answer>"]):
        Image.new("RGB", (8, 6), "white").save(tmp_path / f"{i}.png")
        Image.fromarray(_gt()).save(tmp_path / f"{i}-mask.png")
        sample = Sample(
            f"g{i}",
            [str(tmp_path / f"{i}.png")],
            "grounding",
            "the thing",
            GroundingTarget(Box(1, 1, 3, 3)),
            8,
            6,
            {"mask": str(tmp_path / f"{i}-mask.png")},
        )
        records.append(Completion(sample, answer, CoordFrame("resized_pixels", (8, 6), (8, 6))))
    return records


def box_mask(image_path, box):
    """A plain box -> mask predictor: the box's pixels (what a perfect SAM would give for a box target)."""
    mask = np.zeros((6, 8), bool)
    if box is not None:
        x1, y1, x2, y2 = (int(v) for v in box)
        mask[y1:y2, x1:x2] = True
    return mask


def test_grounding_scores_add_mask_metrics_from_the_predicted_boxes(tmp_path):
    records = _records(tmp_path)
    plain = grounding_scores(records)
    assert plain["giou"] == 0.5 and "mask_giou" not in plain
    m = grounding_scores(records, box_mask)
    assert m["mask_giou"] == 0.5 and m["mask_ciou"] == pytest.approx(4 / 8) and m["n_masks"] == 2


def _tiny_sam(folder):
    transformers = pytest.importorskip("transformers")
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    vision = SamVisionConfig(
        hidden_size=32,
        output_channels=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=64,
        patch_size=16,
        mlp_dim=64,
        global_attn_indexes=[0],
        window_size=2,
        num_pos_feats=8,
    )
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16
    )
    config = transformers.SamConfig(
        vision_config=vision.to_dict(),
        prompt_encoder_config=prompt.to_dict(),
        mask_decoder_config=decoder.to_dict(),
    )
    import torch

    torch.manual_seed(0)
    transformers.SamModel(config).save_pretrained(folder)
    image_processor = getattr(transformers, "SamImageProcessorPil", transformers.SamImageProcessor)
    processor = image_processor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    transformers.SamProcessor(processor).save_pretrained(folder)
    return folder


def test_a_tiny_sam_folder_gives_masks_through_vrft_eval_rescore(tmp_path, capsys):
    records = _records(tmp_path)
    write_completions(tmp_path / "run" / "m" / COMPLETIONS, records)
    sam = _tiny_sam(tmp_path / "sam")
    from visual_rft.eval.sam import SamMasks

    mask = SamMasks(str(sam), "cpu")(records[0].sample.image, (1, 1, 3, 3))
    assert mask.shape == (6, 8) and mask.dtype == bool
    assert not SamMasks(str(sam), "cpu")(records[0].sample.image, None).any()
    assert main(["eval", "--rescore", str(tmp_path / "run"), "--sam", str(sam)]) == 0
    metrics = json.loads((tmp_path / "run" / "m" / "metrics.json").read_text())
    assert metrics["n_masks"] == 2 and 0.0 <= metrics["mask_giou"] <= 0.5  # the second has no box: IoU 0
    assert metrics["giou"] == 0.5
    assert "| mask_giou |" in (tmp_path / "run" / "metrics.md").read_text()
