"""The answer at one RoPE distance from the image, whatever the prompt's length.

Qwen-VL's multimodal RoPE places the text after an image from the image's largest position on, so a longer
question puts its answer further from the image: every world detection answer starts 143 positions after
the image, every one-object grounding answer 96. The tiny bases read a box at the distance they were trained
at and at no other (RESULTS.md section 40: moved 20 positions, the lone object's box goes from 73.5% to
none), so what one task learns about reading positions does not carry to another of another length
(section 42).

A model whose config has `text_distance` (an int, saved in its config.json) places the text after its
last image so that the prompt's last token stands exactly that many positions after the image's largest
position: every answer starts at the same distance. It is applied where the model computes its positions
(`get_rope_index`), so training (`models.forward.prompt_positions`), sampling and transformers' `generate`
all see it; `models.loading.load_model` installs it. A prompt whose text is longer than the distance moves
back, onto the positions of the image and the text before it (RoPE sees only differences; what a model
makes of that is for it to learn). A plain transformers load of the same folder ignores the key and places
the text where the prompt's length puts it. A forward of a prompt with its answer appended, left to compute
its own positions, is placed as one long prompt (the answer's end at the distance): pass `position_ids` from
the prompt's (`prompt_positions`, then `completion_positions`), as `bench/attention_probe.teacher_forced` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from visual_rft.data.files import atomic_path
from visual_rft.models.forward import core_model, shift_after_image

CONFIG_KEY = "text_distance"
"""The model config's attribute (and config.json key) holding the distance; absent or None: the natural layout."""


def text_distance_offsets(positions: torch.Tensor, is_image: torch.Tensor, distance: int) -> torch.Tensor:
    """[B] how far to move each row's text after its last image (`shift_after_image`) so that the prompt's last
    position stands `distance` after the image's largest one; 0 for a row without an image. `positions`
    [3, B, L] of a left-padded prompt batch (the last column is every row's last token); `is_image` [B, L]."""
    image_max = positions.masked_fill(~is_image[None], -1).amax(dim=(0, 2))  # [B] -1: no image
    last = positions[:, :, -1].amax(dim=0)  # [B]
    offsets = distance - (last - image_max)  # [B]
    return torch.where(image_max >= 0, offsets, torch.zeros_like(offsets))  # [B]


def hold_text_distance(model) -> int | None:
    """Install the model config's `text_distance` (if any) on this instance's `get_rope_index`; return it.
    Refuses a distance that is not a positive int before anything runs."""
    core = core_model(model)
    distance = getattr(core.config, CONFIG_KEY, None)
    if distance is None:
        return None
    check_text_distance(distance, f"config.{CONFIG_KEY}")
    move_text_after_image(
        model, lambda positions, is_image: text_distance_offsets(positions, is_image, distance)
    )
    return distance


def check_text_distance(distance, name: str) -> None:
    """Refuse a distance that is not None or a positive int, naming where it came from."""
    if distance is not None and (isinstance(distance, bool) or not isinstance(distance, int) or distance < 1):
        raise ValueError(f"{name} must be a positive int (positions), not {distance!r}")


def folder_text_distance(folder: str | os.PathLike) -> int | None:
    """A model folder's `text_distance` (None: the natural layout)."""
    return json.loads((Path(folder) / "config.json").read_text()).get(CONFIG_KEY)


def write_text_distance(folder: str | os.PathLike, distance: int | None) -> None:
    """Set a model folder's `text_distance` in its config.json (None: remove it). The file is written anew, so a
    hard-linked copy's original keeps its own."""
    path = Path(folder) / "config.json"
    config = {k: v for k, v in json.loads(path.read_text()).items() if k != CONFIG_KEY}
    if distance is not None:
        config[CONFIG_KEY] = distance
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def move_positions(model, move) -> None:
    """Wrap this instance's `get_rope_index` so that `move(positions [3, B, L], input_ids [B, L]) -> (positions
    [3, B, L], moves [B])` places each prompt, and generation continues `moves[b]` positions on (its rope deltas).
    `del core_model(model).model.get_rope_index` undoes it."""
    core = core_model(model)
    inner = core.model.get_rope_index  # bound: the class's method, or an earlier wrapper

    def get_rope_index(input_ids, *args, **kwargs):
        positions, deltas = inner(input_ids, *args, **kwargs)  # [3, B, L], [B, 1]
        positions, moves = move(positions, input_ids)  # [3, B, L], [B]
        return positions, deltas + moves[:, None].to(deltas.device)

    core.model.get_rope_index = get_rope_index


def move_text_after_image(model, offsets) -> None:
    """Wrap this instance's `get_rope_index` so that each row's text after its image moves
    `offsets(positions [3, B, L], is_image [B, L]) -> [B]` positions on (`shift_after_image`), the positions
    generation continues from (its rope deltas) too. `del core_model(model).model.get_rope_index` undoes it."""
    image_token = core_model(model).config.image_token_id

    def move(positions, input_ids):
        is_image = input_ids == image_token  # [B, L]
        moves = torch.as_tensor(offsets(positions, is_image), device=positions.device)  # [B]
        return shift_after_image(positions, is_image, moves), moves  # [3, B, L], [B]

    move_positions(model, move)
