"""The visual-rft JSONL format: one `Sample` per line.

    {"id": "coco-42-dog", "task": "detection", "images": ["images/42.jpg"], "width": 640, "height": 480,
     "problem": "Detect all objects belonging to the category 'dog' in the image.",
     "target": {"category": "dog", "boxes": [[10, 20, 110, 220], [300, 40, 380, 200]]},
     "meta": {"split": "train"}}

- `images`: a list of paths (or `image`: one path), absolute or relative to the JSONL file's folder.
- `width`/`height`: the original image size in pixels. Optional on input (read from the image when
  checking); when present, boxes are checked against it.
- `target` by task:
    classification: {"label": "golden retriever"}
    detection:      {"category": "dog", "boxes": [[x1, y1, x2, y2], ...]}   ([] = no objects);
                    a box may also be {"box": [x1, y1, x2, y2], "category": "dog"}
    grounding:      {"box": [x1, y1, x2, y2]}
  Boxes are absolute pixels of the original image, x2 > x1 and y2 > y1.
- `meta`: free-form, kept as is.

Bad input raises `DataError` naming the file, the line and the field. `check_file` reports every bad
record instead of stopping at the first.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from visual_rft.data.files import write_lines_atomic
from visual_rft.data.types import (
    TASKS,
    Box,
    ClassTarget,
    DetectionTarget,
    GroundingTarget,
    Sample,
    Target,
)


class DataError(ValueError):
    """A bad record: says which file, which line (1-based) and which field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        what = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{what}{message}")


# ---------------------------------------------------------------- parsing one record


def _parse_box(value, field: str, size: tuple[int, int] | None, category: str | None = None) -> Box:
    if isinstance(value, dict):
        category = value.get("category", category)
        value = value.get("box", value.get("bbox"))
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise DataError(f"a box must be [x1, y1, x2, y2], got {value!r}", field=field)
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"box coordinates must be numbers, got {value!r}", field=field) from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise DataError(f"box has a non-finite coordinate: {value!r}", field=field)
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"box needs x2 > x1 and y2 > y1, got {value!r}", field=field)
    if size is not None:
        w, h = size
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            raise DataError(f"box {value!r} lies outside the {w}x{h} image", field=field)
    return Box(x1, y1, x2, y2, category)


def _parse_target(task: str, raw, size: tuple[int, int] | None) -> Target:
    if not isinstance(raw, dict):
        raise DataError(f"must be an object, got {type(raw).__name__}", field="target")
    if task == "classification":
        label = raw.get("label")
        if not isinstance(label, str) or not label.strip():
            raise DataError("classification needs a non-empty string 'label'", field="target.label")
        return ClassTarget(label.strip())
    if task == "detection":
        category = raw.get("category")
        boxes = raw.get("boxes")
        if not isinstance(boxes, list):
            raise DataError(
                "detection needs a list 'boxes' ([] when there are no objects)", field="target.boxes"
            )
        parsed = tuple(_parse_box(b, f"target.boxes[{i}]", size, category) for i, b in enumerate(boxes))
        return DetectionTarget(boxes=parsed, category=category)
    if task == "grounding":
        if "box" not in raw:
            raise DataError("grounding needs 'box'", field="target.box")
        return GroundingTarget(_parse_box(raw["box"], "target.box", size))
    raise DataError(f"unknown task {task!r}; expected one of {TASKS}", field="task")


def sample_from_dict(obj, base_dir: str | os.PathLike | None = None) -> Sample:
    """Build a `Sample` from one decoded JSON object; relative image paths are resolved from base_dir."""
    if not isinstance(obj, dict):
        raise DataError(f"a record must be a JSON object, got {type(obj).__name__}")
    for key in ("id", "task", "problem", "target"):
        if key not in obj:
            raise DataError("missing", field=key)
    task = obj["task"]
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; expected one of {TASKS}", field="task")
    if not isinstance(obj["problem"], str):
        raise DataError("must be a string", field="problem")
    images = obj.get("images", [obj["image"]] if "image" in obj else None)
    if not isinstance(images, list) or not images or not all(isinstance(p, str) and p for p in images):
        raise DataError("need 'images' (a non-empty list of paths) or 'image' (a path)", field="images")
    if base_dir is not None:
        images = [p if os.path.isabs(p) else os.path.normpath(os.path.join(base_dir, p)) for p in images]
    width, height = obj.get("width"), obj.get("height")
    for name, v in (("width", width), ("height", height)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
            raise DataError(f"must be a positive integer, got {v!r}", field=name)
    size = (width, height) if width and height else None
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError("must be an object", field="meta")
    target = _parse_target(task, obj["target"], size)
    return Sample(
        id=str(obj["id"]),
        images=images,
        task=task,
        problem=obj["problem"],
        target=target,
        width=width,
        height=height,
        meta=meta,
    )


# ---------------------------------------------------------------- writing


def _box_json(box: Box, default_category: str | None = None):
    coords = [_num(v) for v in box.xyxy]
    if box.category is not None and box.category != default_category:
        return {"box": coords, "category": box.category}
    return coords


def _num(v: float):
    return int(v) if float(v).is_integer() else round(float(v), 3)


def target_to_dict(target: Target) -> dict:
    if isinstance(target, ClassTarget):
        return {"label": target.label}
    if isinstance(target, DetectionTarget):
        return {"category": target.category, "boxes": [_box_json(b, target.category) for b in target.boxes]}
    if isinstance(target, GroundingTarget):
        return {"box": _box_json(target.box)}
    raise TypeError(f"not a target: {target!r}")


def sample_to_dict(sample: Sample, base_dir: str | os.PathLike | None = None) -> dict:
    """The JSON object for a sample; image paths are written relative to base_dir when they lie under it."""
    images = sample.images
    if base_dir is not None:
        base = Path(base_dir).resolve()
        images = [_relative_if_under(p, base) for p in images]
    out = {
        "id": sample.id,
        "task": sample.task,
        "images": images,
        "problem": sample.problem,
        "target": target_to_dict(sample.target),
    }
    if sample.width and sample.height:
        out["width"], out["height"] = sample.width, sample.height
    if sample.meta:
        out["meta"] = sample.meta
    return out


def _relative_if_under(path: str, base: Path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(base))
    except ValueError:
        return str(p)


def write_samples(path: str | os.PathLike, samples: Iterable[Sample]) -> int:
    """Write samples as JSONL (atomically: temporary file, then rename). Returns the count."""
    path = Path(path)
    base = path.parent
    return write_lines_atomic(
        path, (json.dumps(sample_to_dict(s, base), ensure_ascii=False) for s in samples)
    )


# ---------------------------------------------------------------- reading and checking


def _records(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, decoded object) for each non-blank line; DataError objects for undecodable lines (not
    UTF-8, or not JSON), so that a checker reports them all."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                what = f"not UTF-8: byte {raw[e.start : e.start + 1]!r} at offset {e.start} of the line"
                yield lineno, DataError(what, path=path, line=lineno)
                continue
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                yield (
                    lineno,
                    DataError(f"malformed JSON: {e.msg} at column {e.colno}", path=path, line=lineno),
                )


def iter_samples(path: str | os.PathLike) -> Iterator[Sample]:
    """Yield samples from a JSONL file; the first bad record raises DataError (file, line, field)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    for lineno, obj in _records(path):
        if isinstance(obj, DataError):
            raise obj
        try:
            yield sample_from_dict(obj, path.parent)
        except DataError as e:
            raise DataError(e.reason, path=path, line=lineno, field=e.field) from None


def read_samples(path: str | os.PathLike) -> list[Sample]:
    """All samples of a JSONL file (see `iter_samples`)."""
    return list(iter_samples(path))


def check_image(sample: Sample) -> tuple[int, int]:
    """Open each image of a sample; returns the first one's (width, height). Raises DataError."""
    size = None
    for i, p in enumerate(sample.images):
        field = f"images[{i}]"
        if not os.path.exists(p):
            raise DataError(f"image not found: {p}", field=field)
        try:
            with Image.open(p) as im:
                im.verify()
                size = size or im.size
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DataError(f"image unreadable: {p} ({e})", field=field) from None
    return size  # type: ignore[return-value]


def check_file(path: str | os.PathLike, *, images: bool = True) -> tuple[int, list[DataError]]:
    """Check every record of a JSONL file. Returns (number of records, every error found).

    With images=True each image is opened, and boxes are checked against the real image size.
    """
    path = Path(path)
    if not path.is_file():
        return 0, [DataError("no such file", path=path)]
    errors: list[DataError] = []
    seen_ids: dict[str, int] = {}
    n = 0
    for lineno, obj in _records(path):
        n += 1
        if isinstance(obj, DataError):
            errors.append(obj)
            continue
        try:
            sample = sample_from_dict(obj, path.parent)
            if images:
                w, h = check_image(sample)
                if sample.width and sample.height and (sample.width, sample.height) != (w, h):
                    raise DataError(
                        f"says {sample.width}x{sample.height} but the image is {w}x{h}", field="width"
                    )
                _parse_target(sample.task, obj["target"], (w, h))  # boxes against the real size
            if sample.id in seen_ids:
                raise DataError(
                    f"duplicate id {sample.id!r} (first on line {seen_ids[sample.id]})", field="id"
                )
            seen_ids[sample.id] = lineno
        except DataError as e:
            errors.append(DataError(e.reason, path=path, line=lineno, field=e.field))
    return n, errors
