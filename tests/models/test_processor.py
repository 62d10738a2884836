"""QwenVLImageProcessor: the image-only processor saves, reloads through AutoProcessor, and refuses videos."""

import json

import pytest
import torch
from PIL import Image, ImageDraw
from transformers import AutoProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from visual_rft.models.processor import QwenVLImageProcessor, register_auto_classes
from visual_rft.models.tiny import MAX_PIXELS, MIN_PIXELS
from visual_rft.models.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def built():
    tok = train_tokenizer(seed=0)
    ip = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return QwenVLImageProcessor(image_processor=ip, tokenizer=tok, chat_template=tok.chat_template)


@pytest.fixture(scope="module")
def saved(built, tmp_path_factory):
    folder = tmp_path_factory.mktemp("processor")
    built.save_pretrained(folder)
    return folder


def _images():
    out = []
    for w, h, colour in [(1000, 600, "red"), (20, 20, "blue"), (112, 84, "green")]:
        im = Image.new("RGB", (w, h), "white")
        ImageDraw.Draw(im).rectangle((2, 3, w // 2, h // 2), fill=colour)
        out.append(im)
    return out


def test_token_ids_come_from_the_tokenizer(built):
    tok = built.tokenizer
    assert built.image_token == "<|image_pad|>" and built.video_token == "<|video_pad|>"
    assert built.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>") == 12
    assert built.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>") == 13


def test_saved_folder_names_the_image_only_class(saved):
    config = json.loads((saved / "processor_config.json").read_text())
    assert config["processor_class"] == "QwenVLImageProcessor"
    assert "video_processor" not in config
    assert config["image_processor"]["size"] == {"longest_edge": MAX_PIXELS, "shortest_edge": MIN_PIXELS}


def test_auto_processor_reloads_the_same_class_and_settings(built, saved):
    register_auto_classes()
    register_auto_classes()  # idempotent
    again = AutoProcessor.from_pretrained(saved)
    assert type(again) is QwenVLImageProcessor
    assert isinstance(again.image_processor, Qwen2VLImageProcessorPil)
    ip = again.image_processor
    assert (ip.patch_size, ip.merge_size, ip.temporal_patch_size) == (14, 2, 2)
    assert (ip.size["shortest_edge"], ip.size["longest_edge"]) == (MIN_PIXELS, MAX_PIXELS)
    assert again.chat_template == built.chat_template
    assert again.tokenizer.get_vocab() == built.tokenizer.get_vocab()


def test_reloaded_processor_gives_the_same_pixels_and_grids(built, saved):
    again = AutoProcessor.from_pretrained(saved)
    a = built(images=_images(), return_tensors="pt")
    b = again(images=_images(), return_tensors="pt")
    # 1000x600 is over the 448x448 budget: scaled by sqrt(600000 / 200704) and floored to 28 px -> 560x336;
    # 20x20 is under 56x56: scaled up to 56x56; 112x84 is kept
    assert a["image_grid_thw"].tolist() == [[1, 24, 40], [1, 4, 4], [1, 6, 8]]
    assert torch.equal(a["image_grid_thw"], b["image_grid_thw"])
    # one row per 14x14 patch, each 3 channels x 2 frames x 14 x 14 values
    assert a["pixel_values"].shape == (24 * 40 + 16 + 48, 3 * 2 * 14 * 14)
    assert torch.equal(a["pixel_values"], b["pixel_values"])


def test_videos_are_refused(built):
    with pytest.raises(ValueError, match="images only"):
        built(
            images=_images()[:1],
            text=["<|vision_start|><|image_pad|><|vision_end|>hi"],
            videos=[[_images()[1]]],
        )
