r"""`vrft data build KIND ...`: the builders' command line (registered by visual_rft/cli.py).

    vrft data build coco-fewshot --train-json instances_train2017.json --train-images train2017 \
        --val-json instances_val2017.json --val-images val2017 --out data/coco_fewshot
    vrft data build lvis-fewshot --train-json lvis_v1_train.json --val-json lvis_v1_val.json \
        --images train2017 --images val2017 --out data/lvis_fewshot
    vrft data build coco-ovd ... --out data/coco_ovd        vrft data build lvis-ovd --val-json ... --out ...
    vrft data build classification --split-json split_zhou_OxfordPets.json --images oxford_pets/images \
        --dataset pets --out data/pets
    vrft data build classification --fgvc-dir fgvc-aircraft-2013b/data --dataset aircraft --out data/aircraft
    vrft data build lisa --root ReasonSeg --out data/lisa
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visual_rft.data.builders.classification import build_classification
from visual_rft.data.builders.coco import (
    FEWSHOT_CATEGORIES,
    NOVEL_CATEGORIES,
    build_coco_fewshot,
    build_coco_ovd,
)
from visual_rft.data.builders.common import parse_shots
from visual_rft.data.builders.lisa import SPLITS, build_lisa
from visual_rft.data.builders.lvis import FEWSHOT_CATEGORIES as LVIS_FEWSHOT
from visual_rft.data.builders.lvis import OVD_CATEGORIES, build_lvis_fewshot, build_lvis_ovd
from visual_rft.data.prompts import CLASSIFICATION_PROBLEMS


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


NEEDS = {
    "coco-fewshot": ("train_json", "train_images", "val_json", "val_images"),
    "coco-ovd": ("train_json", "train_images", "val_json", "val_images"),
    "lvis-fewshot": ("train_json", "val_json", "images"),
    "lvis-ovd": ("val_json", "images"),
    "classification": (),
    "lisa": ("root",),
}
"""The options each builder cannot do without."""


def run(args) -> int:
    """Run the builder `args.kind` names; print what it wrote and skipped."""
    missing = [f"--{n.replace('_', '-')}" for n in NEEDS[args.kind] if not getattr(args, n)]
    if missing:
        raise ValueError(f"data build {args.kind} needs {', '.join(missing)}")
    coco = (args.train_json, args.train_images, args.val_json, args.val_images, args.out)
    if args.kind == "coco-fewshot":
        report = build_coco_fewshot(
            *coco,
            categories=_names(args.categories or ",".join(FEWSHOT_CATEGORIES)),
            shots=parse_shots(args.shots),
            seed=args.seed,
        )
    elif args.kind == "coco-ovd":
        report = build_coco_ovd(
            *coco,
            novel=_names(args.categories or ",".join(NOVEL_CATEGORIES)),
            per_category=args.per_category,
            test_split=args.test_split,
            seed=args.seed,
        )
    elif args.kind == "lvis-fewshot":
        report = build_lvis_fewshot(
            args.train_json,
            args.val_json,
            args.images,
            args.out,
            categories=_names(args.categories or ",".join(LVIS_FEWSHOT)),
            shots=parse_shots(args.shots),
            seed=args.seed,
        )
    elif args.kind == "lvis-ovd":
        report = build_lvis_ovd(
            args.val_json,
            args.images,
            args.out,
            categories=_names(args.categories or ",".join(OVD_CATEGORIES)),
        )
    elif args.kind == "classification":
        report = build_classification(
            args.out,
            split_json=args.split_json,
            images=args.images and args.images[0],
            train_dir=args.train_dir,
            test_dir=args.test_dir,
            fgvc_dir=args.fgvc_dir,
            dataset=args.dataset,
            problem=args.problem,
            shots=parse_shots(args.shots),
            seed=args.seed,
        )
    else:
        report = build_lisa(args.root, args.out, splits=_names(args.splits))
    print(report.summary())
    print(f"wrote {args.out} (report: {Path(args.out) / 'build.json'})")
    return 0


KINDS = {
    "coco-fewshot": "COCO k-shot detection (the paper's 8 categories by default) + val test queries",
    "coco-ovd": "COCO open vocabulary: train on the 65 base categories, test on the 15 novel (or all)",
    "lvis-fewshot": "LVIS v1 k-shot detection (the paper's 6 rare categories), federated labels",
    "lvis-ovd": "LVIS v1 test queries of the paper's 13 rare categories (open vocabulary)",
    "classification": "fine-grained classification from a CoOp split file or ImageFolder trees",
    "lisa": "ReasonSeg reasoning grounding: tight boxes of the masks, masks kept for mask metrics",
}


def register(data_subparsers) -> argparse.ArgumentParser:
    """Add `build` to the `vrft data` subcommands."""
    p = data_subparsers.add_parser(
        "build",
        help="build the paper's datasets from files you have (no download)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=list(KINDS), help="; ".join(f"{k}: {v}" for k, v in KINDS.items()))
    p.add_argument("--out", type=Path, required=True, help="output folder (JSONL files, build.json)")
    p.add_argument("--train-json", type=Path, help="COCO / LVIS training annotations")
    p.add_argument("--val-json", type=Path, help="COCO / LVIS validation annotations (the test queries)")
    p.add_argument("--train-images", type=Path, help="COCO training images (train2017)")
    p.add_argument("--val-images", type=Path, help="COCO validation images (val2017)")
    p.add_argument(
        "--images",
        type=Path,
        action="append",
        default=[],
        help="LVIS: image folders searched in order (repeat); classification: CoOp's image folder",
    )
    p.add_argument("--categories", default="", help="comma-separated category names (default: the paper's)")
    p.add_argument("--shots", default="1,2,4,8,16", help="k-shot files to write, nested (default 1,2,4,8,16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the k-shot draw")
    p.add_argument(
        "--per-category", type=int, default=100, help="coco-ovd: training queries per base category"
    )
    p.add_argument(
        "--test-split", choices=["novel", "all"], default="novel", help="coco-ovd: test categories"
    )
    p.add_argument("--split-json", type=Path, help="classification: CoOp's split_zhou_<Dataset>.json")
    p.add_argument("--train-dir", type=Path, help="classification: ImageFolder tree of training images")
    p.add_argument("--test-dir", type=Path, help="classification: ImageFolder tree of test images")
    p.add_argument(
        "--fgvc-dir", type=Path, help="classification: FGVC-Aircraft's data/ (images_variant_*.txt)"
    )
    p.add_argument("--dataset", choices=sorted(CLASSIFICATION_PROBLEMS), help="classification: the question")
    p.add_argument("--problem", default=None, help="classification: the question, in place of the dataset's")
    p.add_argument("--root", type=Path, help="lisa: the ReasonSeg folder (train/, val/, test/)")
    p.add_argument("--splits", default=",".join(SPLITS), help="lisa: the splits to write")
    p.set_defaults(func=run)
    return p
