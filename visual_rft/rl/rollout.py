"""Rollout: sample a group of G completions per prompt, encoding each image and prompt ONCE.

TRL and the paper's code hand `num_return_sequences=G` to `generate`, which copies the pixels G times and
runs the vision tower and the prompt prefill on every copy. Here:

    1. vision tower on the B images                      -> image embeddings       (once per image)
    2. prefill of the B prompts                          -> KV cache [B, L]       (once per prompt)
    3. expand the cache and the last logits to B*G rows  -> KV cache [B*G, L]
    4. decode token by token, sampling with temperature / top-p, until every row has ended its turn.

Positions follow Qwen-VL's multimodal RoPE: prompt positions come from the model's `get_rope_index`;
a generated token t of row b sits at (largest prompt position of b) + 1 + t on all three axes, exactly
as transformers' own generation places it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
    from peft import PeftModel

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


def sample_next(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """[R] one token per row from [R, V] logits: greedy at temperature 0, else temperature + nucleus."""
    if temperature <= 0:
        return logits.argmax(dim=-1)  # [R]
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [R, V]
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)  # [R, V]
        outside = sorted_p.cumsum(dim=-1) - sorted_p > top_p  # [R, V] mass before this token already > top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)  # [R, V]
    return torch.multinomial(probs, 1).squeeze(-1)  # [R]


@torch.no_grad()
def sample_group(
    model,
    inputs,
    *,
    group_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_ids: list[int],
    pad_token_id: int,
) -> Rollout:
    """Sample `group_size` completions for each prompt of `inputs` (a processor output, left-padded)."""
    G = group_size
    ids, mask = inputs["input_ids"], inputs["attention_mask"]  # [B, L]
    B = ids.shape[0]
    positions = prompt_positions(model, inputs)  # [3, B, L]
    image_embeds = encode_images(model, inputs["pixel_values"], inputs["image_grid_thw"])  # [n, H]

    # prefill once per prompt
    embeds = embed_with_images(model, ids, image_embeds)  # [B, L, H]
    out = model(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
    )
    cache = out.past_key_values
    cache.batch_repeat_interleave(G)  # [B*G, L] keys and values
    logits = out.logits[:, -1].repeat_interleave(G, dim=0)  # [B*G, V]
    attn = mask.repeat_interleave(G, dim=0)  # [B*G, L]
    next_pos = (positions.amax(dim=(0, 2)) + 1).repeat_interleave(G)  # [B*G]

    eos = torch.tensor(eos_token_ids, device=ids.device)  # [E]
    done = torch.zeros(B * G, dtype=torch.bool, device=ids.device)  # [B*G]
    tokens, alive = [], []
    for t in range(max_new_tokens):
        tok = sample_next(logits, temperature, top_p)  # [B*G]
        tok = torch.where(done, torch.full_like(tok, pad_token_id), tok)  # [B*G]
        alive.append(~done)
        tokens.append(tok)
        done = done | torch.isin(tok, eos)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)  # [B*G, L+t+1]
        pos = (next_pos + t).view(1, -1, 1).expand(3, -1, -1)  # [3, B*G, 1]
        out = model(
            input_ids=tok[:, None],
            attention_mask=attn,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1]  # [B*G, V]

    return Rollout(
        prompt_ids=ids,
        prompt_mask=mask,
        prompt_positions=positions,
        pixel_values=inputs["pixel_values"],
        image_grid_thw=inputs["image_grid_thw"],
        completion_ids=torch.stack(tokens, dim=1),  # [B*G, T]
        completion_mask=torch.stack(alive, dim=1).long(),  # [B*G, T]
        group_size=G,
        images_per_prompt=count_images(model, ids),
    )


def completion_logprobs(model, rollout: Rollout, image_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """[B*G, T] log-probabilities of the sampled completion tokens under `model` (with grad if enabled).

    The images are encoded once per prompt (or passed in as `image_embeds`), then shared by the G rows.
    """
    from visual_rft.rl.loss import token_logprobs

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
    logits = model(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, logits_to_keep=T + 1
    ).logits[:, :-1]  # [R, T, V] logits that predict completion tokens
    return token_logprobs(logits, rollout.completion_ids)  # [R, T]
