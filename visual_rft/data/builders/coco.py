"""COCO-format detection files -> our detection queries: `coco-fewshot` and `coco-ovd` (LVIS v1, whose
files are COCO-format too, builds on the same `detection_queries`: visual_rft.data.builders.lvis).

One query per (image, category), as the paper asks, with every box of that category in the image, in
pixels (COCO's [x, y, w, h] -> [x1, y1, x2, y2], clipped to the image). Crowd boxes (`iscrowd`) mark a
region of unlabelled instances: a training query with one would punish boxes on real objects, so such a
training query is skipped; in a test query the crowd box is dropped (both reported).

The paper's settings, from the official Visual-RFT repository (Liuziyu77/Visual-RFT):
- the 8 few-shot categories: coco_evaluation/Qwen2_VL_coco_infere.py, the commented `selected_cate`;
- the 15 novel categories of open-vocabulary detection: the same file, the active `selected_cate`; the
  65 base categories (its training set is "base65cate_6k") are the other 65 of COCO's 80.
- Test queries come from instances_val2017.json. The official evaluation asks, per val image, the
  categories of a baseline model's existence map (exist_map_coco_Qwen2_vl_2B_baseline.json) that are in
  the selected list: so the test file holds every (val image, selected category), present or not, and
  `vrft eval ... categories=MAP.json` (or `present`) picks the queries asked.
"""

from __future__ import annotations

import difflib
import os
from collections import defaultdict
from pathlib import Path

from visual_rft.data.builders.common import (
    BuildReport,
    find_image,
    read_json,
    require_dir,
    write_kshot,
    write_split,
)
from visual_rft.data.jsonl import DataError
from visual_rft.data.prompts import DETECTION_PROBLEM
from visual_rft.data.types import Box, DetectionTarget, Sample

FEWSHOT_CATEGORIES = ("bus", "train", "fire hydrant", "stop sign", "cat", "dog", "bed", "toilet")
# fmt: off
NOVEL_CATEGORIES = (
    "mouse", "fork", "hot dog", "cat", "airplane", "suitcase", "parking meter", "sandwich", "train",
    "hair drier", "toilet", "toaster", "snowboard", "frisbee", "bear",
)
# fmt: on
OVD_TRAIN_PER_CATEGORY = 100
"""Training queries per base category of coco-ovd (65 x 100 = 6.5k). The released set is named
"base65cate_6k"; how its 6k queries were chosen is not published, so this number is ours."""


REQUIRED = {
    "images": ("id", "width", "height"),
    "annotations": ("image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}
"""The fields of each COCO record the builders read."""


def load_instances(path: str | os.PathLike) -> dict:
    """A COCO-format instances file (images, annotations, categories); a DataError names the first record
    that lacks what the builders read (e.g. ``annotations[12].bbox``)."""
    data = read_json(Path(path), "a COCO-format instances JSON")
    if not isinstance(data, dict):
        raise DataError("not a COCO instances file (the top level must be an object)", path=path)
    for key, fields in REQUIRED.items():
        if not isinstance(data.get(key), list):
            raise DataError(
                "missing (a COCO instances file has images, annotations, categories)", path=path, field=key
            )
        for i, record in enumerate(data[key]):
            lacking = [f for f in fields if not isinstance(record, dict) or f not in record]
            if lacking:
                raise DataError("missing", path=path, field=f"{key}[{i}].{lacking[0]}")
            if key == "annotations" and not (isinstance(record["bbox"], list) and len(record["bbox"]) == 4):
                raise DataError(
                    f"must be [x, y, w, h], got {record['bbox']!r}", path=path, field=f"{key}[{i}].bbox"
                )
    return data


def category_ids(data: dict, names, path) -> dict[str, int]:
    """{name: category id} of the requested names; a name the file does not have is a DataError."""
    by_name = {c["name"]: c["id"] for c in data["categories"]}
    for name in names:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(
                f"category {name!r} is not in the file ({len(by_name)} categories){hint}",
                path=path,
                field="categories",
            )
    return {name: by_name[name] for name in names}


def image_file(image: dict) -> str:
    """The image's file: COCO's `file_name`, or for LVIS v1 the end of `coco_url` ("train2017/x.jpg")."""
    if image.get("file_name"):
        return image["file_name"]
    return "/".join(str(image.get("coco_url", "")).split("/")[-2:])


def _box(ann: dict, w: int, h: int) -> Box | None:
    """COCO [x, y, w, h] -> a box clipped to the image; None when nothing of it is left."""
    x, y, bw, bh = (float(v) for v in ann["bbox"])
    x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
    return Box(x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def detection_queries(
    data: dict,
    categories: dict[str, int],
    roots: list[Path],
    report: BuildReport,
    *,
    prefix: str,
    every_image: bool = False,
    training: bool = False,
    federated: bool = False,
    splits: dict[str, str] | None = None,
) -> list[Sample]:
    """One detection query per (image, category): the category's boxes in the image, in pixels.

    every_image: also a query where the category is absent (empty boxes: 'No Objects'); else only where
    it is present. training: a query with a crowd box, or (LVIS) a not-exhaustive label, is skipped.
    federated (LVIS): a category is asked only where it is verified: present, or in the image's
    `neg_category_ids` (absent); a test query on a `not_exhaustive_category_ids` image is marked
    meta.not_exhaustive (its unmatched boxes are not false positives), and every query meta.federated
    (the evaluation adds no query to such a file). splits: {category: base|novel}.
    """
    anns: dict[tuple[int, int], list[dict]] = defaultdict(list)
    wanted = set(categories.values())
    for a in data["annotations"]:
        if a.get("category_id") in wanted:
            anns[(a["image_id"], a["category_id"])].append(a)
    out = []
    for image in sorted(data["images"], key=lambda im: im["id"]):
        pairs = {name: anns.get((image["id"], cid), []) for name, cid in categories.items()}
        negative = set(image.get("neg_category_ids", ()))
        if federated:
            pairs = {n: a for n, a in pairs.items() if a or categories[n] in negative}
        elif not every_image:
            pairs = {n: a for n, a in pairs.items() if a}
        if not pairs:
            continue
        path = find_image(image_file(image), roots)
        if path is None:
            report.skip("missing image", image_file(image), len(pairs))
            continue
        for name, found in pairs.items():
            sample = _query(image, path, name, found, categories[name], report, prefix, training)
            if sample is None:
                continue
            if federated:
                sample.meta["federated"] = True
            if splits and name in splits:
                sample.meta["split"] = splits[name]
            out.append(sample)
    return out


def _query(image, path, name, found, cid, report, prefix, training) -> Sample | None:
    w, h, image_id = int(image["width"]), int(image["height"]), image["id"]
    where = f"image {image_id} / {name}"
    crowd = [a for a in found if a.get("iscrowd")]
    if crowd and training:
        report.skip("training query with a crowd box", where)
        return None
    if crowd:
        report.skip("crowd box dropped from a test query", where, len(crowd))
    meta = {"image_id": image_id}
    if cid in set(image.get("not_exhaustive_category_ids", ())):
        if training:
            report.skip("training query on a not-exhaustively labelled image", where)
            return None
        meta["not_exhaustive"] = True
    boxes = []
    for a in found:
        box = None if a.get("iscrowd") else _box(a, w, h)
        if box is None and not a.get("iscrowd"):
            report.skip("empty box after clipping to the image", f"{where} ann {a.get('id')}")
        elif box is not None:
            boxes.append(Box(*box.xyxy, name))
    if found and not boxes:  # only crowd or degenerate boxes: neither a positive nor a true negative
        report.skip("query with no usable box (crowd or empty only)", where)
        return None
    return Sample(
        id=f"{prefix}-{image_id}-{name.replace(' ', '_')}",
        images=[str(path)],
        task="detection",
        problem=DETECTION_PROBLEM.format(category=name),
        target=DetectionTarget(tuple(boxes), name),
        width=w,
        height=h,
        meta=meta,
    )


def _load(instances, images) -> tuple[dict, list[Path]]:
    """An instances file and its image folder (as the one root searched), both checked."""
    return load_instances(instances), [require_dir(images, f"the images of {Path(instances).name}")]


def build_coco_fewshot(
    train_json,
    train_images,
    val_json,
    val_images,
    out_dir,
    *,
    categories=FEWSHOT_CATEGORIES,
    shots=(1, 2, 4, 8, 16),
    seed: int = 0,
) -> BuildReport:
    """OUT/train_<k>shot.jsonl (k images per category, nested, seeded) and OUT/test.jsonl (every val image
    x category), OUT/build.json."""
    report = BuildReport.start(
        "coco-fewshot",
        train_json=train_json,
        val_json=val_json,
        categories=categories,
        shots=shots,
        seed=seed,
    )
    (train, roots_train), (val, roots_val) = _load(train_json, train_images), _load(val_json, val_images)
    train_ids, val_ids = category_ids(train, categories, train_json), category_ids(val, categories, val_json)
    out = Path(out_dir)
    pool = detection_queries(train, train_ids, roots_train, report, prefix="train", training=True)
    write_kshot(pool, out, "train", shots, seed, report, classes=categories)
    test = detection_queries(val, val_ids, roots_val, report, prefix="val", every_image=True)
    write_split(test, out / "test.jsonl", report)
    report.save(out)
    return report


def build_coco_ovd(
    train_json,
    train_images,
    val_json,
    val_images,
    out_dir,
    *,
    novel=NOVEL_CATEGORIES,
    per_category: int = OVD_TRAIN_PER_CATEGORY,
    test_split: str = "novel",
    seed: int = 0,
) -> BuildReport:
    """OUT/train_<N>shot.jsonl (N queries per base category) and OUT/test_<split>.jsonl (every val image x
    novel category, or x all 80 with test_split=all), each query's meta.split base or novel."""
    if test_split not in ("novel", "all"):
        raise ValueError(f"test_split must be novel or all, got {test_split!r}")
    report = BuildReport.start(
        "coco-ovd",
        train_json=train_json,
        val_json=val_json,
        novel=novel,
        per_category=per_category,
        seed=seed,
    )
    (train, roots_train), (val, roots_val) = _load(train_json, train_images), _load(val_json, val_images)
    category_ids(train, novel, train_json)
    base = [c["name"] for c in sorted(train["categories"], key=lambda c: c["id"]) if c["name"] not in novel]
    splits = {**{c: "base" for c in base}, **{c: "novel" for c in novel}}
    out = Path(out_dir)
    pool = detection_queries(
        train,
        category_ids(train, base, train_json),
        roots_train,
        report,
        prefix="train",
        training=True,
        splits=splits,
    )
    write_kshot(pool, out, "train", (per_category,), seed, report, classes=base)
    asked = list(novel) if test_split == "novel" else [*base, *novel]
    test = detection_queries(
        val,
        category_ids(val, asked, val_json),
        roots_val,
        report,
        prefix="val",
        every_image=True,
        splits=splits,
    )
    write_split(test, out / f"test_{test_split}.jsonl", report)
    report.save(out)
    return report
