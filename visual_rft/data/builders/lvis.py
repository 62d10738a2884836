"""LVIS v1 -> our detection queries: `lvis-fewshot` and `lvis-ovd`, with LVIS's federated labels.

LVIS v1 is COCO-format (`visual_rft.data.builders.coco.detection_queries` reads it), with per image
`neg_category_ids` (verified absent), `not_exhaustive_category_ids` (present but not every instance
boxed) and per category `frequency` ('r' rare, 'c' common, 'f' frequent). An image has no `file_name`:
its file is the end of `coco_url`, "train2017/x.jpg" (LVIS v1 images are COCO 2017's train and val
images), found under an `--images` folder that holds train2017/ and val2017/, or in either folder given
itself (`--images coco/train2017 --images coco/val2017`). So that a query never punishes a box LVIS did not label:
- a category is asked of an image only where it is verified (present, or in neg_category_ids);
- a training shot is never a not-exhaustive (image, category); a test query there is marked
  meta.not_exhaustive, and the evaluation ignores its unmatched boxes (LVIS's rule).

The paper's categories, from the official repository (Liuziyu77/Visual-RFT,
lvis_evaluation/Qwen2_VL_lvis_infere.py): the 6 few-shot rare categories (the commented `selected_cate`)
and the 13 rare categories of open-vocabulary detection (the active one). The names are LVIS's own
(underscores), as the official prompt writes them.
"""

from __future__ import annotations

from pathlib import Path

from visual_rft.data.builders.coco import category_ids, detection_queries, load_instances
from visual_rft.data.builders.common import BuildReport, require_dir, write_kshot, write_split

FEWSHOT_CATEGORIES = ("horse_buggy", "die", "kitchen_table", "omelet", "papaya", "stepladder")
# fmt: off
OVD_CATEGORIES = (
    "casserole", "die", "egg_roll", "futon", "garbage", "handsaw", "hippopotamus", "kitchen_table",
    "mallet", "omelet", "shot_glass", "stepladder", "sugar_bowl",
)
# fmt: on


def _not_rare(data: dict, names, report: BuildReport) -> None:
    frequency = {c["name"]: c.get("frequency") for c in data["categories"]}
    for name in names:
        if frequency.get(name) != "r":
            report.notes.append(f"{name} is not a rare ('r') LVIS category: {frequency.get(name)!r}")


def build_lvis_fewshot(
    train_json,
    val_json,
    images,
    out_dir,
    *,
    categories=FEWSHOT_CATEGORIES,
    shots=(1, 2, 4, 8, 16),
    seed: int = 0,
) -> BuildReport:
    """OUT/train_<k>shot.jsonl (k exhaustively labelled images per category, nested, seeded) and
    OUT/test.jsonl (every verified (val image, category)), OUT/build.json. `images`: folders searched."""
    report = BuildReport.start(
        "lvis-fewshot",
        train_json=train_json,
        val_json=val_json,
        categories=categories,
        shots=shots,
        seed=seed,
    )
    roots = [require_dir(p, "images") for p in images]
    train, val = load_instances(train_json), load_instances(val_json)
    train_ids, val_ids = category_ids(train, categories, train_json), category_ids(val, categories, val_json)
    _not_rare(train, categories, report)
    out = Path(out_dir)
    pool = detection_queries(train, train_ids, roots, report, prefix="train", training=True, federated=True)
    write_kshot(pool, out, "train", shots, seed, report, classes=categories)
    test = detection_queries(val, val_ids, roots, report, prefix="val", federated=True)
    write_split(test, out / "test.jsonl", report)
    report.save(out)
    return report


def build_lvis_ovd(val_json, images, out_dir, *, categories=OVD_CATEGORIES) -> BuildReport:
    """OUT/test_novel.jsonl: every verified (val image, category) of the 13 rare categories, meta.split
    novel (the model is trained on COCO's base categories: `coco-ovd`), OUT/build.json."""
    report = BuildReport.start("lvis-ovd", val_json=val_json, categories=categories)
    roots = [require_dir(p, "images") for p in images]
    val = load_instances(val_json)
    _not_rare(val, categories, report)
    splits = dict.fromkeys(categories, "novel")
    test = detection_queries(
        val,
        category_ids(val, categories, val_json),
        roots,
        report,
        prefix="val",
        federated=True,
        splits=splits,
    )
    out = Path(out_dir)
    write_split(test, out / "test_novel.jsonl", report)
    report.save(out)
    return report
