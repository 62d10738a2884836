"""models/text_distance.py: every answer at one RoPE distance from the image, in training and in generation."""

import json

import pytest
import torch

from visual_rft.eval.generate import DecodeOptions, generate
from visual_rft.models.forward import prompt_positions
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import load_model, load_processor
from visual_rft.models.text_distance import text_distance_offsets
from visual_rft.models.tiny import write_tiny


def test_offsets_bring_each_rows_last_position_to_the_distance():
    # row 0: image at positions 3..5, prompt ends at 9 (distance 4); row 1: image up to 7, ends at 20 (13);
    # row 2: no image
    positions = torch.tensor(
        [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 5, 6, 7, 7, 7, 8, 9, 19, 20], [0] * 9 + [4]]
    )
    positions = positions[None].repeat(3, 1, 1)  # [3, B, L]
    is_image = torch.zeros(3, 10, dtype=torch.bool)
    is_image[0, 3:6] = True
    is_image[1, 3:6] = True
    assert text_distance_offsets(positions, is_image, 10).tolist() == [6, -3, 0]


def with_distance(folder, distance):
    config = json.loads((folder / "config.json").read_text())
    config["text_distance"] = distance
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def distance_model_dir(tmp_path_factory):
    folder = write_tiny(tmp_path_factory.mktemp("dist") / "m", "qwen2_5_vl", "1m", seed=0)
    return with_distance(folder, 60)


def recorded_positions(model, processor, samples) -> list[torch.Tensor]:
    """The position_ids the language model receives at each forward of a 3-token greedy generation."""
    seen = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True
    )
    try:
        generate(
            model, processor, samples, batch_size=2, options=DecodeOptions(max_new_tokens=3, min_new_tokens=3)
        )
    finally:
        hook.remove()
    return seen


def test_training_and_generation_put_every_answer_at_the_distance(distance_model_dir, toy_samples):
    model, processor = load_model(distance_model_dir, device="cpu"), load_processor(distance_model_dir)
    samples = [toy_samples[3], toy_samples[0]]  # detection, classification: prompts of two lengths
    inputs, _ = encode_prompts(samples, processor, "resized_pixels")
    is_image = inputs["input_ids"] == model.config.image_token_id  # [B, L]
    trained = prompt_positions(model, inputs)  # [3, B, L] what SFT and the rollout use
    image_max = trained.masked_fill(~is_image[None], -1).amax(dim=(0, 2))  # [B]
    assert (trained[:, :, -1].amax(dim=0) - image_max).tolist() == [60, 60]
    seen = recorded_positions(model, processor, samples)
    assert len(seen) == 3  # the prompt, then two decoding steps
    prefill = seen[0][-3:]  # [3, B, L] the mRoPE axes (generation sorts by length: compare as sets of rows)
    assert sorted(prefill[0, :, -1].tolist()) == sorted(trained[0, :, -1].tolist())
    for step in (1, 2):  # each generated token continues from the prompt's last position
        assert sorted(seen[step][-3:][0, :, 0].tolist()) == sorted((trained[0, :, -1] + step).tolist())
    plain = load_model(
        write_tiny(distance_model_dir.parent / "plain", "qwen2_5_vl", "1m", seed=0), device="cpu"
    )
    natural = prompt_positions(plain, inputs)  # [3, B, L]
    assert (natural[:, :, -1].amax(dim=0) - image_max).tolist() != [60, 60]  # it was not so already
    assert torch.equal(natural[:, is_image], trained[:, is_image])  # the image stays where it was


@pytest.mark.parametrize("bad", [0, -3, 2.5, "far", True])
def test_a_distance_that_is_not_a_positive_int_is_refused_at_load(tmp_path, bad):
    folder = with_distance(write_tiny(tmp_path / "m", "qwen2_5_vl", "1m", seed=0), bad)
    with pytest.raises(ValueError, match="config.text_distance must be a positive int"):
        load_model(folder, device="cpu")


def test_the_distance_is_saved_with_the_model(distance_model_dir, tmp_path):
    load_model(distance_model_dir, device="cpu").save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["text_distance"] == 60
    assert "get_rope_index" in vars(load_model(tmp_path / "again", device="cpu").model)
