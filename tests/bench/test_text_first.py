"""bench/text_first.py: prompts with the question before the image."""

import pytest

import visual_rft.models.inputs as inputs
from visual_rft.data.jsonl import read_samples
from visual_rft.models.loading import load_processor
from visual_rft.world import build


def test_prompts_put_the_question_before_the_image_once_patched(
    load_bench, tiny_model_dir, tmp_path, monkeypatch
):
    bench = load_bench("text_first")
    samples = read_samples(build("grounding", tmp_path, 1, seed=0, categories=["pair"], name="pair"))
    processor = load_processor(tiny_model_dir)
    frames = inputs.frames_for([inputs.open_images(samples[0])], "resized_pixels", processor)
    before = inputs.prompt_texts(samples, frames, processor)[0]
    monkeypatch.setattr(inputs, "messages", bench.text_first)
    after = inputs.prompt_texts(samples, frames, processor)[0]
    question = samples[0].problem
    assert before.index("<|vision_start|>") < before.index(question)
    assert after.index(question) < after.index("<|vision_start|>") < after.index("<|im_start|>assistant")
    assert sorted(before) == sorted(after)  # the same text, in another order
    with pytest.raises(ValueError, match="short_prompts is not supported"):
        inputs.prompt_texts(samples, frames, processor, short=True)
