"""Query planning: which detection queries an evaluation asks (``categories``, `plan_queries`).

- ``"file"`` (default): exactly the queries of the test file, nothing added or dropped.
- ``"present"``: per image, only the categories with ground truth in it (the paper's protocol); the file's
  queries for absent categories are dropped.
- ``"all"``: per image, every category of the file's vocabulary (all categories its detection samples
  name); a missing one becomes a new query with empty ground truth (the right answer is 'No Objects'), so
  false positives on absent categories lower AP.
- a path to a JSON existence map ``{image: [category, ...]}``: per image, the categories it lists (within the
  vocabulary). An image is looked up by its path as written in the sample, its file name, its file name
  without extension, or ``meta["image_id"]``; an image the map does not list asks nothing.

A file of federated labels (LVIS: its samples carry ``meta["federated"]``, as `vrft data build lvis-*` writes
them) holds every (image, category) that can be scored; nothing is added to it, since a category LVIS did not
verify for an image cannot be scored there.

Added queries copy the image's first sample (size, meta split of the category when known) and get the
problem of `detection_problem`: the first sample's problem with its quoted category name replaced, or
the standard template. A query of the file that is not asked keeps its ground truth, with no predictions:
its objects count as missed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from visual_rft.data.prompts import DETECTION_PROBLEM
from visual_rft.data.types import DetectionTarget, Sample

CATEGORY_MODES = ("file", "present", "all")


def category_of(sample: Sample) -> str:
    """The category a detection sample asks about (its target's, else its first box's, else 'object')."""
    target = sample.target
    if isinstance(target, DetectionTarget):
        if target.category:
            return target.category
        for box in target.boxes:
            if box.category:
                return box.category
    return "object"


def image_key(sample: Sample) -> str:
    """The image a sample is about: its first image path (samples sharing it are one COCO image)."""
    return sample.images[0]


def detection_problem(category: str, example: Sample | None = None) -> str:
    """The question of a detection query for `category`.

    With `example` (a detection sample), its problem with its own category name, quoted as it is written,
    replaced by `category`; otherwise (or when the name is not found quoted) `DETECTION_PROBLEM`.
    """
    if example is not None:
        source = category_of(example)
        for quote in ("'", '"'):
            quoted = f"{quote}{source}{quote}"
            if quoted in example.problem:
                return example.problem.replace(quoted, f"{quote}{category}{quote}")
    return DETECTION_PROBLEM.format(category=category)


def category_splits(samples: Sequence[Sample]) -> dict[str, str]:
    """{category: "base" | "novel"} from the detection samples' meta["split"]; a category in both is an error."""
    splits: dict[str, str] = {}
    for s in samples:
        split = s.meta.get("split")
        if s.task != "detection" or split not in ("base", "novel"):
            continue
        category = category_of(s)
        if splits.setdefault(category, split) != split:
            raise ValueError(
                f"sample {s.id}: category {category!r} is marked both 'base' and 'novel' (meta.split)"
            )
    return splits


def _existence_lookup(existence: Mapping[str, list[str]], sample: Sample) -> list[str]:
    path = image_key(sample)
    keys = [path, os.path.basename(path), os.path.splitext(os.path.basename(path))[0]]
    if "image_id" in sample.meta:
        keys.insert(0, str(sample.meta["image_id"]))
    for key in keys:
        if key in existence:
            return existence[key]
    return []


def plan_queries(samples: Sequence[Sample], categories: str = "file") -> list[tuple[Sample, bool]]:
    """(sample, asked) for every query: the file's samples in order, then added detection queries.

    `categories`: "file", "present", "all" or the path of an existence map (see the module docstring).
    Samples of other tasks are always asked as they are.
    """
    if categories == "file":
        return [(s, True) for s in samples]
    if categories in CATEGORY_MODES:
        mode, existence = categories, None
    elif os.path.isfile(categories):
        mode, existence = "existence", load_existence_map(categories)
    else:
        raise ValueError(
            f"categories {categories!r}: expected one of {CATEGORY_MODES} or the path of an existence map "
            "(a JSON object {image: [category, ...]}); no such file"
        )
    splits = category_splits(samples)
    detection = [s for s in samples if s.task == "detection"]
    vocabulary = list(dict.fromkeys(category_of(s) for s in detection))
    by_image: dict[str, list[Sample]] = {}
    for s in detection:
        by_image.setdefault(image_key(s), []).append(s)
    wanted: dict[str, set[str]] = {}
    added: list[Sample] = []
    for key, group in by_image.items():
        given = {category_of(s): s for s in group}
        present = [c for c, s in given.items() if s.target.boxes]
        names = None if existence is None else _existence_lookup(existence, group[0])
        wanted[key] = set(queries_for_image(present, vocabulary, mode, names))
        federated = any(s.meta.get("federated") for s in group)
        for category in vocabulary:
            if category in wanted[key] and category not in given and not federated:
                added.append(_added_query(group[0], category, splits.get(category)))
    plan = [(s, s.task != "detection" or category_of(s) in wanted[image_key(s)]) for s in samples]
    return plan + [(s, True) for s in added]


def _added_query(first: Sample, category: str, split: str | None) -> Sample:
    meta: dict[str, Any] = {"added_query": True, "source_id": first.id}
    if split is not None:
        meta["split"] = split
    return Sample(
        id=f"{first.id}::{category}",
        images=list(first.images),
        task="detection",
        problem=detection_problem(category, first),
        target=DetectionTarget((), category),
        width=first.width,
        height=first.height,
        meta=meta,
    )


QUERY_MODES = ("present", "all", "existence")


def queries_for_image(
    gt_categories: Sequence[str],
    all_categories: Sequence[str],
    mode: str = "present",
    existence: Sequence[str] | None = None,
) -> list[str]:
    """Which categories to ask about for one image, in the order of `all_categories`.

    - ``"present"`` (default): the categories with ground truth in the image (the paper's protocol);
    - ``"all"``: every category of the vocabulary (absent ones are answered 'No Objects' or are FPs);
    - ``"existence"``: the categories an existence map lists for this image, i.e.
      ``load_existence_map(path).get(str(image_id), [])``; `existence` is that list.

    Categories outside `all_categories` are dropped; each category appears once.
    """
    if mode == "present":
        wanted = set(gt_categories)
    elif mode == "all":
        wanted = set(all_categories)
    elif mode == "existence":
        if existence is None:
            raise ValueError("mode 'existence' needs the image's list from the existence map")
        wanted = set(existence)
    else:
        raise ValueError(f"unknown query mode {mode!r}; expected one of {QUERY_MODES}")
    return [c for c in dict.fromkeys(all_categories) if c in wanted]


def load_existence_map(path: str | Path) -> dict[str, list[str]]:
    """Read an existence map: a JSON object ``{"<image_id>": ["category", ...], ...}``.

    Keys are image ids as strings (JSON keys always are; look up with ``str(image_id)``); values are
    the category names judged present in that image (by a model, or any other source).
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: an existence map is a JSON object {{image_id: [category, ...]}}")
    return {str(k): [str(c) for c in v] for k, v in data.items()}
