"""Detection's answers read apart: does the model say whether the category is there, and where are its boxes?

AP50 near 0 can mean a model that answers "No Objects" to every question, one that writes boxes for absent
categories, or boxes on no object. This reads the completions an evaluation wrote of world detection queries
(each sample's `meta.objects` lists every object of its scene) and prints, per file: of the queries whose
category is in the image, the share answered "No Objects"; of those whose category is not, the share answered
with boxes; of the boxes written, the share on an instance of the asked category (IoU > 0.5, as AP50 counts),
on another object, on none; their median area against the objects'; and of the boxes written for a present
category among other objects, the share whose nearest object (centre to centre) is an asked instance (against
chance, the asked instances' share of the objects) and their median centre error to the nearest one: a box on
no object may still be a pick of the right object read imprecisely. With --models it first evaluates the
model folders on --n held-out questions of each set, drawn from a world of --seed: `single` and `name`
(detection's question on the scenes of one-object and `name` grounding queries, `recipes/pretrain.py`
`grounded_detection`, every scene asked) and `base` (the base categories among other objects: with the same
--seed and --n, the file `bench/staged_base.py` writes):

    python bench/detection_hits.py runs/tok2/eval/detection/base/completions.jsonl
    python bench/detection_hits.py --out runs/dethits --models runs/bridge/base runs/tok2/base
    python bench/detection_hits.py --paired A/completions.jsonl B/completions.jsonl  # presence answered right
    python bench/detection_hits.py --places A/completions.jsonl  # the places a think names (section 47)
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grounding_hits import (  # noqa: E402
    THRESHOLD,
    centre,
    completion_rows,
    hits_parser,
    paired,
    parse_hits_args,
    row_frame,
)

from visual_rft.config import EvalOptions  # noqa: E402
from visual_rft.data.answer import detection_answer, region_spans, region_words  # noqa: E402
from visual_rft.data.boxes import iou  # noqa: E402
from visual_rft.data.coords import answer_to_pixels  # noqa: E402
from visual_rft.data.jsonl import read_samples, write_samples  # noqa: E402
from visual_rft.eval.runner import evaluate_models  # noqa: E402
from visual_rft.recipes.pretrain_samples import grounded_detection  # noqa: E402
from visual_rft.world import DETECTION_BASE, build  # noqa: E402

SETS = ("single", "name", "base")
"""The held-out sets --models evaluates on: detection's question on the scenes of one-object and `name`
grounding queries, and the base queries."""


def detection_hits(path: Path) -> dict:
    """Shares of one completions file's queries: 'present' / 'absent' (how many have their category in the
    image / not), 'missed' (present, answered No Objects), 'invented' (absent, answered with boxes),
    'unreadable'; of the boxes written ('boxes'), 'on_asked' (IoU > 0.5 with an instance of the asked
    category), 'on_other' (with another object only), 'on_none'; 'box_area' / 'object_area': median areas in
    px2 of the boxes written and of the scenes' objects (None: none); of the boxes written for a present
    category in a scene with another object, 'nearest_asked' (the share whose nearest object by centre is an
    asked instance), 'nearest_chance' (the mean share of asked instances among their scenes' objects) and
    'centre_error' (the median distance in px from a box's centre to the nearest asked instance's);
    'boxes_per_answer': {instances asked: the mean number of boxes written} over the readable answers to a
    present category; 'later' (the boxes after an answer's first, for a category of several instances) and
    'later_on_new' (the share of those on an asked instance that no earlier box of the answer is on)."""
    rows = completion_rows(path)
    for i, r in enumerate(rows, 1):
        if r["sample"]["task"] != "detection" or "objects" not in r["sample"].get("meta", {}):
            raise ValueError(f"{path}:{i}: not a world detection query (task detection with meta.objects)")
    if not rows:
        raise ValueError(f"{path}: no completions")
    count = dict.fromkeys(("present", "absent", "missed", "invented", "unreadable"), 0)
    on = dict.fromkeys(("on_asked", "on_other", "on_none"), 0)
    areas, object_areas, near, chance, errors = [], [], [], [], []
    written = defaultdict(list)  # instances asked -> boxes written, per readable answer
    later = []  # per box after an answer's first (several instances asked): on an instance not boxed before
    for r in rows:
        objects = [tuple(o["box"]) for o in r["sample"]["meta"]["objects"]]
        asked = [tuple(b) for b in r["sample"]["target"]["boxes"]]
        object_areas += [area(b) for b in objects]
        answer = detection_answer(r["completion"])
        boxes = answer_boxes(r, answer)
        count["present" if asked else "absent"] += 1
        count["unreadable"] += not answer.readable
        count["missed"] += bool(asked) and answer.empty
        count["invented"] += not asked and bool(boxes)
        if asked and answer.readable:
            written[len(asked)].append(len(boxes))
        others = [o for o in objects if o not in asked]
        boxed = set()  # the asked instances the answer's boxes so far are on
        for j, box in enumerate(boxes):
            on_asked = {i for i, a in enumerate(asked) if iou(box, a) > THRESHOLD}
            if j and len(asked) > 1:
                later.append(bool(on_asked - boxed))
            boxed |= on_asked
            areas.append(area(box))
            hits = [iou(box, o) > THRESHOLD for o in objects]
            kind = "on_asked" if on_asked else "on_other" if any(hits) else "on_none"
            on[kind] += 1
            if asked and others:
                on_nearest, to_asked = nearest(box, asked, others)
                near.append(on_nearest)
                chance.append(len(asked) / len(objects))
                errors.append(to_asked)
    n_boxes = len(areas)
    return {
        "n": len(rows),
        **count,
        "boxes": n_boxes,
        **{k: v / n_boxes if n_boxes else None for k, v in on.items()},
        "box_area": float(np.median(areas)) if areas else None,
        "object_area": float(np.median(object_areas)) if object_areas else None,
        "nearest_asked": float(np.mean(near)) if near else None,
        "nearest_chance": float(np.mean(chance)) if chance else None,
        "centre_error": float(np.median(errors)) if errors else None,
        "boxes_per_answer": {k: float(np.mean(v)) for k, v in sorted(written.items())},
        "later": len(later),
        "later_on_new": float(np.mean(later)) if later else None,
    }


def answer_boxes(row: dict, answer) -> list[tuple]:
    """The boxes of a completions.jsonl row's detection answer (`detection_answer`), in the image's pixels."""
    return [answer_to_pixels(p.box, row_frame(row)).xyxy for p in answer.predictions]


def detection_places(path: Path) -> dict:
    """Where the thinks of one completions file's answers to present categories place the boxes (`sft.detection_think`
    with `{region}`: "top left, bottom right"), by thirds of the image (`region_words`): {'n' (present queries),
    'named': {instances asked: the mean number of places named}, 'exact' (the share naming the asked instances'
    places in the answer's order, as taught), 'right_by_place': {k: [the share of k-th places named that are an
    asked instance's place not named before, how many]}, 'box_follows' (of the boxes written under a k-th place,
    the share whose centre is in that place), 'hit_by_place': {right / wrong: [the share of those boxes on an asked
    instance (IoU > 0.5), how many]} by whether their place was right}."""
    rows = [r for r in completion_rows(path) if r["sample"]["target"]["boxes"]]
    named, exact, by_place, follows, hits = defaultdict(list), 0, defaultdict(list), [], defaultdict(list)
    for r in rows:
        size = tuple(r["frame"]["size"])
        asked = [tuple(b) for b in r["sample"]["target"]["boxes"]]
        left = [region_words(b, size) for b in asked]  # the asked places not named yet (a multiset)
        places = [r["completion"][slice(*span)] for span in region_spans(r["completion"])]
        exact += places == left
        named[len(asked)].append(len(places))
        boxes = answer_boxes(r, detection_answer(r["completion"]))
        for k, place in enumerate(places):
            right = place in left
            if right:
                left.remove(place)
            by_place[k + 1].append(right)
            if k < len(boxes):
                follows.append(region_words(boxes[k], size) == place)
                hits["right" if right else "wrong"].append(any(iou(boxes[k], a) > THRESHOLD for a in asked))
    n = len(rows)
    return {
        "n": n,
        "named": {k: float(np.mean(v)) for k, v in sorted(named.items())},
        "exact": exact / n if n else None,
        "right_by_place": {k: [float(np.mean(v)), len(v)] for k, v in sorted(by_place.items())},
        "box_follows": float(np.mean(follows)) if follows else None,
        "hit_by_place": {k: [float(np.mean(v)), len(v)] for k, v in sorted(hits.items())},
    }


def nearest(box: tuple, asked: list[tuple], others: list[tuple]) -> tuple[bool, float]:
    """Whether the object nearest to `box` (centre to centre) is one of `asked` rather than of `others`, and the
    distance in px from its centre to the nearest of `asked`."""
    to_asked, to_other = (min(math.dist(centre(box), centre(o)) for o in group) for group in (asked, others))
    return to_asked < to_other, to_asked


def presence_right(row: dict) -> bool:
    """Whether a completions.jsonl row of a detection query answers presence right: boxes for a category in the
    image, "No Objects" for one that is not (an unreadable answer is wrong either way)."""
    answer = detection_answer(row["completion"])
    return answer.readable and answer.empty != bool(row["sample"]["target"]["boxes"])


def area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def held_out_sets(out: Path, seed: int, n: int) -> dict[str, Path]:
    """The held-out files of SETS, drawn from a world of `seed` into out/held_out."""
    held_out = out / "held_out"
    sets = {}
    for kind in SETS[:2]:
        scenes = build("grounding", held_out, n, seed=seed, categories=[kind], name=f"{kind}_scenes")
        sets[kind] = held_out / f"detection_{kind}.jsonl"
        write_samples(
            sets[kind], grounded_detection(read_samples(scenes), DETECTION_BASE, seed, balance=False)
        )
    sets["base"] = build(
        "detection", held_out, n, seed=seed, categories=DETECTION_BASE, name="detection_test"
    )
    return sets


def main() -> None:
    parser = hits_parser(__doc__.split("\n")[0], "detection", "set")
    parser.add_argument(
        "--paired",
        action="store_true",
        help="then the files two by two, query by query: presence answered right, McNemar's test",
    )
    parser.add_argument(
        "--places",
        action="store_true",
        help="then where each file's thinks place the boxes (a think naming them, `sft.detection_think`)",
    )
    args = parse_hits_args(parser)
    if args.paired and len(args.files) % 2:
        parser.error("--paired compares files two by two: give an even number")
    files = list(args.files)
    if args.models:
        named = {f"m{i}": m for i, m in enumerate(args.models)}
        print("\n".join(f"{k} = {m}" for k, m in named.items()))
        options = EvalOptions(batch_size=16, max_new_tokens=160, progress=False, dtype=args.dtype)
        for name, data in held_out_sets(args.out, args.seed, args.n).items():
            evaluate_models(named, data, args.out / "eval" / name, options)
            files += [args.out / "eval" / name / m / "completions.jsonl" for m in named]
    print(
        "| file | present: No Objects | absent: boxes | unreadable | boxes | on an asked instance | on another"
        " object | on none | median area px2 (objects') | nearest object asked (chance) | centre error px |"
        " boxes written per answer (instances asked) | later boxes: on a new asked instance |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path in files:
        h = detection_hits(path)
        shares = " | ".join(
            "-" if h[k] is None else f"{100 * h[k]:.0f}%" for k in ("on_asked", "on_other", "on_none")
        )
        areas = "-" if h["box_area"] is None else f"{h['box_area']:.0f} ({h['object_area']:.0f})"
        near = (
            "-"
            if h["nearest_asked"] is None
            else f"{100 * h['nearest_asked']:.0f}% ({100 * h['nearest_chance']:.0f}%)"
        )
        error = "-" if h["centre_error"] is None else f"{h['centre_error']:.1f}"
        per = ", ".join(f"{v:.2f} ({k})" for k, v in h["boxes_per_answer"].items()) or "-"
        new = "-" if h["later_on_new"] is None else f"{100 * h['later_on_new']:.0f}% of {h['later']}"
        print(
            f"| {path} | {h['missed']} of {h['present']} | {h['invented']} of {h['absent']} | {h['unreadable']}"
            f" | {h['boxes']} | {shares} | {areas} | {near} | {error} | {per} | {new} |"
        )
    for path in files if args.places else []:
        print(path, "places:", json.dumps(detection_places(path)))
    for a, b in zip(files[::2], files[1::2]) if args.paired else []:
        c = paired(a, b, is_right=presence_right)
        print(
            f"{a} against {b}: presence right {c['a']} / {c['b']} of {c['n']}; only the first {c['only_a']},"
            f" only the second {c['only_b']}; McNemar exact p = {c['p']:.2g}"
        )


if __name__ == "__main__":
    main()
