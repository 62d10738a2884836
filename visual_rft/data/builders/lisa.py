"""ReasonSeg (LISA's reasoning-segmentation data) -> our grounding samples, the masks kept for mask metrics.

ReasonSeg (github.com/dvlab-research/LISA) is ROOT/{train,val,test}/<name>.jpg with <name>.json beside
each image:

    {"text": ["instruction", ...], "is_sentence": true,
     "shapes": [{"label": "target" | "ignore" | "flag", "points": [[x, y], ...], "shape_type": "polygon"}, ...]}

(checked against LISA's utils/data_processing.py, which reads "shapes", "text" and "is_sentence").

Per image, one sample: the first instruction as the problem (the official evaluation,
lisa_evaluation/Qwen2_VL_lisa_infere.py, asks `instruction[0]`), the rest in meta.texts. The mask is
drawn as LISA draws it (shapes largest first; target 255, ignore 128, background 0) into
OUT/masks/<split>/<name>.png, its absolute path in meta.mask, and the target is the tight box of the
mask's target pixels. The official box generator (gen_box_ann.py) boxes only the first shape; the tight
box of the whole target mask differs where an image has several target polygons.
The paper counts 239 train / 200 val / 779 test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from visual_rft.data.builders.common import BuildReport, read_json, require_dir, write_split
from visual_rft.data.jsonl import DataError
from visual_rft.data.prompts import GROUNDING_PROBLEM
from visual_rft.data.types import Box, GroundingTarget, Sample

SPLITS = {"train": 239, "val": 200, "test": 779}
"""ReasonSeg's splits and their image counts as the paper gives them."""
TARGET, IGNORE = 255, 128
"""Mask values of target and ignored pixels (background 0)."""


def _area(points) -> float:
    xs, ys = np.asarray(points, dtype=float).T
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))


def draw_mask(shapes: list[dict], size: tuple[int, int]) -> np.ndarray:
    """[H, W] uint8: the shapes' polygons, largest first, target 255, ignore 128, background 0.

    LISA's rule (utils/data_processing.py, get_mask_from_json): a label "flag" is skipped, a label holding
    "ignore" is ignored, any other label is target. LISA fills with OpenCV (points cast to int); PIL's fill
    may differ by a pixel along edges."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    polygons = [
        s for s in shapes if len(s.get("points", ())) >= 3 and str(s.get("label", "")).lower() != "flag"
    ]
    for shape in sorted(polygons, key=lambda s: -_area(s["points"])):
        value = IGNORE if "ignore" in str(shape.get("label", "")).lower() else TARGET
        draw.polygon([tuple(map(float, p)) for p in shape["points"]], fill=value)
    return np.asarray(mask)


def tight_box(mask: np.ndarray) -> Box | None:
    """The smallest box holding every target pixel (pixel edges: x2 = last column + 1); None if none."""
    ys, xs = np.nonzero(mask == TARGET)
    if len(xs) == 0:
        return None
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def split_samples(root: Path, split: str, out: Path, report: BuildReport) -> list[Sample]:
    """One grounding sample per annotated image of ROOT/<split>/; masks written under OUT/masks/<split>/."""
    folder = require_dir(root / split, f"ReasonSeg's {split} split")
    samples = []
    for ann_path in sorted(folder.glob("*.json")):
        image = next((p for p in (ann_path.with_suffix(e) for e in (".jpg", ".png")) if p.is_file()), None)
        if image is None:
            report.skip(f"missing image ({split})", ann_path.stem)
            continue
        ann = read_json(ann_path, "a ReasonSeg annotation")
        texts = [t for t in ann.get("text", []) if isinstance(t, str) and t.strip()]
        if isinstance(ann.get("text"), str):
            texts = [ann["text"]]
        if not texts:
            report.skip(f"no instruction text ({split})", ann_path.name)
            continue
        with Image.open(image) as im:
            size = im.size
        try:
            mask = draw_mask(ann.get("shapes", []), size)
        except (TypeError, ValueError, AttributeError) as e:
            raise DataError(
                f"not a list of polygons with [x, y] points ({e})", path=ann_path, field="shapes"
            ) from None
        box = tight_box(mask)
        if box is None:
            report.skip(f"no target polygon ({split})", ann_path.name)
            continue
        mask_path = out / "masks" / split / f"{ann_path.stem}.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(mask_path)
        meta = {
            "split": split,
            "mask": str(mask_path.resolve()),
            "texts": texts,
            "is_sentence": bool(ann.get("is_sentence", False)),
        }
        problem = GROUNDING_PROBLEM.format(instruction=texts[0].strip())
        samples.append(
            Sample(
                f"{split}-{ann_path.stem}",
                [str(image)],
                "grounding",
                problem,
                GroundingTarget(box),
                size[0],
                size[1],
                meta,
            )
        )
    return samples


def build_lisa(root, out_dir, *, splits=tuple(SPLITS)) -> BuildReport:
    """OUT/<split>.jsonl for each split, OUT/masks/, OUT/build.json."""
    report = BuildReport.start("lisa", root=root, splits=splits)
    root, out = require_dir(root, "the ReasonSeg folder"), Path(out_dir)
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown ReasonSeg split {split!r}; expected one of {list(SPLITS)}")
        samples = split_samples(root, split, out, report)
        write_split(samples, out / f"{split}.jsonl", report)
        if len(samples) != SPLITS[split]:
            report.notes.append(f"{split}: {len(samples)} images, the paper counts {SPLITS[split]}")
    report.save(out)
    return report
