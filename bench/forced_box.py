"""Where a model puts a detection box once told there is one: presence and localisation read apart.

A model that answers "No Objects" to every detection question scores AP50 0 whether or not it could place the
box. This feeds each present query's answer in, up to the box's first digit (the think and
`<answer>[{'Position': [`, as the reference answer writes them), lets the model write the rest greedily, and
scores the first box against the scene's objects: on an asked instance (IoU > 0.5, as AP50 counts), on another
object, on none. A model with a `text_distance` (`models/text_distance.py`) keeps its answer where its layout
puts it: the distance is applied to the prompt without the fed prefix. Two models or more: the first against
each other query by query (McNemar's exact test).

    python bench/forced_box.py --models runs/dd_A/base runs/dd_N/base \
        --data runs/dethits_dd_A/held_out/detection_single.jsonl --out runs/forced_single

--box J feeds the reference answer up to box J's first digit instead (the queries of J instances or more, the first
J - 1 boxes written right): the box then written lands on an asked instance not written yet ('asked'), on one
written already ('repeat'), on another object or on none; and among other objects, the share whose nearest object
(centre to centre) is an asked instance not written yet, against chance (their share of the scene's objects): the
j-th instance picked, apart from how precisely its box is read; and whether it is a box at all (x2 > x1, y2 > y1)
and its centre's distance to the nearest instance not written. `--as-first box` writes box J at box 1's RoPE
positions (the tokens fed after box 1's first digit moved back onto them), `--as-first text` with the whole text
after the image moved back: whether a later box is lost to its distance from the image (RESULTS.md section 46).
`--shift K` moves every token after the image K positions on, the words unchanged, `--shift-answer K` only the fed
answer and what the model writes after it (the question in place): which distance a box is read at, from the image
or from the question (section 47).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detection_hits import nearest  # noqa: E402
from grounding_hits import centre, covers, sign_test  # noqa: E402

from visual_rft.data.answer import answer_text  # noqa: E402
from visual_rft.data.coords import answer_to_pixels  # noqa: E402
from visual_rft.data.jsonl import read_samples  # noqa: E402
from visual_rft.models.forward import core_model  # noqa: E402
from visual_rft.models.inputs import frames_for, open_images, prompt_texts  # noqa: E402
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family  # noqa: E402
from visual_rft.models.text_distance import (  # noqa: E402
    CONFIG_KEY,
    move_positions,
    move_text_after_image,
    text_distance_offsets,
)
from visual_rft.recipes.base_model import THINK  # noqa: E402

BOX = re.compile(r"(-?\d+)\D+?(-?\d+)\D+?(-?\d+)\D+?(-?\d+)")
"""The first four integers of what the model wrote after the fed prefix."""


COORDINATES = re.compile(r"\[\s*-?(?=\d)")
"""Where a box's coordinates start: the "[" opening them, up to the first digit."""


def box_prefix(sample, frame, think: str, box: int = 1) -> str:
    """The reference answer up to the first digit of its box number `box` (1: the first)."""
    text = answer_text(sample, frame, think)
    start = text.index("<answer>")
    starts = [m.end() for m in COORDINATES.finditer(text, start)]
    if len(starts) < box:
        raise ValueError(f"{sample.id}: its reference answer has {len(starts)} boxes, not {box} ({text!r})")
    return text[: starts[box - 1]]


def fed_distance(model, n_prefix: int) -> None:
    """A model with a `text_distance` D: its answer's first token at D after the image, with n_prefix tokens fed."""
    core = core_model(model)
    distance = getattr(core.config, CONFIG_KEY, None)
    if distance is None:
        return
    del core.model.get_rope_index  # the layout load_model installed, for prompts without a fed prefix
    move_text_after_image(model, lambda p, is_image: text_distance_offsets(p, is_image, distance + n_prefix))


AS_FIRST = ("text", "box")
"""How `forced_boxes(as_first=...)` moves a later box back to the positions of box 1: the whole text after the image,
or only the tokens fed after box 1's first digit (the question and box 1 left where they are)."""


def move_tail(model, tails: torch.Tensor, moves: torch.Tensor) -> None:
    """Wrap this instance's `get_rope_index` (`move_positions`) so that the last `tails[b]` tokens of row b's prompt
    (left-padded), and what is generated after them, move `moves[b]` positions on. `del
    core_model(model).model.get_rope_index` undoes it."""

    def move(positions, input_ids):
        length = positions.shape[-1]
        tail = torch.arange(length, device=positions.device)[None, :] >= length - tails[:, None].to(
            positions.device
        )
        moved = moves.to(positions.device)  # [B]
        return positions + (tail * moved[:, None])[None], moved  # [3, B, L], [B]

    move_positions(model, move)


def forced_boxes(
    model_dir: Path,
    samples,
    think: str,
    batch_size: int = 16,
    box: int = 1,
    as_first: str | None = None,
    shift: int = 0,
    shift_answer: int = 0,
) -> list[dict]:
    """Per sample: its id, the text written after the reference answer is fed up to box number `box`'s first digit,
    the box in pixels (None: unreadable). A model with a `text_distance` needs prefixes of one length. `as_first`
    (`AS_FIRST`; a model of the natural layout only): moved back by the tokens between box 1's first digit and box
    `box`'s, "text" every token after the image, "box" those tokens alone, so that the box is written at the
    positions box 1 is. `shift`: every token after the image moved that many positions on (negative: back), the
    words left as they are, and `shift_answer` only the fed answer (its think and boxes) and what follows it, the
    question left in place (a model of the natural layout only)."""
    if as_first not in (None, *AS_FIRST):
        raise ValueError(f"as_first: {as_first!r} is not one of {AS_FIRST}")
    moved = bool(as_first) + bool(shift) + bool(shift_answer)
    if moved > 1:
        raise ValueError("as_first, shift and shift_answer are moves of the text: give one")
    model = load_model(model_dir, dtype="float32", device="cpu")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model_dir))
    tok = processor.tokenizer
    distance = getattr(core_model(model).config, CONFIG_KEY, None)
    if moved and distance is not None:
        raise ValueError(
            f"{model_dir}: as_first, shift and shift_answer move the natural layout; this model has a {CONFIG_KEY}"
        )
    rows, fed = [], None
    for i in range(0, len(samples), batch_size):
        batch = samples[i : i + batch_size]
        images = [open_images(s) for s in batch]
        frames = frames_for(images, convention, processor)
        prefixes = [box_prefix(s, f, think, box) for s, f in zip(batch, frames)]
        lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prefixes]
        n_prefix = set(lengths)
        # the moves: of the whole text after the image [B], or of the prompt's last tokens (tails [B], moves [B])
        text_moves, tail = None, None
        if as_first:
            firsts = [
                len(tok(box_prefix(s, f, think), add_special_tokens=False)["input_ids"])
                for s, f in zip(batch, frames)
            ]
            back = torch.tensor([a - b for a, b in zip(firsts, lengths)])  # [B] <= 0
            text_moves, tail = (back, None) if as_first == "text" else (None, (-back, back))
        if shift:
            text_moves = torch.full((len(batch),), shift)
        if shift_answer:
            tail = (torch.tensor(lengths), torch.full((len(batch),), shift_answer))
        if text_moves is not None:
            move_text_after_image(model, lambda p, is_image, m=text_moves: m)
        if tail is not None:
            move_tail(model, *tail)
        if distance is not None and fed is None:  # the layout is set once, for the first batch's prefixes
            fed = min(n_prefix)
            fed_distance(model, fed)
        if distance is not None and n_prefix != {fed}:
            raise ValueError(f"the fed prefixes differ in length: {sorted(n_prefix | {fed})} tokens")
        texts = [t + p for t, p in zip(prompt_texts(batch, frames, processor), prefixes)]
        inputs = processor(
            images=[im for ims in images for im in ims], text=texts, return_tensors="pt", padding=True
        )
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=24, do_sample=False)  # [B, L + T]
        if moved:
            del core_model(model).model.get_rope_index  # this batch's moves
        written = tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for s, f, w in zip(batch, frames, written):
            m = BOX.search(w)
            xyxy = None if m is None else answer_to_pixels(tuple(map(int, m.groups())), f).xyxy
            rows.append({"id": s.id, "written": w, "box": xyxy})
    return rows


def landing(sample, box, written: int = 0) -> str:
    """'asked' (IoU > 0.5 with an instance of the asked category after the first `written` of the reference
    answer), 'repeat' (with one of those `written`), 'other' (with another object), 'none'."""
    if box is None:
        return "none"
    asked = [b.xyxy for b in sample.target.boxes]
    if any(covers(box, b) for b in asked[written:]):
        return "asked"
    if any(covers(box, b) for b in asked[:written]):
        return "repeat"
    return "other" if any(covers(box, tuple(o["box"])) for o in sample.meta["objects"]) else "none"


def picked(sample, box, written: int = 0) -> tuple[bool, float] | None:
    """Among other objects: whether the object nearest to `box` is an asked instance after the first `written`, and
    those instances' share of the scene's objects (chance); None: no box or no other object."""
    left = [b.xyxy for b in sample.target.boxes][written:]
    others = [tuple(o["box"]) for o in sample.meta["objects"] if tuple(o["box"]) not in left]
    if box is None or not others:
        return None
    return nearest(box, left, others)[0], len(left) / (len(left) + len(others))


def form(sample, box, written: int = 0) -> tuple[bool, float] | None:
    """Whether `box` is a box (x2 > x1 and y2 > y1), and the distance in px from its centre to the nearest asked
    instance after the first `written`; None: no box."""
    if box is None:
        return None
    left = [b.xyxy for b in sample.target.boxes][written:]
    return box[2] > box[0] and box[3] > box[1], min(math.dist(centre(box), centre(b)) for b in left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="world detection queries (meta.objects)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--think", default=THINK, help="the think the models were trained with")
    parser.add_argument(
        "--box", type=int, default=1, help="feed the answer up to this box's first digit (1: first)"
    )
    parser.add_argument(
        "--as-first",
        choices=AS_FIRST,
        help="write box --box at the RoPE positions of box 1: the whole text after the image moved back, or the "
        "tokens after box 1's first digit alone",
    )
    parser.add_argument(
        "--shift",
        type=int,
        default=0,
        help="move every token after the image this many RoPE positions on (negative: back), the words unchanged",
    )
    parser.add_argument(
        "--shift-answer",
        type=int,
        default=0,
        help="move the fed answer (think and boxes) this many RoPE positions on, the question left in place",
    )
    args = parser.parse_args()
    if args.box < 1:
        parser.error(f"--box {args.box}: boxes count from 1")
    written = args.box - 1
    samples = [s for s in read_samples(args.data) if s.task == "detection" and len(s.target.boxes) > written]
    if not samples:
        raise SystemExit(f"{args.data}: no detection query with {args.box} or more instances of its category")
    args.out.mkdir(parents=True, exist_ok=True)
    hits = {}
    print(f"{len(samples)} queries of {args.data} with {args.box} or more instances; box {args.box} written")
    print(
        "| model | on an asked instance not written | on one written | on another object | on none "
        "| nearest object asked, not written (chance) | well formed / centre to the nearest not written, px |"
        "\n|---|---|---|---|---|---|---|"
    )
    for i, model_dir in enumerate(args.models):
        rows = forced_boxes(
            model_dir,
            samples,
            args.think,
            box=args.box,
            as_first=args.as_first,
            shift=args.shift,
            shift_answer=args.shift_answer,
        )
        for s, r in zip(samples, rows):
            r["landing"] = landing(s, r["box"], written)
            r["picked"] = picked(s, r["box"], written)
            r["form"] = form(s, r["box"], written)
        (args.out / f"m{i}_box{args.box}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        hits[model_dir] = [r["landing"] == "asked" for r in rows]
        share = {
            k: sum(r["landing"] == k for r in rows) / len(rows) for k in ("asked", "repeat", "other", "none")
        }
        picks = [r["picked"] for r in rows if r["picked"] is not None]
        pick = (
            f"{100 * np.mean([p for p, _ in picks]):.1f}% ({100 * np.mean([c for _, c in picks]):.1f}%) of {len(picks)}"
            if picks
            else "-"
        )
        forms = [r["form"] for r in rows if r["form"] is not None]
        shape = (
            f"{100 * np.mean([f for f, _ in forms]):.0f}% / {np.median([d for _, d in forms]):.1f}"
            if forms
            else "-"
        )
        print(
            f"| {model_dir} | "
            + " | ".join(f"{100 * v:.1f}%" for v in share.values())
            + f" | {pick} | {shape} |",
            flush=True,
        )
    first, *rest = args.models
    for other in rest:
        only_a = sum(a and not b for a, b in zip(hits[first], hits[other]))
        only_b = sum(b and not a for a, b in zip(hits[first], hits[other]))
        print(f"{first} against {other}: {only_a} against {only_b} only, p {sign_test(only_a, only_b):.3g}")


if __name__ == "__main__":
    main()
