"""Building JSONL files of the world: one task's file (`build`) and everything the experiments need
(`build_suite`). Every image i of a file draws from its own generator PCG64([seed, crc32(name), i]).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from visual_rft.data.jsonl import read_samples, write_samples
from visual_rft.data.prompts import DETECTION_PROBLEM
from visual_rft.data.splits import write_nested
from visual_rft.data.types import ClassTarget, GroundingTarget, Sample
from visual_rft.world.scene import WorldConfig, scene_graph
from visual_rft.world.tasks import (
    QUERIES,
    SCENES,
    box_of,
    classification_scene,
    detection_queries,
    detection_scene,
    grounding_example,
)
from visual_rft.world.vocab import (
    CLASSIFICATION_BASE,
    CLASSIFICATION_FEWSHOT,
    CLASSIFICATION_PROBLEM,
    DETECTION_BASE,
    DETECTION_NOVEL,
    GROUNDING_BASE_KINDS,
    GROUNDING_PROBLEM,
    GROUNDING_REASONING_KINDS,
)


def _rng(seed: int, name: str, i: int, *extra: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, zlib.crc32(name.encode()), i, *extra]))


def _round_robin(items: list[str], seed: int, name: str, i: int) -> str:
    """items[...] for image i: every item once per round of len(items) images, in a seeded order."""
    r, j = divmod(i, len(items))
    return items[int(_rng(seed, name, r, 1).permutation(len(items))[j])]


_SPLITS = {
    "classification": (("base", CLASSIFICATION_BASE), ("fewshot", CLASSIFICATION_FEWSHOT)),
    "detection": (("base", DETECTION_BASE), ("novel", DETECTION_NOVEL)),
    "grounding": (
        ("base", [*GROUNDING_BASE_KINDS, *SCENES]),  # the curriculum kinds are pre-training data too
        ("reasoning", GROUNDING_REASONING_KINDS),
    ),
}


def world_settings(cfg: WorldConfig | None) -> dict:
    """A world's drawing settings as world.json stores them (JSON types: tuples as lists)."""
    return json.loads(json.dumps(asdict(cfg or WorldConfig())))


def split_of(task: str, categories: list[str]) -> str:
    """Which list of the world `categories` come from ("base", "fewshot", "novel", "reasoning"), or "mixed"."""
    for split, names in _SPLITS[task]:
        if set(categories) <= set(names):
            return split
    return "mixed"


def _slug(text: str) -> str:
    return text.replace(" ", "_")


def _samples(
    task: str, images_dir: Path, name: str, n: int, seed: int, categories: list[str], cfg: WorldConfig
):
    split = split_of(task, categories)
    count, i = 0, 0
    while count < n:
        rng = _rng(seed, name, i)
        item = _round_robin(categories, seed, name, i)
        path = images_dir / f"{name}-{i:06d}.png"
        if task == "classification":
            image, scene = classification_scene(rng, cfg, item)
            items = [(f"{name}-{i:06d}", CLASSIFICATION_PROBLEM, ClassTarget(item), {"split": split})]
        elif task == "detection":
            image, scene = detection_scene(rng, cfg, categories, first=item)
            graph = scene_graph(scene)
            items = [
                (
                    f"{name}-{i:06d}-{_slug(t.category)}",
                    DETECTION_PROBLEM.format(category=t.category),
                    t,
                    {"split": split, "objects": graph},
                )
                for t in detection_queries(rng, cfg, scene, categories)
            ]
        else:
            image, scene, expr, index, params = grounding_example(rng, cfg, item)
            meta = {"split": split, "kind": item, "query": params, "objects": scene_graph(scene)}
            target = GroundingTarget(box_of(scene.objects[index]))
            items = [(f"{name}-{i:06d}", GROUNDING_PROBLEM.format(expression=expr), target, meta)]
        image.save(path, format="PNG")
        for sid, problem, target, meta in items[: n - count]:
            yield Sample(sid, [str(path)], task, problem, target, scene.width, scene.height, meta)
            count += 1
        i += 1


def build(
    task: str,
    out_dir,
    n: int,
    *,
    seed: int,
    categories: list[str] | None = None,
    cfg: WorldConfig | None = None,
    name: str | None = None,
) -> Path:
    """Write `n` samples of `task` to out_dir/<name>.jsonl, images to out_dir/images/<name>-<i>.png.

    `categories`: classification labels, detection categories, or grounding kinds (defaults:
    CLASSIFICATION_BASE, DETECTION_BASE, GROUNDING_BASE_KINDS). Images cycle through them in seeded
    rounds, so every class/category/kind gets n / len(categories) images. Detection counts queries:
    an image yields one per category present (and maybe one absent), so n samples use fewer images.
    `name` (default: the task) names the files and selects the random stream together with `seed`.
    meta["split"] says which list the categories come from ("base", "fewshot", "novel", "reasoning").
    """
    defaults = {
        "classification": CLASSIFICATION_BASE,
        "detection": DETECTION_BASE,
        "grounding": GROUNDING_BASE_KINDS,
    }
    if task not in defaults:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(defaults)}")
    categories = list(categories or defaults[task])
    if task == "grounding" and not set(categories) <= set(QUERIES):
        raise ValueError(
            f"unknown grounding kinds {sorted(set(categories) - set(QUERIES))}; known: {list(QUERIES)}"
        )
    name = name or task
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    write_samples(path, _samples(task, out_dir / "images", name, n, seed, categories, cfg or WorldConfig()))
    return path


SHOTS = (1, 2, 4, 8, 16)
"""The k of the few-shot files `build_suite` writes by default (nested: each k-shot file holds the smaller)."""


def build_suite(
    out_dir,
    seed: int = 0,
    *,
    n_pretrain: int = 2000,
    n_test: int = 200,
    shots: tuple[int, ...] = SHOTS,
    cfg: WorldConfig | None = None,
) -> dict[str, Path]:
    """Everything the experiments need, in one folder, returned as {name: JSONL path}:

    - cls_base_train / cls_base_test: CLASSIFICATION_BASE (pre-training);
    - cls_fewshot_pool, cls_fewshot_{k}shot, cls_fewshot_test: CLASSIFICATION_FEWSHOT;
    - det_base_train / det_base_test: DETECTION_BASE (pre-training, and open-vocabulary training);
    - det_novel_pool, det_novel_{k}shot, det_novel_test: DETECTION_NOVEL (few-shot and OVD evaluation);
    - grd_base_train / grd_base_test: GROUNDING_BASE_KINDS (pre-training);
    - grd_single_train / grd_single_test: one-object scenes, the "single" kind (pre-training's first stage);
    - grd_reason_pool, grd_reason_{k}shot, grd_reason_test: GROUNDING_REASONING_KINDS;
    - det_ovd_pool, det_ovd_{k}shot, det_ovd_test: DETECTION_BASE, a few-shot training set for the
      open-vocabulary experiment (a stream apart from det_base_train), and ovd_test: det_novel_test and
      det_ovd_test interleaved (a query on a novel category, then one on a base category, ...), so the
      evaluation reports mAP on novel and base categories side by side, also under a `limit`.

    Pools hold max(shots) per class/category/kind (a few more for detection); the k-shot files are
    nested (see `visual_rft.data.splits`). Test files are separate random streams. Also writes
    world.json with the class and category lists.
    """
    out_dir = Path(out_dir)
    k = max(shots)
    paths: dict[str, Path] = {}
    plan = [
        ("cls_base", "classification", CLASSIFICATION_BASE, n_pretrain, None),
        ("cls_fewshot", "classification", CLASSIFICATION_FEWSHOT, None, k * len(CLASSIFICATION_FEWSHOT)),
        ("det_base", "detection", DETECTION_BASE, n_pretrain, None),
        ("det_novel", "detection", DETECTION_NOVEL, None, 3 * k * len(DETECTION_NOVEL)),
        ("grd_base", "grounding", GROUNDING_BASE_KINDS, n_pretrain, None),
        ("grd_single", "grounding", ["single"], n_pretrain, None),
        ("grd_reason", "grounding", GROUNDING_REASONING_KINDS, None, k * len(GROUNDING_REASONING_KINDS)),
        ("det_ovd", "detection", DETECTION_BASE, None, 3 * k * len(DETECTION_BASE)),
    ]
    for prefix, task, cats, n_train, n_pool in plan:
        if n_pool is None:  # a pre-training set (skipped when n_pretrain is 0)
            if n_train:
                paths[f"{prefix}_train"] = build(
                    task, out_dir, n_train, seed=seed, categories=cats, cfg=cfg, name=f"{prefix}_train"
                )
        else:
            pool = build(task, out_dir, n_pool, seed=seed, categories=cats, cfg=cfg, name=f"{prefix}_pool")
            paths[f"{prefix}_pool"] = pool
            for shot, p in write_nested(read_samples(pool), out_dir, prefix, shots, seed=seed).items():
                paths[f"{prefix}_{shot}shot"] = p
        paths[f"{prefix}_test"] = build(
            task, out_dir, n_test, seed=seed, categories=cats, cfg=cfg, name=f"{prefix}_test"
        )
    novel, base = read_samples(paths["det_novel_test"]), read_samples(paths["det_ovd_test"])
    mixed = [s for pair in zip(novel, base) for s in pair]
    write_samples(out_dir / "ovd_test.jsonl", mixed)
    paths["ovd_test"] = out_dir / "ovd_test.jsonl"
    lists = {
        "classification_base": CLASSIFICATION_BASE,
        "classification_fewshot": CLASSIFICATION_FEWSHOT,
        "detection_base": DETECTION_BASE,
        "detection_novel": DETECTION_NOVEL,
        "grounding_base_kinds": GROUNDING_BASE_KINDS,
        "grounding_reasoning_kinds": GROUNDING_REASONING_KINDS,
        "files": {key: p.name for key, p in paths.items()},
        "seed": seed,
        "config": world_settings(cfg),
    }
    (out_dir / "world.json").write_text(json.dumps(lists, indent=1) + "\n")
    return paths
