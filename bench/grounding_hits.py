"""Where do a model's grounding boxes fall: on the asked object, on another object, or on none?

A grounding accuracy near 0 can mean a model that finds the objects and picks the wrong one, or one that
finds none. This reads the completions an evaluation wrote (`eval/<model>/completions.jsonl`) of world
grounding queries (each sample's `meta.objects` lists every object of its scene) and prints, per file,
the share of queries whose box matches the asked object at IoU >= 0.5 (acc@0.5), the share whose box
matches some object of the scene, and how many answers held no box. With --models it first evaluates
the model folders on --n held-out queries of each grounding kind, drawn from a world of --seed:

    python bench/grounding_hits.py runs/bench/grounding/*/seed0/eval/*/completions.jsonl
    python bench/grounding_hits.py --by-kind runs/staged/eval/grounding/base/completions.jsonl   # name, extreme
    python bench/grounding_hits.py --out runs/hits --models runs/locA/locate/checkpoint-2000/model
    python bench/grounding_hits.py --picks runs/staged/eval/grounding/base/completions.jsonl  # wrong picks; misses by their centre
    python bench/grounding_hits.py --paired A/completions.jsonl B/completions.jsonl  # same queries: A against B
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from visual_rft.config import EvalOptions
from visual_rft.data.answer import grounding_answer, region_spans, region_words
from visual_rft.data.boxes import iou
from visual_rft.data.coords import CoordFrame, answer_to_pixels
from visual_rft.eval.runner import evaluate_models
from visual_rft.world import GROUNDING_BASE_KINDS, build

THRESHOLD = 0.5
"""A box counts at IoU above this, as the evaluation's acc@0.5 (`eval/metrics.py`) counts it."""


def grounding_hits(path: Path, kind: str | None = None) -> dict:
    """{'n', 'target', 'any_object', 'no_box'}: shares of one completions file's queries (of grounding `kind`
    only, when given); 'centre_px': the median distance in pixels from an answered box's centre to the asked
    object's (None: no box answered)."""
    rows = completion_rows(path)
    for i, r in enumerate(rows, 1):
        if not r["sample"].get("meta", {}).get("objects"):
            raise ValueError(f"{path}:{i}: the sample has no meta.objects (not a world grounding query)")
    rows = [r for r in rows if kind is None or r["sample"]["meta"].get("kind") == kind]
    if not rows:
        raise ValueError(f"{path}: no completions" + (f" of kind {kind!r}" if kind else ""))
    target = any_object = no_box = 0
    distances = []
    for r in rows:
        objects = r["sample"]["meta"]["objects"]
        box = answered_box(r)
        if box is None:
            no_box += 1
            continue
        asked = tuple(r["sample"]["target"]["box"])
        target += covers(box, asked)
        distances.append(math.dist(centre(box), centre(asked)))
        any_object += any(covers(box, tuple(o["box"])) for o in objects)
    n = len(rows)
    median = float(np.median(distances)) if distances else None
    return {
        "n": n,
        "target": target / n,
        "any_object": any_object / n,
        "no_box": no_box / n,
        "centre_px": median,
    }


def places(path: Path, kind: str | None = None) -> dict:
    """Where the answers place the asked object, by thirds of the image (`region_words`): the place the think
    names (`sft.grounding_think` with `{region}`), else the answered box's. {'n', 'right': the share placed
    in the asked object's third, 'on_other': the share placed wrong where another object of the scene is,
    'hit_if_right' / 'hit_if_wrong': acc@0.5 among the queries placed right / wrong (None: none were)}."""
    rows = [r for r in completion_rows(path) if kind is None or r["sample"]["meta"].get("kind") == kind]
    right = on_other = hit_right = hit_wrong = 0
    for r in rows:
        s = r["sample"]
        size = tuple(r["frame"]["size"])
        box = answered_box(r)
        place = answered_place(r["completion"], box, size)
        asked = tuple(s["target"]["box"])
        others = {region_words(o["box"], size) for o in s["meta"]["objects"] if tuple(o["box"]) != asked}
        ok = place == region_words(asked, size)
        right += ok
        on_other += not ok and place in others
        hit = box is not None and covers(box, asked)
        hit_right += ok and hit
        hit_wrong += not ok and hit
    n = len(rows)
    return {
        "n": n,
        "right": right / n,
        "on_other": on_other / n,
        "hit_if_right": hit_right / right if right else None,
        "hit_if_wrong": hit_wrong / (n - right) if n > right else None,
    }


def answered_place(completion: str, box: tuple | None, size: tuple) -> str | None:
    """The place an answer gives: the first one its think names, else its box's (None: neither)."""
    named = region_spans(completion)
    if named:
        return completion[slice(*named[0])]
    return None if box is None else region_words(box, size)


def picks(path: Path, kind: str = "name") -> Counter:
    """What the boxes of one completions file's queries of `kind` landed on: 'right', 'no box', for a box on
    another object how that object differs from the asked one ('other colour, same shape', 'a digit' for a
    shape asked, ...), and for a box on no object (IoU > 0.5 with none) where its centre is: 'on none, centre
    on the asked object' (picked, then read imprecisely), 'on none, centre on another object' or 'on none,
    centre on no object' (a blend). A wrong pick of the asked colour or shape is a misreading, one of neither
    is a pick that ignores the question."""
    rows = completion_rows(path)
    out = Counter()
    for r in rows:
        meta = r["sample"]["meta"]
        if meta.get("kind") != kind:
            continue
        box = answered_box(r)
        if box is None:
            out["no box"] += 1
            continue
        asked = next(o for o in meta["objects"] if tuple(o["box"]) == tuple(r["sample"]["target"]["box"]))
        hit = max(meta["objects"], key=lambda o: iou(box, tuple(o["box"])))
        if not covers(box, tuple(hit["box"])):
            out[f"on none, centre on {centre_on(box, asked, meta['objects'])}"] += 1
        elif hit is asked:
            out["right"] += 1
        else:
            out[difference(asked, hit)] += 1
    return out


def centre_on(box: tuple, asked: dict, objects: list[dict]) -> str:
    """Whose box the centre of `box` is in (pixel-edge boxes: x1 <= x < x2): 'the asked object', 'another
    object' or 'no object'."""
    x, y = centre(box)
    inside = [o for o in objects if o["box"][0] <= x < o["box"][2] and o["box"][1] <= y < o["box"][3]]
    return "the asked object" if asked in inside else "another object" if inside else "no object"


def difference(asked: dict, other: dict) -> str:
    """How a scene object differs from the asked one: its kind, else its colour and its shape or digit."""
    if other["kind"] != asked["kind"]:
        return f"a {other['kind']}"
    what = "shape" if asked["kind"] == "shape" else "digit"
    colour = "same colour" if other["colour"] == asked["colour"] else "other colour"
    return f"{colour}, {'same' if other[what] == asked[what] else 'other'} {what}"


def paired(a: Path, b: Path, kind: str | None = None, is_right=None) -> dict:
    """Two completions files of the same queries (of grounding `kind` only, when given) compared query by
    query: {'n', 'a', 'b' (queries each got right), 'only_a', 'only_b', 'p'}, where 'p' is the exact two-sided
    McNemar test's: the chance, were both models equally good, of a split of the discordant queries at least
    this uneven. `is_right(row)`: whether a row is right (default `on_target`, the box on the asked object)."""
    is_right = is_right or on_target
    right = []
    for path in (a, b):
        rows = [r for r in completion_rows(path) if kind in (None, r["sample"]["meta"].get("kind"))]
        right.append({r["sample"]["id"]: is_right(r) for r in rows})
        if len(right[-1]) < len(rows):
            raise ValueError(f"{path}: a query id comes more than once (two evaluations in one file?)")
    if right[0].keys() != right[1].keys():
        raise ValueError(f"{a} and {b} do not hold the same queries" + (f" of kind {kind!r}" if kind else ""))
    ids = list(right[0])
    only_a = sum(right[0][i] and not right[1][i] for i in ids)
    only_b = sum(right[1][i] and not right[0][i] for i in ids)
    return {
        "n": len(ids),
        "a": sum(right[0].values()),
        "b": sum(right[1].values()),
        "only_a": only_a,
        "only_b": only_b,
        "p": sign_test(only_a, only_b),
    }


def sign_test(only_a: int, only_b: int) -> float:
    """The exact two-sided sign test (McNemar's on the discordant pairs): the chance, were both equally good, of
    a split of `only_a + only_b` pairs at least this uneven."""
    discordant = only_a + only_b
    tail = sum(math.comb(discordant, j) for j in range(min(only_a, only_b) + 1)) / 2**discordant
    return min(1.0, 2 * tail)


def on_target(row: dict) -> bool:
    """Whether a completions.jsonl row's box is on the asked object."""
    box = answered_box(row)
    return box is not None and covers(box, tuple(row["sample"]["target"]["box"]))


def covers(box: tuple, obj: tuple) -> bool:
    """A box counts as on an object whose box it overlaps at IoU above THRESHOLD."""
    return iou(box, obj) > THRESHOLD


def completion_rows(path: Path) -> list[dict]:
    """The rows of a completions.jsonl file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def answered_box(row: dict) -> tuple[float, float, float, float] | None:
    """The box a completions.jsonl row answered, in the image's pixels (None: no box)."""
    answered = grounding_answer(row["completion"])
    return None if answered is None else answer_to_pixels(answered, row_frame(row)).xyxy


def row_frame(row: dict) -> CoordFrame:
    """The coordinate frame a completions.jsonl row's answer is written in."""
    f = row["frame"]
    return CoordFrame(f["convention"], tuple(f["size"]), tuple(f["resized"]) if f.get("resized") else None)


def centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def evaluate_kinds(
    models: list[Path], out: Path, kinds: list[str], seed: int, n: int, dtype: str = "auto"
) -> list[Path]:
    """Evaluate each model on n held-out queries of each kind (world `seed`, model `dtype`); the completions
    files."""
    options = EvalOptions(batch_size=16, max_new_tokens=160, progress=False, dtype=dtype)
    named = {f"m{i}": m for i, m in enumerate(models)}
    for kind in kinds:
        data = build("grounding", out / "held_out", n, seed=seed, categories=[kind], name=f"grounding_{kind}")
        evaluate_models(named, data, out / "eval" / kind, options)
    return [out / "eval" / kind / name / "completions.jsonl" for kind in kinds for name in named]


def hits_parser(description: str, task: str, per: str) -> argparse.ArgumentParser:
    """The command line of a hits script: completions files of world `task` evals, or --models to evaluate
    first on --n held-out queries per `per` of a world of --seed (--out, --dtype)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("files", nargs="*", type=Path, help=f"completions.jsonl files of world {task} evals")
    parser.add_argument("--models", nargs="+", type=Path, default=[], help="model folders to evaluate first")
    parser.add_argument("--out", type=Path, help="with --models: the folder for the held-out sets and evals")
    parser.add_argument("--seed", type=int, default=23, help="the held-out world's seed")
    parser.add_argument("--n", type=int, default=100, help=f"queries per {per}")
    parser.add_argument("--dtype", default="auto", help="the evaluation's model dtype (auto: bf16 on a GPU)")
    return parser


def parse_hits_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """`hits_parser`'s arguments, refused when they name nothing to read."""
    args = parser.parse_args()
    if args.models and args.out is None:
        parser.error("--models needs --out")
    if not args.files and not args.models:
        parser.error("give completions files or --models")
    return args


def main() -> None:
    parser = hits_parser(__doc__.split("\n")[0], "grounding", "kind")
    parser.add_argument("--kinds", nargs="+", default=["single", *GROUNDING_BASE_KINDS])
    parser.add_argument("--by-kind", action="store_true", help="a row per grounding kind of each file too")
    parser.add_argument(
        "--picks",
        action="store_true",
        help="then what each file's `name` boxes landed on: wrong picks by attribute, boxes on no object by their centre",
    )
    parser.add_argument(
        "--places",
        action="store_true",
        help="then where each file's answers place the asked object, by thirds of the image (per kind with --by-kind)",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="then the files two by two (1st against 2nd, 3rd against 4th, ...) query by query: McNemar's test",
    )
    args = parse_hits_args(parser)
    if args.paired and len(args.files) % 2:
        parser.error("--paired compares files two by two: give an even number")
    for i, m in enumerate(args.models):
        print(f"m{i} = {m}")
    files = args.files + (
        evaluate_kinds(args.models, args.out, args.kinds, args.seed, args.n, args.dtype)
        if args.models
        else []
    )
    print("| file | n | acc@0.5 (the asked object) | box on some object | no box | median centre error, px |")
    print("|---|---|---|---|---|---|")
    for path in files:
        kinds = [None] + (file_kinds(path) if args.by_kind else [])
        for kind in kinds:
            h = grounding_hits(path, kind)
            print(
                f"| {path}{f' ({kind})' if kind else ''} | {h['n']} | {100 * h['target']:.0f}% |"
                f" {100 * h['any_object']:.0f}% | {100 * h['no_box']:.0f}%"
                f" | {'-' if h['centre_px'] is None else round(h['centre_px'], 1)} |"
            )
    for path in files if args.picks else []:
        print(f"{path} (name): " + ", ".join(f"{k} {v}" for k, v in sorted(picks(path).items())))
    for path in files if args.places else []:
        for kind in [None] + (file_kinds(path) if args.by_kind else []):
            p = places(path, kind)
            print(
                f"{path}{f' ({kind})' if kind else ''}: placed in the asked object's third {pct(p['right'])} of {p['n']}"
                f" (wrong, where another object is: {pct(p['on_other'])}); acc@0.5 placed right {pct(p['hit_if_right'])},"
                f" placed wrong {pct(p['hit_if_wrong'])}"
            )
    for a, b in zip(files[::2], files[1::2]) if args.paired else []:
        for kind in [None] + (file_kinds(a) if args.by_kind else []):
            c = paired(a, b, kind)
            print(
                f"{a} against {b}{f' ({kind})' if kind else ''}: {c['a']} / {c['b']} of {c['n']} right;"
                f" only the first {c['only_a']}, only the second {c['only_b']}; McNemar exact p = {c['p']:.3f}"
            )


def pct(share: float | None) -> str:
    """A share as a percentage, or - when there is none."""
    return "-" if share is None else f"{100 * share:.1f}%"


def file_kinds(path: Path) -> list[str]:
    """The grounding kinds of a completions file's queries, in the order they first come."""
    rows = completion_rows(path)
    return list(dict.fromkeys(r["sample"]["meta"].get("kind") for r in rows))


if __name__ == "__main__":
    main()
