"""Import the Visual-RFT datasets as released: Hugging Face datasets with columns image, problem, solution.

Accepted sources: a folder written by `Dataset.save_to_disk`, a `.parquet` file, or a folder of them.
Solutions are parsed with the rewards' own parsers and become typed targets:

    detection       <answer>[{'Position': [x1, y1, x2, y2], 'Confidence': 1}]</answer>   0-1000 coordinates
    classification  <answer>class name</answer>
    grounding       <answer> (x1,y1),(x2,y2) </answer>      0-1000 by default (`grounding_coords`)

Boxes are converted to absolute pixels of the image (through `visual_rft.data.coords`), images are written to
`OUT/images/`, and `OUT/data.jsonl` is produced. Needs the `datasets` package (`pip install datasets`).
"""

from __future__ import annotations

import re
from pathlib import Path

from visual_rft.data.answer import extract_answer, is_no_objects, parse_box, parse_detection
from visual_rft.data.coords import CoordFrame, answer_to_pixels
from visual_rft.data.jsonl import DataError, write_samples
from visual_rft.data.prompts import DETECTION_PROBLEM
from visual_rft.data.types import ClassTarget, DetectionTarget, GroundingTarget, Sample

_CATEGORY = re.compile(r"category\s+'([^']+)'")
_GROUNDING = re.compile(r"^\s*\(\s*-?[\d.]+\s*,\s*-?[\d.]+\s*\)\s*,\s*\(\s*-?[\d.]+\s*,\s*-?[\d.]+\s*\)\s*$")


def load_hf(src: str | Path):
    """The dataset at `src` (save_to_disk folder, parquet file or folder of parquet files)."""
    try:
        import datasets
    except ImportError:
        raise ImportError("importing Hugging Face datasets needs `pip install datasets`") from None
    src = Path(src)
    if src.is_dir() and ((src / "dataset_info.json").exists() or (src / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(src))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
        return ds
    files = sorted(src.rglob("*.parquet")) if src.is_dir() else [src]
    if not files or not all(f.suffix == ".parquet" and f.exists() for f in files):
        raise DataError("not a save_to_disk folder, a .parquet file or a folder of .parquet files", path=src)
    return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")


def infer_task(answer: str) -> str:
    """detection, grounding or classification, from the form of a solution's answer."""
    if is_no_objects(answer) or (answer.strip().startswith("[") and parse_detection(answer).readable):
        return "detection"
    if _GROUNDING.match(answer):
        return "grounding"
    return "classification"


def row_to_target(task: str, answer: str, problem: str, frame: CoordFrame, grounding_frame: CoordFrame):
    """(target, problem) for one row; raises DataError naming the field."""
    if task == "classification":
        if not answer.strip():
            raise DataError("empty class name", field="solution")
        return ClassTarget(answer.strip()), problem
    if task == "detection":
        match = _CATEGORY.search(problem)
        category = match.group(1) if match else None
        parsed = parse_detection(answer)
        if not parsed.readable or len(parsed.predictions) != parsed.written:
            raise DataError(f"unreadable detection answer {answer[:80]!r}", field="solution")
        boxes = (answer_to_pixels(p.box, frame, clip=True, category=category) for p in parsed.predictions)
        boxes = tuple(b for b in boxes if b.x2 > b.x1 and b.y2 > b.y1)  # clipping can empty a box
        text = DETECTION_PROBLEM.format(category=category) if category else problem
        return DetectionTarget(boxes, category), text
    if task == "grounding":
        box = parse_box(answer)
        if box is None:
            raise DataError(f"unreadable grounding answer {answer[:80]!r}", field="solution")
        return GroundingTarget(answer_to_pixels(box, grounding_frame, clip=True)), problem
    raise DataError(f"unknown task {task!r}", field="task")


def import_visual_rft(
    src: str | Path,
    out_dir: str | Path,
    *,
    task: str | None = None,
    grounding_coords: str = "norm1000",
    limit: int = 0,
    id_prefix: str | None = None,
) -> Path:
    """Convert a released Visual-RFT dataset into OUT/data.jsonl + OUT/images/. Returns the JSONL path."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    ds = load_hf(src)
    missing = {"image", "problem", "solution"} - set(ds.column_names)
    if missing:
        raise DataError(f"missing columns {sorted(missing)} (has {ds.column_names})", path=src)
    prefix = id_prefix or Path(src).stem
    samples = []
    for i, row in enumerate(ds):
        if limit and i >= limit:
            break
        try:
            image = row["image"]
            if image is None or not hasattr(image, "size"):
                raise DataError("not an image", field="image")
            answer = extract_answer(row["solution"])
            if answer is None:
                raise DataError("no <answer>...</answer> in the solution", field="solution")
            kind = task or infer_task(answer)
            w, h = image.size
            frame = CoordFrame("norm1000", (w, h))
            gframe = frame if grounding_coords == "norm1000" else CoordFrame("resized_pixels", (w, h), (w, h))
            target, problem = row_to_target(kind, answer, row["problem"], frame, gframe)
        except DataError as e:
            raise DataError(e.reason, path=src, line=i, field=e.field) from None
        path = out / "images" / f"{prefix}-{i:06d}.png"
        image.convert("RGB").save(path)
        meta = {"source": str(src), "row": i}
        if problem != row["problem"]:
            meta["original_problem"] = row["problem"]
        samples.append(Sample(f"{prefix}-{i}", [str(path)], kind, problem, target, w, h, meta))
    jsonl = out / "data.jsonl"
    write_samples(jsonl, samples)
    return jsonl
