"""The policy forward that every trainer and evaluator uses: images encoded once, Qwen-VL positions,
log-probabilities of completion tokens.

A `Rollout` is a batch of B prompts with G completions each (rows ordered prompt-major). The vision tower
runs once per image (`encode_images`) and its output is shared by the G rows of a group
(`embed_with_images`); positions follow Qwen-VL's multimodal RoPE: prompt positions come from the model's
`get_rope_index`, and completion token t of row b sits at (largest prompt position of b) + 1 + t on all
three axes, exactly as transformers' own generation places it. `completion_logprobs` is the one forward
of GRPO's reference / old-policy / policy passes and of SFT's loss.

The prompt is shared too: `prefill_groups` runs each prompt through the decoder once and expands its
key/value cache to the G rows of its group, for the rollout (which then samples on it) and for
`completion_logprobs` (which then runs only the completion tokens of each row on it, with gradients when
the pass needs them: the expansion is differentiable, so the prompt's gradient is accumulated once).
With images most of each sequence is prompt (hundreds of image tokens against tens of completion tokens),
so the log-prob passes cost about (L + G*T) tokens per group instead of G*(L + T).

Qwen3-VL's tower also returns "deepstack" features (the outputs of early vision blocks, merged like the
last): `ImageFeatures` carries them beside the image tokens, and `decode` adds them at the image positions
after the first decoder layers (`visual_pos_masks` / `deepstack_visual_embeds`, as `Qwen3VLModel.forward`
does). Which models have them is read from the tower's output, never from the model's name.

Log-probabilities never need the full [R, T, V] logits: `visual_rft.models.logprobs.head_logprobs` applies
the language-model head to `chunk_size` completion tokens at a time, in the forward and the backward pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from peft import PeftModel
from transformers.cache_utils import Cache, DynamicLayer

from visual_rft.models.logprobs import DEFAULT_CHUNK_SIZE, head_logprobs, token_logprobs

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ImageFeatures",
    "Rollout",
    "completion_logprobs",
    "completion_positions",
    "core_model",
    "count_images",
    "decode",
    "embed_with_images",
    "encode_images",
    "head_logprobs",
    "per_row_states",
    "prefill_groups",
    "prompt_positions",
    "shared_prefix_states",
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
    images: ImageFeatures | None = None
    """The tower's output for `pixel_values`, computed beforehand (a frozen tower's `ImageCache`); None: the
    pass encodes `pixel_values` itself."""

    @property
    def next_position(self) -> torch.Tensor:
        """[B] the position of the first completion token of each prompt."""
        return self.prompt_positions.amax(dim=(0, 2)) + 1  # [B]


@dataclass
class ImageFeatures:
    """The vision tower's output for a batch of images, image after image."""

    tokens: torch.Tensor  # [n, H] merged image tokens, the placeholders' embeddings
    """What fills the image placeholders of the prompt (every family)."""
    deepstack: list[torch.Tensor] = field(default_factory=list)  # K x [n, H]
    """Qwen3-VL: features of early vision blocks, one per decoder layer they are added after (else empty)."""


@dataclass
class DecoderInputs:
    """What the decoder takes: the embedded sequence and, for deepstack models, the image features to add."""

    embeds: torch.Tensor  # [R, S, H] token embeddings with the image tokens filled in
    """The sequence as `inputs_embeds`."""
    extra: dict = field(default_factory=dict)
    """Keyword arguments of the language model: `visual_pos_masks` [R, S] and `deepstack_visual_embeds`
    (K x [N, H]) when the images have deepstack features; empty otherwise."""


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


def shift_after_image(positions: torch.Tensor, mm_token_type_ids: torch.Tensor, offsets) -> torch.Tensor:
    """[3, B, L] `positions` of a left-padded prompt batch with row b's text after its image moved `offsets[b]`
    further on (`mm_token_type_ids`: [B, L], non-zero at image tokens): from the token after <|vision_end|>
    (which stays beside the image, as in every prompt); a completion continues from the prompt's last
    position, so it moves too. A row without an image moves whole."""
    is_image = mm_token_type_ids != 0  # [B, L]
    after = is_image.flip(-1).cumsum(-1).flip(-1) == 0  # [B, L] no image token from here on
    end_marker = torch.roll(is_image, 1, dims=-1)  # [B, L] the token after an image token
    end_marker[:, 0] = False
    offsets = torch.as_tensor(offsets, device=positions.device)  # [B]
    return positions + offsets[None, :, None] * (after & ~end_marker)[None]  # [3, B, L]


def encode_images(model, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> ImageFeatures:
    """The vision tower's output for all images, in order (one call for the batch)."""
    core = core_model(model)
    out = core.model.get_image_features(pixel_values, image_grid_thw, return_dict=True)
    tokens = torch.cat(out.pooler_output, dim=0)  # [n_image_tokens, H]
    deepstack = [torch.cat(f, dim=0) for f in getattr(out, "deepstack_features", None) or []]  # K x [n, H]
    return ImageFeatures(tokens, deepstack)


def _repeat_groups(features: torch.Tensor, per_prompt: list[int], repeat: int) -> torch.Tensor:
    """[R * n, H] each prompt's rows of `features` ([n, H], prompt after prompt) repeated `repeat` times."""
    chunks = torch.split(features, per_prompt)  # B x [n_b, H]
    return torch.cat([c for c in chunks for _ in range(repeat)])  # [R * n, H]


def embed_with_images(
    model, input_ids: torch.Tensor, images: ImageFeatures, repeat: int = 1, prompt_len: int | None = None
) -> DecoderInputs:
    """Token embeddings with the image placeholders of the prompt filled in (and the deepstack features
    that go with them).

    `input_ids` has `repeat` consecutive rows per prompt (a group); `images` holds each prompt's image
    tokens once, and is repeated here so that the vision tower never runs per sample. Only the first
    `prompt_len` columns hold placeholders (a sampled completion may contain the token; it stays text).
    """
    core = core_model(model)
    embeds = core.get_input_embeddings()(input_ids)  # [R, S, H]
    is_image = input_ids == core.config.image_token_id  # [R, S]
    if prompt_len is not None:
        is_image[:, prompt_len:] = False
    tokens, deepstack = images.tokens, images.deepstack  # [n, H], K x [n, H]
    if repeat > 1:
        per_prompt = is_image[::repeat].sum(dim=1).tolist()  # image tokens of each prompt
        tokens = _repeat_groups(tokens, per_prompt, repeat)  # [R * n, H]
        deepstack = [_repeat_groups(f, per_prompt, repeat) for f in deepstack]  # K x [R * n, H]
    embeds = embeds.masked_scatter(is_image.unsqueeze(-1), tokens.to(embeds.dtype))  # [R, S, H]
    if not deepstack:
        return DecoderInputs(embeds)
    return DecoderInputs(embeds, {"visual_pos_masks": is_image, "deepstack_visual_embeds": deepstack})


def decode(model, inputs: DecoderInputs, attention_mask: torch.Tensor, position_ids: torch.Tensor, **kwargs):
    """The decoder without its head on embedded inputs (the transformers `BaseModelOutputWithPast`): the
    language model itself, so that Qwen3-VL's deepstack features can be passed; LoRA layers sit inside it,
    so adapters apply as in `model(...)`. `kwargs`: `use_cache` and the like."""
    language_model = core_model(model).model.language_model
    return language_model(
        inputs_embeds=inputs.embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        **inputs.extra,
        **kwargs,
    )


def completion_positions(next_position: torch.Tensor, group_size: int, length: int, start: int = 0):
    """[3, B*G, length] positions of completion tokens start..start+length-1 of each row: the prompt's
    `next_position` ([B]) + t on all three axes, as transformers' generation places them."""
    steps = torch.arange(start, start + length, device=next_position.device)  # [length]
    pos = next_position.repeat_interleave(group_size)[:, None] + steps  # [B*G, length]
    return pos.unsqueeze(0).expand(3, -1, -1)  # [3, B*G, length]


def prefill_groups(model, ids, mask, positions, images: ImageFeatures, group_size: int):
    """Each prompt through the decoder ONCE, its keys and values then expanded to its G rows.

    Returns ([B, H] the hidden state of each prompt's last token, per decoder layer the ([B*G, h, L, d]
    keys, values)). The expansion is `repeat_interleave`, differentiable: under autograd the shared
    prefix's gradient is the sum over its G completions, accumulated in one backward through the prompt.
    The rollout (which grows a `DynamicCache` from them) and the log-prob passes (`PrefixLayer`) share this;
    Qwen3-VL's deepstack features go in here: only prompt tokens carry images. The keys and values are
    taken by `CaptureLayer`s, so this also runs under activation checkpointing (`checkpoint_with_cache`).
    """
    capture = Cache(layers=[CaptureLayer() for _ in core_model(model).model.language_model.layers])
    with checkpoint_with_cache(model):
        out = decode(model, embed_with_images(model, ids, images), mask, positions, cache=capture)
    kv = [
        (c.keys.repeat_interleave(group_size, 0), c.values.repeat_interleave(group_size, 0))
        for c in capture.layers
    ]
    return out.last_hidden_state[:, -1], kv  # [B, H], L x ([B*G, h, L, d], [B*G, h, L, d])


class CaptureLayer(DynamicLayer):
    """A cache layer that keeps the first keys/values it is given and hands every call its own back: the
    prompt's pass stores them, a checkpoint's recomputation of it stores nothing and sees the same."""

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states  # [B, h, L, d]
        return key_states, value_states


class PrefixLayer(DynamicLayer):
    """A fixed prefix: each call attends to prefix + its own keys/values, and nothing is stored, so a
    checkpoint's recomputation sees what the forward saw."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values  # [R, h, L, d]

    def update(self, key_states, value_states, *args, **kwargs):
        keys = torch.cat([self.keys, key_states], dim=-2)  # [R, h, L+t, d]
        return keys, torch.cat([self.values, value_states], dim=-2)


@contextmanager
def checkpoint_with_cache(model):
    """Let checkpointed decoder layers keep the cache (transformers drops it unless a layer says it only
    reads it; `CaptureLayer` and `PrefixLayer` make a recomputation see what the forward saw)."""
    layers = core_model(model).model.language_model.layers
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache  # back to the class's False


def completion_logprobs(
    model,
    rollout: Rollout,
    images: ImageFeatures | None = None,
    *,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    share_prefix: bool = True,
) -> torch.Tensor:
    """[B*G, T] log-probabilities of the sampled completion tokens under `model` (with grad if enabled).

    The images are encoded once per prompt (or passed in as `images`, or carried by the rollout), then shared
    by the G rows.
    `temperature`: the logits are divided by it first, as the rollout sampled (TRL does the same), so the
    ratio and KL of the loss compare the distributions the tokens were drawn from. `chunk_size`: tokens per
    chunk of `head_logprobs`; 0 materialises the full [R, T, V] logits (the old way, kept for benchmarks).
    `share_prefix`: each prompt runs once and only the completion tokens run per row (`shared_prefix_states`);
    False: every row runs its prompt again (`per_row_states`, for the benchmark and the equality tests).
    Both compute the same values and gradients (with activation checkpointing too); the per-row path is
    also taken where sharing gains nothing (G = 1).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probabilities, got {temperature}")
    if images is None:
        images = rollout.images
    if images is None:
        images = encode_images(model, rollout.pixel_values, rollout.image_grid_thw)
    if share_prefix and rollout.group_size > 1:
        hidden = shared_prefix_states(model, rollout, images)  # [R, T, H]
    else:
        hidden = per_row_states(model, rollout, images)  # [R, T, H]
    head = core_model(model).get_output_embeddings()
    if chunk_size <= 0:  # the full logits tensor at once
        logits = head(hidden)  # [R, T, V]
        return token_logprobs(logits, rollout.completion_ids, temperature)  # [R, T]
    return head_logprobs(hidden, head, rollout.completion_ids, temperature=temperature, chunk_size=chunk_size)


def shared_prefix_states(model, rollout: Rollout, images: ImageFeatures) -> torch.Tensor:
    """[R, T, H] the states that predict each completion token: the prompt once per group
    (`prefill_groups`), then completion tokens 0..T-2 of every row on its group's cache."""
    G = rollout.group_size
    T = rollout.completion_ids.shape[1]
    last, kv = prefill_groups(
        model, rollout.prompt_ids, rollout.prompt_mask, rollout.prompt_positions, images, G
    )  # [B, H], L x [B*G, h, L, d]
    first = last.repeat_interleave(G, dim=0)[:, None]  # [R, 1, H] predicts completion token 0
    if T <= 1:
        return first[:, :T]  # [R, T, H]
    ids = rollout.completion_ids[:, :-1]  # [R, T-1] the last token predicts nothing
    mask = torch.cat(
        [rollout.prompt_mask.repeat_interleave(G, dim=0), rollout.completion_mask[:, :-1]], dim=1
    )  # [R, L+T-1]
    positions = completion_positions(rollout.next_position, G, T - 1)  # [3, R, T-1]
    embeds = core_model(model).get_input_embeddings()(ids)  # [R, T-1, H] text only: no image placeholders
    prefix = Cache(layers=[PrefixLayer(k, v) for k, v in kv])
    with checkpoint_with_cache(model):
        rest = decode(
            model, DecoderInputs(embeds), mask, positions, cache=prefix
        ).last_hidden_state  # [R, T-1, H]
    return torch.cat([first, rest], dim=1)  # [R, T, H]


def per_row_states(model, rollout: Rollout, images: ImageFeatures) -> torch.Tensor:
    """[R, T, H] the same states with every row's prompt run again: prompt + completion, row by row."""
    G = rollout.group_size
    T = rollout.completion_ids.shape[1]
    ids = torch.cat(
        [rollout.prompt_ids.repeat_interleave(G, dim=0), rollout.completion_ids], dim=1
    )  # [R, L+T]
    mask = torch.cat(
        [rollout.prompt_mask.repeat_interleave(G, dim=0), rollout.completion_mask], dim=1
    )  # [R, L+T]
    positions = torch.cat(
        [
            rollout.prompt_positions.repeat_interleave(G, dim=1),
            completion_positions(rollout.next_position, G, T),
        ],
        dim=2,
    )  # [3, R, L+T]
    inputs = embed_with_images(model, ids, images, repeat=G, prompt_len=rollout.prompt_ids.shape[1])
    hidden = decode(model, inputs, mask, positions).last_hidden_state  # [R, L+T, H]
    return hidden[:, -T - 1 : -1]  # [R, T, H] states that predict completion tokens
