"""Can the language model pick one object of a scene by what it is asked, when the answer is one word?

A grounding answer needs two skills: picking the asked object and reading where it is. These questions
keep the first and make the second trivial: on the world's grounding scenes (3-6 objects), "What colour
is the star in the image?" (the only star among the shapes) or "What shape is the red object in the
image?" (the only red object), answered with one word, a colour or shape the tokens carry (stage 1 reads
both per token). They are classification samples, so `vrft sft` trains on them and the evaluation scores
them; `meta.objects` (with boxes) and `meta.box` (the asked object's) let bench/attention_probe.py --data
read where the heads look.

Besides accuracy it reports the score of a model that names an attribute of a random shape of the scene
(`random_shape`): what looking at objects without picking the asked one gives.

    python bench/attribute_probe.py build --out runs/attr/train --n 8000 --seed 31 \
        --mix runs/fresh_pair/grd_pair_single_24k.jsonl --mix-n 8000
    python bench/attribute_probe.py build --out runs/attr/test --n 200 --seed 923
    python bench/attribute_probe.py eval --data runs/attr/test/attributes.jsonl --out runs/attr_eval \
        --models runs/attr/run/checkpoint-1000/model
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from visual_rft.config import EvalOptions
from visual_rft.data.answer import class_answer, normalize_class
from visual_rft.eval.runner import evaluate_models
from visual_rft.world.scene import ObjectSpec, WorldConfig, draw
from visual_rft.world.tasks import grounding_scene


def attribute_query(rng: np.random.Generator, objs: list[ObjectSpec]) -> tuple[str, str, int] | None:
    """(question, one-word answer, index of the asked object), or None when the scene has no unique one."""
    shapes = [i for i, o in enumerate(objs) if o.kind == "shape"]
    if rng.random() < 0.5:
        unique = [i for i in shapes if sum(objs[j].shape == objs[i].shape for j in shapes) == 1]
        if unique:
            i = int(unique[rng.integers(len(unique))])
            return (
                f"What colour is the {objs[i].shape} in the image? Answer with one word.",
                objs[i].colour,
                i,
            )
    unique = [i for i in shapes if sum(o.colour == objs[i].colour for o in objs) == 1]
    if unique:
        i = int(unique[rng.integers(len(unique))])
        return (
            f"What shape is the {objs[i].colour} object in the image? Answer with one word.",
            objs[i].shape,
            i,
        )
    return None


def build_attributes(out: Path, n: int, seed: int, cfg: WorldConfig | None = None) -> Path:
    """n questions (image i from the random stream (seed, i)) as classification samples: out/attributes.jsonl."""
    cfg = cfg or WorldConfig()
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        query = None
        while query is None:
            scene = grounding_scene(rng, cfg)
            query = attribute_query(rng, list(scene.objects))
        problem, label, asked = query
        image = f"images/attribute-{i:06d}.png"
        draw(scene).save(out / image)
        objects = [
            {"kind": o.kind, "colour": o.colour, "shape": o.shape, "box": list(o.box)} for o in scene.objects
        ]
        rows.append(
            {
                "id": f"attribute-{i:06d}",
                "task": "classification",
                "images": [image],
                "problem": problem,
                "target": {"label": label},
                "width": scene.width,
                "height": scene.height,
                "meta": {
                    "split": "base",
                    "kind": "attribute",
                    "box": objects[asked]["box"],
                    "objects": objects,
                },
            }
        )
    path = out / "attributes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mix_in(path: Path, other: Path, n: int) -> Path:
    """Append the first n samples of `other` (image paths made absolute) to `path`."""
    rows = [json.loads(line) for line in other.read_text().splitlines()[:n]]
    for r in rows:
        r["images"] = [str((other.parent / p).resolve()) for p in r["images"]]
    with path.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def score(completions: Path) -> dict[str, float]:
    """Per question type ('colour', 'shape'): accuracy and the random-shape score, from completions.jsonl."""
    right: dict[str, list[float]] = {"colour": [], "shape": []}
    chance: dict[str, list[float]] = {"colour": [], "shape": []}
    for line in completions.read_text().splitlines():
        r = json.loads(line)
        s = r["sample"]
        kind = "colour" if s["problem"].startswith("What colour") else "shape"
        label = normalize_class(s["target"]["label"])
        answer = class_answer(r["completion"])
        right[kind].append(float(answer is not None and normalize_class(answer) == label))
        values = [o[kind] for o in s["meta"]["objects"] if o["kind"] == "shape"]
        chance[kind].append(sum(normalize_class(v) == label for v in values) / len(values))
    out = {}
    for kind in right:
        out[f"{kind}_n"] = len(right[kind])
        out[f"{kind}_accuracy"] = float(np.mean(right[kind])) if right[kind] else 0.0
        out[f"{kind}_random_shape"] = float(np.mean(chance[kind])) if chance[kind] else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["build", "eval"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200, help="build: questions")
    ap.add_argument("--seed", type=int, default=923, help="build: the stream of scenes")
    ap.add_argument("--mix", type=Path, help="build: also append samples of this file (e.g. grounding)")
    ap.add_argument("--mix-n", type=int, default=0, help="build: how many of --mix")
    ap.add_argument("--data", type=Path, help="eval: the questions")
    ap.add_argument("--models", nargs="+", type=Path, default=[], help="eval: model folders")
    args = ap.parse_args()
    if args.command == "build":
        path = build_attributes(args.out, args.n, args.seed)
        if args.mix:
            mix_in(path, args.mix, args.mix_n)
        print(path)
        return
    if args.data is None or not args.models:
        ap.error("eval needs --data and --models")
    named = {f"m{i}": m for i, m in enumerate(args.models)}
    evaluate_models(named, args.data, args.out, EvalOptions(batch_size=16, max_new_tokens=40, progress=False))
    for name, m in named.items():
        print(
            m, json.dumps({k: round(v, 3) for k, v in score(args.out / name / "completions.jsonl").items()})
        )


if __name__ == "__main__":
    main()
