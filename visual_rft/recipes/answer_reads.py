"""Which tokens of a world answer read which objects of its scene: the positions the binding losses hold
(`recipes/binding.py`), each mapped to the objects of the sample's `meta.objects` it should look at."""

from __future__ import annotations

import torch

from visual_rft.data.answer import box_spans, region_spans
from visual_rft.data.types import DetectionTarget, GroundingTarget, Sample


def token_offsets(text: str, tokenizer) -> list[tuple[int, int]]:
    """The (start, end) characters of each of `text`'s tokens, as the SFT trainer tokenizes an answer."""
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def asked_objects(sample: Sample) -> list[int]:
    """For each box of the sample's target, in the order the answer writes them, the index of its object in
    `meta.objects` (-1: no object has that box). Classification targets have no boxes."""
    target = sample.target
    boxes = (
        [b.xyxy for b in target.boxes]
        if isinstance(target, DetectionTarget)
        else [target.box.xyxy]
        if isinstance(target, GroundingTarget)
        else []
    )
    index = {tuple(float(v) for v in o["box"]): i for i, o in enumerate(sample.meta.get("objects", []))}
    return [index.get(tuple(float(v) for v in b), -1) for b in boxes]


def digit_targets(text: str, tokenizer, objects: list[int]) -> list[int]:
    """[T] for each token of `text` (as the SFT trainer tokenizes an answer, plus its end-of-turn token),
    the object whose box the token writes a digit of, or whose place a word of the think names (`REGION_SLOT`:
    written before the boxes, the place is where the pick is made; the think's k-th place is the k-th box's,
    read only when it names one place per box); -1: none."""
    spans = box_spans(text)
    regions = region_spans(text)
    if len(regions) != len(objects):
        regions = []
    out = []
    for start, end in token_offsets(text, tokenizer):
        box = next((j for j, (a, b) in enumerate(spans) if a <= start and end <= b), None)
        digit = any(ch.isdigit() for ch in text[start:end])
        # a word token's leading space is not the word
        word = start + len(text[start:end]) - len(text[start:end].lstrip())
        named = next((k for k, (a, b) in enumerate(regions) if a <= word < end <= b), None)
        if box is not None and box < len(objects) and digit:
            out.append(objects[box])
        else:
            out.append(objects[named] if named is not None else -1)
    return out + [-1]  # the end-of-turn token


def answer_start(text: str, tokenizer) -> int | None:
    """The index, among `text`'s tokens (as the SFT trainer tokenizes an answer), of the answer body's first
    token: the first after `<answer>` (None: the text has no `<answer>`)."""
    if "<answer>" not in text:
        return None
    body = text.index("<answer>") + len("<answer>")
    return next((t for t, (start, _) in enumerate(token_offsets(text, tokenizer)) if start >= body), None)


def box_ends(text: str, tokenizer) -> list[int]:
    """For each box `text` writes, the index among its tokens (as the SFT trainer tokenizes an answer) of the first
    token after the box holding `}`, which closes the box's entry: where the answer says whether another box
    follows (`},`) or the list ends (`}`). A box with no such token after it (a grounding answer) is left out."""
    offsets = token_offsets(text, tokenizer)
    ends = [
        next((t for t, (a, b) in enumerate(offsets) if a >= end and "}" in text[a:b]), None)
        for _, end in box_spans(text)
    ]
    return [t for t in ends if t is not None]


def asked_instances(sample: Sample) -> list[int]:
    """The indices in `meta.objects` of the instances a presence question asks about: `meta.instances` where the
    sample lists them (the questions of `recipes/pretrain_samples.presence_pairs`), else a detection target's
    boxes' objects ([]: an absent category, or not a detection question)."""
    if "instances" in sample.meta:
        return list(sample.meta["instances"])
    if not isinstance(sample.target, DetectionTarget):
        return []
    return [j for j in asked_objects(sample) if j >= 0]


def first_reads(asked: torch.Tensor) -> torch.Tensor:
    """[F] the indices of the first of `asked`'s [Q] digit positions for each object: each box's first digit,
    since every box of an answer is a different object's."""
    seen: set[int] = set()
    out = []
    for q, j in enumerate(asked.tolist()):
        if j not in seen:
            seen.add(j)
            out.append(q)
    return torch.tensor(out, dtype=torch.long, device=asked.device)
