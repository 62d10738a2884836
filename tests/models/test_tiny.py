from dataclasses import replace

import pytest
import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForImageTextToText, AutoProcessor

import visual_rft.models  # noqa: F401  (registers the image-only processor)
from visual_rft.models.forward import encode_images
from visual_rft.models.tiny import FAMILIES, SIZES, build_tiny, count_parameters


def _images():
    sizes = [(112, 112), (224, 168), (150, 300)]
    out = []
    for i, (w, h) in enumerate(sizes):
        im = Image.new("RGB", (w, h), "white")
        ImageDraw.Draw(im).rectangle((10 + i, 20, w // 2, h // 2), fill=("red", "green", "blue")[i])
        out.append(im)
    return out


def _inputs(processor, images):
    msgs = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]]
    texts = [processor.apply_chat_template(msgs[0], tokenize=False, add_generation_prompt=True)] * len(images)
    return processor(images=images, text=texts, return_tensors="pt", padding=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_reload_give_identical_logits(family, tmp_path):
    model, processor = build_tiny(family, "1m", seed=3)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    reproc = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is type(model) and reloaded.config.model_type == family
    inputs = _inputs(processor, _images())
    again = _inputs(reproc, _images())
    for k in inputs:
        assert torch.equal(inputs[k], again[k]), k
    with torch.no_grad():
        a = model(**inputs).logits
        b = reloaded(**again).logits
    assert a.shape[-1] == len(processor.tokenizer)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_generate_on_a_batch_of_images_of_different_sizes(tiny_model_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    images = _images()
    inputs = _inputs(processor, images)
    # one grid per image, each the processor's resize of that image (28-px multiples)
    assert inputs["image_grid_thw"].tolist() == [[1, 8, 8], [1, 12, 16], [1, 22, 10]]
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[0] == 3 and out.shape[1] > inputs["input_ids"].shape[1]
    # a batch answer equals the answer generated for that image alone (left padding is handled)
    alone = model.generate(**_inputs(processor, images[1:2]), max_new_tokens=8, do_sample=False)
    n = inputs["input_ids"].shape[1]
    m = alone.shape[1] - 8
    assert out[1, n:].tolist() == alone[0, m:].tolist()


def test_qwen3_vl_has_deepstack_mergers_and_16_px_patches():
    model, processor = build_tiny("qwen3_vl", "1m")
    vision = model.config.vision_config
    assert vision.patch_size == processor.image_processor.patch_size == 16
    assert len(model.model.visual.deepstack_merger_list) == len(vision.deepstack_visual_indexes) == 1
    assert 0.8e6 < count_parameters(model)["total"] < 1.5e6
    grid = processor.image_processor(_images()[1], return_tensors="pt")["image_grid_thw"][0]
    assert grid.tolist() == [1, 10, 14]  # 224x168 resized to 32-px multiples (224x160), 16-px patches


def test_special_tokens_and_digits():
    _, processor = build_tiny("qwen2_5_vl", "1m")
    tok = processor.tokenizer
    for t in ["<think>", "</think>", "<answer>", "</answer>", "<|image_pad|>", "<|im_end|>"]:
        assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(t)) == t
    ids = tok("<answer>[123, 45]</answer>", add_special_tokens=False)["input_ids"]
    toks = tok.convert_ids_to_tokens(ids)
    assert toks[0] == "<answer>" and toks[-1] == "</answer>"
    assert [t for t in toks if t.strip("Ġ").isdigit()] == ["1", "2", "3", "4", "5"]
    # format tags survive decoding with skip_special_tokens (they are not special)
    assert tok.decode(ids, skip_special_tokens=True) == "<answer>[123, 45]</answer>"


def test_sizes_span_one_to_twenty_million_parameters():
    counts = {name: count_parameters(build_tiny("qwen2_5_vl", name)[0])["total"] for name in SIZES}
    assert 0.8e6 < counts["1m"] < 1.3e6
    assert 4e6 < counts["5m"] < 6e6
    assert 18e6 < counts["20m"] < 24e6


def test_the_vision_tower_cannot_tell_where_a_token_is():
    """RoPE makes attention depend only on relative positions and a value carries none, so on an image of
    one colour every merged token is the same vector: absolute position (coordinates) cannot come from
    the tower of a flat-background world; it has to come from the pixels or from the LM's mRoPE."""
    model, processor = build_tiny("qwen2_5_vl", "5m", seed=0)
    blank = Image.new("RGB", (224, 168), (90, 120, 200))
    dotted = blank.copy()
    ImageDraw.Draw(dotted).rectangle((30, 30, 60, 60), fill="red")
    with torch.no_grad():
        tokens = [
            encode_images(model, inp["pixel_values"], inp["image_grid_thw"]).tokens  # [48, H]
            for inp in (processor.image_processor(images=[im], return_tensors="pt") for im in (blank, dotted))
        ]
    assert tokens[0].shape == (48, model.config.text_config.hidden_size)
    torch.testing.assert_close(tokens[0], tokens[0][:1].expand_as(tokens[0]), rtol=0, atol=1e-4)
    # one object breaks the symmetry: tokens now differ (so the check above is not vacuous)
    assert (tokens[1] - tokens[1][-1:]).abs().amax() > 0.1


@pytest.mark.parametrize("size", list(SIZES))
def test_the_language_models_mrope_turns_across_image_columns(size):
    """The width section of the mRoPE gets the lowest frequencies; with theta 10 they still turn > 0.1 rad
    per column (theta 1e4 gave the 5m model <= 0.0032), so attention can tell a token's column."""
    model, _ = build_tiny("qwen2_5_vl", size)
    rope = model.config.text_config.rope_parameters
    inv_freq = model.model.language_model.rotary_emb.inv_freq  # [head_dim / 2] rad per position
    t, h, w = rope["mrope_section"]
    assert t + h + w == inv_freq.numel() and h == w
    assert inv_freq[-w:].min() > 0.1 and inv_freq[t : t + h].min() > inv_freq[-w:].max() * 0.9


def test_a_size_of_its_own_keeps_the_weight_count_with_more_heads():
    """A TinySize given directly: twelve heads of 16 in the 5m's width have the same weights as six of 32
    (the projections are hidden x hidden), and their mRoPE sections still fill the smaller head."""
    six = build_tiny("qwen2_5_vl", "5m")[0]
    twelve = build_tiny("qwen2_5_vl", replace(SIZES["5m"], heads=12))[0]
    text = twelve.config.text_config
    assert (text.num_attention_heads, text.num_key_value_heads) == (12, 6)
    assert sum(text.rope_parameters["mrope_section"]) == text.hidden_size // 12 // 2
    assert count_parameters(twelve) == count_parameters(six)
    with pytest.raises(ValueError, match="does not split into 7 heads"):
        build_tiny("qwen2_5_vl", replace(SIZES["5m"], heads=7))
