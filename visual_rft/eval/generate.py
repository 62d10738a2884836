"""Batched generation for evaluation: samples in, one completion string per sample out, in input order.

Samples are encoded through `visual_rft.models.inputs.encode_prompts` (the one path from a `Sample` to the
processor: the same prompts as training, left-padded). To waste little compute on padding, samples are
sorted by their estimated prompt length (image tokens after the processor's resize, plus the question's
tokens), longest first, and cut into batches of `batch_size`; the longest batch runs first, so an
out-of-memory error shows at once rather than at the end. The completions are put back in input order.

Greedy decoding (the default) gives the same completion for a sample whatever batch it lands in: the
prompt is left-padded and masked, so batched and one-at-a-time generation agree token for token (up to
floating-point ties; tested on the tiny model in fp32).

`min_new_tokens` forces a fixed completion length (benchmarks: the same work in every configuration).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from tqdm.auto import tqdm

from visual_rft.data.coords import CoordFrame
from visual_rft.data.types import Sample
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import coord_convention, model_family, resized_size


@dataclass(frozen=True)
class Generation:
    """One sample's completion: the decoded text (special tokens dropped), its token count, its frame."""

    text: str
    n_tokens: int
    """Generated tokens up to and including the end-of-turn token (or all of them when it never came)."""
    frame: CoordFrame
    """The coordinate frame the prompt was written in: how to read boxes of the completion."""


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode. The defaults are the evaluation protocol: greedy, up to 256 new tokens."""

    max_new_tokens: int = 256
    """The most tokens generated per sample."""
    min_new_tokens: int = 0
    """The fewest tokens generated per sample (the end of turn is suppressed before); benchmarks set it."""
    do_sample: bool = False
    """Sample (with `temperature` and `top_p`) instead of greedy decoding."""
    temperature: float = 1.0
    """Sampling temperature (only with `do_sample`)."""
    top_p: float = 1.0
    """Nucleus sampling mass (only with `do_sample`)."""


def _image_sizes(sample: Sample) -> list[tuple[int, int]]:
    """(width, height) of each image: the sample's own size for the first when known, else the file header."""
    sizes = []
    for i, path in enumerate(sample.images):
        if i == 0 and sample.width and sample.height:
            sizes.append((sample.width, sample.height))
            continue
        with Image.open(path) as im:  # reads the header only
            sizes.append(im.size)
    return sizes


def prompt_cost(samples: Sequence[Sample], processor) -> list[int]:
    """Estimated prompt length of each sample in tokens: image tokens after resize + question tokens."""
    ip = processor.image_processor
    per_token = (ip.patch_size * ip.merge_size) ** 2  # pixels of the resized image per image token
    questions = processor.tokenizer([s.problem for s in samples], add_special_tokens=False)["input_ids"]
    costs = []
    for sample, question in zip(samples, questions):
        image_tokens = 0
        for w, h in _image_sizes(sample):
            rw, rh = resized_size(processor, w, h)
            image_tokens += rw * rh // per_token
        costs.append(image_tokens + len(question))
    return costs


def batch_order(costs: Sequence[int], batch_size: int, sort: bool = True) -> list[list[int]]:
    """Sample indices cut into batches: by decreasing cost when `sort` (stable), else in input order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(costs)), key=lambda i: -costs[i]) if sort else list(range(len(costs)))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _generation_config(model, processor, options: DecodeOptions):
    cfg = copy.deepcopy(model.generation_config)
    cfg.max_new_tokens = options.max_new_tokens
    cfg.min_new_tokens = options.min_new_tokens or None
    cfg.max_length = None
    cfg.do_sample = options.do_sample
    cfg.num_beams = 1
    if options.do_sample:
        cfg.temperature, cfg.top_p, cfg.top_k = options.temperature, options.top_p, None
    else:  # a model's own sampling defaults would only raise warnings under greedy decoding
        cfg.temperature = cfg.top_p = cfg.top_k = None
    if cfg.pad_token_id is None:
        cfg.pad_token_id = processor.tokenizer.pad_token_id
    if cfg.eos_token_id is None:
        cfg.eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    return cfg


def _eos_ids(cfg) -> list[int]:
    eos = cfg.eos_token_id
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def decode_completions(token_ids: torch.Tensor, tokenizer, eos_ids: Sequence[int]) -> list[tuple[str, int]]:
    """[B, T] generated ids -> (text, token count) per row, cut after the first end-of-turn token."""
    is_eos = torch.isin(token_ids, torch.tensor(list(eos_ids), device=token_ids.device))  # [B, T]
    T = token_ids.shape[1]
    first = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, T).tolist()  # [B]
    rows = [ids[:n] for ids, n in zip(token_ids.tolist(), first)]
    texts = tokenizer.batch_decode(rows, skip_special_tokens=True)
    return list(zip(texts, first))


def generate(
    model,
    processor,
    samples: Sequence[Sample],
    *,
    batch_size: int = 8,
    options: DecodeOptions | None = None,
    convention: str | None = None,
    sort: bool = True,
    progress: bool = False,
    desc: str = "generate",
) -> list[Generation]:
    """One completion per sample (in the order of `samples`), generated `batch_size` prompts at a time.

    `convention`: the model's coordinate convention (default: from its config's model_type).
    `sort`: batch samples of similar prompt length together (the result is the same, padding is less).
    `progress`: show a tqdm bar (samples done, rate, ETA) on stderr.
    """
    options = options or DecodeOptions()
    convention = convention or coord_convention(model_family(model.config))
    cfg = _generation_config(model, processor, options)
    eos_ids = _eos_ids(cfg)
    device = next(model.parameters()).device
    batches = batch_order(prompt_cost(samples, processor) if sort else [0] * len(samples), batch_size, sort)
    results: list[Generation | None] = [None] * len(samples)
    with (
        tqdm(total=len(samples), desc=desc, unit="sample", disable=not progress, dynamic_ncols=True) as bar,
        torch.inference_mode(),
    ):
        for batch in batches:
            inputs, frames = encode_prompts([samples[i] for i in batch], processor, convention)
            inputs = inputs.to(device)
            out = model.generate(**inputs, generation_config=cfg)  # [B, L + T]
            new = out[:, inputs["input_ids"].shape[1] :]  # [B, T]
            for i, frame, (text, n) in zip(
                batch, frames, decode_completions(new, processor.tokenizer, eos_ids)
            ):
                results[i] = Generation(text, n, frame)
            bar.update(len(batch))
    return results  # type: ignore[return-value]
