"""Prompt templates for each task, kept in one place (the paper's wording, think/answer format).

`Sample.problem` holds the task's question ("Detect all objects belonging to the category 'dog'.");
`build_prompt` adds the coordinate instructions in the model's convention and the output format.
The answer a target renders to (SFT targets, perfect answers in tests) is `visual_rft.data.answer`'s.
"""

from __future__ import annotations

from visual_rft.data.answer import NO_OBJECTS
from visual_rft.data.coords import CoordFrame
from visual_rft.data.types import Sample

THINK_ANSWER = "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
DETECTION_PROBLEM = "Detect all objects belonging to the category '{category}' in the image."
"""The question of a detection query (the paper's wording), for builders, importers and added queries."""

CLASSIFICATION_PROBLEMS = {
    # verified: classification/Qwen2_VL_classification_infere.py of the official repository
    # (Liuziyu77/Visual-RFT) asks this of the aircraft
    "aircraft": "This is an image containing an aircraft. Please identify the model of the aircraft based on the image.",
    # not verified against the released data (the repository ships only the aircraft prompt): the
    # flowers one is the form tests/data/test_convert_hf.py writes; pets and cars follow the same form
    "flowers": "This is an image containing a flower. Please identify the species of the flower.",
    "pets": "This is an image containing a pet. Please identify the species of the pet.",
    "cars": "This is an image containing a car. Please identify the model of the car.",
}
"""The question of a fine-grained classification sample, by dataset (`vrft data build classification`)."""
GROUNDING_PROBLEM = "Output the bounding box in the image corresponding to the instruction: {instruction}."
"""The question of a reasoning-grounding sample (the official lisa_evaluation/Qwen2_VL_lisa_infere.py's
wording, without its format part, which `build_prompt` adds)."""


def coordinate_phrase(frame: CoordFrame) -> str:
    """How the model must write coordinates, in its own convention."""
    if frame.convention == "norm1000":
        return "between 0 and 1000, integer"
    w, h = (int(round(v)) for v in frame.extent)
    return f"in pixels of the {w}x{h} image, integer"


def build_prompt(sample: Sample, frame: CoordFrame | None, short: bool = False) -> str:
    """The full user text for one sample. `frame` is needed for tasks with boxes. `short`: the question alone,
    without the coordinate and format instructions, for training steps that teach the answer anyway (a cheaper
    pre-training step: `sft.short_prompts`, RESULTS.md section 37); evaluation and RFT always ask the full one."""
    q = sample.problem.strip()
    if short:
        return q
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


def messages(sample: Sample, frame: CoordFrame | None, short: bool = False) -> list[dict]:
    """Chat messages for the processor's chat template: the image(s), then the prompt text (`build_prompt`'s)."""
    content = [{"type": "image"} for _ in sample.images]
    content.append({"type": "text", "text": build_prompt(sample, frame, short)})
    return [{"role": "user", "content": content}]
