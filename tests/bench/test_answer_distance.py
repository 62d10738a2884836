"""bench/answer_distance.py: generation with the text after the image moved k RoPE positions on."""

import torch

from visual_rft.eval.generate import DecodeOptions, generate
from visual_rft.models.loading import load_model, load_processor


def recorded_positions(model, processor, samples, bench, k: int | None) -> list[torch.Tensor]:
    """The position_ids the language model receives at each forward of a 3-token greedy generation."""
    seen = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True
    )
    try:
        options = DecodeOptions(max_new_tokens=3, min_new_tokens=3)
        if k is None:
            generate(model, processor, samples, batch_size=2, options=options)
        else:
            with bench.shifted_positions(model, k):
                generate(model, processor, samples, batch_size=2, options=options)
    finally:
        hook.remove()
    return seen


def test_the_prompt_after_the_image_and_every_generated_token_move_k_on(
    load_bench, tiny_model_dir, toy_samples
):
    bench = load_bench("answer_distance")
    model, processor = load_model(tiny_model_dir, device="cpu").eval(), load_processor(tiny_model_dir)
    samples = [toy_samples[0], toy_samples[3]]  # classification, detection: prompts of two lengths
    plain = recorded_positions(model, processor, samples, bench, None)
    moved = recorded_positions(model, processor, samples, bench, 9)
    assert len(plain) == len(moved) == 3  # the prompt, then two decoding steps
    p, m = plain[0][-3:], moved[0][-3:]  # [3, B, L] the mRoPE axes (the first row: text positions)
    diff = m - p  # [3, B, L]
    assert set(diff.unique().tolist()) == {0, 9}
    assert (diff[:, :, -1] == 9).all()  # the prompt's last token, so the answer's first
    for step in (1, 2):
        assert (moved[step][-3:] - plain[step][-3:] == 9).all()  # each generated token
    assert "get_rope_index" not in vars(model.model)  # the class's method again
