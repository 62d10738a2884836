"""The samples each pre-training stage trains on, from `build_suite`'s files and questions derived from their scenes.

    parts = stage_parts(paths, seed)          the pre-training files as read, plus the derived questions
    locate_samples(parts, kinds)              the locate stage's (and each locate phase's) samples
    mix_samples(parts, kinds)                 align and joint's

Two kinds are derived from the grounding scenes, nothing drawn anew: GROUNDED_DETECTION (`grounded_detection`:
detection's question on the scenes of the one-object and `name` samples, one box or none) and PRESENCE
(`presence_pairs`: on each scene of several objects that shows a base detection category, detection's question for
one category it shows, every instance's box, and for one it does not; RESULTS.md section 43).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

from visual_rft.data.jsonl import read_samples
from visual_rft.data.prompts import DETECTION_PROBLEM
from visual_rft.data.types import Box, DetectionTarget, Sample
from visual_rft.recipes.binding import sample_kind
from visual_rft.world import DETECTION_BASE, GROUNDING_BASE_KINDS

PRETRAIN_FILES = ("cls_base_train", "det_base_train", "grd_base_train", "grd_single_train")
"""`build_suite`'s pre-training files, in the order align and joint take them."""
GROUNDED_DETECTION = ("detection_single", "detection_name")
"""Detection's question on the scenes of the `single` and `name` grounding samples (`grounded_detection`)."""
PRESENCE = "presence"
"""Detection's question, present and absent, on each base grounding scene (`presence_pairs`)."""
DERIVED_KINDS = (*GROUNDED_DETECTION, PRESENCE)
"""The kinds asked of the grounding scenes rather than read from a file (`stage_parts`)."""
SAMPLE_KINDS = ("classification", "detection", *GROUNDING_BASE_KINDS, "single", *DERIVED_KINDS)
"""The kinds of pre-training sample a stage can train on: a task, a grounding sample's kind, or a derived kind."""


def stage_parts(paths: dict[str, Path], seed: int) -> dict[str, list[Sample]]:
    """{file key: samples} of PRETRAIN_FILES in order, then the derived questions: "det_grounded_train"
    (`grounded_detection` on the one-object and base grounding scenes, balanced) and "presence_train"
    (`presence_pairs` on the base grounding scenes, flattened: present, absent, scene by scene)."""
    parts = {k: read_samples(paths[k]) for k in PRETRAIN_FILES}
    grounded = parts["grd_single_train"] + parts["grd_base_train"]
    parts["det_grounded_train"] = grounded_detection(grounded, DETECTION_BASE, seed)
    pairs = presence_pairs(parts["grd_base_train"], DETECTION_BASE, seed)
    parts["presence_train"] = [s for pair in pairs for s in pair]
    return parts


def locate_samples(parts: dict[str, list], kinds: list[str], classification: float = 1.0) -> list:
    """The locate stage's samples, from `stage_parts`: the one-object and grounding samples whose kind is in
    `kinds`, then the grounded detection samples (parts["det_grounded_train"]) whose kind is, then the presence
    questions (parts["presence_train"]) if PRESENCE is, then every base detection sample if "detection" is, then
    the first `classification` share of the base classification samples if "classification" is."""
    grounding = parts["grd_single_train"] + parts["grd_base_train"]
    located = [s for s in grounding if sample_kind(s) in kinds]
    located += [s for s in parts.get("det_grounded_train", []) if sample_kind(s) in kinds]
    located += parts.get("presence_train", []) if PRESENCE in kinds else []
    located += parts["det_base_train"] if "detection" in kinds else []
    classes = parts["cls_base_train"][: round(classification * len(parts["cls_base_train"]))]
    return located + (classes if "classification" in kinds else [])


def mix_samples(parts: dict[str, list], kinds: list[str]) -> list:
    """Align and joint's samples, from `stage_parts` (PRETRAIN_FILES' in order, then the derived ones): those
    whose kind is in `kinds`, part by part."""
    return [s for part in parts.values() for s in part if sample_kind(s) in kinds]


def grounded_detection(
    samples: list[Sample], categories: list[str], seed: int, balance: bool = True
) -> list[Sample]:
    """Detection's question on the scenes of the grounding samples that ask for an object by its name (kinds
    `single` and `name`; the others are skipped), a bridge from what the locate stage reads first, the named
    object's box, to detection: a scene whose named object is of one of `categories` (the only one of its name
    there) is asked for it, its one box; any other for a category of `categories` that no object of the scene
    has (No Objects), so that whether the category is there must be read. With `balance` (training), of each
    kind the absent questions are at most as many as the present ones (the first; the `name` scenes' named
    object is mostly a digit or a non-base name): with two thirds of them No Objects the base learnt to answer
    nothing (RESULTS.md section 21); without it (a held-out set), every scene is asked.
    Kind "detection_" + the grounding kind; the same images, nothing is drawn."""
    rng = random.Random(seed)
    asked = []
    for s in samples:
        name = s.meta.get("query", {}).get("name")
        if s.meta.get("kind") not in ("single", "name") or name is None:
            continue
        shown = {category_of(o) for o in s.meta["objects"]}
        present = name in categories
        category = name if present else rng.choice([c for c in categories if c not in shown])
        boxes = (replace(s.target.box, category=category),) if present else ()
        asked.append(
            replace(
                s,
                id=f"{s.id}-detection",
                task="detection",
                problem=DETECTION_PROBLEM.format(category=category),
                target=DetectionTarget(boxes=boxes, category=category),
                meta={**s.meta, "kind": f"detection_{s.meta['kind']}"},
            )
        )
    if not balance:
        return asked
    n_present = Counter(s.meta["kind"] for s in asked if s.target.boxes)
    n_absent = Counter()  # the absent questions of each kind so far
    kept = []
    for s in asked:
        n_absent[s.meta["kind"]] += not s.target.boxes
        if s.target.boxes or n_absent[s.meta["kind"]] <= n_present[s.meta["kind"]]:
            kept.append(s)
    return kept


def presence_pairs(scenes: list[Sample], categories: list[str], seed: int) -> list[tuple[Sample, Sample]]:
    """(present, absent) detection questions on each scene that shows one of `categories`: a category it shows,
    with every instance's box (sorted by position, as the world's detection queries are), and one of
    `categories` it does not show; both drawn at random with `seed`. Half the answers are boxes, half No
    Objects, and each category is asked present in some scenes and absent in others, so that whether it is
    there must be read from the image (RESULTS.md sections 32, 43)."""
    rng = random.Random(seed)
    pairs = []
    for s in scenes:
        objects = s.meta["objects"]
        shown = sorted({category_of(o) for o in objects} & set(categories))
        if not shown:
            continue
        category = rng.choice(shown)
        instances = [i for i, o in enumerate(objects) if category_of(o) == category]
        boxes = sorted(
            (Box(*objects[i]["box"], category=category) for i in instances), key=lambda b: (b.y1, b.x1)
        )
        absent = rng.choice([c for c in categories if c not in shown])
        pairs.append(
            (presence_question(s, category, tuple(boxes), instances), presence_question(s, absent, (), []))
        )
    return pairs


def presence_question(scene: Sample, category: str, boxes: tuple[Box, ...], instances: list[int]) -> Sample:
    """Detection's question for `category` on `scene`. Kind PRESENCE; `meta.instances`: the indices in
    `meta.objects` of the category's objects (none: absent), which the presence loss holds."""
    return replace(
        scene,
        id=f"{scene.id}-{'present' if instances else 'absent'}",
        task="detection",
        problem=DETECTION_PROBLEM.format(category=category),
        target=DetectionTarget(boxes=boxes, category=category),
        meta={**scene.meta, "kind": PRESENCE, "instances": instances},
    )


def category_of(obj: dict) -> str:
    """The detection category of an object of a sample's `meta.objects` (as `ObjectSpec.category`)."""
    return f"digit {obj['digit']}" if obj["kind"] == "digit" else f"{obj['colour']} {obj['shape']}"
