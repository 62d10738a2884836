"""Prompt templates for each task, kept in one place (the paper's wording, think/answer format).

`Sample.problem` holds the task's question ("Detect all objects belonging to the category 'dog'.");
`build_prompt` adds the coordinate instructions in the model's convention and the output format.
`answer_text` renders a target as the answer the rewards expect (used by SFT and as the perfect
answer in tests).
"""

from __future__ import annotations

from visual_rft.coords import CoordFrame, target_to_model
from visual_rft.data.types import ClassTarget, DetectionTarget, GroundingTarget, Sample, Target

THINK_ANSWER = "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
NO_OBJECTS = "No Objects"


def coordinate_phrase(frame: CoordFrame) -> str:
    """How the model must write coordinates, in its own convention."""
    if frame.convention == "norm1000":
        return "between 0 and 1000, integer"
    w, h = (int(round(v)) for v in frame.extent)
    return f"in pixels of the {w}x{h} image, integer"


def build_prompt(sample: Sample, frame: CoordFrame | None) -> str:
    """The full user text for one sample. `frame` is needed for tasks with boxes."""
    q = sample.problem.strip()
    if sample.task == "classification":
        return (
            f"{q} {THINK_ANSWER} The output answer format should be as follows: "
            "<think> ... </think> <answer>class name</answer> Please strictly follow the format."
        )
    if frame is None:
        raise ValueError(f"sample {sample.id}: task {sample.task!r} needs a coordinate frame")
    coords = coordinate_phrase(frame)
    if sample.task == "detection":
        return (
            f"{q} Provide the bounding boxes ({coords}) and confidence (between 0 and 1, with two "
            f"decimal places). If there is no such object in the image, return '{NO_OBJECTS}'. "
            f"{THINK_ANSWER} The output answer format should be as follows: <think> ... </think> "
            "<answer>[{'Position': [x1, y1, x2, y2], 'Confidence': number}, ...]</answer> "
            "Please strictly follow the format."
        )
    if sample.task == "grounding":
        return (
            f"{q} Give the bounding box of the region ({coords}). {THINK_ANSWER} The output answer "
            "format should be as follows: <think> ... </think> <answer>(x1,y1),(x2,y2)</answer> "
            "Please strictly follow the format."
        )
    raise ValueError(f"sample {sample.id}: unknown task {sample.task!r}")


def messages(sample: Sample, frame: CoordFrame | None) -> list[dict]:
    """Chat messages for the processor's chat template: the image(s), then the prompt text."""
    content = [{"type": "image"} for _ in sample.images]
    content.append({"type": "text", "text": build_prompt(sample, frame)})
    return [{"role": "user", "content": content}]


def _int(v: float) -> int:
    return int(round(v))


def answer_body(target: Target) -> str:
    """The text inside <answer></answer> for a target ALREADY in the model's convention."""
    if isinstance(target, ClassTarget):
        return target.label
    if isinstance(target, DetectionTarget):
        if not target.boxes:
            return NO_OBJECTS
        items = [
            f"{{'Position': [{_int(b.x1)}, {_int(b.y1)}, {_int(b.x2)}, {_int(b.y2)}], 'Confidence': 1}}"
            for b in target.boxes
        ]
        return "[" + ", ".join(items) + "]"
    if isinstance(target, GroundingTarget):
        b = target.box
        return f"({_int(b.x1)},{_int(b.y1)}),({_int(b.x2)},{_int(b.y2)})"
    raise TypeError(f"not a target: {target!r}")


def answer_text(sample: Sample, frame: CoordFrame | None, think: str | None = None) -> str:
    """The full answer the rewards score highest: optional <think> part, then <answer>...</answer>."""
    target = sample.target if frame is None else target_to_model(sample.target, frame)
    body = f"<answer>{answer_body(target)}</answer>"
    return body if think is None else f"<think>{think}</think><answer>{answer_body(target)}</answer>"
