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
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grounding_hits import covers, sign_test  # noqa: E402

from visual_rft.data.answer import answer_text  # noqa: E402
from visual_rft.data.coords import answer_to_pixels  # noqa: E402
from visual_rft.data.jsonl import read_samples  # noqa: E402
from visual_rft.models.forward import core_model  # noqa: E402
from visual_rft.models.inputs import frames_for, open_images, prompt_texts  # noqa: E402
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family  # noqa: E402
from visual_rft.models.text_distance import CONFIG_KEY, move_text_after_image, text_distance_offsets  # noqa: E402
from visual_rft.recipes.base_model import THINK  # noqa: E402

BOX = re.compile(r"(-?\d+)\D+?(-?\d+)\D+?(-?\d+)\D+?(-?\d+)")
"""The first four integers of what the model wrote after the fed prefix."""


def box_prefix(sample, frame, think: str) -> str:
    """The reference answer up to its first box's first digit."""
    text = answer_text(sample, frame, think)
    start = text.index("<answer>")
    first = re.search(r"\d", text[start:])
    if first is None:
        raise ValueError(f"{sample.id}: its reference answer has no box ({text!r})")
    return text[: start + first.start()]


def fed_distance(model, n_prefix: int) -> None:
    """A model with a `text_distance` D: its answer's first token at D after the image, with n_prefix tokens fed."""
    core = core_model(model)
    distance = getattr(core.config, CONFIG_KEY, None)
    if distance is None:
        return
    del core.model.get_rope_index  # the layout load_model installed, for prompts without a fed prefix
    move_text_after_image(model, lambda p, is_image: text_distance_offsets(p, is_image, distance + n_prefix))


def forced_boxes(model_dir: Path, samples, think: str, batch_size: int = 16) -> list[dict]:
    """Per sample: its id, the text written after the fed prefix, the box in pixels (None: unreadable)."""
    model = load_model(model_dir, dtype="float32", device="cpu")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model_dir))
    tok = processor.tokenizer
    rows, fed = [], None
    for i in range(0, len(samples), batch_size):
        batch = samples[i : i + batch_size]
        images = [open_images(s) for s in batch]
        frames = frames_for(images, convention, processor)
        prefixes = [box_prefix(s, f, think) for s, f in zip(batch, frames)]
        n_prefix = {len(tok(p, add_special_tokens=False)["input_ids"]) for p in prefixes}
        if fed is None:  # the layout is set once, for the first batch's prefix length
            fed = min(n_prefix)
            fed_distance(model, fed)
        if n_prefix != {fed}:
            raise ValueError(f"the fed prefixes differ in length: {sorted(n_prefix | {fed})} tokens")
        texts = [t + p for t, p in zip(prompt_texts(batch, frames, processor), prefixes)]
        inputs = processor(
            images=[im for ims in images for im in ims], text=texts, return_tensors="pt", padding=True
        )
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=24, do_sample=False)  # [B, L + T]
        written = tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for s, f, w in zip(batch, frames, written):
            m = BOX.search(w)
            box = None if m is None else answer_to_pixels(tuple(map(int, m.groups())), f).xyxy
            rows.append({"id": s.id, "written": w, "box": box})
    return rows


def landing(sample, box) -> str:
    """'asked' (IoU > 0.5 with an instance of the asked category), 'other' (with another object), 'none'."""
    if box is None:
        return "none"
    if any(covers(box, b.xyxy) for b in sample.target.boxes):
        return "asked"
    return "other" if any(covers(box, tuple(o["box"])) for o in sample.meta["objects"]) else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="world detection queries (meta.objects)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--think", default=THINK, help="the think the models were trained with")
    args = parser.parse_args()
    samples = [s for s in read_samples(args.data) if s.task == "detection" and s.target.boxes]
    if not samples:
        raise SystemExit(f"{args.data}: no detection query whose category is in the image")
    args.out.mkdir(parents=True, exist_ok=True)
    hits = {}
    print(f"{len(samples)} present queries of {args.data}")
    print("| model | on an asked instance | on another object | on none |\n|---|---|---|---|")
    for i, model_dir in enumerate(args.models):
        rows = forced_boxes(model_dir, samples, args.think)
        for s, r in zip(samples, rows):
            r["landing"] = landing(s, r["box"])
        (args.out / f"m{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        hits[model_dir] = [r["landing"] == "asked" for r in rows]
        share = {k: sum(r["landing"] == k for r in rows) / len(rows) for k in ("asked", "other", "none")}
        print(f"| {model_dir} | " + " | ".join(f"{100 * v:.1f}%" for v in share.values()) + " |", flush=True)
    first, *rest = args.models
    for other in rest:
        only_a = sum(a and not b for a, b in zip(hits[first], hits[other]))
        only_b = sum(b and not a for a, b in zip(hits[first], hits[other]))
        print(f"{first} against {other}: {only_a} against {only_b} only, p {sign_test(only_a, only_b):.3g}")


if __name__ == "__main__":
    main()
