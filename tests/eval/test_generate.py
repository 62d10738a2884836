"""Tests of visual_rft.eval.generate: batched greedy generation equals one-at-a-time generation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from visual_rft.data.types import Box, ClassTarget, GroundingTarget, Sample
from visual_rft.eval.generate import DecodeOptions, batch_order, decode_completions, generate, prompt_cost
from visual_rft.models.loading import load_model, load_processor

# different sizes and questions: prompts of different lengths, so batches are left-padded
SIZES = [(112, 112), (200, 150), (150, 120), (224, 224), (130, 190)]
QUESTIONS = [
    "What is it?",
    "Find the red square.",
    "Name the shape in the picture, please.",
    "Which?",
    "Find it.",
]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    out = []
    for i, ((w, h), q) in enumerate(zip(SIZES, QUESTIONS)):
        im = Image.new("RGB", (w, h), (30 * i, 200 - 30 * i, 120))
        ImageDraw.Draw(im).rectangle((10 + 5 * i, 12, 60, 70), fill=(220, 40, 40))
        path = root / f"g{i}.png"
        im.save(path)
        if i % 2:
            out.append(Sample(f"s{i}", [str(path)], "grounding", q, GroundingTarget(Box(10, 12, 60, 70))))
        else:
            out.append(Sample(f"s{i}", [str(path)], "classification", q, ClassTarget("red square"), w, h))
    return out


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_dir):
    """The tiny model with its matrices redrawn larger: the stock random model answers newlines whatever it
    sees, which would make the batched-equals-single check vacuous; these weights answer each prompt apart."""
    model = load_model(tiny_model_dir, dtype="fp32", device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2, generator=gen)
    return model, load_processor(tiny_model_dir)


def test_batched_greedy_equals_one_at_a_time(model_and_processor, samples):
    model, processor = model_and_processor
    options = DecodeOptions(max_new_tokens=10)
    batched = generate(model, processor, samples, batch_size=len(samples), options=options)
    single = [generate(model, processor, [s], batch_size=1, options=options)[0] for s in samples]
    assert len({g.text for g in single}) == len(samples)  # the answers depend on the prompt
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.n_tokens for g in batched] == [g.n_tokens for g in single]
    assert [g.frame for g in batched] == [g.frame for g in single]
    # another batching and no sorting: still the same answers, in input order
    unsorted = generate(model, processor, samples, batch_size=2, options=options, sort=False)
    assert [g.text for g in unsorted] == [g.text for g in single]


def test_min_new_tokens_fixes_the_length(model_and_processor, samples):
    model, processor = model_and_processor
    out = generate(model, processor, samples[:2], batch_size=2, options=DecodeOptions(4, min_new_tokens=4))
    assert [g.n_tokens for g in out] == [4, 4]
    assert all(g.frame.convention == "resized_pixels" for g in out)


def test_prompt_cost_and_batch_order(model_and_processor, samples):
    _, processor = model_and_processor
    costs = prompt_cost(samples, processor)
    assert costs[3] > costs[1] > costs[0]  # 224x224 > 200x150 > 112x112 image tokens
    assert batch_order([3, 9, 1, 9, 5], 2) == [[1, 3], [4, 0], [2]]  # longest first, stable
    assert batch_order([3, 9, 1], 2, sort=False) == [[0, 1], [2]]
    with pytest.raises(ValueError):
        batch_order([1], 0)


def test_decode_cuts_after_the_first_end_of_turn(model_and_processor):
    _, processor = model_and_processor
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    a = tok("<answer>red</answer>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([a + [eos] + a, a + a + a[:1]])  # [2, T]: one ends early, one never ends
    (text0, n0), (text1, n1) = decode_completions(ids, tok, [eos])
    assert (text0, n0) == ("<answer>red</answer>", len(a) + 1)
    assert n1 == ids.shape[1] and text1.startswith("<answer>red</answer><answer>")
