"""The policy forward that every trainer and evaluator uses: images encoded once, Qwen-VL positions,
log-probabilities of completion tokens.

A `Rollout` is a batch of B prompts with G completions each (rows ordered prompt-major). The vision tower
runs once per image (`encode_images`) and its output is shared by the G rows of a group
(`embed_with_images`); positions follow Qwen-VL's multimodal RoPE: prompt positions come from the model's
`get_rope_index`, and completion token t of row b sits at (largest prompt position of b) + 1 + t on all
three axes, exactly as transformers' own generation places it. `completion_logprobs` is the one forward
of GRPO's reference / old-policy / policy passes and of SFT's loss.

Log-probabilities never need the full [R, T, V] logits: `visual_rft.models.logprobs.head_logprobs` applies
the language-model head to `chunk_size` completion tokens at a time, in the forward and the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import PeftModel

from visual_rft.models.logprobs import DEFAULT_CHUNK_SIZE, head_logprobs, token_logprobs

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Rollout",
    "completion_logprobs",
    "core_model",
    "count_images",
    "embed_with_images",
    "encode_images",
    "head_logprobs",
    "prompt_positions",
    "token_logprobs",
]


@dataclass
class Rollout:
    """One batch of prompts and their G sampled completions each (rows ordered prompt-major)."""

    prompt_ids: torch.Tensor  # [B, L]   left-padded
    prompt_mask: torch.Tensor  # [B, L]
    prompt_positions: torch.Tensor  # [3, B, L] multimodal RoPE positions of the prompt
    pixel_values: torch.Tensor  # [P, C*t*p*p] patches of all images
    image_grid_thw: torch.Tensor  # [I, 3]
    completion_ids: torch.Tensor  # [B*G, T] right-padded with pad_token_id after the end of turn
    completion_mask: torch.Tensor  # [B*G, T] 1 up to and including the first end-of-turn token
    group_size: int
    images_per_prompt: list[int]  # images of each prompt (see `count_images`)

    @property
    def next_position(self) -> torch.Tensor:
        """[B] the position of the first completion token of each prompt."""
        return self.prompt_positions.amax(dim=(0, 2)) + 1  # [B]


def core_model(model):
    """The transformers `*ForConditionalGeneration` under a peft wrapper (the model itself otherwise)."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def count_images(model, input_ids: torch.Tensor) -> list[int]:
    """How many images each prompt row holds (its <|vision_start|> tokens)."""
    start = core_model(model).config.vision_start_token_id
    return (input_ids == start).sum(dim=1).tolist()


def prompt_positions(model, inputs) -> torch.Tensor:
    """[3, B, L] multimodal RoPE positions of a left-padded prompt batch."""
    core = core_model(model)
    positions, _ = core.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    return positions  # [3, B, L]


def encode_images(model, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
    """[n_image_tokens, H] the vision tower's output for all images, in order (one call for the batch)."""
    core = core_model(model)
    out = core.model.get_image_features(pixel_values, image_grid_thw, return_dict=True)
    return torch.cat(out.pooler_output, dim=0)  # [n_image_tokens, H]


def embed_with_images(
    model, input_ids: torch.Tensor, image_embeds: torch.Tensor, repeat: int = 1, prompt_len: int | None = None
) -> torch.Tensor:
    """Token embeddings with the image placeholders of the prompt filled in.

    `input_ids` has `repeat` consecutive rows per prompt (a group); `image_embeds` holds each prompt's image
    tokens once, and is repeated here so that the vision tower never runs per sample. Only the first
    `prompt_len` columns hold placeholders (a sampled completion may contain the token; it stays text).
    """
    core = core_model(model)
    embeds = core.get_input_embeddings()(input_ids)  # [R, S, H]
    is_image = input_ids == core.config.image_token_id  # [R, S]
    if prompt_len is not None:
        is_image[:, prompt_len:] = False
    if repeat > 1:
        per_prompt = is_image[::repeat].sum(dim=1).tolist()  # image tokens of each prompt
        chunks = torch.split(image_embeds, per_prompt)  # B x [n_b, H]
        image_embeds = torch.cat([c for c in chunks for _ in range(repeat)])  # [R * n, H]
    return embeds.masked_scatter(is_image.unsqueeze(-1), image_embeds.to(embeds.dtype))  # [R, S, H]


def completion_logprobs(
    model,
    rollout: Rollout,
    image_embeds: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """[B*G, T] log-probabilities of the sampled completion tokens under `model` (with grad if enabled).

    The images are encoded once per prompt (or passed in as `image_embeds`), then shared by the G rows.
    `temperature`: the logits are divided by it first, as the rollout sampled (TRL does the same), so the
    ratio and KL of the loss compare the distributions the tokens were drawn from. `chunk_size`: tokens per
    chunk of `head_logprobs`; 0 materialises the full [R, T, V] logits (the old way, kept for benchmarks).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probabilities, got {temperature}")
    G = rollout.group_size
    T = rollout.completion_ids.shape[1]
    if image_embeds is None:
        image_embeds = encode_images(model, rollout.pixel_values, rollout.image_grid_thw)  # [n, H]
    ids = torch.cat(
        [rollout.prompt_ids.repeat_interleave(G, dim=0), rollout.completion_ids], dim=1
    )  # [R, L+T]
    mask = torch.cat(
        [rollout.prompt_mask.repeat_interleave(G, dim=0), rollout.completion_mask], dim=1
    )  # [R, L+T]
    steps = torch.arange(T, device=ids.device)  # [T]
    comp_pos = rollout.next_position.repeat_interleave(G)[:, None] + steps  # [R, T]
    positions = torch.cat(
        [rollout.prompt_positions.repeat_interleave(G, dim=1), comp_pos.unsqueeze(0).expand(3, -1, -1)], dim=2
    )  # [3, R, L+T]
    embeds = embed_with_images(model, ids, image_embeds, repeat=G, prompt_len=rollout.prompt_ids.shape[1])
    if chunk_size <= 0:  # the full logits tensor at once
        logits = model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, logits_to_keep=T + 1
        ).logits[:, :-1]  # [R, T, V] logits that predict completion tokens
        return token_logprobs(logits / temperature if temperature != 1 else logits, rollout.completion_ids)
    core = core_model(model)
    # the decoder without its head (LoRA layers sit inside it, so adapters apply as in model(...))
    hidden = core.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
    hidden = hidden[:, -T - 1 : -1]  # [R, T, H] states that predict completion tokens
    head = core.get_output_embeddings()
    return head_logprobs(hidden, head, rollout.completion_ids, temperature=temperature, chunk_size=chunk_size)
