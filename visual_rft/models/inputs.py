"""Turn samples into model inputs: the one path from `Sample` to `processor(...)` (RL, SFT, eval, demo)."""

from __future__ import annotations

from PIL import Image

from visual_rft.data.coords import CoordFrame
from visual_rft.data.prompts import build_prompt, messages
from visual_rft.data.types import Sample
from visual_rft.models.loading import coord_frame


def open_images(sample: Sample) -> list[Image.Image]:
    """The sample's images as RGB PIL images."""
    out = []
    for p in sample.images:
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out


def frames_for(images: list[list[Image.Image]], convention: str, processor) -> list[CoordFrame]:
    """Each sample's coordinate frame, from its first image's real size."""
    return [coord_frame(convention, processor, *imgs[0].size) for imgs in images]


def prompt_texts(
    samples: list[Sample], frames: list[CoordFrame], processor, short: bool = False
) -> list[str]:
    """Chat-formatted prompt strings, ending with the assistant turn's opening (`short`: `build_prompt`'s)."""
    return [
        processor.apply_chat_template(messages(s, f, short), tokenize=False, add_generation_prompt=True)
        for s, f in zip(samples, frames)
    ]


def instruction_gaps(samples: list[Sample], frames: list[CoordFrame], processor) -> tuple[list[int], int]:
    """(per sample, how many tokens its full prompt has beyond its short one, `build_prompt`'s instructions;
    how many tokens of the chat template follow the user text, the same for every prompt). The user texts are
    tokenized alone: the chat template around them is the same in both."""
    tok = processor.tokenizer

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    gaps = [
        count(build_prompt(s, f)) - count(build_prompt(s, f, short=True)) for s, f in zip(samples, frames)
    ]
    question = build_prompt(samples[0], frames[0], short=True)
    tail = prompt_texts(samples[:1], frames[:1], processor, short=True)[0].rsplit(question, 1)[1]
    return gaps, count(tail)


def encode_prompts(samples: list[Sample], processor, convention: str, short: bool = False):
    """(inputs, frames): left-padded input_ids/attention_mask/pixel_values/image_grid_thw for a batch
    (`short`: the questions alone, `build_prompt`'s)."""
    images = [open_images(s) for s in samples]
    frames = frames_for(images, convention, processor)
    texts = prompt_texts(samples, frames, processor, short)
    flat = [im for imgs in images for im in imgs]
    inputs = processor(images=flat, text=texts, return_tensors="pt", padding=True)
    return inputs, frames
