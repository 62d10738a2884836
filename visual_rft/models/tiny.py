"""The tiny offline model factory: a real Qwen2.5-VL, Qwen2-VL or Qwen3-VL, from transformers' own classes.

No download: the config is written here, the weights are randomly initialised (seeded), the tokenizer is
trained locally (`tokenizer.py`) and the processor is the image-only one (`processor.py`). The folder it
writes loads with `AutoModelForImageTextToText.from_pretrained(dir)` and `AutoProcessor.from_pretrained(dir)`
like any Hugging Face model, so every code path is the one a real Qwen2-VL-2B takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from visual_rft.models.processor import QwenVLImageProcessor
from visual_rft.models.tokenizer import train_tokenizer

MODEL_CLASSES = {
    "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
    "qwen2_vl": Qwen2VLForConditionalGeneration,
    "qwen3_vl": Qwen3VLForConditionalGeneration,
}
"""The model class of each family the factory builds (its config's model_type)."""
FAMILIES = tuple(MODEL_CLASSES)


@dataclass(frozen=True)
class TinySize:
    """Width and depth of the two towers."""

    hidden: int
    """Text hidden size (also the vision merger's output size)."""
    layers: int
    """Text decoder layers."""
    heads: int
    """Text attention heads (key/value heads: half of these)."""
    vision_hidden: int
    """Vision tower width."""
    vision_depth: int
    """Vision tower blocks."""
    vision_heads: int
    """Vision attention heads."""


SIZES = {
    "1m": TinySize(hidden=96, layers=2, heads=4, vision_hidden=96, vision_depth=2, vision_heads=4),
    "5m": TinySize(hidden=192, layers=4, heads=6, vision_hidden=160, vision_depth=4, vision_heads=4),
    "20m": TinySize(hidden=384, layers=6, heads=6, vision_hidden=256, vision_depth=6, vision_heads=8),
}
"""Named sizes; parameter counts are about what the name says (see the README for exact counts)."""

MIN_PIXELS = 56 * 56
MAX_PIXELS = 448 * 448
"""The image processor's pixel budget: images up to 448x448 keep their size (rounded to 28 px, or 32 px
for Qwen3-VL)."""


ROPE_THETA = 10.0
"""The language model's RoPE base. Qwen's 1e4 (with its 16/24/24 split of the frequencies, scaled to a 32-dim
head) turns the width section at most 0.003 rad per image column, too little to tell columns apart, and
the vision tower's tokens carry no position of their own: a tiny model so built cannot say where an object
is. With theta 10 and [2, 7, 7] both spatial sections turn 0.1-0.75 rad per cell (RESULTS.md section 11)."""


def tiny_config(family: str, size: TinySize, tokenizer) -> Qwen2_5_VLConfig | Qwen2VLConfig | Qwen3VLConfig:
    """The model config, with the special token ids taken from our tokenizer."""
    head_dim = size.hidden // size.heads
    half = head_dim // 2  # mrope sections (time, height, width) must sum to half the head dim
    hw = 7 * half // 16
    mrope = [half - 2 * hw, hw, hw]  # 5m: [2, 7, 7]; the width section gets the lowest frequencies
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        intermediate_size=4 * size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=max(1, size.heads // 2),
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "mrope_section": mrope, "rope_theta": ROPE_THETA},
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    ids = dict(
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )
    if family == "qwen2_5_vl":
        vision = dict(
            depth=size.vision_depth,
            hidden_size=size.vision_hidden,
            intermediate_size=4 * size.vision_hidden,
            num_heads=size.vision_heads,
            out_hidden_size=size.hidden,
            window_size=112,
            fullatt_block_indexes=[size.vision_depth - 1],
        )
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    if family == "qwen2_vl":
        vision = dict(
            depth=size.vision_depth,
            embed_dim=size.vision_hidden,
            hidden_size=size.hidden,
            mlp_ratio=4,
            num_heads=size.vision_heads,
        )
        return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    if family == "qwen3_vl":
        return _qwen3_config(size, text, ids)
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def _qwen3_config(size: TinySize, text: dict, ids: dict) -> Qwen3VLConfig:
    """Qwen3-VL: 16-px patches, interleaved multimodal RoPE, and "deepstack" mergers that feed the outputs
    of early vision blocks into the first decoder layers (up to three, as the real models have)."""
    head_dim = size.hidden // size.heads
    half = head_dim // 2
    hw = 5 * half // 16
    rope = {"rope_type": "default", "mrope_section": [half - 2 * hw, hw, hw], "mrope_interleaved": True}
    text = dict(text, head_dim=head_dim, rope_parameters=dict(rope, rope_theta=ROPE_THETA))
    depth = size.vision_depth
    vision = dict(
        depth=depth,
        hidden_size=size.vision_hidden,
        intermediate_size=4 * size.vision_hidden,
        num_heads=size.vision_heads,
        out_hidden_size=size.hidden,
        patch_size=16,
        num_position_embeddings=256,  # a 16 x 16 learned grid, resampled to each image's grid
        deepstack_visual_indexes=list(range(max(0, depth - 4), depth - 1)),  # 2 blocks: [0]; 4: [0, 1, 2]
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


def tiny_image_processor(family: str) -> Qwen2VLImageProcessorPil:
    """The image processor of a family: Qwen3-VL cuts 16-px patches normalised to [-1, 1], the others 14-px
    patches with CLIP's mean and std (each merged 2 x 2 into one token)."""
    if family == "qwen3_vl":
        return Qwen2VLImageProcessorPil(
            min_pixels=MIN_PIXELS,
            max_pixels=MAX_PIXELS,
            patch_size=16,
            image_mean=[0.5] * 3,
            image_std=[0.5] * 3,
        )
    return Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)


def build_tiny(family: str = "qwen2_5_vl", size: str | TinySize = "5m", seed: int = 0):
    """Build (model, processor) in memory: random weights (seeded), trained tokenizer, image-only processor.
    `size` is a name of SIZES or a TinySize of its own (e.g. `replace(SIZES["5m"], heads=12)`)."""
    if isinstance(size, str) and size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(SIZES)}")
    if family not in MODEL_CLASSES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    dims = SIZES[size] if isinstance(size, str) else size
    if dims.hidden % dims.heads or (dims.hidden // dims.heads) % 2:
        raise ValueError(f"hidden size {dims.hidden} does not split into {dims.heads} heads of an even size")
    tokenizer = train_tokenizer(seed=seed)
    config = tiny_config(family, dims, tokenizer)
    torch.manual_seed(seed)
    model = MODEL_CLASSES[family](config).eval()
    processor = QwenVLImageProcessor(
        image_processor=tiny_image_processor(family),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id]
    return model, processor


def write_tiny(
    out_dir: str | Path, family: str = "qwen2_5_vl", size: str | TinySize = "5m", seed: int = 0
) -> Path:
    """Build a tiny model and save it as an ordinary Hugging Face folder (safetensors)."""
    out = Path(out_dir)
    model, processor = build_tiny(family, size, seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts: total, vision tower, language model (tied embeddings counted once)."""
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for p in model.model.visual.parameters())
    return {"total": total, "vision": vision, "language": total - vision}
