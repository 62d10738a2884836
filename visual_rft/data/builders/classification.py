"""Fine-grained classification -> our classification samples: CoOp's split files, or ImageFolder trees.

CoOp's `split_zhou_<Dataset>.json` (OxfordFlowers, OxfordPets, StanfordCars, FGVCAircraft as the paper
uses them; CoOp, github.com/KaiyangZhou/CoOp, DATASETS.md) is

    {"train": [[relative image path, label index, class name], ...], "val": [...], "test": [...]}

with paths relative to the folder CoOp's `read_split` prefixes them with (`--images`): oxford_pets/images,
oxford_flowers/jpg, and stanford_cars/ itself (CoOp's datasets/*.py). The class name is kept as CoOp writes it. CoOp has no split file for FGVC-Aircraft: it reads
the dataset's own `images_variant_{train,val,test}.txt` ("<image id> <variant name>", images in images/),
and so does `fgvc_samples` (`--fgvc-dir`; its test split is the 3,333 images Visual-RFT counts).
An ImageFolder tree is `ROOT/<class name>/<image>` (underscores in a folder name become spaces).
k-shot sets are drawn from the train split, k images per class, nested and seeded
(`visual_rft.data.splits`); the test split is written whole.
"""

from __future__ import annotations

from pathlib import Path

from visual_rft.data.builders.common import BuildReport, read_json, require_dir, write_kshot, write_split
from visual_rft.data.jsonl import DataError
from visual_rft.data.prompts import CLASSIFICATION_PROBLEMS
from visual_rft.data.types import ClassTarget, Sample

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def problem_for(dataset: str | None, problem: str | None) -> str:
    """The question asked: `problem` as given, else the dataset's (`CLASSIFICATION_PROBLEMS`)."""
    if problem:
        return problem
    if dataset not in CLASSIFICATION_PROBLEMS:
        raise ValueError(
            f"dataset {dataset!r}: expected one of {sorted(CLASSIFICATION_PROBLEMS)}, or give the question"
        )
    return CLASSIFICATION_PROBLEMS[dataset]


def _sample(split: str, i: int, path: Path, name: str, problem: str, **meta) -> Sample:
    return Sample(f"{split}-{i}", [str(path)], "classification", problem, ClassTarget(name), meta=meta)


def coop_samples(split_json, images, split: str, problem: str, report: BuildReport) -> list[Sample]:
    """The samples of one split of a CoOp split file; missing images are skipped (reported)."""
    data = read_json(Path(split_json), "a CoOp split_zhou_*.json")
    if not isinstance(data, dict) or not isinstance(data.get(split), list):
        raise DataError(
            f"no list {split!r} (a CoOp split file has train, val, test)", path=split_json, field=split
        )
    root = require_dir(images, "the dataset's image folder")
    out = []
    for i, item in enumerate(data[split]):
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], str)):
            raise DataError(
                f"expected [path, label, class name], got {item!r}", path=split_json, field=f"{split}[{i}]"
            )
        rel, label, name = item
        if not (root / rel).is_file():
            report.skip(f"missing image ({split})", str(root / rel))
            continue
        out.append(_sample(split, i, root / rel, name.strip(), problem, label_index=label, source=rel))
    return out


def fgvc_samples(root, split: str, problem: str, report: BuildReport) -> list[Sample]:
    """The samples of FGVC-Aircraft's images_variant_<split>.txt (as CoOp's datasets/fgvc_aircraft.py)."""
    root = require_dir(root, "the FGVC-Aircraft data folder")
    listing = root / f"images_variant_{split}.txt"
    if not listing.is_file():
        raise DataError("no such file (FGVC-Aircraft's split listing)", path=listing)
    out = []
    for lineno, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        image_id, _, name = line.strip().partition(" ")
        if not name:
            raise DataError(f"expected '<image id> <variant>', got {line!r}", path=listing, line=lineno)
        path = root / "images" / f"{image_id}.jpg"
        if not path.is_file():
            report.skip(f"missing image ({split})", str(path))
            continue
        out.append(_sample(split, lineno, path, name, problem, source=f"{image_id}.jpg"))
    return out


def folder_samples(root, split: str, problem: str, report: BuildReport) -> list[Sample]:
    """The samples of an ImageFolder tree ROOT/<class>/<image>, in sorted order."""
    root = require_dir(root, f"the {split} ImageFolder tree")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                report.skip(f"not an image ({split})", str(path))
                continue
            name = folder.name.replace("_", " ")
            out.append(_sample(split, len(out), path, name, problem, source=str(path.relative_to(root))))
    if not out:
        raise DataError("no images in class folders", path=root)
    return out


def build_classification(
    out_dir,
    *,
    split_json=None,
    images=None,
    train_dir=None,
    test_dir=None,
    fgvc_dir=None,
    dataset: str | None = None,
    problem: str | None = None,
    shots=(1, 2, 4, 8, 16),
    seed: int = 0,
) -> BuildReport:
    """OUT/train_<k>shot.jsonl and OUT/test.jsonl from a CoOp split file (+ its image folder), FGVC-Aircraft's
    own listings (fgvc_dir) or ImageFolder trees (train_dir, test_dir); OUT/build.json."""
    question = problem_for(dataset, problem)
    report = BuildReport.start(
        "classification",
        split_json=split_json,
        images=images,
        train_dir=train_dir,
        test_dir=test_dir,
        problem=question,
        shots=shots,
        seed=seed,
    )
    if split_json is not None:
        if images is None:
            raise ValueError("a CoOp split file needs --images (the dataset's image folder)")
        train = coop_samples(split_json, images, "train", question, report)
        test = coop_samples(split_json, images, "test", question, report)
    elif fgvc_dir is not None:
        train = fgvc_samples(fgvc_dir, "train", question, report)
        test = fgvc_samples(fgvc_dir, "test", question, report)
    elif train_dir is not None and test_dir is not None:
        train = folder_samples(train_dir, "train", question, report)
        test = folder_samples(test_dir, "test", question, report)
    else:
        raise ValueError(
            "give a CoOp split file (--split-json, --images), --fgvc-dir, or --train-dir and --test-dir"
        )
    out = Path(out_dir)
    classes = sorted({s.target.label for s in train + test})
    write_kshot(train, out, "train", shots, seed, report, classes=classes)
    write_split(test, out / "test.jsonl", report)
    report.save(out)
    return report
