"""encode_prompts: a CoordFrame per sample in the model's convention, a left-padded batch, one image each."""

import pytest
import torch
from PIL import Image

from visual_rft.data.coords import CoordFrame
from visual_rft.data.types import ClassTarget, Sample
from visual_rft.models.inputs import encode_prompts, open_images
from visual_rft.models.loading import load_processor


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir)


def _ids(processor, token):
    return processor.tokenizer.convert_tokens_to_ids(token)


def test_open_images_gives_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (30, 20), 128).save(path)
    (im,) = open_images(Sample("g", [str(path)], "classification", "?", ClassTarget("grey")))
    assert im.mode == "RGB" and im.size == (30, 20) and im.getpixel((0, 0)) == (128, 128, 128)


def test_frames_in_the_resized_pixel_convention(processor, mixed_size_samples):
    # images 112x112 and 112x84: both already multiples of 28 px, so the processor keeps their size
    _, frames = encode_prompts(mixed_size_samples, processor, "resized_pixels")
    assert frames == [
        CoordFrame("resized_pixels", (112, 112), (112, 112)),
        CoordFrame("resized_pixels", (112, 84), (112, 84)),
    ]


def test_frames_in_the_thousandths_convention(processor, mixed_size_samples):
    _, frames = encode_prompts(mixed_size_samples, processor, "norm1000")
    assert frames == [CoordFrame("norm1000", (112, 112)), CoordFrame("norm1000", (112, 84))]


def test_batch_is_left_padded_with_one_image_per_sample(processor, mixed_size_samples):
    inputs, _ = encode_prompts(mixed_size_samples, processor, "resized_pixels")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 2
    # 112x112 -> 8x8 patches of 14 px, 112x84 -> 6x8; the merger joins 2x2 patches into one token
    assert inputs["image_grid_thw"].tolist() == [[1, 8, 8], [1, 6, 8]]
    assert inputs["pixel_values"].shape[0] == 64 + 48
    assert (ids == _ids(processor, "<|vision_start|>")).sum(dim=1).tolist() == [1, 1]
    assert (ids == _ids(processor, "<|vision_end|>")).sum(dim=1).tolist() == [1, 1]
    assert (ids == _ids(processor, "<|image_pad|>")).sum(dim=1).tolist() == [16, 12]
    lengths = mask.sum(dim=1)
    assert lengths[0] != lengths[1]  # different prompts and images: one row is padded
    pad = processor.tokenizer.pad_token_id
    for row in range(2):
        n_pad = ids.shape[1] - int(lengths[row])
        assert mask[row, :n_pad].sum() == 0 and mask[row, n_pad:].all()  # padding on the left only
        assert (ids[row, :n_pad] == pad).all()
        assert ids[row, -1] != pad  # every row ends with its own last token (the assistant turn's opening)
    # the prompt ends with the assistant turn's opening, ready for generation
    text = processor.tokenizer.decode(ids[0, ids.shape[1] - int(lengths[0]) :])
    assert text.endswith("<|im_start|>assistant\n")


def test_each_row_encodes_like_the_sample_alone(processor, mixed_size_samples):
    batch, _ = encode_prompts(mixed_size_samples, processor, "resized_pixels")
    for row, sample in enumerate(mixed_size_samples):
        alone, _ = encode_prompts([sample], processor, "resized_pixels")
        n = alone["input_ids"].shape[1]
        assert batch["input_ids"][row, -n:].tolist() == alone["input_ids"][0].tolist()
    alone, _ = encode_prompts(mixed_size_samples[1:], processor, "resized_pixels")
    assert torch.equal(batch["pixel_values"][64:], alone["pixel_values"])


def test_detection_prompt_names_the_frame(processor, toy_samples):
    detection = toy_samples[3]
    assert detection.task == "detection"
    for convention, phrase in [
        ("resized_pixels", "in pixels of the 112x112 image, integer"),
        ("norm1000", "between 0 and 1000, integer"),
    ]:
        inputs, _ = encode_prompts([detection], processor, convention)
        assert phrase in processor.tokenizer.decode(inputs["input_ids"][0])


def test_two_images_in_one_sample(processor, toy_samples, tmp_path):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (168, 56), "white").save(wide)
    first, second = toy_samples[0], toy_samples[1]
    two = Sample("two", [str(wide), first.image], "classification", "Which is red?", first.target)
    inputs, frames = encode_prompts([two, second], processor, "resized_pixels")
    # the frame comes from the sample's first image
    assert frames[0] == CoordFrame("resized_pixels", (168, 56), (168, 56))
    ids = inputs["input_ids"]
    assert (ids == _ids(processor, "<|vision_start|>")).sum(dim=1).tolist() == [2, 1]
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 12], [1, 8, 8], [1, 8, 8]]
    assert (ids == _ids(processor, "<|image_pad|>")).sum(dim=1).tolist() == [12 + 16, 16]
