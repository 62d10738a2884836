"""Rollout: sample a group of G completions per prompt, encoding each image and prompt ONCE.

TRL and the paper's code hand `num_return_sequences=G` to `generate`, which copies the pixels G times and
runs the vision tower and the prompt prefill on every copy. Here:

    1. vision tower on the B images                      -> image embeddings       (once per image)
    2. prefill of the B prompts                          -> KV cache [B, L]       (once per prompt)
    3. expand the cache and the last logits to B*G rows  -> KV cache [B*G, L]
    4. decode token by token, sampling with temperature / top-p, until every row has ended its turn.

Steps 2-3 are `visual_rft.models.forward.prefill_groups`, which the log-prob passes share. Step 4 is
either the simple loop on the growing cache (`simple_decoder`, the default and the CPU's) or, for GPUs
(`grpo.compiled_decode`), a static cache with a `torch.compile`'d step (`static_decoder`): the same tokens.

Positions, image encoding and the `Rollout` it returns are `visual_rft.models.forward`'s, the forward every
trainer and evaluator shares; this module only samples.
"""

from __future__ import annotations

import weakref

import torch
from transformers import DynamicCache, StaticCache

from visual_rft.models.forward import (
    Rollout,
    completion_positions,
    core_model,
    count_images,
    encode_images,
    prefill_groups,
    prompt_positions,
)


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generators=None) -> torch.Tensor:
    """[R] one token per row from [R, V] logits: greedy at temperature 0, else temperature + nucleus.
    `generators`: one torch.Generator per consecutive equal share of the rows (a group each), whose noise
    they draw; None: torch's global generator."""
    if temperature <= 0:
        return logits.argmax(dim=-1)  # [R]
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [R, V]
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)  # [R, V]
        outside = sorted_p.cumsum(dim=-1) - sorted_p > top_p  # [R, V] mass before this token already > top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)  # [R, V]
    if generators is None:
        return torch.multinomial(probs, 1).squeeze(-1)  # [R]
    shares = probs.split(probs.shape[0] // len(generators))  # [G, V] each
    return torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(shares, generators)]).squeeze(-1)


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
    static_cache: bool = False,
    compile_step: bool = False,
    generators: list[torch.Generator] | None = None,
) -> Rollout:
    """Sample `group_size` completions for each prompt of `inputs` (a processor output, left-padded).

    `static_cache`: decode on a preallocated cache of L + max_new_tokens positions with a fixed-size
    attention mask (`static_decoder`), so that every step has the same shapes; `compile_step`: that step
    through `torch.compile` (CUDA graphs: per-token Python overhead is what dominates small GPU batches).
    Both off: the simple loop on a growing cache. All three sample the same tokens.
    `generators`: one per prompt, the noise of its group (None: torch's global generator)."""
    G = group_size
    ids, mask = inputs["input_ids"], inputs["attention_mask"]  # [B, L]
    B = ids.shape[0]
    positions = prompt_positions(model, inputs)  # [3, B, L]
    images = encode_images(model, inputs["pixel_values"], inputs["image_grid_thw"])

    # prefill once per prompt, the cache expanded to G rows (the log-prob passes share the same function)
    last, kv = prefill_groups(model, ids, mask, positions, images, G)  # [B, H], L x [B*G, h, L, d]
    logits = core_model(model).get_output_embeddings()(last).repeat_interleave(G, dim=0)  # [B*G, V]
    attn = mask.repeat_interleave(G, dim=0)  # [B*G, L]
    next_pos = positions.amax(dim=(0, 2)) + 1  # [B]
    if static_cache or compile_step:
        step = static_decoder(model, kv, attn, max_new_tokens, compile_step)
    else:
        step = simple_decoder(model, DynamicCache(kv, config=core_model(model).config), attn)
    del kv  # the decoder's cache holds its own copy

    eos = torch.tensor(eos_token_ids, device=ids.device)  # [E]
    done = torch.zeros(B * G, dtype=torch.bool, device=ids.device)  # [B*G]
    tokens, alive = [], []
    for t in range(max_new_tokens):
        tok = sample_next(logits, temperature, top_p, generators)  # [B*G]
        tok = torch.where(done, torch.full_like(tok, pad_token_id), tok)  # [B*G]
        alive.append(~done)
        tokens.append(tok)
        done = done | torch.isin(tok, eos)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        logits = step(tok, completion_positions(next_pos, G, 1, start=t))  # [B*G, V]

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


def simple_decoder(model, cache, attn: torch.Tensor):
    """step(tok [R], pos [3, R, 1]) -> [R, V] next-token logits, on the growing `cache` (a DynamicCache)."""
    state = {"attn": attn}  # [R, L + steps so far]

    def step(tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        state["attn"] = torch.cat([state["attn"], torch.ones_like(state["attn"][:, :1])], dim=1)
        out = model(
            input_ids=tok[:, None],
            attention_mask=state["attn"],
            position_ids=pos,
            cache=cache,
            use_cache=True,
        )
        return out.logits[:, -1]  # [R, V]

    return step


def static_decoder(model, kv, attn: torch.Tensor, max_new_tokens: int, compile_step: bool):
    """The same step on a `StaticCache` of L + max_new_tokens positions or more (rounded up to
    `STATIC_BUCKET`; the prefill's keys and values `kv` copied in), with one [R, length] mask for every
    step: the slots not written yet lie in each query's future, so the causal mask hides them. Fixed
    shapes let `torch.compile` capture the step once."""
    length = -(-(attn.shape[1] + max_new_tokens) // STATIC_BUCKET) * STATIC_BUCKET  # rounded up
    static = StaticCache(config=core_model(model).config, max_cache_len=length)
    for layer, (keys, values) in zip(static.layers, kv):
        layer.update(keys, values)  # the first L positions
    full = torch.cat([attn, attn.new_ones(attn.shape[0], length - attn.shape[1])], dim=1)  # [R, length]
    forward = compiled(model) if compile_step else model

    def step(tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        out = forward(
            input_ids=tok[:, None], attention_mask=full, position_ids=pos, cache=static, use_cache=True
        )
        return out.logits[:, -1]  # [R, V]

    return step


STATIC_BUCKET = 128
"""The static cache's length is rounded up to a multiple of this, so that prompts of other lengths reuse
the compiled step (its shapes are fixed: one compilation per rows x bucket)."""
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(model):
    """`torch.compile(model)` once per model (mode reduce-overhead: CUDA graphs where there is CUDA)."""
    if model not in _COMPILED:
        _COMPILED[model] = torch.compile(model, mode="reduce-overhead", dynamic=False)
    return _COMPILED[model]
